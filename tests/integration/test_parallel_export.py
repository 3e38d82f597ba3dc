"""Parallel exports (issue 16) on the real stack: P partitions, each a child workflow writing its
own temporary object, composed into one object that is the serial export's bytes.

Every case compares with the serial export of the same request (`parallelism: 1`), run through
the same workflow. Plain CSV and JSON Lines are compared byte for byte; gzip is compared byte
for byte too when the serial export is one member, else decompressed (see `same_file`).
The key-only scan and `$unwind` with an index run on mongo-java-server (FerretDB 1.24 has no
`includeArrayIndex`); one source-keyset case runs on FerretDB.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.partition_activities import (
    PLANNING_ATTEMPTS,
    ComposeResult,
    PartitionActivities,
    partition_prefix,
)
from connections.s3 import make_s3_client
from connections.temporal import connect
from domain.export_policy import ExportPolicy
from domain.models import Compression, ExportFormat, ExportRequest, ExportStatus, ProgressView
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents

MIB = 1024 * 1024
JAVA_URI = os.environ.get("SECOND_MONGODB_URI", "mongodb://127.0.0.1:27018/")

PIPELINES: dict[str, list[dict[str, Any]]] = {
    # 3,000 documents; n < 2,500 leaves the last partitions (by _id) short or empty.
    "source_keyset": [{"$match": {"n": {"$lt": 2500}}}, {"$project": {"tags": 0}}],
    # Arrays of 0 to 3 elements: uneven partitions, documents without rows.
    "unwind_keyset": [{"$unwind": "$items"}],
    # score: floats, null and missing, many ties (broken on _id), descending.
    "sort_keyset": [{"$sort": {"score": -1}}],
}
FORMATS: dict[str, tuple[ExportFormat, Compression]] = {
    "csv": ("csv", "none"),
    "csv-gzip": ("csv", "gzip"),
    "jsonl": ("jsonl", "none"),
}


def with_items(count: int, **options: Any) -> Iterator[dict[str, Any]]:
    for doc in documents(count, **options):
        yield {**doc, "items": [f"{doc['n']}-{i}" for i in range(doc["n"] % 4)]}


@pytest.fixture(scope="module")
def java(settings: Settings) -> Iterator[Settings]:
    """mongo-java-server, with one seeded collection shared by the module's cases."""
    local = settings.model_copy(
        update={
            "mongodb_uri": JAVA_URI,
            "temporal_task_queue": f"{settings.temporal_task_queue}-par",
        }
    )
    h.drop(local, "parallel_matrix")
    h.seed(local, "parallel_matrix", with_items(3000))
    yield local
    h.drop(local, "parallel_matrix")


def same_file(serial: bytes, parallel: bytes, compression: Compression) -> None:
    """Byte identity; for gzip the members may be cut elsewhere (one per part, and parts end at
    partition ends), so the decompressed bytes are compared, and the member count checked."""
    if compression == "gzip":
        assert gzip.decompress(parallel) == gzip.decompress(serial)
        return
    assert parallel == serial


async def run(
    client: Client, settings: Settings, request: ExportRequest
) -> tuple[ProgressView, bytes, str]:
    export = h.new_export(request)
    result: ProgressView = await client.execute_workflow(
        "ExportWorkflow",
        export,
        id=export.export_id,
        task_queue=settings.temporal_task_queue,
        result_type=ProgressView,
    )
    assert result.status == ExportStatus.COMPLETED
    assert result.object_key is not None
    body = h.fetch_object(settings, result.object_key)
    assert h.uploads_under(settings, result.object_key) == []
    prefix = partition_prefix(settings, export)
    assert h.uploads_under(settings, prefix) == []
    assert objects_under(settings, prefix) == []
    return result, body, export.export_id


async def composition_of(client: Client, export_id: str) -> ComposeResult:
    """The `compose_partitions` result recorded in the parent's history."""
    history = await client.get_workflow_handle(export_id).fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "compose_partitions"
    }
    for event in history.events:
        completed = event.activity_task_completed_event_attributes
        if completed.scheduled_event_id in scheduled:
            (payload,) = completed.result.payloads
            return ComposeResult.model_validate_json(payload.data)
    raise AssertionError("no compose_partitions result in the history")


def objects_under(settings: Settings, prefix: str) -> list[str]:
    listed = make_s3_client(settings).list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix)
    return [str(item["Key"]) for item in listed.get("Contents", [])]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("strategy", list(PIPELINES))
async def test_parallel_exports_equal_the_serial_export(
    java: Settings, strategy: str, fmt: str
) -> None:
    file_format, compression = FORMATS[fmt]

    def request(parallelism: int | str) -> ExportRequest:
        return ExportRequest(
            collection="parallel_matrix",
            pipeline=PIPELINES[strategy],
            format=file_format,
            compression=compression,
            parallelism=parallelism,
        )

    async with h.in_process_worker(java) as client:
        serial, serial_body, _ = await run(client, java, request(1))
        results = [await run(client, java, request(p)) for p in ("auto", 2, 3, 7)]
    assert serial.partitioning is None
    assert serial.rows > 0
    for parallelism, (result, body, _) in zip(("auto", 2, 3, 7), results, strict=True):
        assert result.partitioning is not None
        if parallelism == "auto":
            assert result.partitioning.startswith("serial: ")
        else:
            assert result.partitioning.startswith(f"{parallelism} partitions"), result.partitioning
        assert result.rows == serial.rows
        assert result.bytes == len(body)
        same_file(serial_body, body, compression)


async def test_partitions_over_5_mib_are_copied_by_s3(java: Settings, unique_name: str) -> None:
    """12,000 documents of about 1.7 KB in JSON Lines, 9,000 exported, in 3 partitions of 4,000
    documents: two of about 6.6 MiB and a last one of 1.7 MiB (the last part may be small), each
    copied by S3 (UploadPartCopy). gzip halves the sizes: the partitions under 5 MiB are read
    back and joined into parts. The serial export of the same request is the reference."""
    h.seed(java, unique_name, documents(12_000, pad=1500))
    try:
        async with h.in_process_worker(java) as client:
            for compression in ("none", "gzip"):

                def request(
                    parallelism: int, compression: Compression = compression
                ) -> ExportRequest:
                    return ExportRequest(
                        collection=unique_name,
                        pipeline=[{"$match": {"n": {"$lt": 9000}}}],
                        format="jsonl",
                        compression=compression,
                        parallelism=parallelism,
                    )

                serial, serial_body, _ = await run(client, java, request(1))
                result, body, export_id = await run(client, java, request(3))
                assert result.partitioning is not None
                assert result.partitioning.startswith("3 partitions")
                assert result.rows == serial.rows == 9000
                same_file(serial_body, body, compression)
                composed = await composition_of(client, export_id)
                assert composed.bytes == len(body)
                if compression == "none":
                    assert (composed.parts, composed.copied) == (3, 3), composed
                else:
                    assert composed.copied < composed.parts, composed
    finally:
        h.drop(java, unique_name)


async def test_a_parallel_export_on_ferretdb(settings: Settings, unique_name: str) -> None:
    """The key-only scan and the bounded partitions on the other engine (source keyset)."""
    h.seed(settings, unique_name, documents(1200))
    try:
        async with h.in_process_worker(settings) as client:
            base = ExportRequest(
                collection=unique_name, pipeline=[{"$match": {"n": {"$gte": 100}}}]
            )
            _, serial_body, _ = await run(
                client, settings, base.model_copy(update={"parallelism": 1})
            )
            result, body, _ = await run(
                client, settings, base.model_copy(update={"parallelism": 3})
            )
            assert result.partitioning is not None
            assert result.partitioning.startswith("3 partitions")
            assert body == serial_body
            sorted_request = base.model_copy(
                update={"pipeline": [{"$sort": {"name": 1}}], "parallelism": 1}
            )
            _serial, serial_body, _ = await run(client, settings, sorted_request)
            result, body, _ = await run(
                client, settings, sorted_request.model_copy(update={"parallelism": 2})
            )
            assert body == serial_body
    finally:
        h.drop(settings, unique_name)


async def test_cancelling_a_parallel_export_leaves_no_upload_or_object(
    java: Settings, unique_name: str
) -> None:
    h.seed(java, unique_name, documents(12_000, pad=1500))
    local = java.model_copy(update={"part_size_bytes": 5 * MIB})
    request = ExportRequest(collection=unique_name, format="jsonl", parallelism=3)
    export = h.new_export(request)
    try:
        async with h.in_process_worker(local) as client:
            handle = await h.start(client, local, export)
            await h.wait_for(handle, lambda p: p.parts >= 1)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            progress = await h.server_progress(handle)
        assert progress is not None
        assert progress.status == ExportStatus.CANCELLED
        final = f"{local.export_prefix}{export.owner.tenant}/{export.export_id}"
        prefix = partition_prefix(local, export)
        assert h.uploads_under(local, final) == []
        assert h.uploads_under(local, prefix) == []
        assert objects_under(local, final) == []
        assert objects_under(local, prefix) == []
    finally:
        h.drop(java, unique_name)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["activities", "workflows"])
async def test_sigkill_of_a_worker_mid_parallel_export_gives_the_same_object(
    java: Settings, unique_name: str, tmp_path: Path, role: h.WorkerRole
) -> None:
    """Workers as separate processes (`--role workflows` and `--role activities`); the chosen
    kind is SIGKILLed once the partitions have written a part, then started again."""
    h.seed(java, unique_name, documents(14_000, pad=1500))  # about 21 MiB of JSON Lines
    local = java.model_copy(
        update={"part_size_bytes": 5 * MIB, "temporal_task_queue": f"kill-{unique_name}"}
    )
    request = ExportRequest(collection=unique_name, format="jsonl", parallelism=3)
    export = h.new_export(request)
    log = tmp_path / "worker.log"
    try:
        client = await connect(local)
        handle = await h.start(client, local, export)
        other: h.WorkerRole = "workflows" if role == "activities" else "activities"
        with h.worker_process(local, log, other):
            with h.worker_process(local, log, role) as victim:
                await h.wait_for(handle, lambda p: p.parts >= 1, within=180)
                victim.kill()  # SIGKILL: the parts and workflow tasks in flight are lost
            with h.worker_process(local, log, role):
                result = await handle.result()
        assert result.status == ExportStatus.COMPLETED
        assert result.partitioning is not None
        assert result.partitioning.startswith("3 partitions")
        assert result.object_key is not None
        body = h.fetch_object(local, result.object_key)
        assert body == h.reference_bytes(local, export, None)
        assert result.rows == 14_000 == body.count(b"\n")
        assert h.uploads_under(local, result.object_key) == []
        assert h.uploads_under(local, partition_prefix(local, export)) == []
        assert objects_under(local, partition_prefix(local, export)) == []
    finally:
        h.drop(java, unique_name)


async def test_a_failed_partition_fails_the_export_and_leaves_nothing(java: Settings) -> None:
    """A partition over the row quota fails; the parent stops the other partitions, aborts
    every upload, deletes every temporary object and reports the partition's error."""
    policy = ExportPolicy.of(java).model_copy(update={"export_max_rows": 500})
    request = ExportRequest(collection="parallel_matrix", format="jsonl", parallelism=3)
    export = h.new_export(request, policy=policy)
    async with h.in_process_worker(java) as client:
        handle = await h.start(client, java, export)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await h.server_progress(handle)
    assert progress is not None
    assert progress.status == ExportStatus.FAILED
    assert progress.error is not None
    assert "EXPORT_MAX_ROWS" in progress.error
    final = f"{java.export_prefix}{export.owner.tenant}/{export.export_id}"
    prefix = partition_prefix(java, export)
    assert h.uploads_under(java, final) == []
    assert h.uploads_under(java, prefix) == []
    assert objects_under(java, final) == []
    assert objects_under(java, prefix) == []


@pytest.mark.parametrize(
    ("strategy", "partition_rows", "decision"),
    [
        # 3,000 documents: the collection's own count settles it, nothing is counted.
        ("source_keyset", 5_000, "serial: the collection holds 3,000 documents, no more than"),
        ("unwind_keyset", 5_000, "serial: the collection holds 3,000 documents, no more than"),
        # More documents than one partition's rows: the keys are counted and cut.
        ("source_keyset", 1_000, "3 partitions of about 1000 keys each"),
        # Sorted rows may outnumber the documents: always counted.
        ("sort_keyset", 5_000, "serial: 3,000 keys make one partition"),
    ],
)
def test_auto_counts_keys_only_when_the_collection_may_hold_more_than_one_partition(
    java: Settings, strategy: str, partition_rows: int, decision: str
) -> None:
    request = ExportRequest(collection="parallel_matrix", pipeline=PIPELINES[strategy])
    policy = ExportPolicy.of(java).model_copy(update={"export_partition_rows": partition_rows})
    export = h.new_export(request, policy=policy)
    planned = ActivityEnvironment().run(PartitionActivities(java).plan_partitions, export)
    assert planned.decision.startswith(decision), planned.decision


def test_keys_that_cannot_be_counted_leave_the_export_serial_after_bounded_attempts(
    settings: Settings,
) -> None:
    """Nothing listens on the database's port: the first attempts fail (retryable), the
    third settles on a serial export and says why."""
    unreachable = settings.model_copy(
        update={"mongodb_uri": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"}
    )
    request = ExportRequest(
        collection="parallel_matrix", pipeline=PIPELINES["source_keyset"], parallelism=2
    )
    export = h.new_export(request)
    environment = ActivityEnvironment()
    plan = PartitionActivities(unreachable).plan_partitions
    with pytest.raises(ApplicationError) as raised:
        environment.run(plan, export)
    assert raised.value.type == errors.DATABASE_UNAVAILABLE
    assert not raised.value.non_retryable
    environment.info = dataclasses.replace(environment.info, attempt=PLANNING_ATTEMPTS)
    planned = environment.run(plan, export)
    assert planned.bounds == []
    assert planned.decision.startswith(
        f"serial: the keys could not be counted in {PLANNING_ATTEMPTS} attempts (the database "
        "could not be reached"
    ), planned.decision
