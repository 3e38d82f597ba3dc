"""Reading an export part by part gives exactly the rows of one unchunked run, in order.

For every supported pipeline shape: validate, plan, then read in chunks of N rows (pipeline_for
the cursor -> take N rows -> cursor_of the last row, round-tripped through its Extended JSON
form as the workflow stores it) and compare with `pipeline_for(None)` read in one go. Where the
rows are well defined, the unchunked run must also hold the same rows as the user's validated
pipeline run as is (the plan's rewrites change the order, never the rows).

Shapes FerretDB 1.24 can run go to both engines; $unwind with an index, $lookup, $facet,
$bucket, $sortByCount, $replaceRoot and Decimal128 values go to mongo-java-server only.
"""

from __future__ import annotations

import datetime
import itertools
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import json_util
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from activities.chunk_reader import read_rows
from domain.formats.column_access import paths_to_strip, strip_paths
from domain.pipeline.extended_json import cursor_from_json, cursor_to_json
from domain.pipeline.keyset import CursorError, sort_key
from domain.pipeline.planning import ChunkPlan, plan_chunks
from domain.pipeline.validation import validate_pipeline
from domain.settings import Settings

pytestmark = pytest.mark.services

Doc = dict[str, Any]
FERRETDB, JAVA = "ferretdb", "mongo-java-server"
BOTH = (FERRETDB, JAVA)
ENGINE_URIS = {
    FERRETDB: ("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
    JAVA: ("SECOND_MONGODB_URI", "mongodb://127.0.0.1:27018/"),
}
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TENANT, OTHER_TENANT = "t1", "t2"
SETTINGS = Settings(tenant_field="tenantId", export_collections="*")
MISSING = object()


# ---------------------------------------------------------------------------------------------
# Engines and data


@cache
def _client(engine: str) -> MongoClient[Doc]:
    env, default = ENGINE_URIS[engine]
    return MongoClient(os.environ.get(env, default), serverSelectionTimeoutMS=3000)


def _database(engine: str) -> Database[Doc]:
    """The test database; skips when the server does not answer (retrying through a restart)."""
    client = _client(engine)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.admin.command("ping")
            break
        except PyMongoError as error:
            if time.monotonic() > deadline:
                pytest.skip(f"{engine} does not answer at {ENGINE_URIS[engine]}: {error}")
            time.sleep(1)
    return client[os.environ.get("MONGODB_DATABASE", "durable_export_test")]


@cache
def _sample(name: str, limit: int) -> tuple[Doc, ...]:
    path = DATA_DIR / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"the shared sample data {path} is absent (expected at <repo>/../shared/data)")
    with path.open() as lines:
        return tuple(json_util.loads(line) for line in itertools.islice(lines, limit))


@cache
def _messy(engine: str) -> tuple[Doc, ...]:
    """Duplicate sort values, nulls, missing fields, mixed types (also in _id)."""
    rng = random.Random(20240601)
    ids: list[Any] = [*range(60), *(f"id-{n:03d}" for n in range(40))]
    ids += [ObjectId(f"{n:024x}") for n in range(1, 41)] + [
        datetime.datetime(2020, 1, 1) + datetime.timedelta(days=n) for n in range(10)
    ]
    k_pool: list[Any] = [0, 1, 1, 2.5, Int64(1), -3, "a", "a", "B", "", None, MISSING, MISSING]
    k_pool += [True, False, datetime.datetime(2021, 5, 1), ObjectId(f"{99:024x}")]
    k_pool += [{"x": 1}, {"x": 1, "y": 2}, {"x": 0}, b"\x01\x02"]
    if engine == JAVA:  # FerretDB drops the connection on Decimal128
        k_pool += [Decimal128("1.5"), Decimal128("1")]
    sub_pool: list[Any] = [{"v": 1}, {"v": "a"}, {}, MISSING, {"v": None}, {"v": 1.0}]
    items_pool: list[Any] = [[1, 2, 3], [], None, MISSING, "scalar", [{"a": 1}, {"a": 2}], ["p"]]
    docs = []
    for _id in ids:
        doc: Doc = {"_id": _id, "n": rng.randrange(5)}
        for name, pool in (
            ("k", k_pool),
            ("g", ["x", "y", None, MISSING, 1, 2.0]),
            ("sub", sub_pool),
            ("items", items_pool),
        ):
            value = rng.choice(pool)
            if value is not MISSING:
                doc[name] = value
        docs.append(doc)
    rng.shuffle(docs)
    return tuple(docs)


def _load(collection: Collection[Doc], docs: tuple[Doc, ...]) -> None:
    """Insert the docs for the test tenant, every tenth for another tenant (never exported)."""
    owned = [
        {**doc, "tenantId": OTHER_TENANT if index % 10 == 9 else TENANT}
        for index, doc in enumerate(docs)
    ]
    collection.insert_many(owned)


@pytest.fixture
def database_names() -> Iterator[list[tuple[Database[Doc], str]]]:
    """Collections the test created, dropped afterwards."""
    created: list[tuple[Database[Doc], str]] = []
    yield created
    for database, name in created:
        with suppress(PyMongoError):
            database.drop_collection(name)


# ---------------------------------------------------------------------------------------------
# Reading


def read_in_chunks(collection: Collection[Doc], plan: ChunkPlan, size: int) -> list[Doc]:
    rows: list[Doc] = []
    cursor: str | None = None
    for _ in range(100_000):
        stream = read_rows(
            collection,
            plan,
            cursor_from_json(cursor),
            max_time_ms=60_000,
            batch_size=size,
            rows_before=len(rows),
        )
        with closing(stream):
            chunk = list(itertools.islice(stream, size))
        rows.extend(visible(plan, row) for row, _ in chunk)
        if len(chunk) < size:
            return rows
        cursor = cursor_to_json(chunk[-1][1])
    raise AssertionError("the chunk loop did not end")


def read_all(collection: Collection[Doc], plan: ChunkPlan) -> list[Doc]:
    stream = read_rows(collection, plan, None, max_time_ms=60_000, batch_size=500)
    return [visible(plan, row) for row, _ in stream]


def visible(plan: ChunkPlan, row: Mapping[str, Any]) -> Doc:
    """The row without the plan's hidden fields, as every encoder leaves them out."""
    return dict(strip_paths(row, paths_to_strip(None, plan.hidden_fields)))


def as_bson(rows: list[Doc]) -> list[bytes]:
    """Exact comparison: BSON types and field order included."""
    return [bson.encode(row) for row in rows]


# ---------------------------------------------------------------------------------------------
# The shapes


Pipeline = list[Doc] | Callable[[dict[str, str]], list[Doc]]


@dataclass(frozen=True)
class Shape:
    name: str
    data: str  # "zips", "zips:600" (a subset), "customers", "theaters", "messy"
    pipeline: Pipeline
    strategy: str
    engines: tuple[str, ...] = BOTH
    sizes: tuple[int, ...] = (7, 1000)
    same_rows_as_user: bool = True
    """False where the user's pipeline leaves the rows undefined (a $limit of unsorted rows)."""
    joins: tuple[str, ...] = field(default=())


SHAPES = [
    # source_keyset
    Shape("all-documents", "messy", [], "source_keyset", sizes=(1, 7, 1000)),
    Shape("zips-all", "zips:600", [], "source_keyset"),
    Shape(
        "zips-match-project-no-id",
        "zips:600",
        [
            {"$match": {"state": {"$in": ["MA", "CT", "NH"]}}},
            {"$project": {"_id": 0, "city": 1, "pop": 1}},
        ],
        "source_keyset",
    ),
    Shape(
        "zips-addfields-unset-id",
        "zips:600",
        [{"$addFields": {"country": "US"}}, {"$unset": ["_id", "loc"]}],
        "source_keyset",
    ),
    Shape("messy-project-no-id", "messy", [{"$project": {"_id": 0, "k": 1}}], "source_keyset"),
    Shape("zips-trailing-limit", "zips:600", [{"$limit": 30}], "source_keyset", sizes=(1, 7, 1000)),
    # sort_keyset
    Shape("messy-sort-asc", "messy", [{"$sort": {"k": 1}}], "sort_keyset", sizes=(1, 7, 1000)),
    Shape(
        "messy-sort-desc-key-projected-away",
        "messy",
        [{"$sort": {"k": -1, "n": 1}}, {"$project": {"_id": 0, "n": 1}}],
        "sort_keyset",
        sizes=(1, 7, 1000),
    ),
    Shape("messy-sort-dotted-desc", "messy", [{"$sort": {"sub.v": -1}}], "sort_keyset"),
    Shape(
        "zips-sort-compound",
        "zips:600",
        [{"$sort": {"state": 1, "pop": -1}}, {"$project": {"_id": 0, "city": 1, "state": 1}}],
        "sort_keyset",
    ),
    Shape(
        "zips-sort-skip-limit",
        "zips:600",
        [{"$sort": {"pop": -1}}, {"$skip": 10}, {"$limit": 25}],
        "sort_keyset",
        sizes=(1, 7, 1000),
        same_rows_as_user=False,
    ),
    Shape(
        "theaters-sort-dotted-projected-away",
        "theaters:500",
        [{"$sort": {"location.address.city": 1}}, {"$project": {"_id": 0, "theaterId": 1}}],
        "sort_keyset",
    ),
    # blocking_keyset
    Shape(
        "zips-group-by-state",
        "zips",
        [{"$group": {"_id": "$state", "pop": {"$sum": "$pop"}}}],
        "blocking_keyset",
        sizes=(1, 7, 1000),
    ),
    Shape(
        "zips-group-then-sort",
        "zips",
        [{"$group": {"_id": "$state", "pop": {"$sum": "$pop"}}}, {"$sort": {"pop": -1}}],
        "blocking_keyset",
        sizes=(1, 7, 1000),
    ),
    Shape(
        "zips-group-by-city",
        "zips",
        [{"$group": {"_id": "$city", "n": {"$sum": 1}}}],
        "blocking_keyset",
        sizes=(50, 1000),
    ),
    Shape(
        "messy-group-mixed-keys",
        "messy",
        [{"$group": {"_id": "$g", "n": {"$sum": 1}}}],
        "blocking_keyset",
        sizes=(1, 7),
    ),
    Shape(
        "zips-group-by-document-key",
        "zips:600",
        [{"$group": {"_id": {"state": "$state", "city": "$city"}, "n": {"$sum": 1}}}],
        "blocking_keyset",
        sizes=(50, 1000),
    ),
    Shape(
        "messy-sort-id-desc",
        "messy",
        [{"$sort": {"_id": -1}}, {"$project": {"k": 1}}],
        "sort_keyset",
        sizes=(1, 7, 1000),
    ),
    Shape(
        "zips-count",
        "zips",
        [{"$match": {"pop": {"$gt": 1000}}}, {"$count": "n"}],
        "blocking_keyset",
        sizes=(1, 7),
    ),
    # mongo-java-server only
    Shape(
        "messy-unwind",
        "messy",
        [{"$unwind": "$items"}],
        "unwind_keyset",
        engines=(JAVA,),
        sizes=(1, 7, 1000),
    ),
    Shape(
        "messy-unwind-preserve",
        "messy",
        [
            {"$unwind": {"path": "$items", "preserveNullAndEmptyArrays": True}},
            {"$project": {"items": 1}},
        ],
        "unwind_keyset",
        engines=(JAVA,),
        sizes=(1, 7, 1000),
    ),
    Shape(
        "customers-unwind-own-index-no-id",
        "customers",
        [
            {"$unwind": {"path": "$accounts", "includeArrayIndex": "pos"}},
            {"$project": {"_id": 0, "username": 1, "accounts": 1, "pos": 1}},
        ],
        "unwind_keyset",
        engines=(JAVA,),
    ),
    Shape(
        "customers-unwind-then-sort",
        "customers",
        [{"$unwind": "$accounts"}, {"$sort": {"accounts": 1}}, {"$project": {"_id": 0}}],
        "sort_keyset",
        engines=(JAVA,),
    ),
    Shape(
        "customers-lookup-accounts",
        "customers",
        lambda names: [
            {
                "$lookup": {
                    "from": names["accounts"],
                    "let": {"ids": "$accounts"},
                    "pipeline": [
                        {"$match": {"$expr": {"$in": ["$account_id", "$$ids"]}}},
                        {"$project": {"_id": 0, "account_id": 1, "limit": 1}},
                    ],
                    "as": "details",
                }
            },
            {"$project": {"_id": 0, "username": 1, "details": 1}},
        ],
        "source_keyset",
        engines=(JAVA,),
        joins=("accounts",),
    ),
    Shape(
        "zips-sort-by-count",
        "zips",
        [{"$sortByCount": "$state"}],
        "blocking_keyset",
        engines=(JAVA,),
        sizes=(1, 7),
    ),
    Shape(
        "zips-bucket-mixed-ids",
        "zips",
        [
            {
                "$bucket": {
                    "groupBy": "$pop",
                    "boundaries": [0, 100, 1000, 10000],
                    "default": "large",
                }
            }
        ],
        "blocking_keyset",
        engines=(JAVA,),
        sizes=(1, 7),
    ),
    Shape(
        "zips-facet",
        "zips",
        [{"$facet": {"n": [{"$count": "n"}], "top": [{"$sort": {"pop": -1}}, {"$limit": 3}]}}],
        "blocking_keyset",
        engines=(JAVA,),
        sizes=(1, 7),
    ),
    Shape(
        "zips-group-push-then-unwind",
        "zips",
        [{"$group": {"_id": "$state", "cities": {"$push": "$city"}}}, {"$unwind": "$cities"}],
        "blocking_keyset",
        engines=(JAVA,),
    ),
    Shape(
        "theaters-replace-root-then-group",
        "theaters",
        [
            {"$replaceRoot": {"newRoot": "$location.address"}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ],
        "blocking_keyset",
        engines=(JAVA,),
        sizes=(1, 7),
    ),
    Shape(
        "messy-group-sort-desc-mixed",
        "messy",
        [{"$group": {"_id": "$k", "n": {"$sum": 1}}}, {"$sort": {"_id": -1}}],
        "blocking_keyset",
        engines=(JAVA,),
        sizes=(1, 7),
    ),
]

_FILES = {
    "zips": ("zips", 2000),
    "customers": ("analytics_customers", 150),
    "accounts": ("analytics_accounts", 2000),
    "theaters": ("mflix_theaters", 1564),
}


def _docs(data: str, engine: str) -> tuple[Doc, ...]:
    """The documents of a data set; "zips:600" is the first 600 of zips (FerretDB sorts every
    part in memory, so row-per-document shapes read in parts of 7 use smaller subsets)."""
    if data == "messy":
        return _messy(engine)
    name, _, count = data.partition(":")
    file, default = _FILES[name]
    return _sample(file, int(count) if count else default)


@pytest.mark.parametrize(
    ("shape", "engine"),
    [
        pytest.param(
            shape,
            engine,
            id=f"{shape.name}[{engine}]",
            marks=[pytest.mark.second_engine] if engine == JAVA else [],
        )
        for shape in SHAPES
        for engine in shape.engines
    ],
)
def test_chunked_reads_equal_one_unchunked_run(
    shape: Shape,
    engine: str,
    unique_name: str,
    database_names: list[tuple[Database[Doc], str]],
) -> None:
    database = _database(engine)
    collection = database[unique_name]
    database_names.append((database, unique_name))
    _load(collection, _docs(shape.data, engine))
    names = {"source": unique_name}
    for joined in shape.joins:
        names[joined] = f"{unique_name}_{joined}"
        database_names.append((database, names[joined]))
        _load(database[names[joined]], _docs(joined, engine))
    user_pipeline = shape.pipeline(names) if callable(shape.pipeline) else shape.pipeline

    validated = validate_pipeline(
        user_pipeline, collection=unique_name, tenant=TENANT, settings=SETTINGS
    )
    plan = plan_chunks(validated)
    assert plan.strategy == shape.strategy, plan.explanation

    whole = read_all(collection, plan)
    assert whole, "the shape should produce rows"
    assert not any(key.startswith("__dx_") for row in whole for key in row)
    assert all(row.get("tenantId", TENANT) == TENANT for row in whole)
    if shape.same_rows_as_user:
        as_is = [dict(row) for row in collection.aggregate(validated)]
        assert sorted(as_bson(whole)) == sorted(as_bson(as_is))
    for size in shape.sizes:
        chunked = read_in_chunks(collection, plan, size)
        assert as_bson(chunked) == as_bson(whole), f"chunks of {size} rows differ"


def test_engine_order_matches_the_python_mirror(
    unique_name: str, database_names: list[tuple[Database[Doc], str]]
) -> None:
    """`keyset.sort_key` orders mixed types exactly as the engines' $sort does."""
    for engine in BOTH:
        database = _database(engine)
        collection = database[f"{unique_name}_{engine[:4]}"]
        database_names.append((database, collection.name))
        docs = _messy(engine)
        collection.insert_many([dict(doc) for doc in docs])
        rows = list(collection.aggregate([{"$sort": {"k": 1, "_id": 1}}]))
        expected = sorted(docs, key=lambda d: (sort_key(d.get("k")), sort_key(d["_id"])))
        assert [row["_id"] for row in rows] == [doc["_id"] for doc in expected], engine


@pytest.mark.parametrize("engine", BOTH)
def test_an_array_sort_key_fails_loudly(
    engine: str, unique_name: str, database_names: list[tuple[Database[Doc], str]]
) -> None:
    database = _database(engine)
    collection = database[unique_name]
    database_names.append((database, unique_name))
    collection.insert_many(
        [{"_id": n, "tenantId": TENANT, "tags": ["b", "a"] if n == 5 else "c"} for n in range(9)]
    )
    validated = validate_pipeline(
        [{"$sort": {"tags": 1}}], collection=unique_name, tenant=TENANT, settings=SETTINGS
    )
    plan = plan_chunks(validated)
    with pytest.raises(CursorError, match="'tags' of the row with _id 5 is an array"):
        read_in_chunks(collection, plan, 3)


class _Commands(monitoring.CommandListener):
    """Records the name and body of every command a client sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Doc]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        del event

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        del event


@pytest.mark.parametrize("engine", BOTH)
def test_one_aggregate_per_part_closed_when_the_caller_stops(
    engine: str, unique_name: str, database_names: list[tuple[Database[Doc], str]]
) -> None:
    database = _database(engine)
    database_names.append((database, unique_name))
    database[unique_name].insert_many([{"_id": n, "tenantId": TENANT} for n in range(300)])
    commands = _Commands()
    env, default = ENGINE_URIS[engine]
    client: MongoClient[Doc] = MongoClient(os.environ.get(env, default), event_listeners=[commands])
    try:
        collection = client[database.name][unique_name]
        validated = validate_pipeline([], collection=unique_name, tenant=TENANT, settings=SETTINGS)
        plan = plan_chunks(validated)
        stream = read_rows(collection, plan, (10,), max_time_ms=5_000, batch_size=20)
        with closing(stream):
            first = [row["_id"] for row, _ in itertools.islice(stream, 45)]
        assert first == list(range(11, 56))
        names = [name for name, _ in commands.sent]
        if engine == JAVA:  # it ignores batchSize: the first batch holds every row, no cursor
            assert names == ["aggregate"]
        else:
            assert names == ["aggregate", "getMore", "getMore", "killCursors"]
        aggregate = next(body for name, body in commands.sent if name == "aggregate")
        assert aggregate["maxTimeMS"] == 5_000
        assert aggregate["cursor"] == {"batchSize": 20}
    finally:
        client.close()
