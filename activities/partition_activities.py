"""The side effects of a parallel export: cut the key range, compose the partitions, clean up.

* `plan_partitions` counts the keys and reads them once (key only, `maxTimeMS`-bounded) to
  pick the boundaries (`domain.pipeline.partitioning`);
* `compose_partitions` turns the partitions' objects into the export's one object with
  `UploadPartCopy` in partition order (`domain.composition`), idempotent under retry;
* `discard_partitions` aborts every upload and deletes every object under the export's
  partition prefix (after composing, and when the export fails or is cancelled).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from bson.errors import BSONError
from pydantic import BaseModel, ConfigDict
from pymongo.errors import OperationFailure, PyMongoError
from temporalio import activity

from activities import errors
from activities.export_activities import build_plan, settings_for
from activities.heartbeat import heartbeating
from activities.quota_enforcement import enforce_totals
from activities.s3_multipart import MultipartUploads
from connections.mongo import source_collection
from connections.s3 import make_s3_client
from domain import objects
from domain.composition import ComposedPart, TooManyParts, plan_composition
from domain.models import ExportInput, key_segment
from domain.pipeline import partitioning
from domain.pipeline.extended_json import cursor_to_json
from domain.pipeline.keyset import CursorError
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


PLANNING_ATTEMPTS = 3
"""Partitions are an optimisation: once this many attempts to count the keys have failed on a
transient error (a flaky connection, a busy server), the export runs serially instead of
holding its start back for the rest of the retry schedule. Counting is one query that a dropped
connection restarts from zero (on FerretDB, seconds for tens of thousands of documents); the
serial export reads in short batches that resume from their cursor."""


class _Io(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartitionPlan(_Io):
    """The boundaries (P - 1 cursors: P partitions), or none and why the export stays serial."""

    bounds: list[str]
    decision: str
    prefix: str | None = None
    """Where the partitions write their temporary objects (see `partition_key`)."""


class ComposeRequest(_Io):
    export: ExportInput
    object_key: str
    filename: str
    prefix: str
    partitions: int
    rows: int = 0
    """The partitions' rows together, checked against the row quota with the bytes."""


class ComposeResult(_Io):
    parts: int
    bytes: int
    copied: int
    """Parts S3 copied itself (the rest were read back and uploaded)."""


class DiscardRequest(_Io):
    prefix: str


def partition_prefix(settings: Settings, export: ExportInput) -> str:
    """`{PARTITION_PREFIX}{tenant}/{export_id}/`: every temporary object of the export."""
    tenant = key_segment(export.owner.tenant)
    return f"{settings.partition_prefix}{tenant}/{key_segment(export.export_id)}/"


def collection_size(collection: Any, max_time: int) -> int | None:
    """The collection's document count from its metadata, or None where the server has
    none to give (a view, say: then the keys are counted).

    `$collStats` first: FerretDB answers `count` (`estimatedDocumentCount`) by reading
    every document (4.2 s for 20,000 of the benchmark's, against 0.06 s for `$collStats`);
    MongoDB answers both from metadata (one document per shard: summed). Servers without
    the stage (mongo-java-server) or a user without the `collStats` privilege get
    `estimatedDocumentCount`."""
    try:
        stats = list(collection.aggregate([{"$collStats": {"count": {}}}], maxTimeMS=max_time))
        counts = [doc.get("count") for doc in stats]
        if counts and all(isinstance(n, int) for n in counts):
            return int(sum(counts))
    except OperationFailure:
        pass
    try:
        return int(collection.estimated_document_count(maxTimeMS=max_time))
    except OperationFailure:
        return None


def partition_key(prefix: str, index: int) -> str:
    """The temporary object of partition `index` (`prefix` from `partition_prefix`)."""
    return f"{prefix}{index:05d}"


class PartitionActivities:
    def __init__(self, settings: Settings, s3: S3Client | None = None) -> None:
        self._settings = settings
        self._s3 = s3 or make_s3_client(settings)
        self._uploads = MultipartUploads(self._s3, settings.s3_bucket)

    @activity.defn
    def plan_partitions(self, export: ExportInput) -> PartitionPlan:
        plan = build_plan(export, self._settings)
        reason = partitioning.serial_reason(plan, export.request)
        if reason is not None:
            return PartitionPlan(bounds=[], decision=f"serial: {reason}")
        settings = settings_for(export, self._settings)
        collection = source_collection(settings, export.request.collection)
        max_time = settings.mongodb_max_time_ms
        scanned = [0]
        try:
            with heartbeating(lambda: (scanned[0],)):
                if export.request.parallelism == "auto":
                    if partitioning.keys_are_documents(plan):
                        documents = collection_size(collection, max_time)
                        if documents is not None and documents <= settings.export_partition_rows:
                            return PartitionPlan(
                                bounds=[],
                                decision=f"serial: the collection holds {documents:,} documents, "
                                f"no more than one partition's {settings.export_partition_rows:,} "
                                "rows (parallelism auto)",
                            )
                    # Most exports are small: count no further than one partition's rows.
                    enough = settings.export_partition_rows + 1
                    keys = self._count(collection, plan, max_time, enough)
                    if keys == enough:
                        keys = self._count(collection, plan, max_time, None)
                else:
                    keys = self._count(collection, plan, max_time, None)
                count = partitioning.partition_count(
                    export.request.parallelism,
                    keys,
                    rows_per_partition=settings.export_partition_rows,
                    max_parallelism=settings.export_max_parallelism,
                )
                positions = partitioning.boundary_positions(keys, count)
                bounds: list[str] = []
                if positions:
                    wanted = iter(positions)
                    target = next(wanted, None)
                    pipeline = partitioning.key_scan_pipeline(plan)
                    with collection.aggregate(
                        pipeline, maxTimeMS=max_time, batchSize=10_000
                    ) as rows:
                        for position, row in enumerate(rows):
                            scanned[0] = position
                            if position == target:
                                bound = partitioning.boundary_cursor(plan, row)
                                bounds.append(cursor_to_json(bound))
                                target = next(wanted, None)
                                if target is None:
                                    break
        except (PyMongoError, BSONError) as exc:
            failure = errors.classify_mongo(exc, max_time_ms=max_time)
            attempt = activity.info().attempt
            if not failure.non_retryable and attempt >= PLANNING_ATTEMPTS:
                return PartitionPlan(
                    bounds=[],
                    decision=f"serial: the keys could not be counted in {attempt} attempts "
                    f"({failure.message})",
                )
            raise failure from exc
        except CursorError as exc:  # the serial export meets it and says so, with its row
            return PartitionPlan(bounds=[], decision=f"serial: a key cannot bound a range: {exc}")
        if not bounds:
            return PartitionPlan(
                bounds=[],
                decision=f"serial: {keys:,} keys make one partition "
                f"(parallelism {export.request.parallelism})",
            )
        return PartitionPlan(
            bounds=bounds,
            prefix=partition_prefix(self._settings, export),
            decision=(
                f"{len(bounds) + 1} partitions of about {keys // (len(bounds) + 1)} keys each "
                f"({plan.strategy}, parallelism {export.request.parallelism}), composed in order"
            ),
        )

    @staticmethod
    def _count(collection: Any, plan: Any, max_time: int, limit: int | None) -> int:
        pipeline = partitioning.count_pipeline(plan, limit=limit)
        counted = list(collection.aggregate(pipeline, maxTimeMS=max_time))
        return int(counted[0]["n"]) if counted else 0

    @activity.defn
    def compose_partitions(self, request: ComposeRequest) -> ComposeResult:
        """The partitions' objects, in order, as the export's object (one multipart upload).

        A retry after the object was completed finds it whole (same size) and does nothing."""
        export = request.export
        keys = [partition_key(request.prefix, i) for i in range(request.partitions)]
        bucket = self._settings.s3_bucket
        progress = [0]
        try:
            with heartbeating(lambda: (progress[0],)):
                sizes = [self._size(key) for key in keys]
                total = sum(sizes)
                enforce_totals(settings_for(export, self._settings), request.rows, total)
                try:
                    parts = plan_composition(sizes)
                except TooManyParts as exc:
                    raise errors.storage_refused(str(exc)) from exc
                if (
                    self._uploads.object_exists(request.object_key)
                    and not any(self._uploads.uploads_of_key(request.object_key))
                    and self._size(request.object_key) == total
                ):
                    return ComposeResult(parts=max(1, len(parts)), bytes=total, copied=0)
                upload_id = self._uploads.start(
                    request.object_key,
                    content_type=objects.content_type(export.request),
                    content_disposition=objects.content_disposition(request.filename),
                    metadata={
                        "export-id": quote(export.export_id, safe=""),
                        "owner": quote(export.owner.user_id, safe=""),
                        "tenant": quote(export.owner.tenant, safe=""),
                    },
                )
                etags: dict[int, str] = {}
                if not parts:  # every partition empty: one empty part
                    etags[1] = self._uploads.upload_part(request.object_key, upload_id, 1, b"")
                for number, part in enumerate(parts, start=1):
                    etags[number] = self._compose_part(
                        bucket, keys, request.object_key, upload_id, number, part
                    )
                    progress[0] = number
                self._uploads.complete(request.object_key, upload_id, etags)
        except (ClientError, BotoCoreError) as exc:
            raise errors.classify_s3(exc, action="compose the partitions") from exc
        copied = sum(1 for part in parts if part.copied)
        return ComposeResult(parts=max(1, len(parts)), bytes=total, copied=copied)

    def _compose_part(
        self,
        bucket: str,
        keys: list[str],
        key: str,
        upload_id: str,
        number: int,
        part: ComposedPart,
    ) -> str:
        if part.copied:
            (segment,) = part.segments
            answer = self._s3.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": keys[segment.index]},
                CopySourceRange=f"bytes={segment.start}-{segment.end - 1}",
            )
            return str(answer["CopyPartResult"]["ETag"])
        body = b"".join(
            self._s3.get_object(
                Bucket=bucket,
                Key=keys[segment.index],
                Range=f"bytes={segment.start}-{segment.end - 1}",
            )["Body"].read()
            for segment in part.segments
        )
        return self._uploads.upload_part(key, upload_id, number, body)

    def _size(self, key: str) -> int:
        return int(self._s3.head_object(Bucket=self._settings.s3_bucket, Key=key)["ContentLength"])

    @activity.defn
    def discard_partitions(self, request: DiscardRequest) -> int:
        """Abort every upload and delete every object under the export's partition prefix;
        how many objects were deleted."""
        prefix = request.prefix
        if not prefix.startswith(self._settings.partition_prefix) or prefix.count("/") < 2:
            raise errors.invalid_pipeline(f"{prefix!r} is not a partition prefix")
        try:
            with heartbeating(lambda: ()):
                return discard_prefix(self._s3, self._uploads, self._settings.s3_bucket, prefix)
        except (ClientError, BotoCoreError) as exc:
            raise errors.classify_s3(exc, action="remove the partitions' objects") from exc

    def all(self) -> list[Any]:
        return [self.plan_partitions, self.compose_partitions, self.discard_partitions]


def discard_prefix(s3: S3Client, uploads: MultipartUploads, bucket: str, prefix: str) -> int:
    """Abort the uploads, then delete the objects, under `prefix`."""
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for upload in listed.get("Uploads", []):
        uploads.abort(str(upload["Key"]), str(upload["UploadId"]))
    deleted = 0
    token: dict[str, str] = {}
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **token)  # type: ignore[arg-type]
        for item in page.get("Contents", []):
            with contextlib.suppress(ClientError):
                s3.delete_object(Bucket=bucket, Key=str(item["Key"]))
                deleted += 1
        if not page.get("IsTruncated"):
            return deleted
        token = {"ContinuationToken": str(page["NextContinuationToken"])}
