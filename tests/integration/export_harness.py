"""Helpers for end-to-end export tests: seed data, run a worker, fetch the object, build references."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pymongo import MongoClient
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.export_activities import build_plan
from api.server_progress import progress_from_server
from connections.decoding import CODEC_OPTIONS
from connections.s3 import make_s3_client
from connections.temporal import connect
from domain.export_policy import ExportPolicy
from domain.formats.encoding import EncodingSpec, new_part_encoder
from domain.models import Column, ExportInput, ExportRequest, Owner, ProgressView
from domain.settings import Settings
from scripts.seed_inspections import insert_in_batches
from workflows.export_workflow import ExportWorkflow
from workflows.task_queues import activity_task_queue_for
from workflows.worker_processes import ALL_WORKFLOWS, HEARTBEAT_THROTTLE, all_activities

REPO_ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(user_id="user-1", tenant="tenant-a")


def new_export(
    request: ExportRequest, owner: Owner = OWNER, policy: ExportPolicy | None = None
) -> ExportInput:
    """An export as the API starts it: the policy snapshot defaults to this process's settings."""
    return ExportInput(
        export_id=f"exp-{uuid.uuid4().hex}",
        owner=owner,
        request=request,
        requested_at=datetime.now(UTC),
        policy=policy or ExportPolicy.of(Settings()),
    )


def seed(
    settings: Settings,
    collection: str,
    docs: Iterable[Mapping[str, Any]],
    tenant: str = OWNER.tenant,
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    coll = client[settings.mongodb_database][collection]
    insert_in_batches(coll, ({**doc, settings.tenant_field: tenant} for doc in docs))
    client.close()


def drop(settings: Settings, collection: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    client[settings.mongodb_database][collection].drop()
    client.close()


def reference_bytes(settings: Settings, export: ExportInput, columns: list[Column] | None) -> bytes:
    """The same pipeline run once, unchunked, and encoded in one go."""
    plan = build_plan(export, settings)
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    source = client[settings.mongodb_database].get_collection(
        export.request.collection, codec_options=CODEC_OPTIONS
    )
    rows = source.aggregate(plan.pipeline_for(None))
    encoder = new_part_encoder(
        EncodingSpec.of(export.request, hidden_fields=plan.hidden_fields), columns, first_part=True
    )
    for row in rows:
        encoder.write(row)
    client.close()
    return encoder.finish()


def fetch_object(settings: Settings, key: str) -> bytes:
    body: bytes = (
        make_s3_client(settings).get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    )
    return body


def uploads_under(settings: Settings, prefix: str) -> list[dict[str, Any]]:
    listed = make_s3_client(settings).list_multipart_uploads(
        Bucket=settings.s3_bucket, Prefix=prefix
    )
    return [dict(upload) for upload in listed.get("Uploads", [])]


@contextlib.asynccontextmanager
async def in_process_worker(
    settings: Settings, client: Client | None = None
) -> AsyncIterator[Client]:
    """Both kinds of worker inside the test process: workflows on the settings' task queue,
    activities on its activities' queue (as `export-worker --role combined` runs them)."""
    client = client or await connect(settings)
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with (
            Worker(
                client,
                task_queue=settings.temporal_task_queue,
                workflows=ALL_WORKFLOWS,
            ),
            Worker(
                client,
                task_queue=activity_task_queue_for(settings.temporal_task_queue),
                activities=all_activities(settings, client),
                activity_executor=pool,
                max_concurrent_activities=4,
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            ),
        ):
            yield client


WorkerRole = Literal["all", "workflows", "activities", "combined"]


@contextlib.contextmanager
def worker_process(
    settings: Settings, log: Path, role: WorkerRole = "combined"
) -> Iterator[subprocess.Popen[bytes]]:
    """`export-worker --role ROLE` as a separate process with the settings in its environment
    (the default, `combined`, runs both kinds of worker in one process: one process to kill)."""
    env = dict(os.environ)
    env.update({k.upper(): str(v) for k, v in settings.model_dump().items() if v is not None})
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workflows.worker", "--role", role, "--log-level", "WARNING"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def start(
    client: Client, settings: Settings, export: ExportInput
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        ExportWorkflow.run,
        export,
        id=export.export_id,
        task_queue=settings.temporal_task_queue,
    )


async def server_progress(handle: WorkflowHandle[Any, Any]) -> ProgressView | None:
    """The progress as the API reads it: from the Temporal server alone (memo and pending
    heartbeat), so it answers while every worker is stopped."""
    return await progress_from_server(await handle.describe())


async def wait_for(handle: WorkflowHandle[Any, Any], predicate: Any, within: float = 120) -> Any:
    """Poll the server-side progress until `predicate(progress)` holds (no worker needed)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with contextlib.suppress(Exception):
            progress = await server_progress(handle)
            if progress is not None and predicate(progress):
                return progress
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the export did not reach the expected progress in time")
        await asyncio.sleep(0.2)
