"""Partition planning and composition (issue 16): which plans split, where the boundaries fall,
how partition objects become the parts of one upload."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.composition import plan_composition
from domain.models import ExportRequest
from domain.part_sizing import MIB, part_size_violations
from domain.pipeline import partitioning
from domain.pipeline.keyset import after
from domain.pipeline.planning import ChunkPlan, plan_chunks
from domain.pipeline.validation import validate_pipeline
from domain.settings import Settings

SETTINGS = Settings(tenant_field="tenantId", export_collections="*")


def plan(pipeline: list[dict[str, Any]]) -> ChunkPlan:
    validated = validate_pipeline(pipeline, collection="orders", tenant="acme", settings=SETTINGS)
    return plan_chunks(validated)


def request(**fields: Any) -> ExportRequest:
    return ExportRequest(collection="orders", **fields)


# -- which plans split ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pipeline",
    [
        [],
        [{"$match": {"a": 1}}, {"$project": {"a": 1}}],
        [{"$unwind": "$items"}],
        [{"$sort": {"a": -1}}],
    ],
)
def test_keyset_plans_split(pipeline: list[dict[str, Any]]) -> None:
    assert partitioning.serial_reason(plan(pipeline), request()) is None


@pytest.mark.parametrize(
    ("pipeline", "fields", "why"),
    [
        ([{"$group": {"_id": "$a"}}], {}, "blocking_keyset"),
        ([{"$limit": 5}], {}, "$skip/$limit"),
        ([{"$sort": {"a": 1}}, {"$skip": 5}], {}, "$skip/$limit"),
        ([], {"format": "xlsx"}, "xlsx"),
        ([], {"format": "parquet"}, "parquet"),
        ([], {"parallelism": 1}, "parallelism 1"),
    ],
)
def test_what_stays_serial_says_why(
    pipeline: list[dict[str, Any]], fields: dict[str, Any], why: str
) -> None:
    reason = partitioning.serial_reason(plan(pipeline), request(**fields))
    assert reason is not None
    assert why in reason


def test_parallelism_is_a_positive_number_or_auto() -> None:
    assert request().parallelism == "auto"
    assert request(parallelism=3).parallelism == 3
    for wrong in (0, -1, "many", 1.5):
        with pytest.raises(ValueError, match="parallelism"):
            request(parallelism=wrong)


def test_partition_count() -> None:
    count = partitioning.partition_count
    assert count("auto", 1_500_000, rows_per_partition=2_000_000, max_parallelism=8) == 1
    assert count("auto", 5_000_000, rows_per_partition=2_000_000, max_parallelism=8) == 3
    assert count("auto", 10**8, rows_per_partition=2_000_000, max_parallelism=8) == 8
    assert count(7, 1000, rows_per_partition=2_000_000, max_parallelism=8) == 7
    assert count(20, 1000, rows_per_partition=2_000_000, max_parallelism=8) == 8
    assert count(7, 2, rows_per_partition=1, max_parallelism=8) == 2
    assert count("auto", 0, rows_per_partition=1, max_parallelism=8) == 1


def test_boundary_positions_worked_numbers() -> None:
    assert partitioning.boundary_positions(10, 3) == [3, 6]
    assert partitioning.boundary_positions(10, 1) == []
    assert partitioning.boundary_positions(2, 7) == [0]
    assert partitioning.boundary_positions(7, 7) == [0, 1, 2, 3, 4, 5]


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=64))
def test_boundaries_cut_equal_partitions(keys: int, partitions: int) -> None:
    positions = partitioning.boundary_positions(keys, partitions)
    edges = [-1, *positions, keys - 1]
    sizes = [b - a for a, b in itertools.pairwise(edges)]
    assert sum(sizes) == keys
    assert all(size >= 1 for size in sizes)
    assert max(sizes) - min(sizes) <= 1 or len(sizes) < partitions


def test_key_scans() -> None:
    source = plan([{"$match": {"a": 1}}, {"$project": {"a": 1}}])
    assert partitioning.key_scan_pipeline(source) == [
        {"$match": {"tenantId": "acme"}},
        {"$sort": {"_id": 1}},
        {"$project": {"_id": 1}},
    ]
    unwind = plan([{"$unwind": "$items"}])
    assert partitioning.key_scan_pipeline(unwind)[-1] == {"$project": {"_id": 1}}
    assert partitioning.boundary_cursor(unwind, {"_id": 5}) == (5, partitioning.MAX_INDEX)
    by_a = plan([{"$match": {"b": 2}}, {"$sort": {"a": -1}}, {"$project": {"b": 1}}])
    assert partitioning.key_scan_pipeline(by_a) == [
        {"$match": {"tenantId": "acme"}},
        {"$match": {"b": 2}},
        {"$sort": {"a": -1, "_id": 1}},
        {"$project": {"a": 1, "_id": 1}},
    ]
    assert partitioning.count_pipeline(by_a)[-1] == {"$count": "n"}


def test_beyond_follows_the_key_directions() -> None:
    keys = (("a", -1), ("_id", 1))
    assert not partitioning.beyond((5, 1), (5, 1), keys)
    assert partitioning.beyond((5, 2), (5, 1), keys)
    assert partitioning.beyond((4, 0), (5, 1), keys)
    assert not partitioning.beyond((6, 9), (5, 1), keys)
    assert partitioning.beyond(("x", 0), (5, 1), keys) is False  # strings sort after numbers
    assert partitioning.beyond((None, 0), (5, 1), keys)  # null before numbers: after, desc


def test_explain_says_what_will_happen() -> None:
    said = partitioning.describe(plan([]), request(), max_parallelism=8, rows=2_000_000)
    assert said.startswith("parallel (auto: one partition per 2,000,000 rows, at most 8)")
    said = partitioning.describe(
        plan([{"$group": {"_id": "$a"}}]), request(), max_parallelism=8, rows=1
    )
    assert said.startswith("serial: ")


# -- composition ------------------------------------------------------------------------------


def sizes_of(sizes_mib: list[float]) -> list[int]:
    return [int(size * MIB) for size in sizes_mib]


def test_composition_worked_numbers() -> None:
    parts = plan_composition(sizes_of([3, 4, 40, 0, 1, 7]))
    assert [p.size / MIB for p in parts] == [7, 40, 8]
    assert [p.copied for p in parts] == [False, True, False]
    parts = plan_composition(sizes_of([2, 12000]))
    assert [round(p.size / MIB) for p in parts] == [5, 3999, 3999, 3999]
    assert [p.copied for p in parts] == [False, True, True, True]
    assert plan_composition([0, 0, 0]) == []
    assert [p.size for p in plan_composition([10, 0, 20])] == [30]


@given(st.lists(st.integers(min_value=0, max_value=40 * MIB), min_size=1, max_size=12))
def test_composition_keeps_every_byte_in_order_within_s3_rules(sizes: list[int]) -> None:
    parts = plan_composition(sizes)
    segments = [segment for part in parts for segment in part.segments]
    position = [(s.index, s.start, s.end) for s in segments]
    expected_cursor = 0
    stream = [(i, 0, size) for i, size in enumerate(sizes) if size]
    # Segments tile each object in order, objects in order.
    joined: list[tuple[int, int, int]] = []
    for index, start, end in position:
        if joined and joined[-1][0] == index and joined[-1][2] == start:
            joined[-1] = (index, joined[-1][1], end)
        else:
            joined.append((index, start, end))
        expected_cursor += end - start
    assert joined == stream
    assert expected_cursor == sum(sizes)
    if parts:
        assert part_size_violations([p.size for p in parts]) == []
    read_back = sum(p.size for p in parts if not p.copied)
    assert read_back <= math.ceil(len(sizes) / 1) * 10 * MIB


def test_a_partition_query_ends_at_its_last_key() -> None:
    source = plan([{"$match": {"a": 1}}])
    assert partitioning.bounded_pipeline(source, (3,), (9,)) == [
        {"$match": {"tenantId": "acme"}},
        {"$match": after((("_id", 1),), (3,))},
        {"$match": partitioning.at_or_before((("_id", 1),), (9,))},
        {"$sort": {"_id": 1}},
        {"$match": {"a": 1}},
    ]
    first = partitioning.bounded_pipeline(source, None, (9,))
    assert first[1] == {"$match": partitioning.at_or_before((("_id", 1),), (9,))}
    unwind = plan([{"$unwind": "$items"}])
    stages = partitioning.bounded_pipeline(unwind, None, (9, partitioning.MAX_INDEX))
    bounds = [s for s in stages if "$match" in s][1:]
    assert len(bounds) == 2  # on _id right after the tenant filter, and on (_id, index)


def test_at_or_before_is_the_mirror_of_after() -> None:
    """Every value sorts either after `upper` or at or before it, never both: checked against
    `beyond` by evaluating both filters' meaning on a few values of each bracket."""
    ascending = partitioning.at_or_before((("a", 1),), (5,))
    assert {"a": {"$lt": 5}} in ascending["$or"]
    assert {"a": 5} in ascending["$or"]
    descending = partitioning.at_or_before((("a", -1),), (5,))
    assert {"a": {"$gt": 5}} in descending["$or"]
