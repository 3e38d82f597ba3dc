"""The S3 multipart-upload protocol as the export uses it: start, part, list, complete, abort.

Every call is safe to repeat after a lost answer, which is what a Temporal retry is:
- `start` settles on one upload per key even when a CreateMultipartUpload answer was lost and
  boto3 (or an activity retry) opened a second one;
- `complete` of an upload that an earlier, unanswered call already completed succeeds;
- `abort` repeats until S3 says the upload is gone, so a part that lands late is removed too.
Errors are botocore's; `activities.errors.classify_s3` decides what they mean for the export.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from activities.errors import http_status, s3_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ABORT_ROUNDS = 10


class UploadStillListed(RuntimeError):
    """An upload still listed parts after `ABORT_ROUNDS` aborts (retry the abort later)."""


def _is(exc: ClientError, *codes: str) -> bool:
    return s3_code(exc) in codes


class MultipartUploads:
    """The multipart uploads of one bucket (boto3 clients are thread-safe)."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def uploads_of_key(self, key: str) -> list[str]:
        """The open uploads of exactly `key`, oldest first."""
        listed = self._s3.list_multipart_uploads(Bucket=self._bucket, Prefix=key)
        return [
            str(upload_id)
            for _, upload_id in sorted(
                (upload["Initiated"], upload["UploadId"])
                for upload in listed.get("Uploads", [])
                if upload.get("Key") == key
            )
        ]

    def start(
        self, key: str, *, content_type: str, content_disposition: str, metadata: dict[str, str]
    ) -> str:
        """The upload of `key`: an open one an earlier attempt created, or a new one.

        After creating, the key's oldest upload is kept and any other aborted, so every attempt
        (concurrent ones too) settles on the same upload.
        """
        uploads = self.uploads_of_key(key)
        if not uploads:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                ContentType=content_type,
                ContentDisposition=content_disposition,
                Metadata=metadata,
            )
            uploads = self.uploads_of_key(key) or [str(created["UploadId"])]
        keep, *duplicates = uploads
        for upload_id in duplicates:
            self._abort_once(key, upload_id)
        return keep

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        """Store part `number` (Content-MD5 checked by S3); its ETag."""
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        response = self._s3.upload_part(
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=md5,
        )
        return str(response["ETag"])

    def list_parts(self, key: str, upload_id: str) -> dict[int, Mapping[str, Any]]:
        """Every listed part by number (all pages); of a part listed twice, the newest copy."""
        newest: dict[int, Mapping[str, Any]] = {}
        marker = 0
        while True:
            page = self._s3.list_parts(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            for part in page.get("Parts", []):
                number = int(part["PartNumber"])
                if number not in newest or part["LastModified"] >= newest[number]["LastModified"]:
                    newest[number] = part
            if not page.get("IsTruncated"):
                return newest
            marker = int(page["NextPartNumberMarker"])

    def complete(self, key: str, upload_id: str, etags: Mapping[int, str]) -> bool:
        """Complete with these parts; True if this call completed it, False if an earlier call
        whose answer was lost already had. NoSuchUpload with no object is re-raised."""
        try:
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
                },
            )
        except ClientError as exc:
            if _is(exc, "NoSuchUpload") and self.object_exists(key):
                return False
            raise
        return True

    def object_exists(self, key: str) -> bool:
        """Whether the object exists. Only a 404 means absent: any other error is raised, so a
        passing fault never passes for a missing object."""
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if http_status(exc) == 404 or _is(exc, "404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def abort(self, key: str, upload_id: str | None) -> None:
        """Abort the upload (every upload of `key` when `upload_id` is None: a start whose
        answer never arrived) and repeat until ListParts says it is gone."""
        targets = [upload_id] if upload_id is not None else self.uploads_of_key(key)
        for target in targets:
            for _ in range(ABORT_ROUNDS):
                self._abort_once(key, target)
                try:
                    self._s3.list_parts(Bucket=self._bucket, Key=key, UploadId=target)
                except ClientError as exc:
                    if _is(exc, "NoSuchUpload"):
                        break
                    raise
            else:
                raise UploadStillListed(f"upload {target} still lists parts after aborts")

    def _abort_once(self, key: str, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if not _is(exc, "NoSuchUpload"):
                raise
