"""Presigned links are signed for the endpoint their users reach (no network: presigning is local)."""

from __future__ import annotations

import pytest

from connections.s3 import make_presigning_client
from domain.settings import Settings


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


def _link(settings: Settings) -> str:
    url: str = make_presigning_client(settings).generate_presigned_url(
        "get_object", Params={"Bucket": "exports", "Key": "exports/t/e/f.csv"}, ExpiresIn=60
    )
    return url


def test_links_use_the_public_endpoint_when_one_is_set() -> None:
    settings = Settings(
        s3_endpoint_url="http://minio:9000", s3_public_endpoint_url="http://127.0.0.1:9000"
    )
    assert _link(settings).startswith("http://127.0.0.1:9000/exports/exports/t/e/f.csv?")


def test_links_use_the_s3_endpoint_otherwise() -> None:
    settings = Settings(s3_endpoint_url="http://minio:9000", s3_public_endpoint_url="")
    assert _link(settings).startswith("http://minio:9000/exports/exports/t/e/f.csv?")
