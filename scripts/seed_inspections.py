"""A deterministic `inspections` collection: food-safety inspections of businesses.

The shape is a realistic report source: business with a nested address, dates, a result, a
score, an array of violations (embedded documents) and tags. The same size and seed always give
the same documents, so an export of it is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection

CITIES = [
    ("Brooklyn", "NY", "112"),
    ("Queens", "NY", "113"),
    ("Bronx", "NY", "104"),
    ("Staten Island", "NY", "103"),
    ("Manhattan", "NY", "100"),
]
STREETS = ["Atlantic Ave", "Broadway", "Court St", "Flatbush Ave", "Main St", "Ocean Pkwy"]
KINDS = ["Bakery", "Café", "Deli", "Diner", "Food Truck", "Pizzeria", "Restaurant"]
NAMES = ["Golden", "Blue Door", "Mama's", "Corner", "Lucky", "Sunrise", "O'Brien's", "Élan"]
RESULTS = ["Pass", "Pass", "Pass", "Pass w/ Conditions", "Fail", "No Violation Issued", "Closed"]
VIOLATIONS = [
    ("10F", "Non-food contact surface improperly constructed"),
    ("04L", "Evidence of mice or live mice present"),
    ("06C", "Food not protected from potential source of contamination"),
    ("02G", 'Cold food item held above 41°F, "smoked fish"'),
    ("08A", "Facility not vermin proof.\nHarborage or conditions conducive to pests"),
]


def inspections(
    count: int, *, tenant: str, tenant_field: str, seed: int = 2024
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    for n in range(count):
        city, state, zip_prefix = rng.choice(CITIES)
        result = rng.choice(RESULTS)
        violations = [
            {"code": code, "description": text, "critical": rng.random() < 0.3}
            for code, text in rng.sample(VIOLATIONS, k=rng.randint(0, 3))
        ]
        doc: dict[str, Any] = {
            "_id": ObjectId(f"{0x65000000 + n:08x}{n:016x}"),
            tenant_field: tenant,
            "certificate": f"INS-{seed}-{n:07d}",
            "business": {
                "id": 10_000 + n % 7_000,
                "name": f"{rng.choice(NAMES)} {rng.choice(KINDS)}",
                "address": {
                    "number": rng.randint(1, 999),
                    "street": rng.choice(STREETS),
                    "city": city,
                    "state": state,
                    "zip": f"{zip_prefix}{rng.randint(0, 99):02d}",
                },
            },
            "date": start + timedelta(minutes=37 * n),
            "result": result,
            "score": None if result == "Closed" else rng.randint(0, 60),
            "violations": violations,
            "tags": rng.sample(
                ["follow-up", "complaint", "initial", "re-inspection"], k=rng.randint(0, 2)
            ),
        }
        if n % 11 == 0:
            del doc["score"]  # some inspections never got a score
        yield doc


def insert_in_batches(
    collection: Collection[Any], documents: Iterable[Mapping[str, Any]], size: int = 5000
) -> None:
    """Insert a stream of documents a batch at a time, so memory holds one batch, not them all."""
    batch: list[Mapping[str, Any]] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) == size:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)


def ensure_inspections(
    collection: Collection[dict[str, Any]], count: int, *, tenant: str, tenant_field: str
) -> bool:
    """Seed the collection unless it already holds exactly this seed. Returns True when seeded."""
    marker = {"_id": "seed", "count": count, "tenant": tenant, "version": 1}
    meta = collection.database[f"{collection.name}_seed"]
    if meta.find_one({"_id": "seed"}) == marker and collection.estimated_document_count() == count:
        return False
    collection.drop()
    meta.drop()
    insert_in_batches(collection, inspections(count, tenant=tenant, tenant_field=tenant_field))
    meta.insert_one(marker)
    return True
