"""Continue-as-new, forced by a low history threshold, still produces the identical object."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from devstack import services
from domain.models import Column, ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents

pytestmark = pytest.mark.slow

SUGGEST_CONTINUE_AS_NEW_AT = 12  # events; a part costs about six


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def low_threshold_temporal(tmp_path: Path) -> AsyncIterator[str]:
    """A second, in-memory Temporal dev server that suggests continue-as-new very early."""
    port = _free_port()
    command = services.temporal_command(
        port=port,
        ui_port=None,
        dynamic_config={"limit.historyCount.suggestContinueAsNew": str(SUGGEST_CONTINUE_AS_NEW_AT)},
    )
    process = services.spawn(command, tmp_path / "temporal.log")

    try:
        assert services.wait_until(
            lambda: services.temporal_answers(port),
            timeout=60,
            alive=lambda: process.poll() is None,
        ), (tmp_path / "temporal.log").read_text()
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


async def test_an_export_continued_as_new_gives_the_reference_object(
    settings: Settings, collection: str, low_threshold_temporal: str
) -> None:
    h.seed(settings, collection, documents(10_000, pad=1500))  # three parts of 5 MiB or more
    local = settings.model_copy(update={"temporal_address": low_threshold_temporal})
    client = await Client.connect(low_threshold_temporal, data_converter=pydantic_data_converter)
    export = h.new_export(ExportRequest(collection=collection, format="jsonl"))
    async with h.in_process_worker(local, client):
        handle = await h.start(client, local, export)
        first_run = handle.first_execution_run_id or handle.result_run_id
        result = await handle.result()

    assert result.status == ExportStatus.COMPLETED
    first = await client.get_workflow_handle(export.export_id, run_id=first_run).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert result.object_key is not None
    assert h.fetch_object(local, result.object_key) == h.reference_bytes(local, export, None)
    assert result.rows == 10_000


async def test_the_largest_accepted_request_continues_as_new(
    settings: Settings, collection: str, low_threshold_temporal: str
) -> None:
    """A request at the API's body limit (1,000 columns of long paths and headers, about
    1 MB of JSON) is carried through parts and continue-as-new without any payload holding
    it twice (Temporal refuses payloads over 2 MB)."""
    h.seed(settings, collection, documents(3_000, pad=1500))
    long = "x" * 470
    columns = [Column(path="n"), Column(path="pad")] + [
        Column(path=f"c{i:03d}{long}", header=f"h{i:03d}{long}") for i in range(998)
    ]
    request = ExportRequest(collection=collection, columns=columns)
    body = request.model_dump_json()
    assert 900_000 < len(body) <= Settings().api_max_body_bytes
    local = settings.model_copy(
        update={"temporal_address": low_threshold_temporal, "part_size_bytes": 5 * 1024 * 1024}
    )
    client = await Client.connect(low_threshold_temporal, data_converter=pydantic_data_converter)
    export = h.new_export(request)
    async with h.in_process_worker(local, client):
        handle = await h.start(client, local, export)
        first_run = handle.first_execution_run_id or handle.result_run_id
        result = await handle.result()
    assert result.status == ExportStatus.COMPLETED
    first = await client.get_workflow_handle(export.export_id, run_id=first_run).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert result.object_key is not None
    assert h.fetch_object(local, result.object_key) == h.reference_bytes(local, export, columns)
    assert result.rows == 3_000
