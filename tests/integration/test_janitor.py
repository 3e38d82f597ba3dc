"""The janitor aborts an orphaned upload and leaves a running export's upload alone."""

from __future__ import annotations

import uuid

from activities.janitor_activities import export_id_of
from connections.s3 import make_s3_client
from connections.temporal import connect
from domain.activity_io import JanitorRequest
from domain.models import ExportRequest
from domain.settings import Settings
from tests.integration import export_harness as h
from workflows.janitor_workflow import JanitorWorkflow


def test_export_id_is_read_from_the_object_key() -> None:
    assert export_id_of("exports/acme/exp-1/report.csv", "exports/") == "exp-1"
    assert export_id_of("exports/acme/report.csv", "exports/") is None
    assert export_id_of("elsewhere/acme/exp-1/report.csv", "exports/") is None


async def test_the_janitor_aborts_orphans_and_keeps_running_exports(
    settings: Settings, unique_name: str
) -> None:
    local = settings.model_copy(update={"export_prefix": f"janitor-{unique_name}/"})
    s3 = make_s3_client(local)
    client = await connect(local)

    running = h.new_export(ExportRequest(collection="nothing"))
    # Running, because no worker polls this task queue: its upload must survive the janitor.
    handle = await client.start_workflow(
        "ExportWorkflow", running, id=running.export_id, task_queue=f"idle-{unique_name}"
    )
    running_key = f"{local.export_prefix}tenant-a/{running.export_id}/r.csv"
    orphan_key = f"{local.export_prefix}tenant-a/exp-gone-{uuid.uuid4().hex}/o.csv"
    odd_key = f"{local.export_prefix}stray.csv"  # not an export's key shape: orphaned too
    uploads = {
        key: s3.create_multipart_upload(Bucket=local.s3_bucket, Key=key)["UploadId"]
        for key in (running_key, orphan_key, odd_key)
    }
    try:
        async with h.in_process_worker(local, client):
            report = await client.execute_workflow(
                JanitorWorkflow.run,
                JanitorRequest(max_age_seconds=0),
                id=f"janitor-{unique_name}",
                task_queue=local.temporal_task_queue,
            )
        assert sorted(report.aborted) == sorted([orphan_key, odd_key])
        assert report.kept_running == [running_key]
        left = h.uploads_under(local, local.export_prefix)
        assert [(u["Key"], u["UploadId"]) for u in left] == [(running_key, uploads[running_key])]
    finally:
        await handle.terminate("test over")
        s3.abort_multipart_upload(
            Bucket=local.s3_bucket, Key=running_key, UploadId=uploads[running_key]
        )


async def test_the_janitor_removes_orphaned_partition_objects_and_uploads(
    settings: Settings, unique_name: str
) -> None:
    """Parallel exports' temporary objects (`PARTITION_PREFIX`): a terminated export's are
    deleted (objects) or aborted (uploads); a running export's are kept."""
    local = settings.model_copy(
        update={
            "export_prefix": f"janitor-{unique_name}/",
            "partition_prefix": f"janitor-parts-{unique_name}/",
        }
    )
    s3 = make_s3_client(local)
    client = await connect(local)
    running = h.new_export(ExportRequest(collection="nothing"))
    handle = await client.start_workflow(
        "ExportWorkflow", running, id=running.export_id, task_queue=f"idle-{unique_name}"
    )
    kept_key = f"{local.partition_prefix}tenant-a/{running.export_id}/00001"
    orphan_key = f"{local.partition_prefix}tenant-a/exp-gone-{uuid.uuid4().hex}/00000"
    orphan_upload_key = orphan_key.replace("00000", "00001")
    for key in (kept_key, orphan_key):
        s3.put_object(Bucket=local.s3_bucket, Key=key, Body=b"rows")
    s3.create_multipart_upload(Bucket=local.s3_bucket, Key=orphan_upload_key)
    try:
        async with h.in_process_worker(local, client):
            report = await client.execute_workflow(
                JanitorWorkflow.run,
                JanitorRequest(max_age_seconds=0),
                id=f"janitor-{unique_name}",
                task_queue=local.temporal_task_queue,
            )
        assert report.deleted == [orphan_key]
        assert report.aborted == [orphan_upload_key]
        assert kept_key in report.kept_running
        listed = s3.list_objects_v2(Bucket=local.s3_bucket, Prefix=local.partition_prefix)
        assert [item["Key"] for item in listed.get("Contents", [])] == [kept_key]
        assert h.uploads_under(local, local.partition_prefix) == []
    finally:
        await handle.terminate("test over")
        s3.delete_object(Bucket=local.s3_bucket, Key=kept_key)
