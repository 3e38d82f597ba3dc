"""Finding and aborting multipart uploads that no running export owns, and deleting the
temporary objects of parallel exports (`PARTITION_PREFIX`) that no running export owns.

An export's upload is aborted by its own compensation; this catches what slipped through (a
workflow terminated by an operator, a bug). S3's lifecycle rule `AbortIncompleteMultipartUpload`
does the same job in production; the janitor also works where no lifecycle rule exists.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from connections.s3 import make_s3_client
from domain.activity_io import JanitorReport, JanitorRequest
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def export_id_of(key: str, prefix: str) -> str | None:
    """`exports/{tenant}/{export_id}/{filename}` → export_id (None for keys of another shape)."""
    if not key.startswith(prefix):
        return None
    segments = key[len(prefix) :].lstrip("/").split("/")
    return segments[1] if len(segments) == 3 and segments[1] else None


class JanitorActivities:
    def __init__(self, settings: Settings, client: Client, s3: S3Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._s3 = s3 or make_s3_client(settings)

    def _prefixes(self) -> list[str]:
        """The export objects' prefix and the partitions' (both `{prefix}{tenant}/{id}/…`)."""
        return [self._settings.export_prefix, self._settings.partition_prefix]

    def _export_id(self, key: str) -> str | None:
        for prefix in self._prefixes():
            if key.startswith(prefix):
                return export_id_of(key, prefix)
        return None

    def _uploads(self) -> list[dict[str, Any]]:
        return [upload for prefix in self._prefixes() for upload in self._uploads_under(prefix)]

    def _partition_objects(self) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        token: dict[str, str] = {}
        while True:
            page = self._s3.list_objects_v2(
                Bucket=self._settings.s3_bucket,
                Prefix=self._settings.partition_prefix,
                **token,  # type: ignore[arg-type]
            )
            objects += [dict(item) for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return objects
            token = {"ContinuationToken": str(page["NextContinuationToken"])}

    def _uploads_under(self, prefix: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = []
        key_marker, upload_id_marker = "", ""
        while True:
            page = self._s3.list_multipart_uploads(
                Bucket=self._settings.s3_bucket,
                Prefix=prefix,
                KeyMarker=key_marker,
                UploadIdMarker=upload_id_marker,
            )
            uploads += [dict(upload) for upload in page.get("Uploads", [])]
            if not page.get("IsTruncated"):
                return uploads
            key_marker = page["NextKeyMarker"]
            upload_id_marker = page["NextUploadIdMarker"]

    async def _is_running(self, export_id: str) -> bool:
        try:
            described = await self._client.get_workflow_handle(export_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return described.status == WorkflowExecutionStatus.RUNNING

    @activity.defn
    async def abort_orphaned_uploads(self, request: JanitorRequest) -> JanitorReport:
        cutoff = datetime.now(UTC) - timedelta(seconds=request.max_age_seconds)
        uploads = await asyncio.to_thread(self._uploads)
        aborted: list[str] = []
        kept: list[str] = []
        for upload in uploads:
            if upload["Initiated"] > cutoff:
                continue
            export_id = self._export_id(upload["Key"])
            if export_id is not None and await self._is_running(export_id):
                kept.append(upload["Key"])
                continue
            await asyncio.to_thread(
                self._s3.abort_multipart_upload,
                Bucket=self._settings.s3_bucket,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
            activity.logger.info("aborted orphaned upload of %s", upload["Key"])
            aborted.append(upload["Key"])
        deleted: list[str] = []
        for item in await asyncio.to_thread(self._partition_objects):
            if item["LastModified"] > cutoff:
                continue
            export_id = self._export_id(item["Key"])
            if export_id is not None and await self._is_running(export_id):
                kept.append(item["Key"])
                continue
            await asyncio.to_thread(
                self._s3.delete_object, Bucket=self._settings.s3_bucket, Key=item["Key"]
            )
            activity.logger.info("deleted orphaned partition object %s", item["Key"])
            deleted.append(item["Key"])
        return JanitorReport(
            examined=len(uploads), aborted=aborted, kept_running=kept, deleted=deleted
        )
