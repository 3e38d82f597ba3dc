"""Smoke tests of both local MongoDB-compatible engines over a real connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import ExecutionTimeout

from activities.partition_activities import collection_size

Engine = tuple[str, MongoClient[dict[str, Any]]]


@pytest.fixture
def collection(engine: Engine, unique_name: str) -> Iterator[Collection[dict[str, Any]]]:
    _, client = engine
    coll = client["durable_export_test"][unique_name]
    yield coll
    coll.drop()


def test_insert_then_aggregate_match_group_sort(collection: Collection[dict[str, Any]]) -> None:
    collection.insert_many(
        [{"_id": i, "state": ["NY", "CA", "TX"][i % 3], "pop": i} for i in range(30)]
    )
    rows = list(
        collection.aggregate(
            [
                {"$match": {"pop": {"$gte": 3}}},
                # One accumulator: FerretDB 1.24 computes only the first of several (the rest are 0).
                {"$group": {"_id": "$state", "total": {"$sum": "$pop"}}},
                {"$sort": {"total": -1}},
            ]
        )
    )
    expected: dict[str, int] = {}
    for i in range(3, 30):
        state = ["NY", "CA", "TX"][i % 3]
        expected[state] = expected.get(state, 0) + i
    assert rows == [
        {"_id": state, "total": total}
        for state, total in sorted(expected.items(), key=lambda kv: -kv[1])
    ]


def test_a_cursor_reads_past_its_first_batch_with_get_more(
    collection: Collection[dict[str, Any]],
) -> None:
    collection.insert_many([{"_id": i} for i in range(250)])
    cursor = collection.aggregate([{"$sort": {"_id": 1}}], batchSize=20)
    assert [doc["_id"] for doc in cursor] == list(range(250))


def test_max_time_ms_stops_a_slow_aggregation(
    engine: Engine, collection: Collection[dict[str, Any]]
) -> None:
    name, _ = engine
    if name == "mongo-java-server":
        pytest.skip(
            "mongo-java-server ignores maxTimeMS (it accepts the option and never times out)"
        )
    collection.insert_many([{"_id": i, "g": i % 97, "s": "x" * 40} for i in range(20_000)])
    with pytest.raises(ExecutionTimeout) as exc:
        list(
            collection.aggregate(
                [{"$sort": {"s": -1, "g": 1}}, {"$group": {"_id": "$g", "n": {"$sum": 1}}}],
                maxTimeMS=1,
            )
        )
    assert exc.value.code == 50


def test_the_collection_size_comes_from_metadata_on_both_engines(
    engine: Engine, collection: Collection[dict[str, Any]]
) -> None:
    """`$collStats` where the engine has it (FerretDB), `estimatedDocumentCount` elsewhere:
    the planner's first look at an `auto` export gets the real count either way."""
    name, _ = engine
    assert collection_size(collection, 5_000) in (0, None)  # not created yet
    collection.insert_many([{"_id": i, "n": i % 7} for i in range(1_234)])
    assert collection_size(collection, 5_000) == 1_234, name
    collection.delete_many({"n": 0})
    assert collection_size(collection, 5_000) == 1_234 - 177, name
