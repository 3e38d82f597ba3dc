"""Running an export through the whole product (API → workflow → parts → S3) and reading back
what it did from the workflow history: each part's cursor, rows and activity time."""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.read_preferences import SecondaryPreferred
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from activities.export_activities import COLUMN_SAMPLE_SIZE
from api.auth import mint_token
from bench.common import TENANT, ProductStack
from connections.s3 import make_s3_client
from domain.activity_io import PartResult
from domain.models import ExportRequest, Owner
from domain.pipeline.export_plan import plan_export
from domain.pipeline.extended_json import cursor_from_json
from domain.pipeline.planning import ChunkPlan
from domain.settings import Settings
from workflows.export_workflow import ExportWorkflow

REPORT_COLUMNS = [
    "certificate",
    "date",
    "business.name",
    "business.address.city",
    "business.address.zip",
    "result",
    "score",
]
"""The demo's 7-column report, which scenarios 1, 4, 5 and 8 export."""


def report_request(collection: str, filename: str) -> dict[str, Any]:
    """The report of every document: a `$project` of its columns (so that mongo-java-server's
    one reply to a query stays under its 48 MB message limit), and the columns requested (as the
    demo's report does, so there is no column sample to read)."""
    return {
        "collection": collection,
        "pipeline": [{"$project": dict.fromkeys(REPORT_COLUMNS, 1)}],
        "columns": [{"path": path} for path in REPORT_COLUMNS],
        "filename": filename,
    }


Document = dict[str, Any]
_EXPORT_NUMBERS = itertools.count(1)


RUN = uuid.uuid4().hex[:6]
"""Part of every user id of this run, so no export of an earlier run counts against a limit."""


def owner(user: str) -> Owner:
    return Owner(user_id=f"{user}-{RUN}", tenant=TENANT)


async def terminate_running(client: Client, task_queue: str) -> int:
    """Terminate the workflows still running on a benchmark task queue (a scenario that failed
    half-way leaves them, and no worker polls the queue once the benchmark ends)."""
    count = 0
    query = f'TaskQueue="{task_queue}" AND ExecutionStatus="Running"'
    async for execution in client.list_workflows(query):
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(execution.id).terminate(reason="benchmark ended")
            count += 1
    return count


def auth_headers(settings: Settings, who: Owner) -> dict[str, str]:
    token = mint_token(settings.api_jwt_secret, who.user_id, who.tenant, timedelta(hours=2))
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class PartInfo:
    number: int
    cursor_in: str | None
    """The cursor the part started after (None for the first part)."""
    rows: int
    bytes: int
    exhausted: bool
    seconds: float
    """Its activity's start to completion, as the history records them."""


@dataclass(frozen=True)
class Activity:
    name: str
    start: float
    end: float


@dataclass
class HistorySummary:
    start: float
    close: float
    activities: list[Activity]
    parts: list[PartInfo]

    @property
    def workflow_seconds(self) -> float:
        return self.close - self.start

    @property
    def activity_seconds(self) -> float:
        """Time covered by at least one activity (the union of their intervals)."""
        covered, reach = 0.0, self.start
        for activity in sorted(self.activities, key=lambda a: a.start):
            begin = max(activity.start, reach)
            if activity.end > begin:
                covered += activity.end - begin
                reach = activity.end
        return covered

    def seconds_in(self, name: str) -> float:
        return sum(a.end - a.start for a in self.activities if a.name == name)


@dataclass
class ExportRun:
    label: str
    engine: str
    export_id: str
    rows: int
    bytes: int
    wall_seconds: float
    """From sending `POST /exports` to the workflow's result reaching the client."""
    worker_cpu_seconds: float | None
    sampled_columns: bool
    history: HistorySummary
    object_key: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        history = self.history
        return {
            "label": self.label,
            "engine": self.engine,
            "export_id": self.export_id,
            "rows": self.rows,
            "bytes": self.bytes,
            "parts": len(history.parts),
            "wall_seconds": self.wall_seconds,
            "workflow_seconds": history.workflow_seconds,
            "activity_seconds": history.activity_seconds,
            "worker_cpu_seconds": self.worker_cpu_seconds,
            "sampled_columns": self.sampled_columns,
            "activities": {
                name: history.seconds_in(name) for name in {a.name for a in history.activities}
            },
            **self.extra,
        }


def _seconds(event: Any) -> float:
    return float(event.event_time.ToNanoseconds()) / 1e9


async def summarize_history(client: Client, workflow_id: str) -> HistorySummary:
    """Activity intervals and part results from the workflow's history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    events = list(history.events)
    names: dict[int, str] = {}
    starts: dict[int, float] = {}
    activities: list[Activity] = []
    parts: list[PartInfo] = []
    cursor: str | None = None
    close = _seconds(events[-1])
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            names[event.event_id] = attrs.activity_type.name
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            starts[event.activity_task_started_event_attributes.scheduled_event_id] = _seconds(
                event
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            name = names[done.scheduled_event_id]
            begin, end = starts[done.scheduled_event_id], _seconds(event)
            activities.append(Activity(name, begin, end))
            if name == "upload_next_part":
                (result,) = await client.data_converter.decode(
                    list(done.result.payloads), [PartResult]
                )
                assert isinstance(result, PartResult)
                parts.append(
                    PartInfo(
                        number=result.part_number,
                        cursor_in=cursor,
                        rows=result.rows,
                        bytes=result.bytes,
                        exhausted=result.exhausted,
                        seconds=end - begin,
                    )
                )
                cursor = result.cursor
    return HistorySummary(_seconds(events[0]), close, activities, parts)


async def start_export(api: httpx.AsyncClient, request: dict[str, Any]) -> str:
    response = await api.post("/exports", json=request)
    if response.status_code != 202:
        raise RuntimeError(f"POST /exports answered {response.status_code}: {response.text}")
    export_id: str = response.json()["export_id"]
    return export_id


async def run_export(
    stack: ProductStack,
    client: Client,
    request: dict[str, Any],
    *,
    user: str,
    label: str,
    delete_object: bool = True,
) -> ExportRun:
    """One export through the API, timed from the POST to the workflow's result.

    Each export gets a user of its own: the API counts every export a user started in the last
    10 s as running (`api.limits`), finished or not, and answers the fourth with 429.
    """
    settings = stack.settings
    worker = stack.require_worker()
    who = owner(f"{user}-{next(_EXPORT_NUMBERS)}")
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers=auth_headers(settings, who), timeout=60
    ) as api:
        cpu_before = worker.cpu_seconds()
        started = time.perf_counter()
        export_id = await start_export(api, request)
        progress = await client.get_workflow_handle_for(ExportWorkflow.run, export_id).result()
        wall = time.perf_counter() - started
        cpu = worker.cpu_seconds() - cpu_before
    if progress.status != "COMPLETED":
        raise RuntimeError(f"export {export_id} ended {progress.status}: {progress.error}")
    history = await summarize_history(client, export_id)
    if delete_object and progress.object_key:
        delete_objects(settings, [progress.object_key])
    return ExportRun(
        label=label,
        engine=stack.engine,
        export_id=export_id,
        rows=progress.rows,
        bytes=progress.bytes,
        wall_seconds=wall,
        worker_cpu_seconds=cpu,
        sampled_columns=request.get("columns") is None,
        history=history,
        object_key=progress.object_key,
    )


def delete_objects(settings: Settings, keys: list[str]) -> None:
    s3 = make_s3_client(settings)
    for key in keys:
        s3.delete_object(Bucket=settings.s3_bucket, Key=key)


def remove_bench_objects(settings: Settings) -> int:
    """Delete every object and abort every upload under the benchmark tenant's prefix (only
    the benchmark exports as that tenant). Returns how many objects went."""
    s3 = make_s3_client(settings)
    prefix = f"{settings.export_prefix}{TENANT}/"
    removed = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.s3_bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=settings.s3_bucket, Key=item["Key"])
            removed += 1
    uploads = s3.list_multipart_uploads(Bucket=settings.s3_bucket, Prefix=prefix)
    for upload in uploads.get("Uploads", []):
        s3.abort_multipart_upload(
            Bucket=settings.s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    return removed


def fetch_object(settings: Settings, key: str) -> bytes:
    s3 = make_s3_client(settings)
    body: bytes = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    return body


# -- the same reads with PyMongo ------------------------------------------------------------


def plan_of(request: dict[str, Any], who: Owner, settings: Settings) -> ChunkPlan:
    return plan_export(ExportRequest.model_validate(request), who, settings)


def source(settings: Settings, name: str) -> tuple[MongoClient[Document], Collection[Document]]:
    """A client and collection configured as the worker's (`connections.mongo`)."""
    client: MongoClient[Document] = MongoClient(
        settings.mongodb_uri, appname="durable-export-bench", tz_aware=True
    )
    collection = client[settings.mongodb_database].get_collection(
        name, read_preference=SecondaryPreferred()
    )
    return client, collection


def read_like_the_product(
    collection: Collection[Document],
    plan: ChunkPlan,
    parts: list[PartInfo],
    *,
    sampled_columns: bool,
    settings: Settings,
) -> int:
    """The reads an export issued, with the same pipelines (`plan.pipeline_for(cursor)`), part
    boundaries, batch size and maxTimeMS; rows are discarded. Returns the rows read."""
    max_time_ms, batch_size = settings.mongodb_max_time_ms, settings.mongodb_batch_size
    total = 0
    if sampled_columns:  # prepare_export: the first rows, to freeze the columns
        with collection.aggregate(
            plan.pipeline_for(None), maxTimeMS=max_time_ms, batchSize=batch_size
        ) as rows:
            for count, _ in enumerate(rows, 1):
                if count == COLUMN_SAMPLE_SIZE:
                    break
    for part in parts:
        cursor = cursor_from_json(part.cursor_in)
        wanted = part.rows if part.exhausted else part.rows + 1  # the product peeks one row
        with collection.aggregate(
            plan.pipeline_for(cursor), maxTimeMS=max_time_ms, batchSize=batch_size
        ) as rows:
            read = 0
            for _ in rows:
                read += 1
                if read == wanted:
                    break
        total += min(read, part.rows)
    return total


def read_unchunked(collection: Collection[Document], plan: ChunkPlan, settings: Settings) -> int:
    """The whole pipeline in one cursor, rows discarded."""
    count = 0
    for _ in collection.aggregate(
        plan.pipeline_for(None),
        maxTimeMS=settings.mongodb_max_time_ms,
        batchSize=settings.mongodb_batch_size,
    ):
        count += 1
    return count


class _FirstBatch(monitoring.CommandListener):
    def __init__(self) -> None:
        self.rows: int | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor") if event.command_name == "aggregate" else None
        if isinstance(cursor, dict) and self.rows is None:
            self.rows = len(cursor.get("firstBatch", []))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def first_reply_rows(settings: Settings, name: str, pipeline: list[dict[str, Any]]) -> int:
    """How many rows the server puts in its first reply to an aggregate asking for batches of
    `mongodb_batch_size` (a server that honours it answers with that many)."""
    listener = _FirstBatch()
    client: MongoClient[Document] = MongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        collection = client[settings.mongodb_database][name]
        with collection.aggregate(
            pipeline,
            maxTimeMS=settings.mongodb_max_time_ms,
            batchSize=settings.mongodb_batch_size,
        ) as rows:
            next(rows, None)
    finally:
        client.close()
    return listener.rows or 0
