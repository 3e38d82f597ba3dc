"""`export-worker`: runs ExportWorkflow and its activities, configured from the environment.

SIGTERM or SIGINT starts a graceful shutdown: the worker stops polling, and an activity in flight
gets `WORKER_GRACEFUL_SHUTDOWN_SECONDS` to finish its part; one that does not is cancelled and
retried by another worker from the same cursor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.worker import Worker

from activities.export_activities import ExportActivities
from activities.janitor_activities import JanitorActivities
from activities.notify_activities import NotifyActivities
from domain.settings import Settings
from workflows.export_workflow import ExportWorkflow
from workflows.janitor_workflow import JanitorWorkflow, ensure_janitor_schedule
from workflows.temporal_client import connect

logger = logging.getLogger("export-worker")


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    settings.require_secure_secrets()
    client = await connect(settings)
    exports = ExportActivities(settings)
    notify = NotifyActivities(settings)
    janitor = JanitorActivities(settings, client)
    await ensure_janitor_schedule(client, settings)
    limit = settings.worker_max_concurrent_activities
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="activity") as pool:
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[ExportWorkflow, JanitorWorkflow],
            activities=[*exports.all(), *notify.all(), janitor.abort_orphaned_uploads],
            activity_executor=pool,
            max_concurrent_activities=limit,
            graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        )
        logger.info(
            "worker polling %s on %s (%d activities at once)",
            settings.temporal_task_queue,
            settings.temporal_address,
            limit,
        )
        async with worker:
            await stop.wait()
            logger.info("shutting down: letting in-flight activities finish")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="export-worker",
        description="Run the durable-export Temporal worker. Every setting comes from the "
        "environment (see the README's configuration table), e.g. TEMPORAL_ADDRESS, "
        "TEMPORAL_TASK_QUEUE, MONGODB_URI, S3_ENDPOINT_URL, WORKER_MAX_CONCURRENT_ACTIVITIES.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(Settings(), stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
