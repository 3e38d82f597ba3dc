"""Golden tests: every refusal with its exact message, and the tenant filter at every depth."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.pipeline.validation import PipelineRejected, validate_pipeline
from domain.settings import Settings

SETTINGS = Settings(
    export_collections="orders,customers,accounts",
    tenant_field="tenantId",
    max_pipeline_stages=10,
    max_pipeline_depth=3,
    max_pipeline_bytes=2000,
)
TENANT = {"$match": {"tenantId": "acme"}}


def validate(pipeline: Any, collection: str = "orders") -> list[dict[str, Any]]:
    return validate_pipeline(pipeline, collection=collection, tenant="acme", settings=SETTINGS)


def rejection(pipeline: Any, collection: str = "orders") -> str:
    with pytest.raises(PipelineRejected) as error:
        validate(pipeline, collection)
    assert str(error.value) == f"{error.value.path}: {error.value.reason}"
    return str(error.value)


# ---------------------------------------------------------------------------------------------
# What passes, and where the tenant filter goes


def test_the_tenant_filter_is_stage_zero() -> None:
    assert validate([]) == [TENANT]
    assert validate([{"$match": {"tenantId": "other"}}, {"$sort": {"a": -1}}]) == [
        TENANT,
        {"$match": {"tenantId": "other"}},
        {"$sort": {"a": -1}},
    ]


def test_extended_json_becomes_bson() -> None:
    stages = validate(
        [
            {
                "$match": {
                    "_id": {"$oid": "5ca4bbc7a2dd94ee5816238c"},
                    "at": {"$gte": {"$date": "2020-01-02T03:04:05.006Z"}},
                    "n": {"$numberLong": "7"},
                    "name": {"$regex": "^a", "$options": "i"},
                }
            }
        ]
    )
    assert stages[1] == {
        "$match": {
            "_id": ObjectId("5ca4bbc7a2dd94ee5816238c"),
            "at": {"$gte": datetime.datetime(2020, 1, 2, 3, 4, 5, 6000)},
            "n": Int64(7),
            "name": Regex("^a", "i"),
        }
    }
    assert type(stages[1]["$match"]["n"]) is Int64


def test_a_local_field_lookup_gets_a_pipeline_holding_the_tenant_filter() -> None:
    stage = {"$lookup": {"from": "customers", "localField": "c", "foreignField": "_id", "as": "x"}}
    assert validate([stage])[1] == {
        "$lookup": {
            "from": "customers",
            "localField": "c",
            "foreignField": "_id",
            "as": "x",
            "pipeline": [TENANT],
        }
    }


def test_the_tenant_filter_opens_every_sub_pipeline_at_every_depth() -> None:
    pipeline = [
        {
            "$lookup": {
                "from": "customers",
                "let": {"c": "$customer"},
                "pipeline": [
                    {"$match": {"$expr": {"$eq": ["$_id", "$$c"]}}},
                    {"$unionWith": "accounts"},
                    {
                        "$lookup": {
                            "from": "accounts",
                            "localField": "a",
                            "foreignField": "b",
                            "as": "y",
                        }
                    },
                ],
                "as": "x",
            }
        },
        {
            "$facet": {
                "joined": [
                    {"$unionWith": {"coll": "orders", "pipeline": [{"$project": {"a": 1}}]}},
                    {
                        "$graphLookup": {
                            "from": "orders",
                            "startWith": "$parent",
                            "connectFromField": "parent",
                            "connectToField": "_id",
                            "as": "ancestors",
                            "restrictSearchWithMatch": {"kind": "x"},
                        }
                    },
                ]
            }
        },
    ]
    assert validate(pipeline) == [
        TENANT,
        {
            "$lookup": {
                "from": "customers",
                "let": {"c": "$customer"},
                "pipeline": [
                    TENANT,
                    {"$match": {"$expr": {"$eq": ["$_id", "$$c"]}}},
                    {"$unionWith": {"coll": "accounts", "pipeline": [TENANT]}},
                    {
                        "$lookup": {
                            "from": "accounts",
                            "localField": "a",
                            "foreignField": "b",
                            "as": "y",
                            "pipeline": [TENANT],
                        }
                    },
                ],
                "as": "x",
            }
        },
        {
            "$facet": {
                "joined": [
                    {
                        "$unionWith": {
                            "coll": "orders",
                            "pipeline": [TENANT, {"$project": {"a": 1}}],
                        }
                    },
                    {
                        "$graphLookup": {
                            "from": "orders",
                            "startWith": "$parent",
                            "connectFromField": "parent",
                            "connectToField": "_id",
                            "as": "ancestors",
                            "restrictSearchWithMatch": {
                                "$and": [{"tenantId": "acme"}, {"kind": "x"}]
                            },
                        }
                    },
                ]
            }
        },
    ]


def test_graph_lookup_without_a_restriction_gets_the_tenant_filter() -> None:
    stage = {
        "$graphLookup": {
            "from": "orders",
            "startWith": "$p",
            "connectFromField": "p",
            "connectToField": "_id",
            "as": "up",
        }
    }
    assert validate([stage])[1]["$graphLookup"]["restrictSearchWithMatch"] == {"tenantId": "acme"}


def test_the_request_is_not_modified() -> None:
    pipeline = [
        {"$lookup": {"from": "customers", "localField": "c", "foreignField": "_id", "as": "x"}}
    ]
    validate(pipeline)
    assert "pipeline" not in pipeline[0]["$lookup"]


def test_every_collection_is_exportable_with_a_star() -> None:
    star = Settings(export_collections="*")
    stage = {"$lookup": {"from": "anything", "localField": "a", "foreignField": "b", "as": "x"}}
    assert validate_pipeline([stage], collection="any", tenant="t", settings=star)[0] == {
        "$match": {"tenantId": "t"}
    }


def test_writing_the_tenant_field_is_allowed_because_reads_are_filtered_first() -> None:
    stages = validate([{"$set": {"tenantId": "other"}}, {"$unionWith": "accounts"}])
    assert stages == [
        TENANT,
        {"$set": {"tenantId": "other"}},
        {"$unionWith": {"coll": "accounts", "pipeline": [TENANT]}},
    ]


# ---------------------------------------------------------------------------------------------
# Refusals, each with its exact message

JS = "runs server-side JavaScript, which exports do not allow"
RANDOM = "so a retried part would not regenerate the same rows"


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            [{"$out": "x"}],
            "pipeline[0].$out: $out is not allowed: writes to a collection; exports are read-only",
        ),
        (
            [{"$match": {}}, {"$merge": {"into": "x"}}],
            "pipeline[1].$merge: $merge is not allowed: writes to a collection; "
            "exports are read-only",
        ),
        (
            [{"$match": {"$expr": {"$and": [{"$function": {"body": "f", "args": []}}]}}}],
            f"pipeline[0].$match.$expr.$and[0].$function: $function is not allowed: {JS}",
        ),
        (
            [{"$group": {"_id": "$a", "x": {"$accumulator": {}}}}],
            f"pipeline[0].$group.x.$accumulator: $accumulator is not allowed: {JS}",
        ),
        (
            [{"$match": {"$where": "this.a > 1"}}],
            f"pipeline[0].$match.$where: $where is not allowed: {JS}",
        ),
        (
            [{"$lookup": {"from": "orders", "as": "x", "pipeline": [{"$match": {"$where": "1"}}]}}],
            f"pipeline[0].$lookup.pipeline[0].$match.$where: $where is not allowed: {JS}",
        ),
        (
            [{"$currentOp": {}}],
            "pipeline[0].$currentOp: $currentOp is an administrative or diagnostic stage, "
            "not allowed in exports",
        ),
        (
            [{"$facet": {"s": [{"$collStats": {}}]}}],
            "pipeline[0].$facet.s[0].$collStats: $collStats is an administrative or diagnostic "
            "stage, not allowed in exports",
        ),
        (
            [{"$sample": {"size": 3}}],
            "pipeline[0].$sample: $sample is not allowed: returns random documents, so a retried "
            "part would not see the same rows",
        ),
        (
            [{"$addFields": {"r": {"$rand": {}}}}],
            "pipeline[0].$addFields.r.$rand: $rand is not allowed: returns a random number, "
            + RANDOM,
        ),
        (
            [{"$match": {"$sampleRate": 0.5}}],
            "pipeline[0].$match.$sampleRate: $sampleRate is not allowed: selects random "
            "documents, so a retried part would not see the same rows",
        ),
        (
            [{"$addFields": {"at": "$$NOW"}}],
            f"pipeline[0].$addFields.at: $$NOW is not allowed: changes between runs, {RANDOM}",
        ),
        (
            [{"$geoNear": {}}],
            "pipeline[0].$geoNear: $geoNear is not allowed: must be the first stage, "
            "and the tenant filter is",
        ),
        (
            [{"$foo": 1}],
            "pipeline[0].$foo: $foo is not an allowed stage; allowed: $addFields, $bucket, "
            "$bucketAuto, $count, $facet, $graphLookup, $group, $limit, $lookup, $match, "
            "$project, $redact, $replaceRoot, $replaceWith, $set, $skip, $sort, $sortByCount, "
            "$unionWith, $unset, $unwind",
        ),
        (
            [{"$lookup": {"from": "users", "localField": "a", "foreignField": "b", "as": "u"}}],
            "pipeline[0].$lookup.from: collection 'users' is not exportable",
        ),
        (
            [{"$match": {}}, {"$match": {}}, {"$unionWith": {"coll": "users"}}],
            "pipeline[2].$unionWith.coll: collection 'users' is not exportable",
        ),
        (
            [{"$unionWith": "system.users"}],
            "pipeline[0].$unionWith: collection 'system.users' cannot be read by an export",
        ),
        (
            [
                {
                    "$graphLookup": {
                        "from": "users",
                        "startWith": "$a",
                        "connectFromField": "a",
                        "connectToField": "b",
                        "as": "g",
                    }
                }
            ],
            "pipeline[0].$graphLookup.from: collection 'users' is not exportable",
        ),
        (
            [{"$match": {}} for _ in range(11)],
            "pipeline: more than 10 stages (sub-pipelines included), the limit for an export",
        ),
        (
            [{"$facet": {"a": [{"$match": {}} for _ in range(10)]}}],
            "pipeline[0].$facet.a[9]: more than 10 stages (sub-pipelines included), "
            "the limit for an export",
        ),
        (
            [
                {
                    "$lookup": {
                        "from": "orders",
                        "as": "x",
                        "pipeline": [
                            {
                                "$lookup": {
                                    "from": "orders",
                                    "as": "y",
                                    "pipeline": [
                                        {"$lookup": {"from": "orders", "as": "z", "pipeline": []}}
                                    ],
                                }
                            }
                        ],
                    }
                }
            ],
            "pipeline[0].$lookup.pipeline[0].$lookup.pipeline[0].$lookup.pipeline: sub-pipelines "
            "nested 4 deep, more than the limit of 3",
        ),
        (
            [{"$match": {"a": "x" * 3000}}],
            "pipeline: is 3049 bytes as BSON, more than the limit of 2000 bytes",
        ),
        ({"$match": {}}, "pipeline: must be a list of stages"),
        (
            [{"$match": {"a": 1}, "$limit": 1}],
            'pipeline[0]: a stage must be an object with exactly one key such as {"$match": ...}, '
            "got 2 keys",
        ),
        (
            ["$match"],
            'pipeline[0]: a stage must be an object with exactly one key such as {"$match": ...}, '
            "got str",
        ),
        ([{"match": {}}], "pipeline[0]: 'match' is not a stage name (stage names start with $)"),
        ([{"$match": []}], "pipeline[0].$match: must be an object"),
        ([{"$project": {}}], "pipeline[0].$project: must not be empty"),
        ([{"$limit": 0}], "pipeline[0].$limit: must be at least 1"),
        ([{"$limit": "5"}], "pipeline[0].$limit: must be an integer"),
        ([{"$skip": 1.5}], "pipeline[0].$skip: must be an integer"),
        ([{"$sort": {"a": 2}}], "pipeline[0].$sort.a: must be 1 (ascending) or -1 (descending)"),
        (
            [{"$sort": {"s": {"$meta": "textScore"}}}],
            "pipeline[0].$sort.s: must be 1 (ascending) or -1 (descending)",
        ),
        ([{"$sort": {}}], "pipeline[0].$sort: must name at least one field"),
        ([{"$unwind": "items"}], 'pipeline[0].$unwind: must be a field path such as "$items"'),
        (
            [{"$unwind": {"path": "$a", "includeArrayIndex": "$i"}}],
            "pipeline[0].$unwind.includeArrayIndex: must be a field name (a non-empty string "
            "without a $)",
        ),
        (
            [{"$unwind": {"path": "$a", "preserveNullAndEmptyArrays": "yes"}}],
            "pipeline[0].$unwind.preserveNullAndEmptyArrays: must be true or false",
        ),
        (
            [{"$unset": []}],
            "pipeline[0].$unset: must be a field name or a non-empty list of field names",
        ),
        ([{"$count": "a.b"}], "pipeline[0].$count: must be a field name without a dot"),
        ([{"$group": {"n": {"$sum": 1}}}], "pipeline[0].$group: must have an _id (the group key)"),
        (
            [{"$match": {"_id": {"$oid": "xyz"}}}],
            "pipeline[0].$match._id: invalid Extended JSON $oid: 'xyz' is not a valid ObjectId, "
            "it must be a 12-byte input or a 24-character hex string",
        ),
        (
            [{"$match": {"at": {"$date": "yesterday"}}}],
            "pipeline[0].$match.at: invalid Extended JSON $date: time data 'yesterday' does not "
            "match format '%Y-%m-%dT%H:%M:%S'",
        ),
        (
            [{"$match": {"f": {"$code": "function () {}"}}}],
            "pipeline[0].$match.f: JavaScript code ($code) is not allowed",
        ),
        (
            [{"$lookup": {"localField": "a", "foreignField": "b", "as": "u"}}],
            "pipeline[0].$lookup: must name the collection it reads in 'from'",
        ),
        (
            [{"$lookup": {"from": "orders", "localField": "a", "as": "u"}}],
            "pipeline[0].$lookup: localField and foreignField go together",
        ),
        (
            [{"$lookup": {"from": "orders", "as": "u"}}],
            "pipeline[0].$lookup: needs localField/foreignField or a pipeline",
        ),
        (
            [{"$lookup": {"from": {"db": "x", "coll": "y"}, "as": "u", "pipeline": []}}],
            "pipeline[0].$lookup.from: must be a collection name (a non-empty string)",
        ),
        (
            [{"$lookup": {"from": "orders", "as": "u", "pipeline": [], "hint": 1}}],
            "pipeline[0].$lookup.hint: unknown $lookup option 'hint'",
        ),
        (
            [{"$facet": {"a": [{"$facet": {"b": []}}]}}],
            "pipeline[0].$facet.a[0].$facet: $facet cannot be nested in $facet",
        ),
        (
            [{"$replaceRoot": {"root": "$a"}}],
            'pipeline[0].$replaceRoot: must be an object with exactly "newRoot"',
        ),
    ],
)
def test_refusals(pipeline: Any, message: str) -> None:
    assert rejection(pipeline) == message


def test_the_source_collection_must_be_exportable() -> None:
    assert rejection([], collection="users") == "collection: collection 'users' is not exportable"
    assert rejection([], collection="system.js") == (
        "collection: collection 'system.js' cannot be read by an export"
    )


def test_javascript_is_refused_at_any_depth() -> None:
    deep: Any = {"$where": "1"}
    for _ in range(20):
        deep = {"$and": [deep]}
    message = rejection([{"$match": deep}])
    assert message.endswith("$where: $where is not allowed: " + JS)
    assert message.startswith("pipeline[0].$match.$and[0].$and[0]")


def test_nesting_deeper_than_bson_allows_is_refused() -> None:
    deep: Any = 1
    for _ in range(120):
        deep = {"a": deep}
    assert rejection([{"$match": deep}]).endswith(": nested more than 100 levels deep")


# ---------------------------------------------------------------------------------------------
# Random input: only PipelineRejected may come out

_KEYS = st.sampled_from(
    [
        "$match", "$project", "$lookup", "$unionWith", "$graphLookup", "$facet", "$unwind",
        "$group", "$sort", "$limit", "$skip", "$count", "$set", "$unset", "$bucket",
        "$bucketAuto", "$sortByCount", "$replaceRoot", "$replaceWith", "$redact", "$addFields",
        "from", "as", "pipeline", "localField", "foreignField", "let", "coll", "path",
        "includeArrayIndex", "preserveNullAndEmptyArrays", "startWith", "connectFromField",
        "connectToField", "restrictSearchWithMatch", "_id", "newRoot", "groupBy", "boundaries",
        "buckets", "$oid", "$date", "$numberLong", "$numberDecimal", "$binary", "$regex",
        "$options", "$function", "$where", "$expr", "$and", "$minKey", "$timestamp", "a", "",
    ]
)  # fmt: skip
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["orders", "users", "$a", "$$NOW", "system.x", "a.b", "1", "ff"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)
_stage = st.dictionaries(_KEYS, _json, min_size=1, max_size=2)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=st.one_of(st.lists(_stage | _json, max_size=5), _json))
def test_random_json_only_ever_raises_pipeline_rejected(pipeline: Any) -> None:
    try:
        result = validate(pipeline)
    except PipelineRejected as error:
        message = str(error)
    else:
        message = ""
        assert result[0] == TENANT
    assert not message or message.startswith(("pipeline", "collection"))


_TEMPLATE: list[Any] = [
    {"$match": {"a": {"$gt": {"$date": "2020-01-01T00:00:00Z"}}, "$expr": {"$eq": ["$a", 1]}}},
    {"$lookup": {"from": "customers", "localField": "c", "foreignField": "_id", "as": "x"}},
    {"$lookup": {"from": "orders", "let": {"v": "$a"}, "pipeline": [{"$match": {}}], "as": "y"}},
    {"$unionWith": {"coll": "accounts", "pipeline": [{"$project": {"a": 1}}]}},
    {
        "$graphLookup": {
            "from": "orders",
            "startWith": "$p",
            "connectFromField": "p",
            "connectToField": "_id",
            "as": "g",
        }
    },
    {"$facet": {"f": [{"$unwind": {"path": "$a", "includeArrayIndex": "i"}}, {"$count": "n"}]}},
    {"$sort": {"a": 1}},
    {"$limit": 5},
]


def _mutations(value: Any) -> st.SearchStrategy[Any]:
    """The template with any part possibly replaced by random JSON."""
    kept: st.SearchStrategy[Any]
    if isinstance(value, dict):
        kept = st.fixed_dictionaries({key: _mutations(item) for key, item in value.items()})
    elif isinstance(value, list):
        kept = st.tuples(*(_mutations(item) for item in value)).map(lambda items: list(items))
    else:
        kept = st.just(value)
    return st.one_of(kept, kept, kept, _json)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=_mutations(_TEMPLATE))
def test_mutated_valid_pipelines_only_ever_raise_pipeline_rejected(pipeline: Any) -> None:
    try:
        result = validate(pipeline)
    except PipelineRejected:
        return
    assert result[0] == TENANT


def test_a_regex_operator_next_to_other_operators_stays_a_query() -> None:
    stage = {"$match": {"name": {"$regex": "^a", "$options": "i", "$ne": "ab"}}}
    assert validate([stage])[1] == stage


# ---------------------------------------------------------------------------------------------
# Allow-lists: operators and system variables; shapes the Extended JSON parser builds; numbers


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            [{"$group": {"_id": 1, "m": {"$_internalJsEmit": {"eval": "x", "this": 1}}}}],
            "pipeline[0].$group.m.$_internalJsEmit: $_internalJsEmit is an internal server "
            "operator, never allowed in exports",
        ),
        (
            [{"$match": {"a": {"$_internalSchemaType": 2}}}],
            "pipeline[0].$match.a.$_internalSchemaType: $_internalSchemaType is an internal "
            "server operator, never allowed in exports",
        ),
        (
            [{"$set": {"x": {"$toHashedIndexKey": "$a"}}}],
            "pipeline[0].$set.x.$toHashedIndexKey: $toHashedIndexKey is not an operator exports "
            "allow (see the operator allow-list in the README)",
        ),
        (
            [{"$match": {"r": {"$ref": "customers", "$id": 1, "w": {"$where": "1"}}}}],
            "pipeline[0].$match.r: a DBRef ($ref/$id, $dbPointer) is not allowed in a pipeline: "
            "the server reads it as a document whose other keys exports cannot check",
        ),
        (
            [{"$addFields": {"r": "$$USER_ROLES.role"}}],
            "pipeline[0].$addFields.r: $$USER_ROLES is not allowed: reveals the roles of the "
            "service account the export runs as",
        ),
        (
            [{"$addFields": {"r": "$$JS_SCOPE"}}],
            "pipeline[0].$addFields.r: $$JS_SCOPE is not an allowed variable; system variables "
            "allowed: $$CURRENT, $$DESCEND, $$KEEP, $$PRUNE, $$REMOVE, $$ROOT",
        ),
        (
            [{"$match": {"v": {"$lt": float("inf")}}}],
            "pipeline[0].$match.v.$lt: NaN, Infinity and numbers too large for a double (such as "
            '-1e400) are not JSON and would change on the way to the database; write {"$numberDouble": '
            '"Infinity"} ("-Infinity", "NaN") for these values',
        ),
        (
            [{"$match": {"v": 2**63}}],
            "pipeline[0].$match.v: integer does not fit in 64 bits and would change on the way to "
            'the database; write {"$numberDecimal": "..."} for it',
        ),
    ],
)
def test_allow_lists_refuse_with_path_and_reason(pipeline: Any, message: str) -> None:
    assert rejection(pipeline) == message


def test_allowed_operators_and_variables_pass() -> None:
    pipeline = [
        {"$match": {"$expr": {"$and": [{"$gte": ["$a", 1]}, {"$in": ["$b", [1, 2]]}]}}},
        {"$set": {"r": "$$ROOT", "m": {"$map": {"input": "$l", "as": "x", "in": "$$x.v"}}}},
        {"$match": {"v": {"$lt": {"$numberDouble": "Infinity"}}, "w": {"$ne": {"$numberDouble": "NaN"}}}},
        {"$group": {"_id": "$k", "n": {"$sum": 1}, "top": {"$topN": {"n": 2, "sortBy": {"a": 1}, "output": "$a"}}}},
    ]  # fmt: skip
    validated = validate(pipeline)
    assert validated[3]["$match"]["v"]["$lt"] == float("inf")
