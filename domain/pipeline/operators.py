"""The operators and system variables a pipeline may use: allow-lists, not deny-lists.

Every key starting with `$` inside a stage (query operators, expression operators, accumulators)
must be in `ALLOWED_OPERATORS`; anything else, internal operators such as
`$_internalJsEmit` included, never reaches the server. Some refused operators get a specific
reason (`REFUSED_OPERATORS`); every other one is refused as "not an allowed operator".

Variables: `$$<name>` with a lowercase first letter is a user variable (`let`, `$map`'s `as`,
`$$this`/`$$value` of `$reduce`): MongoDB reserves names starting with an upper-case letter
for system variables, so a user variable cannot stand for one. System variables are
allow-listed in `ALLOWED_SYSTEM_VARIABLES`; `$$NOW`, `$$CLUSTER_TIME` (they change between runs),
`$$USER_ROLES` (it reveals the service account) and any other are refused.
"""

from __future__ import annotations

from typing import Final

_QUERY: Final = frozenset(
    {
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$nor",
        "$not", "$exists", "$type", "$expr", "$mod", "$regex", "$options", "$all",
        "$elemMatch", "$size", "$bitsAllClear", "$bitsAllSet", "$bitsAnyClear", "$bitsAnySet",
        "$geoWithin", "$geoIntersects", "$geometry", "$box", "$polygon", "$center",
        "$centerSphere", "$comment",
    }
)  # fmt: skip
_EXPRESSION: Final = frozenset(
    {
        # arithmetic
        "$abs", "$add", "$ceil", "$divide", "$exp", "$floor", "$ln", "$log", "$log10",
        "$multiply", "$pow", "$round", "$sqrt", "$subtract", "$trunc",
        # arrays
        "$arrayElemAt", "$arrayToObject", "$concatArrays", "$filter", "$first", "$firstN",
        "$indexOfArray", "$isArray", "$last", "$lastN", "$map", "$maxN", "$minN",
        "$objectToArray", "$range", "$reduce", "$reverseArray", "$slice", "$sortArray", "$zip",
        # comparison, booleans, conditions
        "$cmp", "$cond", "$ifNull", "$switch", "$allElementsTrue", "$anyElementTrue",
        "$setDifference", "$setEquals", "$setIntersection", "$setIsSubset", "$setUnion",
        # dates
        "$dateAdd", "$dateDiff", "$dateFromParts", "$dateFromString", "$dateSubtract",
        "$dateToParts", "$dateToString", "$dateTrunc", "$dayOfMonth", "$dayOfWeek",
        "$dayOfYear", "$hour", "$isoDayOfWeek", "$isoWeek", "$isoWeekYear", "$millisecond",
        "$minute", "$month", "$second", "$week", "$year",
        # objects, literals, variables
        "$getField", "$setField", "$unsetField", "$mergeObjects", "$literal", "$let",
        # strings
        "$concat", "$indexOfBytes", "$indexOfCP", "$ltrim", "$regexFind", "$regexFindAll",
        "$regexMatch", "$replaceAll", "$replaceOne", "$rtrim", "$split", "$strLenBytes",
        "$strLenCP", "$strcasecmp", "$substr", "$substrBytes", "$substrCP", "$toLower",
        "$toString", "$trim", "$toUpper",
        # trigonometry
        "$sin", "$cos", "$tan", "$asin", "$acos", "$atan", "$atan2", "$asinh", "$acosh",
        "$atanh", "$sinh", "$cosh", "$tanh", "$degreesToRadians", "$radiansToDegrees",
        # types
        "$convert", "$isNumber", "$toBool", "$toDate", "$toDecimal", "$toDouble", "$toInt",
        "$toLong", "$toObjectId", "$binarySize", "$bsonSize",
    }
)  # fmt: skip
_ACCUMULATORS: Final = frozenset(
    {
        "$sum", "$avg", "$max", "$min", "$push", "$addToSet", "$count", "$stdDevPop",
        "$stdDevSamp", "$top", "$bottom", "$topN", "$bottomN", "$median", "$percentile",
    }
)  # fmt: skip

ALLOWED_OPERATORS: Final = _QUERY | _EXPRESSION | _ACCUMULATORS
"""Every `$` key a stage body may hold (the names of stages are allow-listed separately)."""

_JAVASCRIPT: Final = "runs server-side JavaScript, which exports do not allow"
_RANDOM: Final = "changes between runs, so a retried part would not regenerate the same rows"
REFUSED_OPERATORS: Final[dict[str, str]] = {
    "$function": _JAVASCRIPT,
    "$accumulator": _JAVASCRIPT,
    "$where": _JAVASCRIPT,
    "$rand": "returns a random number, so a retried part would not regenerate the same rows",
    "$sampleRate": "selects random documents, so a retried part would not see the same rows",
    "$text": "must be in the first stage of a pipeline, and the tenant filter is",
    "$near": "is not allowed in an aggregation $match; use $geoWithin",
    "$nearSphere": "is not allowed in an aggregation $match; use $geoWithin",
    "$meta": "reads search or text metadata, which exports do not support",
    "$jsonSchema": "is not among the operators exports allow",
}
"""Refused operators with a specific reason (everything outside ALLOWED_OPERATORS is refused)."""

ALLOWED_SYSTEM_VARIABLES: Final = frozenset(
    {"$$ROOT", "$$CURRENT", "$$REMOVE", "$$DESCEND", "$$PRUNE", "$$KEEP"}
)
REFUSED_SYSTEM_VARIABLES: Final[dict[str, str]] = {
    "$$NOW": _RANDOM,
    "$$CLUSTER_TIME": _RANDOM,
    "$$USER_ROLES": "reveals the roles of the service account the export runs as",
    "$$SEARCH_META": "reads search metadata, which exports do not support",
}


def operator_refusal(key: str) -> str | None:
    """Why the `$` key `key` may not appear in a stage body; None when it may."""
    if key in ALLOWED_OPERATORS:
        return None
    if key in REFUSED_OPERATORS:
        return f"{key} is not allowed: {REFUSED_OPERATORS[key]}"
    if key.startswith("$_"):
        return f"{key} is an internal server operator, never allowed in exports"
    return f"{key} is not an operator exports allow (see the operator allow-list in the README)"


def variable_refusal(text: str) -> str | None:
    """Why the string `text` (a `$$variable` reference, perhaps with a path) is refused; None
    when it is no variable reference, a user variable or an allowed system variable."""
    if not text.startswith("$$"):
        return None
    variable = text.split(".", 1)[0]
    name = variable[2:]
    if variable in ALLOWED_SYSTEM_VARIABLES:
        return None
    if name[:1].isascii() and name[:1].islower():
        return None  # a user variable: MongoDB requires a lowercase first letter for those
    if not name[:1].isascii():
        return None  # MongoDB also allows a non-ASCII first letter for user variables
    if variable in REFUSED_SYSTEM_VARIABLES:
        return f"{variable} is not allowed: {REFUSED_SYSTEM_VARIABLES[variable]}"
    allowed = ", ".join(sorted(ALLOWED_SYSTEM_VARIABLES))
    return f"{variable} is not an allowed variable; system variables allowed: {allowed}"
