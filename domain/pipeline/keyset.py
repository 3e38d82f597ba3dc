"""Keyset bounds: "every row strictly after this cursor" as a MongoDB filter, and its Python mirror.

MongoDB sorts values of different types by *type bracket* (MinKey < null/missing < numbers <
string < object < array < binData < objectId < bool < date < timestamp < regex < MaxKey), but its
comparison operators only match inside one bracket: `{$gt: 5}` never matches a string and
`{$gt: null}` matches nothing. So "after v" on one ascending key is

    {$or: [{f: {$gt: v}}, {f: {$type: [<every later bracket>]}}]}

and, descending, `$lt` plus the earlier brackets, where the null bracket is written `{f: null}` so
that it also matches missing fields (MongoDB sorts missing and null as equal). A compound key
`[(k1, d1), (k2, d2), ...]` is the usual lexicographic expansion: k1 after, or k1 equal and k2
after, ... Each disjunct is a plain conjunction, so MongoDB can plan every one as an index range.

Choices worth knowing:

* `$type` lists name only the brackets that FerretDB 1.24, mongo-java-server and MongoDB all know
  (`number string object binData objectId bool date timestamp regex`). Values of the deprecated
  or internal types (MinKey, MaxKey, undefined, symbol, JavaScript, DBPointer) are not paged:
  `key_values` refuses them when a row carries one, but a row of such a type positioned after a
  part boundary is not matched by the bound.
* `"array"` is never listed: `$type: "array"` has no index bounds, so it would turn every part into
  a full scan. Arrays cannot be a cursor anyway (`key_values` refuses them), and because `$gt` /
  `$type` match arrays element-wise the bound still returns every array row that sorts after the
  cursor, so the reader meets it and fails loudly. The one array that no element can match, `[]`,
  sorts lowest of all; descending bounds add `{f: []}` (index-bounded) so it is met too.
* NaN sorts below every number but matches neither `$gt` nor `$lt`, and FerretDB rejects a NaN
  literal, so NaN is matched as `{$type: "number", $not: {$gte: -Infinity}}`; "after NaN"
  ascending is `{$gte: -Infinity}`.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

SortKeys = Sequence[tuple[str, int]]
"""A compound sort key: (dotted field path, 1 for ascending or -1 for descending) pairs."""

# BSON sort brackets (MongoDB's canonicalizeBSONType order).
MIN_KEY, NULL, NUMBER, STRING, OBJECT, ARRAY, BIN_DATA, OBJECT_ID = 0, 1, 2, 3, 4, 5, 6, 7
BOOL, DATE, TIMESTAMP, REGEX, DB_POINTER, CODE, MAX_KEY = 8, 9, 10, 11, 12, 13, 14

_TYPE_ALIAS: Final[dict[int, str]] = {
    NUMBER: "number",
    STRING: "string",
    OBJECT: "object",
    BIN_DATA: "binData",
    OBJECT_ID: "objectId",
    BOOL: "bool",
    DATE: "date",
    TIMESTAMP: "timestamp",
    REGEX: "regex",
}
"""The brackets a `$type` list names: aliases every supported engine knows, array excluded."""

_ORDERED: Final = frozenset({NUMBER, STRING, OBJECT, BIN_DATA, OBJECT_ID, BOOL, DATE, TIMESTAMP})
"""Brackets whose values `$gt`/`$lt` can compare (the brackets a cursor value may be in)."""

NEGATIVE_INFINITY: Final = float("-inf")
NAN_MATCH: Final[dict[str, Any]] = {"$type": "number", "$not": {"$gte": NEGATIVE_INFINITY}}
"""Matches NaN (float or Decimal128) without a NaN literal."""

_UTC_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class CursorError(ValueError):
    """A row's sort key cannot serve as a keyset cursor (an array, a regex, ...)."""


def bracket(value: Any) -> int:
    """The BSON sort bracket of a (decoded) value; None stands for null and missing alike."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float | Decimal128):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, DBRef):
        return OBJECT
    if isinstance(value, Mapping):
        return OBJECT
    if isinstance(value, list | tuple):
        return ARRAY
    if isinstance(value, bytes | Binary):
        return BIN_DATA
    if isinstance(value, ObjectId):
        return OBJECT_ID
    if isinstance(value, datetime.datetime | DatetimeMS):
        return DATE
    if isinstance(value, Timestamp):
        return TIMESTAMP
    if isinstance(value, Regex | re.Pattern):
        return REGEX
    if isinstance(value, Code):
        return CODE
    if isinstance(value, MinKey):
        return MIN_KEY
    if isinstance(value, MaxKey):
        return MAX_KEY
    raise CursorError(f"{type(value).__name__} is not a BSON value")


def is_nan(value: Any) -> bool:
    """True for a float or Decimal128 NaN."""
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return False


def sort_key(value: Any) -> tuple[Any, ...]:
    """A Python key that orders values as MongoDB's `$sort` does (simple collation).

    None stands for null and missing. Embedded documents compare element by element (bracket,
    then field name, then value) and a shorter document first, as BSON's woCompare does; arrays
    are compared element-wise here (a `$sort` on an array field uses its min or max element, which
    the keyset refuses anyway).
    """
    kind = bracket(value)
    return (kind, _inner_key(kind, value))


def _inner_key(kind: int, value: Any) -> Any:
    if kind == NUMBER:
        return _number_key(value)
    if kind == STRING:
        return value.encode("utf-8", "surrogatepass")
    if kind == OBJECT:
        items = value.as_doc().items() if isinstance(value, DBRef) else value.items()
        return tuple((bracket(v), k.encode("utf-8"), sort_key(v)) for k, v in items)
    if kind == ARRAY:
        return tuple(sort_key(item) for item in value)
    if kind == BIN_DATA:
        subtype = value.subtype if isinstance(value, Binary) else 0
        return (len(value), subtype, bytes(value))
    if kind == OBJECT_ID:
        return value.binary
    if kind == BOOL:
        return bool(value)
    if kind == DATE:
        return _date_millis(value)
    if kind == TIMESTAMP:
        return (value.time, value.inc)
    if kind == REGEX:
        return (str(value.pattern), str(value.flags))
    if kind == CODE:
        return str(value)
    return ()


def _number_key(value: Any) -> tuple[Any, ...]:
    if is_nan(value):
        return (0,)
    if isinstance(value, Decimal128):
        return (1, value.to_decimal())
    return (1, Decimal(value))


def _date_millis(value: datetime.datetime | DatetimeMS) -> int:
    if isinstance(value, DatetimeMS):
        return int(value)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
    delta = aware - _UTC_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# ---------------------------------------------------------------------------------------------
# Reading a cursor from a row


def field_value(row: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, None when missing; a list when the path crosses an array."""
    current: Any = row
    for part in path.split("."):
        if isinstance(current, list):
            return current  # MongoDB would sort on the array's elements: not a keyset value
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def key_values(row: Mapping[str, Any], keys: SortKeys) -> tuple[Any, ...]:
    """The cursor of a row: its values for `keys`, refusing values no keyset can resume from."""
    values = []
    for path, _direction in keys:
        value = field_value(row, path)
        check_cursor_value(value, path, row.get("_id"))
        values.append(value)
    return tuple(values)


def check_cursor_value(value: Any, path: str, row_id: Any = None) -> None:
    """Raise `CursorError` unless `value` can be the cursor value of a keyset on `path`."""
    where = f"sort key {path!r} of the row with _id {row_id!r}"
    try:
        kind = bracket(value)
    except CursorError as error:
        raise CursorError(f"{where}: {error}") from error
    if kind == ARRAY:
        raise CursorError(
            f"{where} is an array: MongoDB sorts an array by its smallest or largest element, "
            "so no keyset can resume after it; sort on a scalar field or $unwind the array first"
        )
    if kind not in _ORDERED and kind != NULL:
        raise CursorError(
            f"{where} is a {type(value).__name__}: exports cannot be paged on this BSON type; "
            "sort on a field holding numbers, strings, dates, ObjectIds, booleans or documents"
        )


# ---------------------------------------------------------------------------------------------
# Building the bound


def after(keys: SortKeys, cursor: Sequence[Any], *, inclusive: bool = False) -> dict[str, Any]:
    """A `$match` body selecting the rows strictly after `cursor` in the order `keys`.

    With `inclusive`, rows whose key equals the cursor are selected too (at or after).
    """
    if len(keys) != len(cursor):
        raise ValueError(f"a cursor of {len(cursor)} values for a key of {len(keys)} fields")
    disjuncts: list[dict[str, Any]] = []
    equal: dict[str, Any] = {}
    for (path, direction), value in zip(keys, cursor, strict=True):
        if direction not in (1, -1):
            raise ValueError(f"sort direction of {path!r} must be 1 or -1, not {direction!r}")
        check_cursor_value(value, path)
        for condition in _after_one(value, direction):
            disjuncts.append({**equal, path: condition})
        equal[path] = equals(value)
    if inclusive:
        disjuncts.append(equal)
    return disjuncts[0] if len(disjuncts) == 1 else {"$or": disjuncts}


def equals(value: Any) -> Any:
    """The field condition "sorts equal to value" (None also matches missing fields)."""
    if is_nan(value):
        return dict(NAN_MATCH)
    if isinstance(value, Mapping):
        return {"$eq": value}
    return value


def _after_one(value: Any, direction: int) -> list[Any]:
    kind = bracket(value)
    conditions: list[Any] = []
    if direction == 1:
        if kind == NUMBER and is_nan(value):
            conditions.append({"$gte": NEGATIVE_INFINITY})
        elif kind in _ORDERED:
            conditions.append({"$gt": value})
        later = [alias for b, alias in _TYPE_ALIAS.items() if b > kind]
        if later:
            conditions.append({"$type": later})
        return conditions
    if kind == NUMBER and is_nan(value):
        pass  # nothing numeric sorts below NaN
    elif kind in _ORDERED:
        conditions.append({"$lt": value})
        if kind == NUMBER:
            conditions.append(dict(NAN_MATCH))
    earlier = [alias for b, alias in _TYPE_ALIAS.items() if NULL < b < kind]
    if earlier:
        conditions.append({"$type": earlier})
    if kind > NULL:
        conditions.append(None)
    conditions.append([])
    return conditions
