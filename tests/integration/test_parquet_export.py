"""Parquet exports through the whole product: read back by pyarrow, DuckDB and polars, equal to
the JSON Lines export of the same request, and resumable when the worker is killed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activities.parquet_footer import SUFFIX
from connections.s3 import make_s3_client
from connections.temporal import connect
from domain.models import Column, ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.parquet_reading import read_three_ways, rows_of_jsonl, same_rows, schema_of
from tests.integration.test_export_workflow import documents


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


async def _run(settings: Settings, request: ExportRequest) -> tuple[Any, bytes]:
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        result = await (await h.start(client, settings, export)).result()
    assert result.status == ExportStatus.COMPLETED
    assert result.object_key is not None
    return result, h.fetch_object(settings, result.object_key)


def _pieces_left(settings: Settings, object_key: str) -> list[str]:
    listed = make_s3_client(settings).list_objects_v2(
        Bucket=settings.s3_bucket, Prefix=object_key + SUFFIX
    )
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.mark.parametrize(
    "columns",
    [
        None,
        [Column(path="n"), Column(path="name", header="Name"), Column(path="address.city")],
    ],
    ids=["whole documents", "requested columns"],
)
async def test_parquet_reads_back_equal_to_the_jsonl_export(
    settings: Settings, collection: str, tmp_path: Path, columns: list[Column] | None
) -> None:
    h.seed(settings, collection, documents(2_500))
    pipeline: list[dict[str, Any]] = [{"$match": {"n": {"$gte": 0}}}]
    parquet, body = await _run(
        settings,
        ExportRequest(collection=collection, pipeline=pipeline, columns=columns, format="parquet"),
    )
    _, jsonl = await _run(
        settings,
        ExportRequest(collection=collection, pipeline=pipeline, columns=columns, format="jsonl"),
    )
    expected = rows_of_jsonl(jsonl, schema_of(body))
    assert len(expected) == parquet.rows == 2_500
    for read in read_three_ways(body, tmp_path):
        assert same_rows(read, expected)
    head = make_s3_client(settings).head_object(Bucket=settings.s3_bucket, Key=parquet.object_key)
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert parquet.object_key.endswith(".parquet")
    assert _pieces_left(settings, parquet.object_key) == []


async def test_an_empty_parquet_export_is_a_valid_file(
    settings: Settings, collection: str, tmp_path: Path
) -> None:
    h.seed(settings, collection, [])
    columns = [Column(path="n"), Column(path="name")]
    request = ExportRequest(collection=collection, columns=columns, format="parquet")
    result, body = await _run(settings, request)
    assert result.rows == 0
    assert schema_of(body).names == ["n", "name"]
    assert all(read == [] for read in read_three_ways(body, tmp_path))
    # Without columns nothing tells the fields: a file of no columns (DuckDB refuses to read one).
    _, body = await _run(settings, ExportRequest(collection=collection, format="parquet"))
    assert schema_of(body).names == []


@pytest.mark.slow
async def test_killing_the_worker_twice_mid_parquet_export_keeps_every_row_once(
    settings: Settings, collection: str, unique_name: str, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"temporal_task_queue": f"crash-{unique_name}", "part_size_bytes": 5 * 1024 * 1024}
    )
    h.seed(settings, collection, documents(30_000, pad=1500))  # about 4 parts of 5 MiB
    export = h.new_export(ExportRequest(collection=collection, format="parquet"))
    handle = await h.start(await connect(settings), settings, export)
    log = tmp_path / "worker.log"
    for parts_before_kill in (1, 2):
        with h.worker_process(settings, log) as worker:
            await h.wait_for(handle, lambda p, n=parts_before_kill: p.parts >= n, within=300)
            worker.kill()  # SIGKILL: the part in flight is lost, its footer piece may be stored
    with h.worker_process(settings, log):
        result = await handle.result()

    assert result.status == ExportStatus.COMPLETED
    assert result.parts >= 3
    body = h.fetch_object(settings, result.object_key)
    jsonl = h.reference_bytes(
        settings, h.new_export(ExportRequest(collection=collection, format="jsonl")), None
    )
    expected = rows_of_jsonl(jsonl, schema_of(body))
    assert len(expected) == result.rows == 30_000
    for read in read_three_ways(body, tmp_path):
        assert same_rows(read, expected)
    assert _pieces_left(settings, result.object_key) == []
    assert h.uploads_under(settings, result.object_key) == []
