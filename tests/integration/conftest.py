"""Clients for the live local servers. A server that does not answer fails the test loudly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from connections.s3 import make_s3_client
from domain.settings import Settings

pytestmark = pytest.mark.services

MongoDoc = dict[str, Any]


def _client(uri: str, what: str) -> MongoClient[MongoDoc]:
    client: MongoClient[MongoDoc] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        pytest.fail(
            f"{what} at {uri} does not answer ({exc}); start the stack with `make services`"
        )
    return client


ENGINES = {
    "ferretdb": ("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
    "mongo-java-server": ("SECOND_MONGODB_URI", "mongodb://127.0.0.1:27018/"),
}


@pytest.fixture(scope="session", params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, MongoClient[MongoDoc]]]:
    """Each local MongoDB-compatible engine in turn, as (name, client)."""
    name: str = request.param
    env, default = ENGINES[name]
    client = _client(os.environ.get(env, default), name)
    yield name, client
    client.close()


@pytest.fixture(scope="session")
def real_mongodb() -> Iterator[MongoClient[MongoDoc]]:
    """A real MongoDB, only where TEST_REAL_MONGODB_URI points at one."""
    uri = os.environ.get("TEST_REAL_MONGODB_URI")
    if not uri:
        pytest.skip(
            "needs a real MongoDB: set TEST_REAL_MONGODB_URI (e.g. `docker compose up mongodb`)"
        )
    client = _client(uri, "real MongoDB")
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3(settings: Settings) -> Any:
    client = make_s3_client(settings, max_attempts=1)
    try:
        client.head_bucket(Bucket=settings.s3_bucket)
    except Exception as exc:
        pytest.fail(
            f"S3 at {settings.s3_endpoint_url} bucket {settings.s3_bucket!r}: {exc}; "
            "start the stack with `make services`"
        )
    return client
