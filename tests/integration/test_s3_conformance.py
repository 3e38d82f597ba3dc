"""The S3 server behaves like S3 where the product depends on it (multipart rules, presigning).

These tests chose the local S3 server (versitygw) and keep it honest: if it stops enforcing a rule
the product relies on, they fail.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from connections.s3 import s3_config
from domain.settings import Settings

MIB = 1024 * 1024
FIVE_MIB = b"a" * (5 * MIB)


@pytest.fixture
def key(unique_name: str) -> str:
    return f"conformance/{unique_name}/object.csv"


@pytest.fixture
def upload(s3: Any, settings: Settings, key: str) -> Iterator[str]:
    upload_id: str = s3.create_multipart_upload(Bucket=settings.s3_bucket, Key=key)["UploadId"]
    yield upload_id
    with contextlib.suppress(ClientError):  # already completed or aborted
        s3.abort_multipart_upload(Bucket=settings.s3_bucket, Key=key, UploadId=upload_id)


def _part(
    s3: Any, settings: Settings, key: str, upload_id: str, number: int, body: bytes
) -> dict[str, Any]:
    etag = s3.upload_part(
        Bucket=settings.s3_bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
    )["ETag"]
    return {"PartNumber": number, "ETag": etag}


def _error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_a_non_last_part_under_5_mib_is_refused_at_completion(
    s3: Any, settings: Settings, key: str, upload: str
) -> None:
    parts = [
        _part(s3, settings, key, upload, 1, b"x" * 100),
        _part(s3, settings, key, upload, 2, b"y"),
    ]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=settings.s3_bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
    assert _error_code(exc) == "EntityTooSmall"


def test_parts_listed_out_of_order_are_refused(
    s3: Any, settings: Settings, key: str, upload: str
) -> None:
    parts = [_part(s3, settings, key, upload, n, FIVE_MIB) for n in (1, 2)]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=settings.s3_bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": list(reversed(parts))},
        )
    assert _error_code(exc) == "InvalidPartOrder"


def test_re_uploading_a_part_number_replaces_it(
    s3: Any, settings: Settings, key: str, upload: str
) -> None:
    first = _part(s3, settings, key, upload, 1, FIVE_MIB)
    _part(s3, settings, key, upload, 2, b"stale tail")
    fresh = _part(s3, settings, key, upload, 2, b"fresh tail")

    listed = s3.list_parts(Bucket=settings.s3_bucket, Key=key, UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MIB), (2, len(b"fresh tail"))]

    s3.complete_multipart_upload(
        Bucket=settings.s3_bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [first, fresh]},
    )
    body = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    assert body == FIVE_MIB + b"fresh tail"


def test_list_parts_pages_with_a_small_max_parts(
    s3: Any, settings: Settings, key: str, upload: str
) -> None:
    for number in range(1, 6):
        _part(s3, settings, key, upload, number, f"part {number}".encode())
    seen: list[int] = []
    marker = 0
    pages = 0
    while True:
        page = s3.list_parts(
            Bucket=settings.s3_bucket, Key=key, UploadId=upload, MaxParts=2, PartNumberMarker=marker
        )
        pages += 1
        seen += [p["PartNumber"] for p in page.get("Parts", [])]
        if not page.get("IsTruncated"):
            break
        marker = page["NextPartNumberMarker"]
    assert seen == [1, 2, 3, 4, 5]
    assert pages == 3


def test_list_multipart_uploads_filters_by_prefix(
    s3: Any, settings: Settings, unique_name: str
) -> None:
    inside = f"conformance/{unique_name}/in/a.csv"
    outside = f"conformance/{unique_name}-other/b.csv"
    ids = {
        k: s3.create_multipart_upload(Bucket=settings.s3_bucket, Key=k)["UploadId"]
        for k in (inside, outside)
    }
    try:
        listed = s3.list_multipart_uploads(
            Bucket=settings.s3_bucket, Prefix=f"conformance/{unique_name}/"
        )
        assert [(u["Key"], u["UploadId"]) for u in listed.get("Uploads", [])] == [
            (inside, ids[inside])
        ]
    finally:
        for k, upload_id in ids.items():
            s3.abort_multipart_upload(Bucket=settings.s3_bucket, Key=k, UploadId=upload_id)
    after = s3.list_multipart_uploads(
        Bucket=settings.s3_bucket, Prefix=f"conformance/{unique_name}"
    )
    assert after.get("Uploads", []) == []


def test_abort_leaves_no_parts(s3: Any, settings: Settings, key: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=settings.s3_bucket, Key=key)["UploadId"]
    _part(s3, settings, key, upload_id, 1, b"data")
    s3.abort_multipart_upload(Bucket=settings.s3_bucket, Key=key, UploadId=upload_id)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=settings.s3_bucket, Key=key, UploadId=upload_id)
    assert _error_code(exc) == "NoSuchUpload"


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_presigned_get_sets_content_disposition_and_refuses_tampering(
    s3: Any, settings: Settings, key: str
) -> None:
    s3.put_object(
        Bucket=settings.s3_bucket, Key=key, Body=b"a,b\r\n1,2\r\n", ContentType="text/csv"
    )
    disposition = 'attachment; filename="report.csv"'
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings.s3_bucket,
            "Key": key,
            "ResponseContentDisposition": disposition,
        },
        ExpiresIn=60,
    )
    status, headers, body = _get(url)
    assert (status, body) == (200, b"a,b\r\n1,2\r\n")
    assert headers["Content-Disposition"] == disposition

    signature = url.split("X-Amz-Signature=")[1][:64]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert _get(url.replace(signature, flipped))[0] == 403
    assert _get(url.replace("report.csv", "other.csv"))[0] == 403


@pytest.mark.parametrize("which", ["wrong secret", "unknown key"])
def test_wrong_credentials_are_refused(settings: Settings, which: str) -> None:
    key_id = os.environ["AWS_ACCESS_KEY_ID"] if which == "wrong secret" else "NOTAKEY"
    stranger = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=key_id,
        aws_secret_access_key="not-the-secret",
        config=s3_config(max_attempts=1),
    )
    with pytest.raises(ClientError) as exc:
        stranger.list_objects_v2(Bucket=settings.s3_bucket)
    status = exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
    if which == "wrong secret":
        assert (status, _error_code(exc)) == (403, "SignatureDoesNotMatch")
    else:
        # AWS answers 403 InvalidAccessKeyId; versitygw answers 404 XAdminUserNotFound. Both refuse.
        assert status in {403, 404}
