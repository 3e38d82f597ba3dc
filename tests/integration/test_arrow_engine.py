"""The Arrow engines (CSV, JSON Lines) through the whole product: the same object as the Python
encoder's, gzip parts included, from raw rows read by the worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.models import Column, Compression, ExportFormat, ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents

MIB = 1024 * 1024


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


async def _object(settings: Settings, request: ExportRequest, engine: str) -> tuple[Any, bytes]:
    engine_settings = settings.model_copy(update={"csv_engine": engine})
    export = h.new_export(request)
    async with h.in_process_worker(engine_settings) as client:
        result = await (await h.start(client, engine_settings, export)).result()
    assert result.status == ExportStatus.COMPLETED
    return result, h.fetch_object(settings, result.object_key)


SORTED_HIDDEN_ID = [  # a sort keyset (the cursor is read lazily) and a hidden `_id`
    {"$sort": {"name": 1}},
    {"$project": {"_id": 0, "name": 1, "n": 1, "when": 1, "score": 1, "address.city": 1}},
]
JSONL_COLUMNS = [
    Column(path=p) for p in ("_id", "n", "name", "score", "when", "price", "address.city", "pad")
]


@pytest.mark.parametrize(
    ("count", "pad", "compression", "pipeline", "fmt", "columns"),
    [
        # Several gzip parts of 5 MiB; without the array column every column is Arrow's.
        (9_000, 1_600, "gzip", [{"$project": {"tags": 0}}], "csv", None),
        (2_000, 0, "none", SORTED_HIDDEN_ID, "csv", None),
        # JSON Lines with columns: `score` is a double, a null or missing (no key written).
        (9_000, 1_600, "gzip", [], "jsonl", JSONL_COLUMNS),
        # Whole documents: Python's lines, from raw rows decoded a batch at a time.
        (2_000, 0, "none", SORTED_HIDDEN_ID, "jsonl", None),
    ],
    ids=["gzip parts", "sorted, hidden _id", "jsonl columns, gzip parts", "jsonl documents"],
)
async def test_the_arrow_engine_writes_the_python_encoders_object(
    settings: Settings,
    collection: str,
    count: int,
    pad: int,
    compression: Compression,
    pipeline: list[dict[str, Any]],
    fmt: ExportFormat,
    columns: list[Column] | None,
) -> None:
    h.seed(settings, collection, documents(count, pad=pad))
    small_parts = settings.model_copy(update={"part_size_bytes": 5 * MIB})
    request = ExportRequest(
        collection=collection,
        pipeline=pipeline,
        compression=compression,
        format=fmt,
        columns=columns,
    )
    by_python, reference = await _object(small_parts, request, "python")
    by_arrow, body = await _object(small_parts, request, "arrow")
    assert by_arrow.rows == by_python.rows == count
    assert by_arrow.parts == by_python.parts
    assert body == reference
