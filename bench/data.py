"""The benchmark's data: the demo's `inspections` documents plus three fields for the scenarios.

* `seq`: the document's number (0, 1, 2 ...), to select a prefix of the collection;
* `site`: `(seq // 5) % 20,000`, so a `$group` on it over the first 100,000 documents yields
  20,000 groups of five;
* `rep`: `[0, 1, 2, 3, 4]`, so `$unwind: "$rep"` repeats every document five times (how the
  memory scenario reaches 500,000 rows from 100,000 documents).

On mongo-java-server the documents are slim (no `violations`, no `tags`): it holds everything in
a 2 GB Java heap shared with the tests, and no export there reads those arrays.

A collection is seeded once per engine and size in the `durable_export_bench` database, which
`python -m bench` drops at the end unless `--keep-data` (mongo-java-server keeps everything in a
2 GB heap shared with the tests); a marker document tells whether a collection holds this seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo import MongoClient

from bench.common import BENCH_DATABASE, TENANT, engine_uri
from scripts.seed_inspections import insert_in_batches, inspections

DATA_VERSION = 2
SITES = 20_000
REPEATS = 5

Document = dict[str, Any]


def collection_name(count: int) -> str:
    return f"inspections_{count}"


def documents(count: int, *, slim: bool = False) -> Iterator[Document]:
    """`slim` drops the `violations` and `tags` arrays (no export on mongo-java-server reads
    them; they would take half of its heap)."""
    for n, doc in enumerate(inspections(count, tenant=TENANT, tenant_field="tenantId")):
        if slim:
            del doc["violations"], doc["tags"]
        doc["seq"] = n
        doc["site"] = f"site-{(n // REPEATS) % SITES:05d}"
        doc["rep"] = list(range(REPEATS))
        yield doc


def ensure_collection(engine: str, count: int) -> tuple[str, bool]:
    """The collection of `count` bench documents on `engine`, seeded unless it already is.
    Returns its name and whether it was seeded now."""
    name = collection_name(count)
    client: MongoClient[Document] = MongoClient(engine_uri(engine))
    try:
        database = client[BENCH_DATABASE]
        collection, meta = database[name], database[f"{name}_seed"]
        slim = engine == "mongo-java-server"
        marker = {"_id": "seed", "count": count, "version": DATA_VERSION, "slim": slim}
        if meta.find_one({"_id": "seed"}) == marker and (
            collection.estimated_document_count() == count
        ):
            return name, False
        collection.drop()
        meta.drop()
        insert_in_batches(collection, documents(count, slim=slim))
        meta.insert_one(marker)
        return name, True
    finally:
        client.close()


def drop_all(engine: str) -> None:
    client: MongoClient[Document] = MongoClient(engine_uri(engine))
    try:
        client.drop_database(BENCH_DATABASE)
    finally:
        client.close()
