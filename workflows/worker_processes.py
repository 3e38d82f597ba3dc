"""The two kinds of worker, and the supervisor that runs one of each kind per process.

Why processes: an activity decoding a large reply holds the GIL for hundreds of milliseconds, so
a workflow task (or the `progress` query the Temporal UI sends) in the same process waits behind
it. Workflow workers therefore never run activities, and activity workers never run workflows.

Several activity worker *processes* (`WORKER_ACTIVITY_EXECUTOR=threads`, the default) were
chosen over one worker with a process pool (`=processes`: the sync activities run as the
module-level functions of `workflows.activity_pool` in a spawned `ProcessPoolExecutor` of
`WORKER_ACTIVITY_PROCESSES`, one activity per pool process, heartbeats and cancellation through
`SharedStateManager.create_from_multiprocessing`; the janitor's async sweep stays in the parent).
The pool is built so that `make bench` scenario 4 measures it as the layout `pool`. Measured
(2026-11-30, 2 cores, N=2, same run; bench/results/2026-11-30-s4-pool-smoke.md): worker memory
1002 MB idle / 1085 MB loaded for the pool against 687 / 762 MB for N activity processes: the
pool's N processes are full interpreters too, plus the parent, the shared-state manager process
(151 MB) and the resource tracker (13 MB). It also runs N activities at once where threads run
`WORKER_MAX_CONCURRENT_ACTIVITIES` per process. Its latency under load is not measured yet (see
README, Operations); with more memory and no measured gain, threads stay the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Literal

from temporalio.client import Client
from temporalio.worker import SharedStateManager, Worker

from activities.export_activities import ExportActivities
from activities.janitor_activities import JanitorActivities
from activities.notify_activities import NotifyActivities
from activities.partition_activities import PartitionActivities
from connections.temporal import connect
from domain.settings import Settings
from workflows import activity_pool
from workflows.export_workflow import ExportWorkflow
from workflows.janitor_workflow import JanitorWorkflow, ensure_janitor_schedule
from workflows.scheduled_export_workflow import ScheduledExportWorkflow
from workflows.task_queues import activity_task_queue_for

logger = logging.getLogger("export-worker")

ActivityExecutor = Literal["threads", "processes"]

RESTART_DELAY_SECONDS = 1.0
HEARTBEAT_THROTTLE = timedelta(seconds=2)
"""How often a part's heartbeat details reach the server at most. The SDK's default is 80 % of
the heartbeat timeout (8 s): parts shorter than that showed 0 rows in flight in the status,
which reads them from the server (`describe()`). Activities heartbeat every 2 s."""
_PR_SET_PDEATHSIG = 1

ALL_WORKFLOWS: list[type] = [ExportWorkflow, JanitorWorkflow, ScheduledExportWorkflow]
"""Every workflow of this project: the workflow workers (processes and test harness) run these."""


@contextlib.asynccontextmanager
async def workflow_worker(settings: Settings) -> AsyncIterator[Worker]:
    """Workflow tasks only, on `TEMPORAL_TASK_QUEUE`; creates the janitor's schedule."""
    client = await connect(settings)
    await ensure_janitor_schedule(client, settings)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=ALL_WORKFLOWS,
    )
    async with worker:
        logger.info("workflow worker on %s", settings.temporal_task_queue)
        yield worker


def all_activities(
    settings: Settings, client: Client, executor: ActivityExecutor = "threads"
) -> list[Callable[..., Any]]:
    """Every activity a workflow of this project schedules: bound to this process's clients
    (`threads`), or the sync ones as module-level functions a process pool can pickle
    (`processes`; each pool process builds its own clients). The janitor's sweep is async and
    needs the Temporal client: it runs in the worker's own process either way."""
    janitor = JanitorActivities(settings, client)
    if executor == "processes":
        return [*activity_pool.POOLED, janitor.abort_orphaned_uploads]
    exports = ExportActivities(settings)
    partitions = PartitionActivities(settings)
    notify = NotifyActivities(settings)
    return [*exports.all(), *partitions.all(), *notify.all(), janitor.abort_orphaned_uploads]


@contextlib.asynccontextmanager
async def activity_worker(settings: Settings) -> AsyncIterator[Worker]:
    """Activities only, on the derived activities' queue, in a pool of threads or (with
    `WORKER_ACTIVITY_EXECUTOR=processes`) of processes."""
    client = await connect(settings)
    queue = activity_task_queue_for(settings.temporal_task_queue)
    grace = timedelta(seconds=settings.worker_graceful_shutdown_seconds)
    if settings.worker_activity_executor == "processes":
        size = activity_process_count(settings)
        context = multiprocessing.get_context("spawn")
        with (
            context.Manager() as manager,
            ProcessPoolExecutor(
                max_workers=size,
                mp_context=context,
                initializer=activity_pool.init_pool_process,
                initargs=(settings,),
            ) as processes,
        ):
            # One activity per pool process: a task waiting in the executor's queue would not
            # heartbeat and would time out on the server.
            worker = Worker(
                client,
                task_queue=queue,
                activities=all_activities(settings, client, "processes"),
                activity_executor=processes,
                shared_state_manager=SharedStateManager.create_from_multiprocessing(manager),
                max_concurrent_activities=size,
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                graceful_shutdown_timeout=grace,
            )
            async with worker:
                logger.info("activity worker on %s (a pool of %d processes)", queue, size)
                yield worker
        return
    limit = settings.worker_max_concurrent_activities
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="activity") as pool:
        worker = Worker(
            client,
            task_queue=queue,
            activities=all_activities(settings, client),
            activity_executor=pool,
            max_concurrent_activities=limit,
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            graceful_shutdown_timeout=grace,
        )
        async with worker:
            logger.info("activity worker on %s (%d activities at once)", queue, limit)
            yield worker


def _die_with_parent() -> None:  # pragma: no cover (runs in the child before exec)
    """A child gets SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Child:
    """One worker process of the supervisor, restarted when it dies unasked."""

    def __init__(self, role: str, index: int, log_level: str) -> None:
        self.name = f"{role}-{index}"
        self.command = [
            sys.executable,
            "-m",
            "workflows.worker",
            "--role",
            role,
            "--log-level",
            log_level,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, preexec_fn=_die_with_parent)
        logger.info("started %s worker process, pid %d", self.name, self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def activity_process_count(settings: Settings) -> int:
    return settings.worker_activity_processes or os.cpu_count() or 1


async def supervise(settings: Settings, stop: asyncio.Event, log_level: str = "INFO") -> None:
    """`--role all`: one workflow process and N activity processes until `stop` is set."""
    # With a process pool, one activity process holds all N pool processes.
    pooled = settings.worker_activity_executor == "processes"
    activity_processes = 1 if pooled else activity_process_count(settings)
    children = [_Child("workflows", 1, log_level)] + [
        _Child("activities", n + 1, log_level) for n in range(activity_processes)
    ]
    for child in children:
        child.start()
    logger.info(
        "supervising %d workflow and %d activity worker processes%s",
        1,
        len(children) - 1,
        f" (each with a pool of {activity_process_count(settings)})" if pooled else "",
    )
    try:
        while not stop.is_set():
            for child in children:
                code = child.exited()
                if code is not None:
                    logger.warning("%s exited with %s: restarting it", child.name, code)
                    child.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_DELAY_SECONDS)
    finally:
        for child in children:
            child.terminate()
        grace = settings.worker_graceful_shutdown_seconds + 10
        for child in children:
            await asyncio.to_thread(child.wait, grace)
