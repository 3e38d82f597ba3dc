"""Where a Parquet export's footer pieces wait for the final part: small S3 objects next to it.

Every part but the last stores its row groups' metadata (`ParquetPartEncoder.footer_piece`, a
few KB, offsets already where the part lies in the object) as `{object_key}.row-groups/{part}`,
before it uploads the part. A retried part writes the same piece again, so the store is
idempotent; the final part reads pieces 1 to n-1 back and writes the footer; completing or
aborting the upload deletes them. Workflow state never holds them: 10,000 parts of metadata
would not fit a Temporal payload (see README, "Formats").
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from activities import errors
from domain.formats.encoding import PartEncoder
from domain.formats.parquet import ParquetPartEncoder

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

SUFFIX: Final = ".row-groups/"
_READERS: Final = 8


class FooterPieces:
    """The footer pieces of one export's object."""

    def __init__(self, s3: S3Client, bucket: str, object_key: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = object_key + SUFFIX

    def key(self, part_number: int) -> str:
        return f"{self._prefix}{part_number:05d}"

    def put(self, part_number: int, piece: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self._bucket, Key=self.key(part_number), Body=piece)
        except ClientError as exc:
            raise errors.classify_s3(exc, action=f"store part {part_number}'s row groups") from exc

    def get(self, part_numbers: range) -> list[bytes]:
        def one(number: int) -> bytes:
            response = self._s3.get_object(Bucket=self._bucket, Key=self.key(number))
            body: bytes = response["Body"].read()
            return body

        try:
            with ThreadPoolExecutor(_READERS) as pool:
                return list(pool.map(one, part_numbers))
        except ClientError as exc:
            raise errors.classify_s3(
                exc, action="read the row groups of the earlier parts"
            ) from exc

    def delete_all(self) -> None:
        """Delete every piece (none is fine: CSV and JSON Lines exports store none)."""
        try:
            listed = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=self._prefix)
            while True:
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in listed.get("Contents", [])
                ]
                if keys:
                    self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys})
                if not listed.get("IsTruncated"):
                    return
                listed = self._s3.list_objects_v2(
                    Bucket=self._bucket,
                    Prefix=self._prefix,
                    ContinuationToken=listed["NextContinuationToken"],
                )
        except ClientError as exc:
            raise errors.classify_s3(exc, action="delete the Parquet footer pieces") from exc


def finish_part(
    encoder: PartEncoder, *, last: bool, part_number: int, pieces: FooterPieces
) -> bytes:
    """`encoder.finish(last=last)`, with a Parquet export's footer pieces stored or read back."""
    if not isinstance(encoder, ParquetPartEncoder):
        return encoder.finish(last=last)
    if not last:
        body = encoder.finish()
        pieces.put(part_number, encoder.footer_piece)
        return body
    return encoder.finish_with_footer(pieces.get(range(1, part_number)))
