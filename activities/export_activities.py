"""The export's side effects as Temporal activities: plan, start, produce parts, complete, abort.

Each is idempotent under retry. A part is produced by one call from a known cursor, so a retried
call regenerates the same bytes for the same part number and the re-upload replaces it. The
multipart protocol itself lives in `activities.s3_multipart`; what a failure means for the
export is decided in `activities.errors`. Every activity heartbeats from a side thread, so a
killed worker costs a heartbeat timeout (seconds), not a start-to-close timeout.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from bson.errors import BSONError
from pymongo.errors import PyMongoError
from temporalio import activity

from activities import errors
from activities.chunk_reader import read_rows
from activities.heartbeat import heartbeating
from activities.parquet_footer import FooterPieces, finish_part
from activities.quota_enforcement import capped_columns, enforce_totals
from activities.s3_multipart import MultipartUploads
from connections.decoding import INVALID_UTF8_WARNING, counting_replacements
from connections.mongo import source_collection
from connections.s3 import make_s3_client
from domain import objects
from domain.activity_io import (
    AbortRequest,
    CompleteRequest,
    CompleteResult,
    PartRequest,
    PartResult,
    PreparedExport,
    UploadTarget,
)
from domain.export_policy import ExportPolicy
from domain.formats.encoding import EncodingSpec, needs_frozen_columns, new_part_encoder
from domain.formats.xlsx_encoder import columns_refusal
from domain.models import ExportInput
from domain.part_sizing import MAX_PART_SIZE, target_part_size
from domain.pipeline.export_plan import ExportRefused, plan_export
from domain.pipeline.extended_json import cursor_from_json, cursor_to_json
from domain.pipeline.keyset import CursorError
from domain.pipeline.partitioning import beyond
from domain.pipeline.planning import ChunkPlan
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COLUMN_SAMPLE_SIZE = 100
S3Error = (ClientError, BotoCoreError)


def _nothing() -> tuple[Any, ...]:
    return ()


def _same_etag(listed: str, accepted: str) -> bool:
    return listed.strip('"') == accepted.strip('"')


def settings_for(export: ExportInput, settings: Settings) -> Settings:
    """A worker's settings under the policy the export was accepted with."""
    return (export.policy or ExportPolicy()).apply(settings)


def build_plan(export: ExportInput, settings: Settings) -> ChunkPlan:
    """Validate and plan the export for its owner under its policy; a refusal is not retried."""
    try:
        return plan_export(export.request, export.owner, settings_for(export, settings))
    except ExportRefused as exc:  # str(): "<path>: <reason>"
        raise errors.invalid_pipeline(f"{exc.path}: {exc.reason}") from exc


def _within(
    stream: Generator[tuple[Mapping[str, Any], Sequence[Any]], None, None],
    plan: ChunkPlan,
    upper: Sequence[Any],
) -> Generator[tuple[Mapping[str, Any], Sequence[Any]], None, None]:
    """The rows of `stream`, each checked to sort at or before `upper` (a partition's last
    cursor, which the query itself ends at): should the server and `domain.pipeline.keyset.sort_key`
    ever disagree on the order, the export fails rather than lose or repeat a row."""
    try:
        for row, row_cursor in stream:
            if beyond(tuple(row_cursor), upper, plan.keys):
                raise errors.invalid_pipeline(
                    f"the database returned a row (cursor {cursor_to_json(row_cursor)}) after "
                    "the partition's last key: its order differs from the export's; run the "
                    "export with parallelism 1"
                )
            yield row, row_cursor
    finally:
        stream.close()


class ExportActivities:
    """Activities bound to one worker's settings and clients (boto3 clients are thread-safe)."""

    def __init__(self, settings: Settings, s3: S3Client | None = None) -> None:
        self._settings = settings
        self._s3 = s3 or make_s3_client(settings)
        self._uploads = MultipartUploads(self._s3, settings.s3_bucket)

    # -- reading -------------------------------------------------------------------------------

    def _rows(
        self,
        export: ExportInput,
        plan: ChunkPlan,
        cursor: str | None,
        *,
        rows_before: int = 0,
        raw: bool = False,
        upper: Sequence[Any] | None = None,
    ) -> Generator[tuple[Mapping[str, Any], Sequence[Any]], None, None]:
        """Rows after `cursor` (hidden fields included) with their cursors, up to the row limit
        (and up to `upper`, a partition's last cursor)."""
        settings = settings_for(export, self._settings)
        collection = source_collection(settings, export.request.collection)
        try:
            yield from read_rows(
                collection,
                plan,
                cursor_from_json(cursor),
                max_time_ms=settings.mongodb_max_time_ms,
                batch_size=settings.mongodb_batch_size,
                rows_before=rows_before,
                raw=raw,
                upper=upper,
            )
        except (PyMongoError, BSONError) as exc:
            raise errors.classify_mongo(exc, max_time_ms=settings.mongodb_max_time_ms) from exc
        except CursorError as exc:
            raise errors.invalid_pipeline(f"the export cannot resume from its rows: {exc}") from exc

    @activity.defn
    def prepare_export(self, export: ExportInput) -> PreparedExport:
        """Validate and plan; freeze the CSV columns from the first rows when none were asked for."""
        with heartbeating(_nothing):
            plan = build_plan(export, self._settings)
            columns = export.request.columns
            if needs_frozen_columns(export.request):
                with contextlib.closing(self._rows(export, plan, None)) as rows:
                    sample = [row for row, _ in itertools.islice(rows, COLUMN_SAMPLE_SIZE)]
                policy_settings = settings_for(export, self._settings)
                columns = capped_columns(policy_settings, sample, plan.hidden_fields)
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
        """Create the multipart upload, or find the one an earlier attempt of this call created."""
        export = target.export
        try:
            with heartbeating(_nothing):
                return self._uploads.start(
                    target.object_key,
                    content_type=objects.content_type(export.request),
                    content_disposition=objects.content_disposition(target.filename),
                    # S3 metadata must be ASCII: owner and tenant are percent-encoded.
                    metadata={
                        "export-id": quote(export.export_id, safe=""),
                        "owner": quote(export.owner.user_id, safe=""),
                        "tenant": quote(export.owner.tenant, safe=""),
                    },
                )
        except S3Error as exc:
            raise errors.classify_s3(exc, action="start the upload") from exc

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
        columns = request.columns if request.columns is not None else export.request.columns
        spec = EncodingSpec.of(
            export.request, hidden_fields=plan.hidden_fields, engine=self._settings.csv_engine
        )
        partition = export.partition
        encoder = new_part_encoder(
            spec,
            columns,
            # A partition after the first continues the file: no header, no BOM.
            first_part=request.part_number == 1 and (partition is None or partition.index == 0),
            carry=request.format_state,
            offset=request.bytes_so_far,
        )
        rows, last_cursor, exhausted = 0, None, True
        upper = None
        if partition is not None and partition.upper is not None:
            upper = cursor_from_json(partition.upper)
        stream = self._rows(
            export,
            plan,
            request.cursor,
            rows_before=request.rows_so_far,
            raw=spec.reads_raw_rows,
            upper=upper,
        )
        if upper is not None:
            stream = _within(stream, plan, upper)
        with heartbeating(lambda: (request.part_number, rows)), counting_replacements() as bad:
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
            pieces = FooterPieces(self._s3, self._settings.s3_bucket, request.object_key)
            body = finish_part(
                encoder, last=exhausted, part_number=request.part_number, pieces=pieces
            )
            enforce_totals(
                settings_for(export, self._settings),
                request.rows_so_far + rows,
                request.bytes_so_far + len(body),
            )
            cursor = request.cursor if last_cursor is None else cursor_to_json(last_cursor)
            if len(body) > MAX_PART_SIZE:
                raise errors.storage_refused(
                    f"part {request.part_number} came to {len(body)} bytes, over S3's limit of "
                    f"{MAX_PART_SIZE}; S3 cannot store a part this large"
                )
            try:
                etag = self._uploads.upload_part(
                    request.object_key, request.upload_id, request.part_number, body
                )
            except S3Error as exc:
                action = f"store part {request.part_number}"
                raise errors.classify_s3(exc, action=action) from exc
        warnings = dict(encoder.warnings)
        if bad.count:
            warnings[INVALID_UTF8_WARNING] = bad.count
        return PartResult(
            part_number=request.part_number,
            etag=etag,
            cursor=cursor,
            rows=rows,
            bytes=len(body),
            exhausted=exhausted,
            format_state=encoder.carry,
            warnings=warnings,
        )

    @activity.defn
    def complete_upload(self, request: CompleteRequest) -> None:
        """Complete with the parts S3 lists (exports recorded before parts were fenced)."""
        self.verify_and_complete(request.model_copy(update={"expected_etags": {}}))

    @activity.defn
    def verify_and_complete(self, request: CompleteRequest) -> CompleteResult:
        """Check the listed parts against the ETags the workflow accepted; complete the upload
        if they all match (and `request.complete`), else name the overwritten parts.

        A retry after a lost answer finds the upload gone and the object there: that succeeds.
        """
        key, upload_id = request.object_key, request.upload_id
        try:
            with heartbeating(_nothing):
                try:
                    listed = self._uploads.list_parts(key, upload_id)
                except ClientError as exc:
                    gone = errors.s3_code(exc) == "NoSuchUpload"
                    if gone and request.complete and self._uploads.object_exists(key):
                        self._pieces(key).delete_all()
                        return CompleteResult()  # an earlier attempt completed it
                    raise
                missing = [n for n in range(1, request.parts + 1) if n not in listed]
                if missing:
                    raise errors.storage_refused(
                        f"S3 refused to complete the upload: parts {missing} are missing"
                    )
                etags = {n: str(listed[n]["ETag"]) for n in range(1, request.parts + 1)}
                overwritten = [
                    n
                    for n, accepted in sorted(request.expected_etags.items())
                    if n in etags and not _same_etag(etags[n], accepted)
                ]
                if overwritten or not request.complete:
                    return CompleteResult(overwritten=overwritten)
                self._uploads.complete(key, upload_id, etags)
                self._pieces(key).delete_all()
        except S3Error as exc:
            raise errors.classify_s3(exc, action="complete the upload") from exc
        return CompleteResult()

    @activity.defn
    def abort_upload(self, request: AbortRequest) -> None:
        """Abort, and repeat until ListParts shows nothing left (a part in flight may land late)."""
        try:
            with heartbeating(_nothing):
                self._uploads.abort(request.object_key, request.upload_id)
                self._pieces(request.object_key).delete_all()
        except S3Error as exc:
            raise errors.classify_s3(exc, action="abort the upload") from exc

    def _pieces(self, key: str) -> FooterPieces:
        """A Parquet export's footer pieces (none for other formats)."""
        return FooterPieces(self._s3, self._settings.s3_bucket, key)

    def all(self) -> list[Any]:
        return [
            self.prepare_export,
            self.start_upload,
            self.upload_next_part,
            self.complete_upload,
            self.verify_and_complete,
            self.abort_upload,
        ]
