"""Fixtures of the reliability suite.

Split: `make test` runs every test here except those marked with `full_only` (skipped unless
`RELIABILITY_FULL=1`, which `make reliability` sets): the corpus, the property run, isolation,
presigned expiry and one combined fault scenario. The full run adds the other fault scenarios
and the load test. Figures go to `.devstack/reliability/results-*.json` (see `results.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.client import Client

from devstack.toxiproxy import Proxy, ToxiproxyServer
from domain.settings import Settings
from tests.api.support import Api, serve
from tests.integration import export_harness as h
from tests.reliability.results import Results, full_run

full_only = pytest.mark.skipif(
    not full_run(), reason="full reliability run only: `make reliability` (RELIABILITY_FULL=1)"
)

_RESULTS = Results()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if "tests/reliability/" not in item.nodeid:
        return
    _RESULTS.took(item.nodeid, report.duration)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        state = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _RESULTS.outcome(item.nodeid, state)


@pytest.fixture(scope="session")
def results() -> Iterator[Results]:
    """The session's figures, written as JSON when the session ends."""
    yield _RESULTS
    path = _RESULTS.write()
    print(f"\nreliability figures written to {path}")


@pytest.fixture(scope="session")
def toxiproxy(settings: Settings) -> Iterator[dict[str, Proxy]]:
    """A toxiproxy server of this session, with a proxy to S3 and one to MongoDB (FerretDB)."""
    with ToxiproxyServer() as server:
        mongo = urlsplit(settings.mongodb_uri)
        s3 = urlsplit(settings.s3_endpoint_url or "")
        yield {
            "s3": server.proxy("s3", f"{s3.hostname}:{s3.port}"),
            "mongo": server.proxy("mongo", f"{mongo.hostname}:{mongo.port}"),
        }


def through_proxies(settings: Settings, proxies: dict[str, Proxy]) -> Settings:
    """The worker's settings: MongoDB and S3 reached through the proxies."""
    return settings.model_copy(
        update={
            "mongodb_uri": f"mongodb://127.0.0.1:{proxies['mongo'].port}/",
            "s3_endpoint_url": f"http://127.0.0.1:{proxies['s3'].port}",
        }
    )


# -- the API with an in-process worker, on a task queue of the suite's own ---------------------


@pytest.fixture(scope="session")
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"temporal_task_queue": f"reliability-{uuid.uuid4().hex[:8]}"}
    )


@pytest.fixture(scope="session")
async def app_worker(app_settings: Settings) -> AsyncIterator[Client]:
    async with h.in_process_worker(app_settings) as client:
        yield client


@pytest.fixture(scope="session")
def app_api(app_settings: Settings, app_worker: Client) -> Iterator[Api]:
    with serve(app_settings) as api:
        yield api
