"""Fresh presigned download links for completed exports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote

from domain.objects import content_disposition
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class DownloadLink:
    url: str
    expires_at: datetime


def filename_of(object_key: str) -> str:
    """The download name: the key's last segment (`domain.objects.object_key` encoded it)."""
    return unquote(object_key.rsplit("/", 1)[-1])


async def presign_download(s3: S3Client, settings: Settings, object_key: str) -> DownloadLink:
    """A GET link valid for `presign_expiry_seconds` that saves under the export's filename.
    Signing is local, but boto3 may refresh credentials over the network: off the event loop."""
    expiry = settings.presign_expiry_seconds
    expires_at = datetime.now(UTC) + timedelta(seconds=expiry)
    url = await asyncio.to_thread(
        s3.generate_presigned_url,
        "get_object",
        Params={
            "Bucket": settings.s3_bucket,
            "Key": object_key,
            "ResponseContentDisposition": content_disposition(filename_of(object_key)),
        },
        ExpiresIn=expiry,
    )
    return DownloadLink(url=url, expires_at=expires_at)
