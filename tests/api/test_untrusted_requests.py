"""Untrusted requests, round 2, through the HTTP API against the local servers: numbers carried
as written (on mongo-java-server), quotas enforced at run time, the per-tenant running limit,
the formula guard in a downloaded file, token rules, fail-closed secrets, bounded planning.

The refusals of each class with their path and reason are also in the hostile corpus
(`tests/reliability/corpus`, run by `tests/reliability/test_hostile_input.py`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from pymongo import MongoClient

from domain.settings import DEVELOPMENT_SECRET, Settings
from tests.api.support import Api, IdleApiFactory, eventually, new_owner, serve, wait_for_export
from tests.integration import export_harness as h

pytestmark = pytest.mark.services

REPO_ROOT = h.REPO_ROOT


def _ended(view: dict[str, Any]) -> bool:
    return view["status"] in {"COMPLETED", "FAILED", "CANCELLED"}


@pytest.fixture
async def worker_api(api_settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    """An app and an in-process worker on a task queue of their own, with the test's overrides
    (`@pytest.mark.parametrize("worker_api", [{...}], indirect=True)`)."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    settings = api_settings.model_copy(
        update={"temporal_task_queue": f"untrusted-{uuid.uuid4().hex[:8]}", **overrides}
    )
    async with h.in_process_worker(settings):
        with serve(settings) as api:
            yield api


@pytest.fixture
def source(api_settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(api_settings, unique_name)


# -- numbers: carried as written end to end (mongo-java-server), or refused with their path ---

JAVA_URI = os.environ.get("SECOND_MONGODB_URI", "mongodb://127.0.0.1:27018/")


@pytest.mark.second_engine
@pytest.mark.parametrize("worker_api", [{"mongodb_uri": JAVA_URI}], indirect=True)
async def test_infinity_reaches_the_database_as_written(
    worker_api: Api, http: httpx.AsyncClient, unique_name: str
) -> None:
    owner = new_owner()
    settings = worker_api.settings
    h.seed(
        settings,
        unique_name,
        [{"_id": i, "v": v} for i, v in enumerate([1.0, 1e308, -math.inf, math.inf, 5.0])],
        tenant=owner.tenant,
    )
    try:
        body = {
            "collection": unique_name,
            "pipeline": [{"$match": {"v": {"$lt": {"$numberDouble": "Infinity"}}}}],
            "columns": [{"path": "_id"}, {"path": "v"}],
        }
        explained = await http.post(
            f"{worker_api.url}/exports/explain", json=body, headers=worker_api.headers(owner)
        )
        assert explained.status_code == 200, explained.text
        assert {"$lt": {"$numberDouble": "Infinity"}} in [
            stage.get("$match", {}).get("v") for stage in explained.json()["pipeline"]
        ]
        started = await http.post(
            f"{worker_api.url}/exports", json=body, headers=worker_api.headers(owner)
        )
        assert started.status_code == 202, started.text
        view = await wait_for_export(http, worker_api, owner, started.json()["export_id"], _ended)
        assert view["status"] == "COMPLETED", view
        assert view["rows"] == 4  # every finite value and -Infinity: nothing became null
        download = await http.get(view["download_url"])
        rows = list(csv.reader(io.StringIO(download.text)))
        assert rows == [
            ["_id", "v"],
            ["0", "1.0"],
            ["1", "1e+308"],
            ["2", "-Infinity"],
            ["4", "5.0"],
        ]

        bare = '{"collection": "%s", "pipeline": [{"$match": {"v": {"$lt": Infinity}}}]}'
        refused = await http.post(
            f"{worker_api.url}/exports",
            content=bare % unique_name,
            headers={**worker_api.headers(owner), "Content-Type": "application/json"},
        )
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["details"]["path"] == "pipeline[0].$match.v.$lt"
        assert "NaN, Infinity and numbers too large" in error["details"]["reason"]
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(JAVA_URI)
        client[settings.mongodb_database][unique_name].drop()
        client.close()


# -- quotas: shown by explain, enforced while running -----------------------------------------


@pytest.mark.parametrize(
    "worker_api", [{"export_max_rows": 10, "export_max_columns": 3}], indirect=True
)
async def test_quotas_are_shown_and_fail_the_export_with_the_upload_aborted(
    worker_api: Api, http: httpx.AsyncClient, source: str
) -> None:
    owner = new_owner()
    settings = worker_api.settings
    h.seed(settings, source, [{"_id": i, "a": i, "b": i, "c": i, "d": i} for i in range(30)],
           tenant=owner.tenant)  # fmt: skip
    headers = worker_api.headers(owner)
    explained = await http.post(
        f"{worker_api.url}/exports/explain", json={"collection": source}, headers=headers
    )
    assert explained.json()["quotas"] == {
        "max_rows": 10,
        "max_bytes": settings.export_max_bytes,
        "max_columns": 3,
    }

    too_many_rows = {"collection": source, "columns": [{"path": "_id"}]}
    too_many_columns = {"collection": source}
    for body, named in (
        (too_many_rows, "EXPORT_MAX_ROWS"),
        (too_many_columns, "EXPORT_MAX_COLUMNS"),
    ):
        started = await http.post(f"{worker_api.url}/exports", json=body, headers=headers)
        assert started.status_code == 202, started.text
        export_id = started.json()["export_id"]
        view = await wait_for_export(http, worker_api, owner, export_id, _ended)
        assert view["status"] == "FAILED", view
        assert named in view["error"], view["error"]
        prefix = f"{settings.export_prefix}{owner.tenant}/{export_id}/"

        async def open_uploads(prefix: str = prefix) -> list[Any]:
            return h.uploads_under(settings, prefix)

        # FAILED is shown as the export fails; the abort follows it (the workflow closes after)
        await eventually(open_uploads, lambda uploads: uploads == [], within=60)


# -- the per-tenant running-export limit ------------------------------------------------------


async def test_a_tenant_has_a_running_limit_beside_each_user(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(max_running_exports_per_user=5, max_running_exports_per_tenant=2)
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    users = [new_owner(tenant) for _ in range(3)]
    for owner in users[:2]:
        started = await http.post(
            f"{api.url}/exports", json={"collection": "orders"}, headers=api.headers(owner)
        )
        assert started.status_code == 202, started.text
    third = await http.post(
        f"{api.url}/exports", json={"collection": "orders"}, headers=api.headers(users[2])
    )
    assert third.status_code == 429, third.text
    assert third.headers["Retry-After"]
    assert third.json()["error"]["details"] == {"running": 2, "limit": 2, "scope": "tenant"}
    elsewhere = new_owner(f"tenant-{uuid.uuid4().hex[:8]}")
    other = await http.post(
        f"{api.url}/exports", json={"collection": "orders"}, headers=api.headers(elsewhere)
    )
    assert other.status_code == 202, other.text


# -- the formula guard, in the file a user downloads ------------------------------------------

GUARDED = ["＝1+2", "＋1", "－1", "＠SUM(A1)", "=1+2", "\tx", "plain", "a＝b"]


async def test_a_downloaded_csv_guards_the_full_width_triggers(
    worker_api: Api, http: httpx.AsyncClient, source: str
) -> None:
    owner = new_owner()
    h.seed(worker_api.settings, source, [{"_id": i, "s": s} for i, s in enumerate(GUARDED)],
           tenant=owner.tenant)  # fmt: skip
    body = {"collection": source, "columns": [{"path": "s"}]}
    started = await http.post(
        f"{worker_api.url}/exports", json=body, headers=worker_api.headers(owner)
    )
    view = await wait_for_export(http, worker_api, owner, started.json()["export_id"], _ended)
    assert view["status"] == "COMPLETED", view
    cells = [row[0] for row in csv.reader(io.StringIO((await http.get(view["download_url"])).text))]
    assert cells == ["s", "'＝1+2", "'＋1", "'－1", "'＠SUM(A1)", "'=1+2", "'\tx", "plain", "a＝b"]


# -- tokens -----------------------------------------------------------------------------------


def _token(secret: str, **claims: Any) -> dict[str, str]:
    now = datetime.now(UTC)
    payload = {"sub": "u1", "tenant": "tenant-a", "iat": now, "exp": now + timedelta(hours=1)}
    payload.update(claims)
    return {"Authorization": f"Bearer {jwt.encode(payload, secret, algorithm='HS256')}"}


async def test_issuer_audience_leeway_and_lifetime(
    api_settings: Settings, http: httpx.AsyncClient
) -> None:
    settings = api_settings.model_copy(
        update={
            "api_jwt_issuer": "https://idp.example.com",
            "api_jwt_audience": "exports",
            "api_jwt_leeway_seconds": 30,
            "api_jwt_max_lifetime_seconds": 3600,
        }
    )
    secret = settings.api_jwt_secret
    now = datetime.now(UTC)
    good = {"iss": "https://idp.example.com", "aud": "exports"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (good, 200, ""),
        ({}, 401, "iss"),
        ({"iss": "https://idp.example.com"}, 401, "aud"),
        ({**good, "aud": "another"}, 401, "Audience doesn't match"),
        ({**good, "iat": now - timedelta(minutes=5), "exp": now - timedelta(seconds=10)}, 200, ""),
        ({**good, "iat": now - timedelta(minutes=5), "exp": now - timedelta(seconds=90)}, 401, "expired"),
        ({**good, "exp": now + timedelta(hours=2)}, 401, "lives longer than 3600 s"),
        ({**good, "exp": str(int((now + timedelta(minutes=5)).timestamp()))}, 401, "'exp' must be a number"),
    ]  # fmt: skip
    with serve(settings) as api:
        for claims, status, fragment in cases:
            answer = await http.post(
                f"{api.url}/exports/explain",
                json={"collection": "orders"},
                headers=_token(secret, **claims),
            )
            assert answer.status_code == status, (claims, answer.text)
            if status == 401:
                assert fragment in answer.json()["error"]["message"], (claims, answer.text)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn exits
def test_the_api_refuses_to_start_with_the_development_secret(api_settings: Settings) -> None:
    insecure = api_settings.model_copy(update={"api_jwt_secret": DEVELOPMENT_SECRET})
    with pytest.raises(RuntimeError, match="did not start"), serve(insecure):
        pass
    allowed = insecure.model_copy(update={"development_mode": True})
    with serve(allowed) as api:
        assert httpx.get(f"{api.url}/healthz").status_code == 200


def test_the_worker_refuses_to_start_with_the_development_secret(api_settings: Settings) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": api_settings.temporal_address,
        "WEBHOOK_SIGNING_SECRET": DEVELOPMENT_SECRET,
        "DEVELOPMENT_MODE": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "workflows.worker", "--log-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "WEBHOOK_SIGNING_SECRET still hold the published development secret" in done.stderr


# -- planning is bounded ----------------------------------------------------------------------


async def test_planning_that_takes_too_long_answers_503(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(api_planning_threads=1, api_planning_timeout_seconds=0.05)
    # ~850 KB of small objects: about 0.7 s of planning on an idle machine, far over 0.05 s
    branches = [{"a": i, "b": {"$gt": i}} for i in range(25_000)]
    body = {"collection": "orders", "pipeline": [{"$match": {"$or": branches}}]}
    answer = await http.post(
        f"{api.url}/exports/explain", json=body, headers=api.headers(new_owner())
    )
    assert answer.status_code == 503, answer.text[:300]
    assert answer.json()["error"]["code"] == "planning_busy"
    assert answer.headers["Retry-After"]
    small = await http.post(
        f"{api.url}/exports/explain",
        json={"collection": "orders"},
        headers=api.headers(new_owner()),
    )
    assert small.status_code in (200, 503)  # the slot frees once the slow plan's thread ends
