"""The seed's original plan, implemented faithfully as a baseline: re-run the whole pipeline for
every batch of 1,000 rows.

For each batch: the user's stages (after the tenant filter, as the product validates them), then
`$match {_id: {$gt: <last _id>}}`, `$sort {_id: 1}`, `$limit 1000`; the rows are encoded (with
the product's CSV encoder, so only the reading design differs) and collected in memory; the next
batch starts after the last `_id`. It stops at a short batch. Nothing is uploaded: the baseline
is spared the S3 work the product does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

from domain.formats.encoding import EncodingSpec, new_part_encoder
from domain.models import Column

BATCH = 1000


@dataclass(frozen=True)
class SeedExport:
    body: bytes
    rows: int
    queries: int


def export(
    collection: Collection[dict[str, Any]],
    stages: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    *,
    max_time_ms: int,
    batch: int = BATCH,
) -> SeedExport:
    """The whole export the seed's way: one pipeline run per `batch` rows."""
    encoder = new_part_encoder(EncodingSpec(), columns, first_part=True)
    last: Any = None
    rows = queries = 0
    while True:
        pipeline = list(stages)
        if last is not None:
            pipeline.append({"$match": {"_id": {"$gt": last}}})
        pipeline += [{"$sort": {"_id": 1}}, {"$limit": batch}]
        found = list(collection.aggregate(pipeline, maxTimeMS=max_time_ms))
        queries += 1
        for row in found:
            encoder.write(row)
        rows += len(found)
        if len(found) < batch:
            break
        last = found[-1]["_id"]
    return SeedExport(encoder.finish(), rows, queries)
