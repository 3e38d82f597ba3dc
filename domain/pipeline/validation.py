"""Validate a user's aggregation pipeline and confine it to the caller's tenant.

`validate_pipeline` returns the BSON pipeline with the tenant filter `{<tenant_field>: <tenant>}`
injected as stage 0 and at the start of everything that reads another collection: every
`$lookup` (both forms: a localField/foreignField lookup gets a `pipeline` holding the filter, which
MongoDB 5.0+ runs after the equality match), every `$unionWith` and, for `$graphLookup`, its
`restrictSearchWithMatch`. Refusals raise `PipelineRejected` naming the path and the reason, e.g.
`pipeline[2].$lookup.from: collection 'users' is not exportable`.

Why the user's own stages may read and even write the tenant field: every document a pipeline can
see has passed a tenant filter that runs *before* any user stage of its pipeline (stage 0 for the
source, the first stage of each injected sub-pipeline or `restrictSearchWithMatch` for the others).
Writing `tenantId` with `$set` / `$project` only changes the copy in the output row, never which
documents are read, and the injected filters hold the tenant as a literal, not a variable the user
could rebind with `let`. A `$match` on another tenant merely selects nothing. `$facet` branches
see the documents already filtered. So no rule on the tenant field is needed, and none is made.

What is refused, and why:

* stages outside the allow-list; writes (`$out`, `$merge`); administrative and diagnostic stages;
* any operator outside the allow-list of `domain.pipeline.operators`, at any depth: server-side
  JavaScript (`$function`, `$accumulator`, `$where`), internal operators (`$_…`), and anything
  that changes between runs (`$rand`, `$sampleRate`), since a retried part must regenerate
  exactly the same rows;
* system variables outside their allow-list (`$$NOW`, `$$CLUSTER_TIME`, `$$USER_ROLES`…);
* DBRefs and code anywhere in a stage: the Extended JSON parser builds them from `$ref`/`$id`
  and `$code` shapes, and their inner keys would escape the operator check;
* `$sample`, which changes between runs;
* what must come first in a pipeline (`$geoNear`, `$text`), since the tenant filter does;
* reading a collection that is not exportable, or any `system.*` collection;
* too many stages (counted through sub-pipelines), too deep nesting, too many bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import bson
from bson.code import Code
from bson.dbref import DBRef

from domain.pipeline.extended_json import ExtendedJsonError, bson_from_extended_json
from domain.pipeline.operators import REFUSED_OPERATORS, operator_refusal, variable_refusal
from domain.settings import Settings

ALLOWED_STAGES: Final = frozenset(
    {
        "$match", "$project", "$addFields", "$set", "$unset", "$unwind", "$group", "$sort",
        "$limit", "$skip", "$count", "$lookup", "$unionWith", "$graphLookup", "$facet",
        "$bucket", "$bucketAuto", "$sortByCount", "$replaceRoot", "$replaceWith", "$redact",
    }
)  # fmt: skip
"""`$redact` is allowed: it only keeps or prunes (parts of) the documents it is given."""

_REFUSED_STAGES: Final[dict[str, str]] = {
    "$out": "writes to a collection; exports are read-only",
    "$merge": "writes to a collection; exports are read-only",
    "$sample": "returns random documents, so a retried part would not see the same rows",
    "$geoNear": "must be the first stage, and the tenant filter is",
    "$search": "needs Atlas Search, which exports do not support",
    "$searchMeta": "needs Atlas Search, which exports do not support",
    "$vectorSearch": "needs Atlas Vector Search, which exports do not support",
    "$documents": "produces documents from the request itself instead of reading a collection",
    "$changeStream": "opens a change stream; exports read a collection once",
}
_ADMIN_STAGES: Final = frozenset(
    {
        "$currentOp", "$listSessions", "$listLocalSessions", "$collStats", "$indexStats",
        "$planCacheStats", "$changeStreamSplitLargeEvent", "$listSearchIndexes",
        "$listSampledQueries", "$shardedDataDistribution", "$querySettings",
        "$listClusterCatalog", "$listCachedAndActiveUsers", "$queryStats",
    }
)  # fmt: skip
_REFUSED_OPERATORS: Final = REFUSED_OPERATORS
"""Kept for the property tests; the allow-list is `domain.pipeline.operators.ALLOWED_OPERATORS`."""
_LOOKUP_KEYS: Final = frozenset({"from", "localField", "foreignField", "let", "pipeline", "as"})
_GRAPH_LOOKUP_KEYS: Final = frozenset(
    {
        "from", "startWith", "connectFromField", "connectToField", "as", "maxDepth",
        "depthField", "restrictSearchWithMatch",
    }
)  # fmt: skip
_UNWIND_KEYS: Final = frozenset({"path", "includeArrayIndex", "preserveNullAndEmptyArrays"})


class PipelineRejected(ValueError):
    """The pipeline cannot be exported. `str()` is `<path>: <reason>`, shown to the user."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class _Context:
    tenant_match: dict[str, Any]
    allowed: frozenset[str] | None
    max_stages: int
    max_depth: int
    stages_seen: int = 0


def tenant_filter(settings: Settings, tenant: str) -> dict[str, Any]:
    """The `$match` body confining reads to one tenant."""
    return {settings.tenant_field: tenant}


def validate_pipeline(
    pipeline: Any, *, collection: str, tenant: str, settings: Settings
) -> list[dict[str, Any]]:
    """The BSON pipeline to run for `tenant` on `collection`, or `PipelineRejected`.

    `pipeline` is the request's list of stages (JSON with Extended JSON, or BSON already). The
    result starts with `{"$match": {<tenant_field>: tenant}}`; user stages follow, rewritten only
    to inject the tenant filter into what reads other collections.
    """
    if not isinstance(pipeline, list):
        raise PipelineRejected("pipeline", "must be a list of stages")
    if len(pipeline) > settings.max_pipeline_stages:
        raise _too_many_stages("pipeline", settings.max_pipeline_stages)
    context = _Context(
        tenant_match=tenant_filter(settings, tenant),
        allowed=settings.exportable_collections,
        max_stages=settings.max_pipeline_stages,
        max_depth=settings.max_pipeline_depth,
    )
    _check_collection(collection, "collection", context)
    try:
        converted = bson_from_extended_json(pipeline, "pipeline")
    except ExtendedJsonError as error:
        raise PipelineRejected(error.path, error.reason) from error
    _check_size(converted, settings.max_pipeline_bytes)
    stages = _stages(converted, "pipeline", depth=1, context=context)
    return [{"$match": dict(context.tenant_match)}, *stages]


def _too_many_stages(path: str, limit: int) -> PipelineRejected:
    return PipelineRejected(
        path, f"more than {limit} stages (sub-pipelines included), the limit for an export"
    )


def _check_size(pipeline: Any, limit: int) -> None:
    try:
        size = len(bson.encode({"pipeline": pipeline}))
    except Exception as error:  # InvalidDocument, OverflowError, ...
        raise PipelineRejected("pipeline", f"cannot be encoded as BSON: {error}") from error
    if size > limit:
        raise PipelineRejected(
            "pipeline", f"is {size} bytes as BSON, more than the limit of {limit} bytes"
        )


def _check_collection(name: Any, path: str, context: _Context) -> str:
    if not isinstance(name, str) or not name:
        raise PipelineRejected(path, "must be a collection name (a non-empty string)")
    if name.startswith("system.") or "$" in name or "\x00" in name:
        raise PipelineRejected(path, f"collection {name!r} cannot be read by an export")
    if context.allowed is not None and name not in context.allowed:
        raise PipelineRejected(path, f"collection {name!r} is not exportable")
    return name


def _stages(pipeline: Any, path: str, *, depth: int, context: _Context) -> list[dict[str, Any]]:
    if not isinstance(pipeline, list):
        raise PipelineRejected(path, "must be a list of stages")
    if depth > context.max_depth:
        raise PipelineRejected(
            path, f"sub-pipelines nested {depth} deep, more than the limit of {context.max_depth}"
        )
    result = []
    for index, stage in enumerate(pipeline):
        stage_path = f"{path}[{index}]"
        context.stages_seen += 1
        if context.stages_seen > context.max_stages:
            raise _too_many_stages(stage_path, context.max_stages)
        result.append(_stage(stage, stage_path, depth=depth, context=context))
    return result


def _stage(stage: Any, path: str, *, depth: int, context: _Context) -> dict[str, Any]:
    if not isinstance(stage, Mapping) or len(stage) != 1:
        got = f"{len(stage)} keys" if isinstance(stage, Mapping) else type(stage).__name__
        raise PipelineRejected(
            path, f'a stage must be an object with exactly one key such as {{"$match": ...}}, '
            f"got {got}"
        )  # fmt: skip
    ((name, body),) = stage.items()
    if not isinstance(name, str) or not name.startswith("$"):
        raise PipelineRejected(path, f"{name!r} is not a stage name (stage names start with $)")
    where = f"{path}.{name}"
    if name in _REFUSED_STAGES:
        raise PipelineRejected(where, f"{name} is not allowed: {_REFUSED_STAGES[name]}")
    if name in _ADMIN_STAGES:
        raise PipelineRejected(
            where, f"{name} is an administrative or diagnostic stage, not allowed in exports"
        )
    if name not in ALLOWED_STAGES:
        raise PipelineRejected(
            where, f"{name} is not an allowed stage; allowed: {', '.join(sorted(ALLOWED_STAGES))}"
        )
    checked = _STAGE_CHECKS[name](body, where, depth, context)
    return {name: checked}


# ---------------------------------------------------------------------------------------------
# Per-stage checks: each returns the (possibly rewritten) stage body.


def _scan(value: Any, path: str) -> None:
    """Refuse operators and variables outside the allow-lists anywhere inside a value.

    The Extended JSON parser has already turned wrapper shapes into BSON values; the ones that
    carry a document of their own (a DBRef keeps any extra keys next to `$ref`/`$id`, code keeps
    its scope) are refused outright rather than trusted, so nothing hides inside them.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PipelineRejected(path, f"key {key!r} is not a string")
            if key.startswith("$"):
                refusal = operator_refusal(key)
                if refusal is not None:
                    raise PipelineRejected(f"{path}.{key}", refusal)
            _scan(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _scan(item, f"{path}[{index}]")
    elif isinstance(value, str):
        refusal = variable_refusal(value)
        if refusal is not None:
            raise PipelineRejected(path, refusal)
    elif isinstance(value, DBRef):
        raise PipelineRejected(
            path,
            "a DBRef ($ref/$id, $dbPointer) is not allowed in a pipeline: the server reads it as "
            "a document whose other keys exports cannot check",
        )
    elif isinstance(value, Code):
        raise PipelineRejected(path, "JavaScript code ($code) is not allowed")


def _document(body: Any, where: str, what: str = "an object") -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise PipelineRejected(where, f"must be {what}")
    return body


def _any_document(body: Any, where: str, depth: int, context: _Context) -> Any:
    _scan(_document(body, where), where)
    return body


def _non_empty_document(body: Any, where: str, depth: int, context: _Context) -> Any:
    _scan(_document(body, where), where)
    if not body:
        raise PipelineRejected(where, "must not be empty")
    return body


def _expression(body: Any, where: str, depth: int, context: _Context) -> Any:
    _scan(body, where)
    return body


def _unset(body: Any, where: str, depth: int, context: _Context) -> Any:
    fields = [body] if isinstance(body, str) else body
    if not isinstance(fields, list) or not fields:
        raise PipelineRejected(where, "must be a field name or a non-empty list of field names")
    for index, field in enumerate(fields):
        _field_name(field, f"{where}[{index}]" if isinstance(body, list) else where)
    return body


def _field_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or value.startswith("$") or "\x00" in value:
        raise PipelineRejected(where, "must be a field name (a non-empty string without a $)")
    return value


def _field_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        raise PipelineRejected(where, 'must be a field path such as "$items"')
    _field_name(value[1:], where)
    return value


def _count(body: Any, where: str, depth: int, context: _Context) -> Any:
    name = _field_name(body, where)
    if "." in name:
        raise PipelineRejected(where, "must be a field name without a dot")
    return body


def _positive_int(body: Any, where: str, *, minimum: int) -> int:
    is_number = isinstance(body, int | float) and not isinstance(body, bool)
    if not is_number or not math.isfinite(body) or body != int(body):
        raise PipelineRejected(where, "must be an integer")
    if body < minimum:
        raise PipelineRejected(where, f"must be at least {minimum}")
    return int(body)


def _limit(body: Any, where: str, depth: int, context: _Context) -> Any:
    return _positive_int(body, where, minimum=1)


def _skip(body: Any, where: str, depth: int, context: _Context) -> Any:
    return _positive_int(body, where, minimum=0)


def _sort(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    if not spec:
        raise PipelineRejected(where, "must name at least one field")
    for field, direction in spec.items():
        _field_name(field, f"{where}.{field}")
        if isinstance(direction, bool) or direction not in (1, -1):
            raise PipelineRejected(f"{where}.{field}", "must be 1 (ascending) or -1 (descending)")
    return {field: int(direction) for field, direction in spec.items()}


def _unwind(body: Any, where: str, depth: int, context: _Context) -> Any:
    if isinstance(body, str):
        _field_path(body, where)
        return body
    spec = _document(body, where, 'a field path such as "$items" or an object with "path"')
    for key in spec:
        if key not in _UNWIND_KEYS:
            raise PipelineRejected(f"{where}.{key}", f"unknown $unwind option {key!r}")
    _field_path(spec.get("path"), f"{where}.path")
    if "includeArrayIndex" in spec:
        _field_name(spec["includeArrayIndex"], f"{where}.includeArrayIndex")
    preserve = spec.get("preserveNullAndEmptyArrays", False)
    if not isinstance(preserve, bool):
        raise PipelineRejected(f"{where}.preserveNullAndEmptyArrays", "must be true or false")
    return dict(spec)


def _group(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    if "_id" not in spec:
        raise PipelineRejected(where, "must have an _id (the group key)")
    _scan(spec, where)
    return body


def _bucket(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    for required in ("groupBy", "boundaries"):
        if required not in spec:
            raise PipelineRejected(where, f"must have {required!r}")
    _scan(spec, where)
    return body


def _bucket_auto(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    for required in ("groupBy", "buckets"):
        if required not in spec:
            raise PipelineRejected(where, f"must have {required!r}")
    _scan(spec, where)
    return body


def _replace_root(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    if set(spec) != {"newRoot"}:
        raise PipelineRejected(where, 'must be an object with exactly "newRoot"')
    _scan(spec, where)
    return body


def _facet(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where, "an object of named sub-pipelines")
    if not spec:
        raise PipelineRejected(where, "must have at least one sub-pipeline")
    result = {}
    for name, sub in spec.items():
        _field_name(name, f"{where}.{name}")
        sub_path = f"{where}.{name}"
        if isinstance(sub, list):
            for index, stage in enumerate(sub):
                if isinstance(stage, Mapping) and "$facet" in stage:
                    raise PipelineRejected(
                        f"{sub_path}[{index}].$facet", "$facet cannot be nested in $facet"
                    )
        result[name] = _stages(sub, sub_path, depth=depth + 1, context=context)
    return result


def _lookup(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    for key in spec:
        if key not in _LOOKUP_KEYS:
            raise PipelineRejected(f"{where}.{key}", f"unknown $lookup option {key!r}")
    if "from" not in spec:
        raise PipelineRejected(where, "must name the collection it reads in 'from'")
    _check_collection(spec["from"], f"{where}.from", context)
    _field_name(spec.get("as"), f"{where}.as")
    has_local, has_foreign = "localField" in spec, "foreignField" in spec
    if has_local != has_foreign:
        raise PipelineRejected(where, "localField and foreignField go together")
    if has_local:
        _field_name(spec["localField"], f"{where}.localField")
        _field_name(spec["foreignField"], f"{where}.foreignField")
    elif "pipeline" not in spec:
        raise PipelineRejected(where, "needs localField/foreignField or a pipeline")
    if "let" in spec:
        _scan(_document(spec["let"], f"{where}.let"), f"{where}.let")
    user_stages = spec.get("pipeline", [])
    stages = _stages(user_stages, f"{where}.pipeline", depth=depth + 1, context=context)
    result = dict(spec)
    result["pipeline"] = [{"$match": dict(context.tenant_match)}, *stages]
    return result


def _union_with(body: Any, where: str, depth: int, context: _Context) -> Any:
    if isinstance(body, str):
        coll = _check_collection(body, where, context)
        return {"coll": coll, "pipeline": [{"$match": dict(context.tenant_match)}]}
    spec = _document(body, where, "a collection name or an object with 'coll'")
    for key in spec:
        if key not in ("coll", "pipeline"):
            raise PipelineRejected(f"{where}.{key}", f"unknown $unionWith option {key!r}")
    coll = _check_collection(spec.get("coll"), f"{where}.coll", context)
    user_stages = spec.get("pipeline", [])
    stages = _stages(user_stages, f"{where}.pipeline", depth=depth + 1, context=context)
    return {"coll": coll, "pipeline": [{"$match": dict(context.tenant_match)}, *stages]}


def _graph_lookup(body: Any, where: str, depth: int, context: _Context) -> Any:
    spec = _document(body, where)
    for key in spec:
        if key not in _GRAPH_LOOKUP_KEYS:
            raise PipelineRejected(f"{where}.{key}", f"unknown $graphLookup option {key!r}")
    for required in ("from", "startWith", "connectFromField", "connectToField", "as"):
        if required not in spec:
            raise PipelineRejected(where, f"must have {required!r}")
    _check_collection(spec["from"], f"{where}.from", context)
    for field in ("connectFromField", "connectToField", "as"):
        _field_name(spec[field], f"{where}.{field}")
    _scan(spec, where)
    result = dict(spec)
    restrict = spec.get("restrictSearchWithMatch")
    if restrict is None:
        result["restrictSearchWithMatch"] = dict(context.tenant_match)
    else:
        _document(restrict, f"{where}.restrictSearchWithMatch")
        result["restrictSearchWithMatch"] = {"$and": [dict(context.tenant_match), restrict]}
    return result


_STAGE_CHECKS: Final = {
    "$match": _any_document,
    "$project": _non_empty_document,
    "$addFields": _non_empty_document,
    "$set": _non_empty_document,
    "$unset": _unset,
    "$unwind": _unwind,
    "$group": _group,
    "$sort": _sort,
    "$limit": _limit,
    "$skip": _skip,
    "$count": _count,
    "$lookup": _lookup,
    "$unionWith": _union_with,
    "$graphLookup": _graph_lookup,
    "$facet": _facet,
    "$bucket": _bucket,
    "$bucketAuto": _bucket_auto,
    "$sortByCount": _expression,
    "$replaceRoot": _replace_root,
    "$replaceWith": _expression,
    "$redact": _expression,
}
