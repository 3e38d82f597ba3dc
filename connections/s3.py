"""The one place a boto3 S3 client is built, from Settings (the API, the workers, the tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_config(
    *, max_attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 60
) -> Config:
    """Client config shared by the worker, the API and the tests.

    Checksums: since botocore 1.36 the default is `when_supported`, which adds CRC32 trailers
    (aws-chunked encoding) to every upload. S3-compatible servers differ in how they handle those,
    and a retried part must be byte-for-byte the same request, so we compute and validate
    checksums only where an operation requires them (`when_required`); each part's integrity is
    checked instead by the Content-MD5 the upload sends, which every S3 server verifies.
    Presigned URLs use SigV4 (`s3v4`): the default presign signature is refused by some servers.

    Retries: `max_attempts` retries after the first request, each after a random wait of up
    to 1, 2, 4, 8, 16 s, in botocore's `legacy` mode (its default). `standard` mode adds a
    retry quota per client (500 tokens, 14 per retried connection error) that every thread of a
    worker shares: on a lossy network it runs dry, and from then on no request is retried at
    all, so an activity that makes four requests rarely gets all four answered. With half the
    S3 connections reset, 33 % of requests failed in `standard` mode (3 retries; 6 % expected
    without the quota) against 2 % in `legacy` mode (5 retries; 1.6 % expected), 300 requests
    each (`python -m bench.s3_retry_modes`). Every request the export makes is safe to repeat
    (`activities.s3_multipart`), and Temporal's activity retries give the back-pressure a quota
    would.
    """
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": max_attempts, "mode": "legacy"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def make_presigning_client(settings: Settings) -> S3Client:
    """A client whose presigned URLs carry the public endpoint (`S3_PUBLIC_ENDPOINT_URL`): a
    SigV4 signature covers the host, so a link must be signed for the host its user reaches."""
    public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    return make_s3_client(settings.model_copy(update={"s3_endpoint_url": public}))


def make_s3_client(settings: Settings, *, max_attempts: int = 5) -> S3Client:
    """A client for the configured endpoint; credentials come from the environment (boto3's chain)."""
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=s3_config(max_attempts=max_attempts),
    )
    return client
