"""ExportWorkflow end to end on the real stack: the object in S3 equals the unchunked reference."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from temporalio.client import WorkflowFailureError

from domain.export_policy import ExportPolicy
from domain.models import Column, ExportInput, ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from workflows.export_workflow import ExportWorkflow

MIB = 1024 * 1024


def documents(count: int, *, seed: int = 7, pad: int = 0) -> Iterator[dict[str, Any]]:
    """Deterministic rows of varied types: strings with commas, quotes and newlines, nulls,
    missing fields, dates, nested documents and arrays."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(count):
        doc: dict[str, Any] = {
            "_id": ObjectId(f"{n:024x}"),
            "n": n,
            "name": rng.choice(
                ["Ada", "Grace", 'Quote "Q"', "a,b", "line\nbreak", "=SUM(A1)", "Ünïcode"]
            ),
            "score": rng.choice([1.5, -2.25, 0.1, None]),
            "when": start + timedelta(minutes=n),
            # No Decimal128: FerretDB 1.24 drops the connection on it (unit tests cover its cells).
            "price": n + (n % 100) / 100,
            "address": {"city": rng.choice(["Paris", "Oslo"]), "zip": f"{n % 1000:05d}"},
            "tags": ["x", n % 3],
        }
        if n % 5 == 0:
            del doc["score"]
        if pad:
            doc["pad"] = rng.randbytes(pad // 2).hex()  # incompressible, so gzip parts stay big
        yield doc


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


async def _run(settings: Settings, request: ExportRequest) -> tuple[Any, bytes, ExportInput]:
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        handle = await h.start(client, settings, export)
        progress = await handle.result()
    assert progress.object_key is not None
    return progress, h.fetch_object(settings, progress.object_key), export


@pytest.mark.parametrize("count", [0, 1, 250])
async def test_export_equals_the_unchunked_reference(
    settings: Settings, collection: str, count: int
) -> None:
    h.seed(settings, collection, documents(count))
    columns = [
        Column(path="n"),
        Column(path="name", header="Name"),
        Column(path="score"),
        Column(path="when"),
        Column(path="price"),
        Column(path="address.city"),
        Column(path="tags"),
    ]
    request = ExportRequest(
        collection=collection, pipeline=[{"$match": {"n": {"$gte": 0}}}], columns=columns
    )
    progress, body, export = await _run(settings, request)

    assert progress.status == ExportStatus.COMPLETED
    assert progress.rows == count
    assert body == h.reference_bytes(settings, export, columns)
    assert body.startswith(b"n,Name,score,when,price,address.city,tags\r\n")
    assert body.count(b"\r\n") >= count + 1
    assert (
        h.uploads_under(
            settings, f"{settings.export_prefix}{export.owner.tenant}/{export.export_id}"
        )
        == []
    )


async def test_columns_are_frozen_from_the_first_rows_when_not_given(
    settings: Settings, collection: str
) -> None:
    h.seed(settings, collection, documents(40))
    request = ExportRequest(collection=collection, pipeline=[{"$project": {"tenantId": 0}}])
    progress, body, _export = await _run(settings, request)
    header = body.split(b"\r\n", 1)[0].decode()
    # First-seen order: the first row has no `score` (every fifth row lacks it), the second does.
    assert header.split(",") == [
        "_id",
        "n",
        "name",
        "when",
        "price",
        "address.city",
        "address.zip",
        "tags",
        "score",
    ]
    assert progress.rows == 40


async def test_a_large_export_spans_several_parts_and_gzip_members(
    settings: Settings, collection: str
) -> None:
    h.seed(settings, collection, documents(9000, pad=1600))  # about 16 MiB, 8 MiB gzipped
    small_parts = settings.model_copy(update={"part_size_bytes": 5 * MIB})
    request = ExportRequest(collection=collection, format="jsonl", compression="gzip")
    progress, body, export = await _run(small_parts, request)

    assert progress.parts >= 2
    assert progress.rows == 9000
    lines = gzip.decompress(body).splitlines()
    assert len(lines) == 9000
    assert gzip.decompress(body) == gzip.decompress(h.reference_bytes(settings, export, None))


async def test_an_exceeded_max_time_ms_fails_clearly_and_leaves_no_upload(
    settings: Settings, collection: str
) -> None:
    h.seed(settings, collection, documents(20_000))
    slow = settings.model_copy(update={"mongodb_max_time_ms": 1})
    request = ExportRequest(
        collection=collection,
        format="jsonl",
        pipeline=[{"$sort": {"name": -1, "score": 1}}],
    )
    export = h.new_export(request, policy=ExportPolicy.of(slow))
    async with h.in_process_worker(slow) as client:
        handle = await h.start(client, slow, export)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        progress = await handle.query(ExportWorkflow.progress)
    assert progress.status == ExportStatus.FAILED
    assert "maxTimeMS=1" in (progress.error or "")
    assert "maxTimeMS=1" in str(failure.value.cause)
    assert (
        h.uploads_under(
            settings, f"{settings.export_prefix}{export.owner.tenant}/{export.export_id}"
        )
        == []
    )


async def test_cancelling_an_export_aborts_its_upload(settings: Settings, collection: str) -> None:
    h.seed(settings, collection, documents(12_000, pad=1500))  # several parts
    request = ExportRequest(collection=collection, format="jsonl")
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        handle = await h.start(client, settings, export)
        await h.wait_for(handle, lambda p: p.parts >= 1)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await handle.query(ExportWorkflow.progress)
    assert progress.status == ExportStatus.CANCELLED
    assert progress.error == "cancelled by its owner"
    prefix = f"{settings.export_prefix}{export.owner.tenant}/{export.export_id}"
    assert h.uploads_under(settings, prefix) == []


async def test_a_trailing_limit_caps_the_rows(settings: Settings, collection: str) -> None:
    h.seed(settings, collection, documents(300))
    request = ExportRequest(
        collection=collection,
        format="jsonl",
        pipeline=[{"$match": {"n": {"$gte": 10}}}, {"$limit": 25}],
    )
    progress, body, export = await _run(settings, request)
    assert progress.rows == 25
    assert body == h.reference_bytes(settings, export, None)
    assert body.count(b"\n") == 25


async def test_an_array_sort_key_fails_the_export_at_once(
    settings: Settings, collection: str
) -> None:
    h.seed(settings, collection, documents(20))
    request = ExportRequest(
        collection=collection, format="jsonl", pipeline=[{"$sort": {"tags": 1}}]
    )
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        handle = await h.start(client, settings, export)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await handle.query(ExportWorkflow.progress)
    assert progress.status == ExportStatus.FAILED
    assert "cannot resume" in (progress.error or "")
    assert "array" in (progress.error or "")
