"""Every export ends, and ends right, when the database, S3 or the owner misbehave.

Each test drives a real export on the local stack (FerretDB, versitygw, Temporal) and injects
its failure for real: an unreachable database, an S3 that answers 500 or whose answer is lost
(through `s3_fault_proxy`), a cancellation at the worst moment, a worker configured differently
from the API that accepted the export. What is asserted is what the owner sees: the status, the
error message, the file, and that no multipart upload is left behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from bson import DatetimeMS, ObjectId
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle

from connections.s3 import make_s3_client
from domain.export_policy import ExportPolicy
from domain.models import Column, ExportInput, ExportRequest, ExportStatus, Notify, ProgressView
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration import test_notifications as notifications
from tests.integration.s3_fault_proxy import FaultProxy, Rule, fault_proxy
from tests.integration.test_export_workflow import documents
from tests.integration.test_notifications import Mailbox, webhook_receiver
from tests.reliability.results import Results
from workflows.export_workflow import ExportWorkflow

pytestmark = [pytest.mark.reliability, pytest.mark.services]

mailbox = notifications.mailbox  # a real SMTP server (aiosmtpd) on a free port

WITHIN = 180.0  # seconds an export gets to end before the test says it never would


def _record(
    results: Results,
    name: str,
    what: str,
    settings: Settings,
    export: ExportInput,
    progress: ProgressView,
    *,
    compare: bool = False,
) -> None:
    """What the owner saw, for RELIABILITY.md's table of failure paths; with `compare`, whether
    the object equals the unchunked reference."""
    identical = None
    if compare:
        key = progress.object_key
        reference = h.reference_bytes(settings, export, None)
        identical = key is not None and h.fetch_object(settings, key) == reference
    results.section("failure_paths")[name] = {
        "what": what,
        "status": progress.status.value,
        "error": progress.error,
        "identical": identical,
        "uploads_left": len(h.uploads_under(settings, _prefix(settings, export))),
    }


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


@pytest.fixture
def proxy(settings: Settings) -> Iterator[FaultProxy]:
    assert settings.s3_endpoint_url is not None
    with fault_proxy(settings.s3_endpoint_url) as running:
        yield running


def _through(settings: Settings, proxy: FaultProxy) -> Settings:
    return settings.model_copy(update={"s3_endpoint_url": proxy.url})


def _prefix(settings: Settings, export: ExportInput) -> str:
    return f"{settings.export_prefix}{export.owner.tenant}/{export.export_id}"


async def _ended(handle: WorkflowHandle[Any, Any]) -> ProgressView:
    """Wait for the export to end (it must, within WITHIN seconds) and return its progress."""
    try:
        await h.wait_for(handle, lambda p: p.status.is_terminal, within=WITHIN)
        await handle.result()
    except WorkflowFailureError:
        pass
    progress: ProgressView = await handle.query(ExportWorkflow.progress)
    return progress


def _policy(settings: Settings, **update: Any) -> ExportPolicy:
    return ExportPolicy.of(settings).model_copy(update=update)


# -- 1. exception chains, 2. bounded retries ---------------------------------------------------


async def test_an_unreachable_database_fails_the_export_after_bounded_attempts(
    settings: Settings, collection: str, results: Results
) -> None:
    """A transient driver error (ServerSelectionTimeoutError) used to become its own cause and
    stall the export in Temporal's failure converter; now it is retried a bounded number of
    times and ends the export FAILED with a message naming the database."""
    h.seed(settings, collection, documents(10))
    unreachable = settings.model_copy(
        update={"mongodb_uri": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"}
    )
    request = ExportRequest(collection=collection, columns=[Column(path="n")])
    export = h.new_export(request, policy=_policy(settings, activity_max_attempts=2))
    async with h.in_process_worker(unreachable) as client:
        progress = await _ended(await h.start(client, unreachable, export))
    _record(
        results,
        "unreachable_database",
        "MongoDB unreachable (ServerSelectionTimeoutError on every attempt), 2 attempts allowed",
        settings,
        export,
        progress,
    )
    assert progress.status == ExportStatus.FAILED
    assert "the database could not be reached" in (progress.error or "")
    assert h.uploads_under(settings, _prefix(settings, export)) == []


async def test_s3_answering_500_to_every_part_fails_after_bounded_attempts(
    settings: Settings, collection: str, proxy: FaultProxy, results: Results
) -> None:
    h.seed(settings, collection, documents(50))
    proxy.add(Rule(lambda r: r.is_upload_part, "status", status=500, code="InternalError"))
    faulty = _through(settings, proxy)
    export = h.new_export(
        ExportRequest(collection=collection, format="jsonl"),
        policy=_policy(settings, activity_max_attempts=3),
    )
    async with h.in_process_worker(faulty) as client:
        progress = await _ended(await h.start(client, faulty, export))
    _record(
        results,
        "permanent_s3_500",
        "S3 answers 500 InternalError to every UploadPart, 3 attempts allowed",
        settings,
        export,
        progress,
    )
    assert progress.status == ExportStatus.FAILED
    assert progress.error is not None
    assert "S3 failed to store part 1: InternalError" in progress.error
    assert h.uploads_under(settings, _prefix(settings, export)) == []


async def test_an_export_past_its_deadline_fails_and_aborts_its_upload(
    settings: Settings, collection: str, proxy: FaultProxy, results: Results
) -> None:
    h.seed(settings, collection, documents(50))
    held = proxy.add(Rule(lambda r: r.is_upload_part, "delay", seconds=8, times=1))
    faulty = _through(settings, proxy)
    export = h.new_export(
        ExportRequest(collection=collection, format="jsonl"),
        policy=_policy(settings, export_deadline_seconds=4),
    )
    async with h.in_process_worker(faulty) as client:
        progress = await _ended(await h.start(client, faulty, export))
    _record(
        results,
        "deadline",
        "EXPORT_DEADLINE_SECONDS=4 while S3 holds part 1 for 8 s",
        settings,
        export,
        progress,
    )
    assert held.hits == 1
    assert progress.status == ExportStatus.FAILED
    assert "did not finish within its deadline of 4 s" in (progress.error or "")
    assert h.uploads_under(settings, _prefix(settings, export)) == []


# -- 3. export what can be exported --------------------------------------------------------------


async def test_dates_outside_python_range_are_exported_as_extended_json(
    settings: Settings, collection: str, results: Results
) -> None:
    """A stored date in year 10000 used to raise InvalidBSON on every attempt, forever."""
    late, early = DatetimeMS(253402300800000), DatetimeMS(-62135596800001)
    h.seed(
        settings,
        collection,
        [
            {"_id": ObjectId(f"{1:024x}"), "d": late},
            {"_id": ObjectId(f"{2:024x}"), "d": early},
        ],
    )
    request = ExportRequest(collection=collection, columns=[Column(path="_id"), Column(path="d")])
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        progress = await _ended(await h.start(client, settings, export))
    _record(
        results,
        "bad_bson_dates",
        "stored dates in years 10000 and 0 (InvalidBSON for default decoding)",
        settings,
        export,
        progress,
    )
    assert progress.status == ExportStatus.COMPLETED, progress.error
    assert progress.object_key is not None
    lines = h.fetch_object(settings, progress.object_key).decode().split("\r\n")
    assert (
        lines[1] == '000000000000000000000001,"{""$date"":{""$numberLong"":""253402300800000""}}"'
    )
    assert (
        lines[2] == '000000000000000000000002,"{""$date"":{""$numberLong"":""-62135596800001""}}"'
    )


# -- 4. timeouts that agree ------------------------------------------------------------------


async def test_activity_timeouts_leave_room_for_the_databases_own_time_out(
    settings: Settings, collection: str
) -> None:
    """Temporal must never time out a query before maxTimeMS does, and every activity
    heartbeats, so a killed worker costs seconds."""
    h.seed(settings, collection, documents(10))
    policy = _policy(settings, mongodb_max_time_ms=90_000)
    export = h.new_export(ExportRequest(collection=collection), policy=policy)
    async with h.in_process_worker(settings) as client:
        handle = await h.start(client, settings, export)
        assert (await _ended(handle)).status == ExportStatus.COMPLETED
        history = await handle.fetch_history()
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    prepare = scheduled["prepare_export"]
    assert prepare.start_to_close_timeout.ToTimedelta() == timedelta(seconds=150)
    part = scheduled["upload_next_part"]
    assert part.start_to_close_timeout.ToTimedelta() > timedelta(milliseconds=90_000)
    for name in ("prepare_export", "start_upload", "upload_next_part", "verify_and_complete"):
        assert scheduled[name].heartbeat_timeout.ToTimedelta() == timedelta(seconds=10), name
        assert 0 < scheduled[name].retry_policy.maximum_attempts <= policy.activity_max_attempts


# -- 5. cancellation races -------------------------------------------------------------------


async def test_cancel_while_the_upload_starts_leaves_no_upload(
    settings: Settings, collection: str, proxy: FaultProxy, results: Results
) -> None:
    h.seed(settings, collection, documents(50))
    held = proxy.add(Rule(lambda r: r.is_create_upload, "delay", seconds=3, times=1))
    faulty = _through(settings, proxy)
    export = h.new_export(ExportRequest(collection=collection, format="jsonl"))
    async with h.in_process_worker(faulty) as client:
        handle = await h.start(client, faulty, export)
        await proxy.wait_for_hit(held)
        await handle.cancel()
        progress = await _ended(handle)
    _record(
        results,
        "cancel_during_start",
        "cancelled while CreateMultipartUpload is held for 3 s",
        settings,
        export,
        progress,
    )
    assert progress.status == ExportStatus.CANCELLED
    assert h.uploads_under(settings, _prefix(settings, export)) == []


async def test_cancel_while_completing_finishes_the_file_and_leaves_no_upload(
    settings: Settings, collection: str, proxy: FaultProxy, results: Results
) -> None:
    """Once every row is written the file is finished rather than half removed (the API
    answers such a cancel with 409 `completing`)."""
    h.seed(settings, collection, documents(50))
    held = proxy.add(Rule(lambda r: r.is_complete_upload, "delay", seconds=3, times=1))
    faulty = _through(settings, proxy)
    export = h.new_export(ExportRequest(collection=collection, format="jsonl"))
    async with h.in_process_worker(faulty) as client:
        handle = await h.start(client, faulty, export)
        await proxy.wait_for_hit(held)
        await handle.cancel()
        progress = await _ended(handle)
    _record(
        results,
        "cancel_during_completion",
        "cancelled while CompleteMultipartUpload is held for 3 s",
        settings,
        export,
        progress,
        compare=True,
    )
    assert progress.status == ExportStatus.COMPLETED
    assert progress.object_key is not None
    assert h.fetch_object(settings, progress.object_key) == h.reference_bytes(
        settings, export, None
    )
    assert h.uploads_under(settings, _prefix(settings, export)) == []


# -- 6. a lost answer is not a failure -------------------------------------------------------


async def test_a_lost_complete_answer_and_a_failing_head_still_complete(
    settings: Settings, collection: str, proxy: FaultProxy, results: Results
) -> None:
    """S3 completes the object but the answer is lost; the retry finds NoSuchUpload, and the
    HEAD that checks for the object fails once with 503: neither may fail the export."""
    h.seed(settings, collection, documents(50))
    # Every answer to CompleteMultipartUpload is lost, so the activity's attempt fails and its
    # retry finds the upload gone.
    lost = proxy.add(Rule(lambda r: r.is_complete_upload, "drop_answer"))
    head = proxy.add(
        Rule(lambda r: r.is_head_object, "status", status=503, code="SlowDown", times=1)
    )
    faulty = _through(settings, proxy)
    export = h.new_export(ExportRequest(collection=collection, format="jsonl"))
    async with h.in_process_worker(faulty) as client:
        progress = await _ended(await h.start(client, faulty, export))
    _record(
        results,
        "lost_complete_answer",
        "every CompleteMultipartUpload answer lost, the HEAD that checks for the object answers 503 once",
        settings,
        export,
        progress,
        compare=True,
    )
    assert lost.hits >= 1
    assert head.hits == 1
    assert progress.status == ExportStatus.COMPLETED, progress.error
    assert progress.object_key is not None
    assert h.fetch_object(settings, progress.object_key) == h.reference_bytes(
        settings, export, None
    )
    assert h.uploads_under(settings, _prefix(settings, export)) == []


# -- 9. configuration drift ------------------------------------------------------------------


async def test_a_worker_configured_differently_runs_the_export_as_accepted(
    settings: Settings, collection: str, results: Results
) -> None:
    """The API accepted the export under one policy; a worker whose TENANT_FIELD and
    EXPORT_COLLECTIONS have since changed still reads it exactly as accepted."""
    h.seed(settings, collection, documents(300))
    export = h.new_export(ExportRequest(collection=collection, format="jsonl"))
    drifted = settings.model_copy(
        update={"tenant_field": "someOtherField", "export_collections": "not_this_one"}
    )
    async with h.in_process_worker(drifted) as client:
        progress = await _ended(await h.start(client, drifted, export))
    _record(
        results,
        "configuration_drift",
        "the worker's TENANT_FIELD and EXPORT_COLLECTIONS differ from the API's when the export was accepted",
        settings,
        export,
        progress,
        compare=True,
    )
    assert progress.status == ExportStatus.COMPLETED, progress.error
    assert progress.rows == 300
    assert progress.object_key is not None
    body = h.fetch_object(settings, progress.object_key)
    assert body == h.reference_bytes(settings, export, None)
    assert [json.loads(line)["n"] for line in body.splitlines()] == list(range(300))


# -- 7. late writers -------------------------------------------------------------------------


async def test_a_part_overwritten_by_a_late_attempt_is_written_again(
    settings: Settings, collection: str, proxy: FaultProxy, results: Results
) -> None:
    """An attempt that outlived its timeout uploads different bytes for part 1 after the
    workflow accepted part 1 and moved on (as a lagging secondary could make it). The fence
    finds the foreign ETag at completion and writes part 1 again from its recorded cursor."""
    h.seed(settings, collection, documents(9_000, pad=1500))  # about three 5 MiB parts
    held = proxy.add(
        Rule(lambda r: r.is_upload_part and r.query["partNumber"] == ["2"], "delay", seconds=4)
    )
    faulty = _through(settings, proxy).model_copy(update={"part_size_bytes": 5 * 1024 * 1024})
    export = h.new_export(ExportRequest(collection=collection, format="jsonl"))
    async with h.in_process_worker(faulty) as client:
        handle = await h.start(client, faulty, export)
        await proxy.wait_for_hit(held)  # part 1 is accepted; part 2 is on its way
        [upload] = h.uploads_under(settings, _prefix(settings, export))
        late_bytes = b'{"late": "writer"}\n' * (300 * 1024)  # 5.6 MiB, not the real part 1
        make_s3_client(settings).upload_part(
            Bucket=settings.s3_bucket,
            Key=upload["Key"],
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=late_bytes,
        )
        progress = await _ended(handle)
    _record(
        results,
        "late_writer",
        "a late attempt overwrites part 1 with other bytes after the workflow accepted it",
        settings,
        export,
        progress,
        compare=True,
    )
    assert progress.status == ExportStatus.COMPLETED, progress.error
    assert progress.parts >= 3
    assert progress.object_key is not None
    body = h.fetch_object(settings, progress.object_key)
    assert b'"late"' not in body
    assert body == h.reference_bytes(settings, export, None)


# -- 8. one activity per notification channel ------------------------------------------------


async def test_a_failing_webhook_neither_blocks_nor_repeats_the_other_channels(
    settings: Settings, collection: str, mailbox: Mailbox, results: Results
) -> None:
    """The owner's webhook answers 500 every time; the operator's webhook and the e-mail are
    each delivered exactly once, and the export still ends COMPLETED."""
    h.seed(settings, collection, documents(3))
    with webhook_receiver(*[500] * 50) as broken, webhook_receiver() as operator:
        run_settings = settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "notify_webhook_url": operator.url,
                "webhook_allowed_hosts": f"{broken.host_port},{operator.host_port}",
            }
        )
        request = ExportRequest(
            collection=collection,
            notify=Notify(webhook_url=broken.url, email="owner@example.com"),
        )
        export = h.new_export(request)
        async with h.in_process_worker(run_settings) as client:
            progress = await _ended(await h.start(client, run_settings, export))
        [message] = mailbox.wait_for(1)
        [delivered] = operator.wait_for_success()
    _record(
        results,
        "failing_webhook_beside_email",
        "the owner's webhook answers 500 every time, beside a working e-mail and operator webhook",
        settings,
        export,
        progress,
    )
    results.section("failure_paths")["failing_webhook_beside_email"]["deliveries"] = {
        "email": len(mailbox.envelopes),
        "operator_webhook": len(operator.deliveries),
        "failing_webhook_attempts": len(broken.deliveries),
    }
    assert progress.status == ExportStatus.COMPLETED
    assert message["To"] == "owner@example.com"
    assert delivered.answered == 200
    assert len(mailbox.envelopes) == 1
    assert len(operator.deliveries) == 1
    assert len(broken.deliveries) == 5  # its own bounded retries, then given up
    assert all(d.answered == 500 for d in broken.deliveries)
