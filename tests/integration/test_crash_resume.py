"""A worker killed mid-export, or a restarted Temporal server, loses, duplicates or reorders nothing.

Workers run as separate processes (`python -m workflows.worker --role workflows|activities`), and
each kind is killed with SIGKILL: the activity process, the workflow process, and both.
"""

from __future__ import annotations

import contextlib
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


KILL_TARGETS: dict[str, tuple[h.WorkerRole, ...]] = {
    "activity-process": ("activities",),
    "workflow-process": ("workflows",),
    "both": ("workflows", "activities"),
}


@pytest.mark.parametrize("target", list(KILL_TARGETS))
async def test_kill_9_of_each_kind_of_worker_process_mid_export_gives_the_reference_object(
    isolated: Settings, collection: str, tmp_path: Path, target: str
) -> None:
    """A workflow process and an activity process (as `export-worker --role all` runs them);
    SIGKILL the chosen kind twice, at different parts, and start it again each time."""
    h.seed(isolated, collection, documents(14_000, pad=1500))  # about 4 parts of 5 MiB
    settings = isolated.model_copy(update={"part_size_bytes": 5 * 1024 * 1024})
    request = ExportRequest(collection=collection, format="jsonl")
    export = h.new_export(request)
    client = await connect(settings)
    handle = await h.start(client, settings, export)
    log = tmp_path / "worker.log"
    killed = KILL_TARGETS[target]
    kills = []
    with contextlib.ExitStack() as survivors:
        roles: tuple[h.WorkerRole, ...] = ("workflows", "activities")
        for role in roles:
            if role not in killed:
                survivors.enter_context(h.worker_process(settings, log, role))
        for parts_before_kill in (1, 2):
            with contextlib.ExitStack() as victims:
                processes = [
                    victims.enter_context(h.worker_process(settings, log, role)) for role in killed
                ]
                progress = await h.wait_for(
                    handle, lambda p, n=parts_before_kill: p.parts >= n, within=180
                )
                for process in processes:
                    process.kill()  # SIGKILL: no graceful shutdown, the part in flight is lost
                kills.append(progress.parts)
        resumed_at = time.monotonic()
        with contextlib.ExitStack() as back:
            for role in killed:
                back.enter_context(h.worker_process(settings, log, role))
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
    print(f"{target}: resumed after the last kill and finished in {resume_seconds:.1f} s")


async def test_restarting_the_temporal_server_mid_export_loses_nothing(
    isolated: Settings, collection: str, tmp_path: Path
) -> None:
    h.seed(isolated, collection, documents(10_000, pad=1500))
    request = ExportRequest(collection=collection, format="jsonl")
    export = h.new_export(request)
    client = await connect(isolated)
    handle = await h.start(client, isolated, export)
    with h.worker_process(isolated, tmp_path / "worker.log", "all"):
        await h.wait_for(handle, lambda p: p.parts >= 1, within=180)
        services.stop("temporal")
        services.start("temporal")  # same SQLite file: the history survives
        client = await connect(isolated)
        handle = client.get_workflow_handle_for(ExportWorkflow.run, export.export_id)
        result = await handle.result()
    assert result.status == ExportStatus.COMPLETED
    assert result.object_key is not None
    assert h.fetch_object(isolated, result.object_key) == h.reference_bytes(isolated, export, None)
