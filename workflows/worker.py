"""`export-worker`: the processes that run ExportWorkflow and its activities.

Orchestration and heavy work never share a process (nor a GIL):

* `--role workflows`: workflow tasks only (ExportWorkflow, JanitorWorkflow) on
  `TEMPORAL_TASK_QUEUE`. Light; one or two per deployment are plenty.
* `--role activities`: activities only (reading, encoding, uploading, notifying, the janitor's
  sweep) on the derived queue `<TEMPORAL_TASK_QUEUE>-activities`. CPU-heavy; scale these out,
  one process per core, each running `WORKER_MAX_CONCURRENT_ACTIVITIES` activities in threads
  (or, with `WORKER_ACTIVITY_EXECUTOR=processes`, one process running them in a process pool of
  `WORKER_ACTIVITY_PROCESSES`; see `workflows.worker_processes` for the measured comparison).
* `--role all` (the default, for development): supervises one workflow process and
  `WORKER_ACTIVITY_PROCESSES` activity processes (default: the CPU count; one pooled activity
  process with `WORKER_ACTIVITY_EXECUTOR=processes`), restarts a child that dies, and stops them
  all on SIGTERM or SIGINT.
* `--role combined`: the previous single-process layout (both kinds in one process, one GIL),
  kept for comparisons (`make bench`, scenario 4) and tiny deployments.

SIGTERM or SIGINT starts a graceful shutdown: a worker stops polling, and an activity in flight
gets `WORKER_GRACEFUL_SHUTDOWN_SECONDS` to finish its part; one that does not is cancelled and
retried by another worker from the same cursor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Literal, get_args

from domain.settings import InsecureSecretsError, Settings
from workflows.worker_processes import (
    activity_worker,
    supervise,
    workflow_worker,
)

logger = logging.getLogger("export-worker")

Role = Literal["all", "workflows", "activities", "combined"]
ROLES: tuple[Role, ...] = get_args(Role)
READY_MESSAGE = "worker polling"
"""Logged once a worker polls its queue (scripts and tests wait for it)."""


async def run_worker(
    settings: Settings, stop: asyncio.Event, role: Role = "combined", log_level: str = "INFO"
) -> None:
    """Run the workers of `role` in this process until `stop` is set (`all` spawns processes)."""
    settings.require_secure_secrets()  # before anything starts, the supervisor included
    if role == "all":
        await supervise(settings, stop, log_level)
        return
    async with contextlib.AsyncExitStack() as workers:
        if role in ("workflows", "combined"):
            await workers.enter_async_context(workflow_worker(settings))
        if role == "activities" and settings.worker_activity_nice:
            os.nice(settings.worker_activity_nice)
        if role in ("activities", "combined"):
            await workers.enter_async_context(activity_worker(settings))
        logger.info("%s (%s) on %s", READY_MESSAGE, role, settings.temporal_address)
        await stop.wait()
        logger.info("shutting down: letting in-flight activities finish")


@contextlib.asynccontextmanager
async def _signals() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    yield stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="export-worker",
        description="Run the durable-export Temporal workers. Every setting comes from the "
        "environment (see the README's configuration table), e.g. TEMPORAL_ADDRESS, "
        "TEMPORAL_TASK_QUEUE, MONGODB_URI, S3_ENDPOINT_URL, WORKER_ACTIVITY_PROCESSES, "
        "WORKER_MAX_CONCURRENT_ACTIVITIES.",
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="workflows: workflow tasks only; activities: activities only; all (default): one "
        "workflow process and WORKER_ACTIVITY_PROCESSES activity processes; combined: both in "
        "one process (the previous layout)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    async def serve() -> None:
        async with _signals() as stop:
            await run_worker(Settings(), stop, args.role, args.log_level)

    try:
        asyncio.run(serve())
    except InsecureSecretsError as exc:
        sys.exit(f"export-worker: {exc}")


if __name__ == "__main__":
    main()
