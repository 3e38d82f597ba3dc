"""How many S3 requests fail outright when half the S3 connections lose their answer, per
botocore retry mode: the measurement behind `connections.s3.s3_config`'s `legacy` mode.

A toxiproxy in front of the local S3 server resets half the connections as their response
starts (the `s3_responses_lost` fault of `tests/reliability/test_faults.py`); one client per
mode sends `--requests` ListObjectsV2 requests in a row and counts those that still failed
after the client's own retries. Settings come from `.devstack/env` (`make services`).

    .venv/bin/python -m bench.s3_retry_modes [--requests 300]
"""

from __future__ import annotations

import argparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bench.common import load_stack_env
from connections.s3 import s3_config
from devstack.toxiproxy import ToxiproxyServer
from domain.settings import Settings

STANDARD_BEFORE = Config(retries={"max_attempts": 3, "mode": "standard"})
"""What `s3_config` used before: `standard` mode, 3 retries, with its per-client quota."""


def failures(endpoint: str, settings: Settings, config: Config, requests: int) -> int:
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=settings.aws_region, config=config
    )
    failed = 0
    for _ in range(requests):
        try:
            client.list_objects_v2(Bucket=settings.s3_bucket, MaxKeys=1)
        except (BotoCoreError, ClientError):
            failed += 1
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    load_stack_env()
    settings = Settings()
    endpoint = settings.s3_endpoint_url or ""
    if failures(endpoint, settings, s3_config(max_attempts=0), 1):
        raise SystemExit(
            f"invalid: S3 at {endpoint} does not answer without faults (make services)"
        )
    upstream = endpoint.removeprefix("http://")
    with ToxiproxyServer() as toxiproxy:
        proxy = toxiproxy.proxy("s3", upstream)
        proxy.add_toxic("reset_peer", stream="downstream", toxicity=0.5, timeout=0)
        endpoint = f"http://127.0.0.1:{proxy.port}"
        modes = {
            "standard, 3 retries (before)": s3_config().merge(STANDARD_BEFORE),
            "legacy, 5 retries (s3_config)": s3_config(),
        }
        for label, config in modes.items():
            failed = failures(endpoint, settings, config, args.requests)
            share = 100 * failed / args.requests
            print(f"{label}: {failed} of {args.requests} requests failed ({share:.1f} %)")


if __name__ == "__main__":
    main()
