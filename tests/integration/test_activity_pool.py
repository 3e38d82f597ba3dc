"""`WORKER_ACTIVITY_EXECUTOR=processes`: one activity worker runs the sync activities in a pool of
spawned processes. An export through it is byte-identical to one through the threaded worker,
its part's heartbeat still reaches the server (status shows the rows in flight), and cancelling
it still aborts the upload."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from api.server_progress import progress_memo, rows_in_flight
from connections.temporal import connect
from domain.export_policy import ExportPolicy
from domain.models import ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents
from workflows.export_workflow import ExportWorkflow
from workflows.janitor_workflow import JanitorWorkflow
from workflows.worker_processes import activity_worker

pytestmark = [pytest.mark.services, pytest.mark.slow]

MIB = 1024 * 1024
ROWS = 14_000
"""About 21 MiB of JSON lines: four or five parts of 5 MiB."""


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    h.seed(settings, unique_name, documents(ROWS, pad=1500))
    yield unique_name
    h.drop(settings, unique_name)


def _small_parts(settings: Settings, queue: str, batch: int = 1000) -> Settings:
    return settings.model_copy(
        update={
            "temporal_task_queue": queue,
            "part_size_bytes": 5 * MIB,
            "mongodb_batch_size": batch,
            "worker_activity_executor": "processes",
            "worker_activity_processes": 2,
        }
    )


@contextlib.asynccontextmanager
async def pooled_worker(settings: Settings) -> AsyncIterator[Client]:
    """Workflows in this process; activities in the product's own pooled activity worker."""
    client = await connect(settings)
    async with (
        Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[ExportWorkflow, JanitorWorkflow],
        ),
        activity_worker(settings),
    ):
        yield client


async def _most_rows_in_flight(handle: WorkflowHandle[object, object]) -> int:
    """Polls the server until the workflow closes; the most rows a part's heartbeat reported."""
    most = 0
    while True:
        description = await handle.describe()
        memo = await progress_memo(description)
        if memo is not None:
            most = max(most, await rows_in_flight(description, memo.parts_done + 1))
        if description.close_time is not None:
            return most
        await asyncio.sleep(0.1)


async def test_a_pooled_export_is_byte_identical_and_heartbeats(
    settings: Settings, collection: str, unique_name: str
) -> None:
    # Replies of one row: a part reads its rows for several seconds, longer than the worker's
    # heartbeat throttle (`HEARTBEAT_THROTTLE`, 2 s), so a heartbeat sent after the first rows
    # arrive reaches the server while the part is still in flight.
    pooled = _small_parts(settings, f"pool-{unique_name}", batch=1)
    threaded = pooled.model_copy(
        update={
            "temporal_task_queue": f"threads-{unique_name}",
            "worker_activity_executor": "threads",
            "mongodb_batch_size": settings.mongodb_batch_size,
        }
    )
    request = ExportRequest(collection=collection, format="jsonl")
    bodies = []
    for these, worker in ((threaded, h.in_process_worker), (pooled, pooled_worker)):
        export = h.new_export(request, policy=ExportPolicy.of(these))
        async with worker(these) as client:
            handle = await h.start(client, these, export)
            watching = asyncio.create_task(_most_rows_in_flight(handle))
            progress = await handle.result()
            most_in_flight = await watching
        assert progress.status == ExportStatus.COMPLETED
        assert progress.rows == ROWS
        assert progress.parts >= 3
        assert progress.object_key is not None
        bodies.append(h.fetch_object(these, progress.object_key))
    assert most_in_flight > 0, "no heartbeat of the pooled worker's parts reached the server"
    assert bodies[0] == bodies[1]
    assert bodies[1].count(b"\n") == ROWS


async def test_cancelling_a_pooled_export_aborts_its_upload(
    settings: Settings, collection: str, unique_name: str
) -> None:
    pooled = _small_parts(settings, f"pool-{unique_name}")
    export = h.new_export(
        ExportRequest(collection=collection, format="jsonl"), policy=ExportPolicy.of(pooled)
    )
    async with pooled_worker(pooled) as client:
        handle = await h.start(client, pooled, export)
        await h.wait_for(handle, lambda p: p.parts >= 1)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await h.server_progress(handle)
    assert progress is not None
    assert progress.status == ExportStatus.CANCELLED
    assert progress.error == "cancelled by its owner"
    prefix = f"{pooled.export_prefix}{export.owner.tenant}/{export.export_id}"
    assert h.uploads_under(pooled, prefix) == []
