"""The export's side effects as Temporal activities: plan, start, produce parts, complete, abort.

Each is idempotent under retry. A part is produced by one call from a known cursor, so a retried
call regenerates the same bytes for the same part number and the re-upload replaces it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError
from pymongo.errors import PyMongoError
from temporalio import activity

from activities import errors
from activities.chunk_reader import read_rows
from activities.heartbeat import heartbeating
from activities.mongo_source import source_collection
from activities.s3_client import make_s3_client
from domain import objects
from domain.activity_io import (
    AbortRequest,
    CompleteRequest,
    PartRequest,
    PartResult,
    PreparedExport,
    UploadTarget,
)
from domain.chunk_planning import ChunkPlan
from domain.encoding import EncodingSpec, freeze_columns, needs_frozen_columns, new_part_encoder
from domain.export_plan import ExportRefused, plan_export
from domain.extended_json import cursor_from_json, cursor_to_json
from domain.formats.xlsx_encoder import columns_refusal
from domain.keyset import CursorError
from domain.models import ExportInput
from domain.part_sizing import MAX_PART_SIZE, target_part_size
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COLUMN_SAMPLE_SIZE = 100


def build_plan(export: ExportInput, settings: Settings) -> ChunkPlan:
    """Validate and plan the export for its owner; a refusal is final (not retried)."""
    try:
        return plan_export(export.request, export.owner, settings)
    except ExportRefused as exc:
        raise errors.invalid_pipeline(str(exc)) from exc


class ExportActivities:
    """Activities bound to one worker's settings and clients (boto3 clients are thread-safe)."""

    def __init__(self, settings: Settings, s3: S3Client | None = None) -> None:
        self._settings = settings
        self._s3 = s3 or make_s3_client(settings)

    # -- reading -------------------------------------------------------------------------------

    def _rows(
        self, export: ExportInput, plan: ChunkPlan, cursor: str | None, *, rows_before: int = 0
    ) -> Generator[tuple[dict[str, Any], tuple[Any, ...]], None, None]:
        """Rows after `cursor` (hidden fields stripped) with their cursors, up to the row limit."""
        collection = source_collection(self._settings, export.request.collection)
        try:
            yield from read_rows(
                collection,
                plan,
                cursor_from_json(cursor),
                max_time_ms=self._settings.mongodb_max_time_ms,
                batch_size=self._settings.mongodb_batch_size,
                rows_before=rows_before,
            )
        except PyMongoError as exc:
            raise errors.classify_mongo(
                exc, max_time_ms=self._settings.mongodb_max_time_ms
            ) from exc
        except CursorError as exc:
            raise errors.invalid_pipeline(f"the export cannot resume from its rows: {exc}") from exc

    @activity.defn
    def prepare_export(self, export: ExportInput) -> PreparedExport:
        """Validate and plan; freeze the CSV columns from the first rows when none were asked for."""
        plan = build_plan(export, self._settings)
        columns = export.request.columns
        if needs_frozen_columns(export.request):
            with contextlib.closing(self._rows(export, plan, None)) as rows:
                sample = [row for row, _ in itertools.islice(rows, COLUMN_SAMPLE_SIZE)]
            columns = freeze_columns(sample)
        if export.request.format == "xlsx" and (refusal := columns_refusal(len(columns or []))):
            raise errors.invalid_pipeline(refusal)
        filename = objects.download_filename(export.request, export.export_id)
        key = objects.object_key(
            self._settings.export_prefix, export.owner.tenant, export.export_id, filename
        )
        return PreparedExport(
            strategy=plan.strategy,
            explanation=plan.explanation,
            columns=columns,
            object_key=key,
            filename=filename,
        )

    # -- writing -------------------------------------------------------------------------------

    @activity.defn
    def start_upload(self, target: UploadTarget) -> str:
        """Create the multipart upload, or find the one an earlier attempt of this call created.

        When a CreateMultipartUpload answer is lost on the way back, boto3 retries the call and
        S3 opens a second upload for the key; so after creating, the key's oldest upload is kept
        and any other is aborted. Every attempt (concurrent ones too) settles on the same one.
        """
        bucket = self._settings.s3_bucket

        def uploads_of_key() -> list[str]:
            listed = self._s3.list_multipart_uploads(Bucket=bucket, Prefix=target.object_key)
            return [
                str(upload_id)
                for _, upload_id in sorted(
                    (upload["Initiated"], upload["UploadId"])
                    for upload in listed.get("Uploads", [])
                    if upload.get("Key") == target.object_key
                )
            ]

        try:
            uploads = uploads_of_key()
            if not uploads:
                created = self._s3.create_multipart_upload(
                    Bucket=bucket,
                    Key=target.object_key,
                    ContentType=objects.content_type(target.export.request),
                    ContentDisposition=objects.content_disposition(target.filename),
                    # S3 metadata must be ASCII: owner and tenant are percent-encoded.
                    Metadata={
                        "export-id": quote(target.export.export_id, safe=""),
                        "owner": quote(target.export.owner.user_id, safe=""),
                        "tenant": quote(target.export.owner.tenant, safe=""),
                    },
                )
                uploads = uploads_of_key() or [str(created["UploadId"])]
            keep, *duplicates = uploads
            for upload_id in duplicates:
                try:
                    self._s3.abort_multipart_upload(
                        Bucket=bucket, Key=target.object_key, UploadId=upload_id
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise
        except ClientError as exc:
            raise errors.classify_s3(exc, action="start the upload") from exc
        return keep

    @activity.defn
    def upload_next_part(self, request: PartRequest) -> PartResult:
        """Read rows after the cursor until the part is full or the source ends; upload the part.

        Memory stays bounded by one part: rows are encoded as they stream in.
        """
        export = request.export
        plan = build_plan(export, self._settings)
        target = target_part_size(
            request.bytes_so_far, request.part_number - 1, base=self._settings.part_size_bytes
        )
        encoder = new_part_encoder(
            EncodingSpec.of(export.request, hidden_fields=plan.hidden_fields),
            request.columns,
            first_part=request.part_number == 1,
            carry=request.format_state,
            offset=request.bytes_so_far,
        )
        rows, last_cursor, exhausted = 0, None, True
        stream = self._rows(export, plan, request.cursor, rows_before=request.rows_so_far)
        with heartbeating(lambda: (request.part_number, rows)):
            try:
                for row, row_cursor in stream:
                    encoder.write(row)
                    rows += 1
                    last_cursor = row_cursor  # serialised once, below: not per row
                    if encoder.size >= target:
                        # Full. Peek: is there a row (within the row limit) for a later part?
                        exhausted = next(stream, None) is None
                        break
            finally:
                stream.close()
        body = encoder.finish(last=exhausted)
        cursor = request.cursor if last_cursor is None else cursor_to_json(last_cursor)
        if len(body) > MAX_PART_SIZE:
            raise errors.storage_refused(
                f"part {request.part_number} came to {len(body)} bytes, over S3's limit of "
                f"{MAX_PART_SIZE}; S3 cannot store a part this large"
            )
        etag = self._upload_part(request, body)
        return PartResult(
            part_number=request.part_number,
            etag=etag,
            cursor=cursor,
            rows=rows,
            bytes=len(body),
            exhausted=exhausted,
            format_state=encoder.carry,
            warnings=dict(encoder.warnings),
        )

    def _upload_part(self, request: PartRequest, body: bytes) -> str:
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        try:
            response = self._s3.upload_part(
                Bucket=self._settings.s3_bucket,
                Key=request.object_key,
                UploadId=request.upload_id,
                PartNumber=request.part_number,
                Body=body,
                ContentMD5=md5,
            )
        except ClientError as exc:
            raise errors.classify_s3(exc, action=f"store part {request.part_number}") from exc
        return str(response["ETag"])

    def _list_parts(self, key: str, upload_id: str) -> list[Mapping[str, Any]]:
        parts: list[Mapping[str, Any]] = []
        marker = 0
        while True:
            page = self._s3.list_parts(
                Bucket=self._settings.s3_bucket,
                Key=key,
                UploadId=upload_id,
                PartNumberMarker=marker,
            )
            parts += page.get("Parts", [])
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])

    @activity.defn
    def complete_upload(self, request: CompleteRequest) -> None:
        """Complete with the parts S3 holds (ListParts, paged): the durable state keeps no ETags."""
        bucket = self._settings.s3_bucket
        try:
            listed = self._list_parts(request.object_key, request.upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload" and self._object_exists(
                request.object_key
            ):
                return  # an earlier attempt completed it
            raise errors.classify_s3(exc, action="list the uploaded parts") from exc
        newest: dict[int, Mapping[str, Any]] = {}
        for part in listed:  # some servers list a re-uploaded part twice: keep the newest copy
            number = int(part["PartNumber"])
            if number not in newest or part["LastModified"] >= newest[number]["LastModified"]:
                newest[number] = part
        wanted = range(1, request.parts + 1)
        missing = [n for n in wanted if n not in newest]
        if missing:
            raise errors.classify_s3(
                ClientError(
                    {"Error": {"Code": "InvalidPart", "Message": f"parts {missing} are missing"}},
                    "CompleteMultipartUpload",
                ),
                action="complete the upload",
            )
        try:
            self._s3.complete_multipart_upload(
                Bucket=bucket,
                Key=request.object_key,
                UploadId=request.upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": str(newest[n]["ETag"])} for n in wanted]
                },
            )
        except ClientError as exc:
            raise errors.classify_s3(exc, action="complete the upload") from exc

    def _object_exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._settings.s3_bucket, Key=key)
        except ClientError:
            return False
        return True

    @activity.defn
    def abort_upload(self, request: AbortRequest) -> None:
        """Abort, and repeat until ListParts shows nothing left (a part in flight may land late)."""
        bucket = self._settings.s3_bucket
        for _ in range(10):
            try:
                self._s3.abort_multipart_upload(
                    Bucket=bucket, Key=request.object_key, UploadId=request.upload_id
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
            try:
                self._s3.list_parts(
                    Bucket=bucket, Key=request.object_key, UploadId=request.upload_id
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    return
                raise
        raise RuntimeError(f"upload {request.upload_id} still lists parts after 10 aborts")

    def all(self) -> list[Any]:
        return [
            self.prepare_export,
            self.start_upload,
            self.upload_next_part,
            self.complete_upload,
            self.abort_upload,
        ]
