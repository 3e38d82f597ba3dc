"""A worker killed mid-export, or a restarted Temporal server, loses, duplicates or reorders nothing.

The worker runs as a separate process (`python -m workflows.worker`) and is killed with SIGKILL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connections.temporal import connect
from devstack import services
from domain.models import ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents
from workflows.export_workflow import ExportWorkflow

pytestmark = pytest.mark.slow


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


@pytest.fixture
def isolated(settings: Settings, unique_name: str) -> Settings:
    """Its own task queue, so no other worker (in-process or left over) takes these tasks."""
    return settings.model_copy(update={"temporal_task_queue": f"crash-{unique_name}"})


async def test_killing_the_worker_twice_mid_export_still_gives_the_reference_object(
    isolated: Settings, collection: str, tmp_path: Path
) -> None:
    h.seed(isolated, collection, documents(14_000, pad=1500))  # about 4 parts of 5 MiB
    settings = isolated.model_copy(update={"part_size_bytes": 5 * 1024 * 1024})
    request = ExportRequest(collection=collection, format="jsonl")
    export = h.new_export(request)
    client = await connect(settings)
    handle = await h.start(client, settings, export)
    log = tmp_path / "worker.log"
    kills = []
    for parts_before_kill in (1, 2):
        with h.worker_process(settings, log) as worker:
            progress = await h.wait_for(
                handle, lambda p, n=parts_before_kill: p.parts >= n, within=180
            )
            worker.kill()  # SIGKILL: no graceful shutdown, the part in flight is lost
            kills.append(progress.parts)
    resumed_at = time.monotonic()
    with h.worker_process(settings, log):
        result = await handle.result()
    resume_seconds = time.monotonic() - resumed_at

    assert result.status == ExportStatus.COMPLETED
    assert kills == sorted(kills)
    assert result.parts >= 3
    assert result.object_key is not None
    body = h.fetch_object(settings, result.object_key)
    assert body == h.reference_bytes(settings, export, None)
    assert result.rows == 14_000 == body.count(b"\n")
    assert h.uploads_under(settings, result.object_key) == []
    print(f"resumed after the last kill and finished in {resume_seconds:.1f} s")


async def test_restarting_the_temporal_server_mid_export_loses_nothing(
    isolated: Settings, collection: str, tmp_path: Path
) -> None:
    h.seed(isolated, collection, documents(10_000, pad=1500))
    request = ExportRequest(collection=collection, format="jsonl")
    export = h.new_export(request)
    client = await connect(isolated)
    handle = await h.start(client, isolated, export)
    with h.worker_process(isolated, tmp_path / "worker.log"):
        await h.wait_for(handle, lambda p: p.parts >= 1, within=180)
        services.stop("temporal")
        services.start("temporal")  # same SQLite file: the history survives
        client = await connect(isolated)
        handle = client.get_workflow_handle_for(ExportWorkflow.run, export.export_id)
        result = await handle.result()
    assert result.status == ExportStatus.COMPLETED
    assert result.object_key is not None
    assert h.fetch_object(isolated, result.object_key) == h.reference_bytes(isolated, export, None)
