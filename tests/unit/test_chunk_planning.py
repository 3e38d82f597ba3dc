"""Golden tests of chunk planning: the exact pipeline of each shape, and every refusal."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.formats.column_access import paths_to_strip, strip_paths
from domain.pipeline.keyset import CursorError
from domain.pipeline.planning import ChunkPlan, PlanRefused, plan_chunks
from domain.pipeline.validation import PipelineRejected, validate_pipeline
from domain.settings import Settings

SETTINGS = Settings(tenant_field="tenantId", export_collections="*")
T = {"$match": {"tenantId": "acme"}}
LATER = ["string", "object", "binData", "objectId", "bool", "date", "timestamp", "regex"]
"""The brackets after numbers: the `$type` list of "after an ascending number"."""
NAN = {"$type": "number", "$not": {"$gte": -math.inf}}


def visible(p: ChunkPlan, row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The row as the encoders see it: the plan's hidden fields left out (their one owner is
    `domain.formats.column_access`)."""
    return strip_paths(row, paths_to_strip(None, p.hidden_fields))


def plan(pipeline: list[dict[str, Any]]) -> ChunkPlan:
    validated = validate_pipeline(pipeline, collection="orders", tenant="acme", settings=SETTINGS)
    return plan_chunks(validated)


def refusal(pipeline: list[dict[str, Any]]) -> str:
    with pytest.raises(PlanRefused) as error:
        plan(pipeline)
    return str(error.value)


def after_number(field: str, value: int, **equal: Any) -> list[dict[str, Any]]:
    """The two disjuncts of "field after value, ascending" (with equalities before)."""
    return [{**equal, field: {"$gt": value}}, {**equal, field: {"$type": LATER}}]


# ---------------------------------------------------------------------------------------------
# source_keyset


def test_no_stages() -> None:
    p = plan([])
    assert p.strategy == "source_keyset"
    assert p.explanation == (
        "keyset on _id right after the tenant filter: each part is one indexed range scan"
    )
    assert p.keys == (("_id", 1),)
    assert p.hidden_fields == frozenset()
    assert p.row_limit is None
    assert p.pipeline_for(None) == [T, {"$sort": {"_id": 1}}]
    assert p.pipeline_for((41,)) == [
        T,
        {"$match": {"$or": [{"_id": {"$gt": 41}}, {"_id": {"$type": LATER}}]}},
        {"$sort": {"_id": 1}},
    ]


def test_a_removed_id_is_kept_hidden() -> None:
    p = plan(
        [
            {"$match": {"status": "paid"}},
            {"$project": {"_id": 0, "total": 1, "customer": {"name": 1}}},
            {
                "$lookup": {
                    "from": "c",
                    "localField": "customer.name",
                    "foreignField": "n",
                    "as": "c",
                }
            },
            {"$unset": ["_id", "c._id"]},
            {"$project": {"_id": 0}},
        ]
    )
    assert p.strategy == "source_keyset"
    assert p.hidden_fields == {"_id"}
    assert p.pipeline_for((7,)) == [
        T,
        {"$match": {"$or": after_number("_id", 7)}},
        {"$sort": {"_id": 1}},
        {"$match": {"status": "paid"}},
        {"$project": {"total": 1, "customer": {"name": 1}}},
        {
            "$lookup": {
                "from": "c",
                "localField": "customer.name",
                "foreignField": "n",
                "as": "c",
                "pipeline": [T],
            }
        },
        {"$unset": ["c._id"]},
    ]
    row = {"_id": 7, "total": 3, "customer": {"name": "x"}, "c": []}
    assert p.cursor_of(row) == (7,)
    assert visible(p, row) == {"total": 3, "customer": {"name": "x"}, "c": []}


def test_a_trailing_skip_and_limit_apply_to_the_whole_export() -> None:
    p = plan([{"$skip": 5}, {"$limit": 10}, {"$project": {"a": 1}}, {"$skip": 2}])
    assert p.strategy == "source_keyset"
    assert p.row_limit == 8
    assert p.explanation.endswith("; the export stops after 8 rows")
    assert p.pipeline_for(None) == [
        T,
        {"$sort": {"_id": 1}},
        {"$project": {"a": 1}},
        {"$skip": 7},
        {"$limit": 8},
    ]
    assert p.pipeline_for((3,)) == [
        T,
        {"$match": {"$or": after_number("_id", 3)}},
        {"$sort": {"_id": 1}},
        {"$project": {"a": 1}},
        {"$limit": 8},
    ]


# ---------------------------------------------------------------------------------------------
# unwind_keyset


def test_unwind_resumes_on_id_and_array_index() -> None:
    p = plan([{"$unwind": "$items"}, {"$project": {"_id": 0, "items": 1}}])
    assert p.strategy == "unwind_keyset"
    assert p.explanation == (
        "keyset on (_id, __dx_idx): _id bounds the scan right after the tenant filter, the array "
        "index resumes inside a document after $unwind: each part is one indexed range scan"
    )
    assert p.keys == (("_id", 1), ("__dx_idx", 1))
    assert p.hidden_fields == {"_id", "__dx_idx"}
    assert p.pipeline_for(None) == [
        T,
        {"$sort": {"_id": 1}},
        {"$unwind": {"path": "$items", "includeArrayIndex": "__dx_idx"}},
        {"$project": {"items": 1, "__dx_idx": 1}},
    ]
    assert p.pipeline_for((7, 2)) == [
        T,
        {"$match": {"$or": [*after_number("_id", 7), {"_id": 7}]}},
        {"$sort": {"_id": 1}},
        {"$unwind": {"path": "$items", "includeArrayIndex": "__dx_idx"}},
        {"$match": {"$or": [*after_number("_id", 7), *after_number("__dx_idx", 2, _id=7)]}},
        {"$project": {"items": 1, "__dx_idx": 1}},
    ]
    row = {"_id": 7, "items": "a", "__dx_idx": 3}
    assert p.cursor_of(row) == (7, 3)
    assert visible(p, row) == {"items": "a"}


def test_unwind_keeping_empty_arrays_resumes_after_a_null_index() -> None:
    p = plan(
        [
            {
                "$unwind": {
                    "path": "$items",
                    "includeArrayIndex": "pos",
                    "preserveNullAndEmptyArrays": True,
                }
            }
        ]
    )
    assert p.keys == (("_id", 1), ("pos", 1))
    assert p.hidden_fields == frozenset()  # the user asked for "pos"
    assert p.pipeline_for((7, None))[4] == {
        "$match": {
            "$or": [
                *after_number("_id", 7),
                {"_id": 7, "pos": {"$type": ["number", *LATER]}},
            ]
        }
    }


def test_nested_unwinds_resume_on_every_index() -> None:
    p = plan([{"$unwind": "$a"}, {"$unwind": "$a.b"}])
    assert p.keys == (("_id", 1), ("__dx_idx", 1), ("__dx_idx1", 1))
    assert p.pipeline_for(None) == [
        T,
        {"$sort": {"_id": 1}},
        {"$unwind": {"path": "$a", "includeArrayIndex": "__dx_idx"}},
        {"$unwind": {"path": "$a.b", "includeArrayIndex": "__dx_idx1"}},
    ]
    bound = p.pipeline_for((1, 2, 3))[5]["$match"]["$or"]
    assert bound[-2:] == after_number("__dx_idx1", 3, _id=1, __dx_idx=2)


# ---------------------------------------------------------------------------------------------
# sort_keyset


def test_the_users_sort_with_an_id_tie_break_and_the_bound_before_it() -> None:
    p = plan(
        [
            {"$match": {"status": "paid"}},
            {"$sort": {"amount": -1, "name": 1}},
            {"$project": {"_id": 0, "name": 1}},
        ]
    )
    assert p.strategy == "sort_keyset"
    assert p.explanation == (
        "keyset on (amount desc, name, _id) right before the $sort at pipeline[1]: each part "
        "sorts only the rows after the cursor (an indexed range scan with an index on the tenant "
        "field and the sort keys)"
    )
    assert p.keys == (("amount", -1), ("name", 1), ("_id", 1))
    assert p.hidden_fields == {"_id", "amount"}
    assert p.pipeline_for(None) == [
        T,
        {"$match": {"status": "paid"}},
        {"$sort": {"amount": -1, "name": 1, "_id": 1}},
        {"$project": {"name": 1, "amount": 1}},
    ]
    assert p.pipeline_for((10, "bo", 7)) == [
        T,
        {"$match": {"status": "paid"}},
        {
            "$match": {
                "$or": [
                    {"amount": {"$lt": 10}},
                    {"amount": NAN},
                    {"amount": None},
                    {"amount": []},
                    {"amount": 10, "name": {"$gt": "bo"}},
                    {"amount": 10, "name": {"$type": LATER[1:]}},
                    *after_number("_id", 7, amount=10, name="bo"),
                ]
            }
        },
        {"$sort": {"amount": -1, "name": 1, "_id": 1}},
        {"$project": {"name": 1, "amount": 1}},
    ]
    row = {"_id": 7, "name": "bo", "amount": 10}
    assert p.cursor_of(row) == (10, "bo", 7)
    assert visible(p, row) == {"name": "bo"}


def test_a_sort_that_names_id_needs_no_tie_break() -> None:
    p = plan([{"$sort": {"_id": -1}}])
    assert p.keys == (("_id", -1),)
    assert p.pipeline_for(None) == [T, {"$sort": {"_id": -1}}]


def test_a_dotted_sort_key_is_kept_under_the_shortest_free_prefix() -> None:
    p = plan([{"$sort": {"a.b": 1}}, {"$project": {"x": 1, "c.d": 1}}])
    assert p.hidden_fields == {"a"}
    assert p.pipeline_for(None)[-1] == {"$project": {"x": 1, "c.d": 1, "a.b": 1}}
    q = plan([{"$sort": {"a.b": 1}}, {"$project": {"a.c": 1}}])
    assert q.hidden_fields == {"a.b"}
    assert visible(q, {"_id": 1, "a": {"b": 2, "c": 3}}) == {"_id": 1, "a": {"c": 3}}


def test_an_excluded_sort_key_is_kept_hidden() -> None:
    p = plan([{"$sort": {"a": 1}}, {"$project": {"a": 0, "b": 0}}, {"$unset": "a"}])
    assert p.hidden_fields == {"a"}
    assert p.pipeline_for(None) == [T, {"$sort": {"a": 1, "_id": 1}}, {"$project": {"b": 0}}]


def test_unwind_before_the_sort_adds_the_array_index_to_the_tie_break() -> None:
    p = plan([{"$unwind": "$items"}, {"$sort": {"items.price": -1}}])
    assert p.strategy == "sort_keyset"
    assert p.keys == (("items.price", -1), ("_id", 1), ("__dx_idx", 1))
    assert p.pipeline_for(None) == [
        T,
        {"$unwind": {"path": "$items", "includeArrayIndex": "__dx_idx"}},
        {"$sort": {"items.price": -1, "_id": 1, "__dx_idx": 1}},
    ]


# ---------------------------------------------------------------------------------------------
# blocking_keyset


def test_group_is_bounded_on_its_unique_id() -> None:
    p = plan([{"$match": {"a": 1}}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}])
    assert p.strategy == "blocking_keyset"
    assert p.explanation == (
        "each part re-runs the pipeline through $group at pipeline[1] once and streams its "
        "output from one cursor, with a keyset on (_id) after it"
    )
    group = {"$group": {"_id": "$state", "n": {"$sum": 1}}}
    assert p.pipeline_for(None) == [T, {"$match": {"a": 1}}, group, {"$sort": {"_id": 1}}]
    assert p.pipeline_for(("MA",)) == [
        T,
        {"$match": {"a": 1}},
        group,
        {"$match": {"$or": [{"_id": {"$gt": "MA"}}, {"_id": {"$type": LATER[1:]}}]}},
        {"$sort": {"_id": 1}},
    ]


def test_a_sort_after_the_group_keeps_its_order_with_an_id_tie_break() -> None:
    p = plan(
        [
            {"$group": {"_id": "$state", "pop": {"$sum": "$pop"}}},
            {"$sort": {"pop": -1}},
            {"$limit": 10},
        ]
    )
    assert p.strategy == "blocking_keyset"
    assert p.explanation == (
        "each part re-runs the pipeline through $group at pipeline[0] once and streams its "
        "output from one cursor, with a keyset on (pop desc, _id) before the $sort at "
        "pipeline[1] after it; the export stops after 10 rows"
    )
    assert p.row_limit == 10
    assert p.pipeline_for((500, "MA")) == [
        T,
        {"$group": {"_id": "$state", "pop": {"$sum": "$pop"}}},
        {
            "$match": {
                "$or": [
                    {"pop": {"$lt": 500}},
                    {"pop": NAN},
                    {"pop": None},
                    {"pop": []},
                    {"pop": 500, "_id": {"$gt": "MA"}},
                    {"pop": 500, "_id": {"$type": LATER[1:]}},
                ]
            }
        },
        {"$sort": {"pop": -1, "_id": 1}},
        {"$limit": 10},
    ]


def test_sort_by_count_ties_are_broken_on_id() -> None:
    p = plan([{"$sortByCount": "$state"}, {"$project": {"count": 0}}])
    assert p.keys == (("count", -1), ("_id", 1))
    assert p.hidden_fields == {"count"}
    assert p.pipeline_for(None) == [
        T,
        {"$sortByCount": "$state"},
        {"$sort": {"count": -1, "_id": 1}},
    ]


def test_count_and_facet_return_one_row() -> None:
    p = plan([{"$count": "n"}])
    assert p.strategy == "blocking_keyset"
    assert p.explanation == (
        "each part re-runs the pipeline through $count at pipeline[0], which returns a single "
        "row: the export is one part"
    )
    assert p.cursor_of({"n": 3}) == (None,)
    assert p.pipeline_for((None,)) == [
        T,
        {"$count": "n"},
        {"$match": {"_id": {"$type": ["number", *LATER]}}},
        {"$sort": {"_id": 1}},
    ]
    q = plan([{"$facet": {"a": [{"$count": "n"}]}}, {"$project": {"_id": 0, "a": 1}}])
    assert q.pipeline_for(None)[-1] == {"$project": {"a": 1}}


def test_group_then_unwind_resumes_inside_each_group() -> None:
    p = plan([{"$group": {"_id": "$s", "c": {"$push": "$c"}}}, {"$unwind": "$c"}])
    assert p.strategy == "blocking_keyset"
    assert p.keys == (("_id", 1), ("__dx_idx", 1))
    assert p.pipeline_for(None) == [
        T,
        {"$group": {"_id": "$s", "c": {"$push": "$c"}}},
        {"$sort": {"_id": 1}},
        {"$unwind": {"path": "$c", "includeArrayIndex": "__dx_idx"}},
    ]


def test_a_limit_before_the_group_gets_an_id_tie_break_on_its_sort() -> None:
    p = plan(
        [
            {"$sort": {"a": 1}},
            {"$limit": 5},
            {"$group": {"_id": "$a"}},
            {"$unionWith": "x"},
            {"$count": "n"},
        ]
    )
    assert p.pipeline_for(None)[:3] == [T, {"$sort": {"a": 1, "_id": 1}}, {"$limit": 5}]


def test_union_with_before_a_group_is_fine() -> None:
    p = plan([{"$unionWith": "archive"}, {"$group": {"_id": "$k"}}])
    assert p.pipeline_for(None)[1] == {"$unionWith": {"coll": "archive", "pipeline": [T]}}


# ---------------------------------------------------------------------------------------------
# Refusals


CHANGES = (
    "which is the row identity that each part resumes from, so it must reach the output unchanged"
)


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            [{"$unionWith": "archive"}],
            "pipeline[0].$unionWith: appends rows of another collection, and the combined rows "
            "have no unique key to resume a part from; export the collections separately or add "
            "a $group after it",
        ),
        (
            [{"$skip": 5}, {"$match": {"a": 1}}],
            "pipeline[0].$skip: $skip in the middle of the pipeline counts rows that a part "
            "resuming from a cursor cannot count again; move it to the end (only $project/"
            "$addFields/$set/$unset/$lookup/$graphLookup after it) or after a $group",
        ),
        (
            [{"$limit": 5}, {"$sort": {"a": 1}}],
            "pipeline[0].$limit: $limit in the middle of the pipeline counts rows that a part "
            "resuming from a cursor cannot count again; move it to the end (only $project/"
            "$addFields/$set/$unset/$lookup/$graphLookup after it) or after a $group",
        ),
        (
            [{"$limit": 5}, {"$group": {"_id": "$a"}}],
            "pipeline[0].$limit: $limit before a $group picks documents in no defined order, and "
            "every part re-runs it; put a $sort right before it",
        ),
        (
            [{"$replaceRoot": {"newRoot": "$a"}}],
            "pipeline[0].$replaceRoot: replaces the whole document, so the fields the chunk "
            "cursor resumes from (_id, sort keys) are lost; move it before a $group, or use "
            "$project",
        ),
        (
            [{"$group": {"_id": "$a"}}, {"$replaceWith": "$x"}],
            "pipeline[1].$replaceWith: replaces the whole document, so the fields the chunk "
            "cursor resumes from (_id, sort keys) are lost; move it before a $group, or use "
            "$project",
        ),
        (
            [{"$redact": "$$KEEP"}],
            "pipeline[0].$redact: can prune the fields the chunk cursor resumes from; move it "
            "before a $group",
        ),
        (
            [{"$project": {"_id": "$other"}}],
            "pipeline[0].$project: changes '_id', but '_id' is the row identity that each part "
            "resumes from, so it must reach the output unchanged",
        ),
        (
            [{"$project": {"_id.a": 1, "b": 1}}],
            "pipeline[0].$project: changes '_id.a', but '_id' is the row identity that each part "
            "resumes from, so it must reach the output unchanged",
        ),
        (
            [{"$addFields": {"_id": 1}}],
            "pipeline[0].$addFields: changes '_id', but '_id' is the row identity that each part "
            "resumes from, so it must reach the output unchanged",
        ),
        (
            [{"$lookup": {"from": "x", "localField": "a", "foreignField": "b", "as": "_id"}}],
            "pipeline[0].$lookup: changes '_id', but '_id' is the row identity that each part "
            "resumes from, so it must reach the output unchanged",
        ),
        (
            [{"$sort": {"a": 1}}, {"$set": {"a": 2}}],
            "pipeline[1].$set: changes 'a', but 'a' is a sort key that each part resumes from, "
            "so it must reach the output unchanged",
        ),
        (
            [{"$sort": {"a": 1}}, {"$project": {"a.b": 1}}],
            "pipeline[1].$project: keeps only 'a.b' of 'a', which is a sort key that each part "
            "resumes from, so it must reach the output unchanged",
        ),
        (
            [{"$sort": {"a": 1}}, {"$unset": "a.b"}],
            "pipeline[1].$unset: removes 'a.b' from 'a', which is a sort key that each part "
            "resumes from, so it must reach the output unchanged",
        ),
        (
            [{"$sort": {"a": 1}}, {"$unwind": "$b"}],
            "pipeline[1].$unwind: $unwind after the $sort repeats the sort key of a row for each "
            "element, so no keyset can resume inside it; $unwind before the $sort",
        ),
        (
            [{"$unwind": "$a"}, {"$project": {"__dx_idx": "$b"}}],
            "pipeline[1].$project: names starting with __dx_ are reserved for the export",
        ),
        (
            [{"$unwind": {"path": "$a", "includeArrayIndex": "i"}}, {"$set": {"i": 0}}],
            "pipeline[1].$set: changes 'i', but 'i' is the row identity that each part resumes "
            "from, so it must reach the output unchanged",
        ),
        (
            [{"$project": {"_id": 0}}, {"$match": {"_id": 3}}],
            "pipeline[1].$match: reads '_id', but '_id' was removed by an earlier stage and the "
            "export keeps it (hidden) to resume parts; reorder the stages so that '_id' is "
            "removed last",
        ),
        (
            [{"$unset": "_id"}, {"$addFields": {"copy": "$$ROOT"}}],
            "pipeline[1].$addFields: reads the whole document, but '_id' was removed by an "
            "earlier stage and the export keeps it (hidden) to resume parts; reorder the stages "
            "so that '_id' is removed last",
        ),
        (
            [{"$sort": {"k": 1}}, {"$project": {"k": 0}}, {"$addFields": {"k": 1}}],
            "pipeline[2].$addFields: changes 'k', but 'k' is a sort key that each part resumes "
            "from, so it must reach the output unchanged",
        ),
    ],
)
def test_refusals(pipeline: list[dict[str, Any]], message: str) -> None:
    assert refusal(pipeline) == message


def test_a_refusal_is_a_pipeline_rejection() -> None:
    assert issubclass(PlanRefused, PipelineRejected)


# ---------------------------------------------------------------------------------------------
# The plan object


def test_an_array_sort_key_cannot_be_a_cursor() -> None:
    with pytest.raises(CursorError, match="sort key 'k' of the row with _id 1 is an array"):
        plan([{"$sort": {"k": 1}}]).cursor_of({"_id": 1, "k": [1, 2]})


def test_a_cursor_of_the_wrong_length_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="a cursor of 1 values for a plan keyed on 2 fields"):
        plan([{"$sort": {"k": 1}}]).pipeline_for((1,))


def test_pipelines_are_fresh_copies_and_the_input_is_untouched() -> None:
    validated = validate_pipeline(
        [{"$project": {"_id": 0, "a": 1}}], collection="o", tenant="acme", settings=SETTINGS
    )
    before = repr(validated)
    p = plan_chunks(validated)
    assert repr(validated) == before
    first = p.pipeline_for(None)
    first[-1]["$project"]["x"] = 1
    assert p.pipeline_for(None) == [T, {"$sort": {"_id": 1}}, {"$project": {"a": 1}}]
    assert plan_chunks(validated) == p


def test_hidden_fields_are_left_out_of_a_copy_and_absent_ones_ignored() -> None:
    p = plan([{"$sort": {"a.b": 1}}, {"$project": {"a.c": 1, "_id": 0}}])
    row = {"_id": 1, "a": {"b": 2, "c": 3}}
    assert visible(p, row) == {"a": {"c": 3}}
    assert row == {"_id": 1, "a": {"b": 2, "c": 3}}
    assert visible(p, {"x": 1}) == {"x": 1}
    assert visible(p, {"a": 5}) == {"a": 5}


# ---------------------------------------------------------------------------------------------
# Random pipelines: a plan or a refusal, and a plan only adds $match/$sort/$skip/$limit stages,
# `$unwind` options and plain inclusions (never $set or "$path" values of its own)

_STAGES = [
    {"$match": {"a": 1}},
    {"$match": {"_id": 3}},
    {"$match": {"$expr": {"$gt": ["$a", "$k"]}}},
    {"$project": {"_id": 0, "a": 1}},
    {"$project": {"a": 0}},
    {"$project": {"b": "$a", "k": 1}},
    {"$project": {"_id": "$a"}},
    {"$addFields": {"a": 1}},
    {"$set": {"k": "$a"}},
    {"$unset": "_id"},
    {"$unset": ["a", "k"]},
    {"$unwind": "$a"},
    {"$unwind": {"path": "$b", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": True}},
    {"$sort": {"a": 1}},
    {"$sort": {"k": -1, "_id": 1}},
    {"$sort": {"a.b": -1}},
    {"$limit": 3},
    {"$skip": 2},
    {"$group": {"_id": "$a", "n": {"$sum": 1}}},
    {"$sortByCount": "$a"},
    {"$count": "n"},
    {"$facet": {"x": [{"$match": {}}]}},
    {"$bucket": {"groupBy": "$a", "boundaries": [0, 5]}},
    {"$lookup": {"from": "o", "localField": "a", "foreignField": "b", "as": "j"}},
    {"$lookup": {"from": "o", "localField": "a", "foreignField": "b", "as": "a"}},
    {"$replaceRoot": {"newRoot": "$a"}},
    {"$unionWith": "o"},
    {"$redact": "$$KEEP"},
    {
        "$graphLookup": {
            "from": "o",
            "startWith": "$a",
            "connectFromField": "a",
            "connectToField": "b",
            "as": "g",
        }
    },
]


def _dollar_values(value: Any) -> Iterator[str]:
    if isinstance(value, str) and value.startswith("$"):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _dollar_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dollar_values(item)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages=st.lists(st.sampled_from(_STAGES), max_size=6), value=st.sampled_from([None, 1, "x"]))
def test_random_pipelines_plan_or_refuse(stages: list[dict[str, Any]], value: Any) -> None:
    validated = validate_pipeline(stages, collection="o", tenant="acme", settings=SETTINGS)
    try:
        p = plan_chunks(validated)
    except PlanRefused as error:
        refused = str(error)
    else:
        refused = ""
    if refused:
        assert refused.startswith("pipeline[")
        return
    assert p.strategy in {"source_keyset", "unwind_keyset", "sort_keyset", "blocking_keyset"}
    user_names = {name for stage in validated for name in stage}
    for cursor in (None, tuple(value for _ in p.keys)):
        produced = p.pipeline_for(cursor)
        assert produced[0] == T
        names = {name for stage in produced for name in stage}
        assert names <= user_names | {"$match", "$sort", "$skip", "$limit"}
        assert set(_dollar_values(produced)) <= set(_dollar_values(validated))
