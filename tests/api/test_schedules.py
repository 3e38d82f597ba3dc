"""Recurring exports against the real Temporal dev server: Temporal Schedules whose runs are
ordinary exports. Short intervals and "run now"; every wait is for a condition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import Client

from domain.models import Owner
from domain.settings import Settings
from tests.api.support import (
    Api,
    IdleApiFactory,
    delete_schedules_on,
    eventually,
    new_owner,
    serve,
    wait_for_export,
)
from tests.integration import export_harness

pytestmark = pytest.mark.services

ROWS = 30


@pytest.fixture(scope="module")
async def fast_api(api_settings: Settings, temporal: Client) -> AsyncIterator[Api]:
    """The API tests' app (its queue has the in-process worker) with 1 s intervals allowed."""
    settings = api_settings.model_copy(update={"schedule_min_interval_seconds": 1})
    with serve(settings) as served:
        yield served
    await delete_schedules_on(temporal, {settings.temporal_task_queue})


def _body(collection: str, **timing: Any) -> dict[str, Any]:
    return {
        "export": {
            "collection": collection,
            "pipeline": [{"$match": {"n": {"$gte": 0}}}],
            "columns": [{"path": "n"}, {"path": "name"}],
            "filename": "weekly.csv",
        },
        **(timing or {"interval_seconds": 3600}),
    }


def _seed(api: Api, collection: str, owner: Owner) -> None:
    docs = [{"n": n, "name": f"row {n}"} for n in range(ROWS)]
    export_harness.seed(api.settings, collection, docs, tenant=owner.tenant)


async def _create(
    http: httpx.AsyncClient, api: Api, owner: Owner, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    response = await http.post(
        f"{api.url}/schedules", json=body, headers={**api.headers(owner), **headers}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _schedule(http: httpx.AsyncClient, api: Api, owner: Owner, sid: str) -> dict[str, Any]:
    response = await http.get(f"{api.url}/schedules/{sid}", headers=api.headers(owner))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def _wait_schedule(
    http: httpx.AsyncClient,
    api: Api,
    owner: Owner,
    sid: str,
    until: Callable[[dict[str, Any]], bool],
    within: float = 120,
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            view = await _schedule(http, api, owner, sid)
            if until(view):
                return view
            await asyncio.sleep(0.3)


async def _exports_of(http: httpx.AsyncClient, api: Api, owner: Owner) -> list[dict[str, Any]]:
    response = await http.get(f"{api.url}/exports?limit=100", headers=api.headers(owner))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_run_now_makes_an_ordinary_export_with_the_runs_date_in_its_filename(
    fast_api: Api, http: httpx.AsyncClient, collection: str
) -> None:
    owner = new_owner()
    _seed(fast_api, collection, owner)
    created = await _create(http, fast_api, owner, _body(collection))
    sid = created["schedule_id"]
    assert sid.startswith("sch_")
    assert created["overlap"] == "skip"
    assert created["catchup_window_seconds"] == fast_api.settings.schedule_catchup_window_seconds
    assert created["next_runs"], "an active schedule shows its next runs"

    run = await http.post(f"{fast_api.url}/schedules/{sid}/run", headers=fast_api.headers(owner))
    assert run.status_code == 202, run.text
    view = await _wait_schedule(http, fast_api, owner, sid, lambda v: bool(v["recent_runs"]))
    export_id = view["recent_runs"][0]["export_id"]
    await eventually(  # the run starts its export a moment after it starts itself
        lambda: http.get(f"{fast_api.url}/exports/{export_id}", headers=fast_api.headers(owner)),
        lambda response: response.status_code == 200,
    )
    done = await wait_for_export(
        http, fast_api, owner, export_id, lambda v: v["status"] == "COMPLETED"
    )
    assert done["rows"] == ROWS
    download = await http.get(
        f"{fast_api.url}/exports/{export_id}/download", headers=fast_api.headers(owner)
    )
    assert download.status_code == 302
    location = download.headers["location"]
    scheduled = datetime.fromisoformat(view["recent_runs"][0]["scheduled_at"])
    expected = f"weekly-{scheduled.astimezone(UTC):%Y-%m-%d-%H%M}.csv"  # the schedule is in UTC
    assert httpx.URL(location).path.endswith("/" + expected), location
    content = (await http.get(location)).content
    assert content.count(b"\r\n") == ROWS + 1  # header and every row

    listed = await _exports_of(http, fast_api, owner)
    assert [item["export_id"] for item in listed] == [export_id]


async def test_n_runs_make_n_exports_and_pausing_stops_them(
    fast_api: Api, http: httpx.AsyncClient, collection: str
) -> None:
    owner = new_owner()
    _seed(fast_api, collection, owner)
    sid = (await _create(http, fast_api, owner, _body(collection, interval_seconds=2)))[
        "schedule_id"
    ]
    await _wait_schedule(http, fast_api, owner, sid, lambda v: v["runs"] >= 3, within=180)
    paused = await http.post(
        f"{fast_api.url}/schedules/{sid}/pause", headers=fast_api.headers(owner)
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True

    # Every run's export ends; then N runs are N completed exports, each with its own id.
    view = await _wait_schedule(
        http, fast_api, owner, sid, lambda v: not v["running_export_ids"], within=180
    )
    runs = view["runs"]
    exports = await eventually(  # visibility lists the last one a moment later
        lambda: _exports_of(http, fast_api, owner), lambda items: len(items) >= runs
    )
    for item in exports:
        await wait_for_export(
            http, fast_api, owner, item["export_id"], lambda v: v["status"] == "COMPLETED"
        )
    export_ids = {item["export_id"] for item in exports}
    assert len(export_ids) == len(exports) == runs
    assert {r["export_id"] for r in view["recent_runs"]} <= export_ids

    # Paused: four more intervals start nothing.
    with contextlib.suppress(TimeoutError):
        await _wait_schedule(http, fast_api, owner, sid, lambda v: v["runs"] != runs, within=8)
        pytest.fail("a paused schedule started a run")
    assert len(await _exports_of(http, fast_api, owner)) == runs

    resumed = await http.post(
        f"{fast_api.url}/schedules/{sid}/resume", headers=fast_api.headers(owner)
    )
    assert resumed.json()["paused"] is False
    await _wait_schedule(http, fast_api, owner, sid, lambda v: v["runs"] > runs)
    await http.post(f"{fast_api.url}/schedules/{sid}/pause", headers=fast_api.headers(owner))


async def test_an_outage_starts_one_run_and_a_worker_restart_loses_and_duplicates_none(
    idle_api: IdleApiFactory, http: httpx.AsyncClient, collection: str
) -> None:
    """No worker (an outage): the schedule's times keep coming, the one run waiting for a
    worker blocks the rest (SKIP). A worker starts, runs complete, the worker stops and starts
    again: every run made exactly one completed export."""
    api = idle_api(schedule_min_interval_seconds=1)
    owner = new_owner()
    _seed(api, collection, owner)
    sid = (await _create(http, api, owner, _body(collection, interval_seconds=1)))["schedule_id"]

    outage = await _wait_schedule(http, api, owner, sid, lambda v: v["skipped_overlapping"] >= 3)
    assert outage["runs"] == 1, "the missed times of one outage start one run"

    async with export_harness.in_process_worker(api.settings):
        await _wait_schedule(http, api, owner, sid, lambda v: v["runs"] >= 3)
    # The worker is gone mid-schedule: a run may be waiting, the others are skipped.
    await _wait_schedule(http, api, owner, sid, lambda v: bool(v["running_export_ids"]))
    async with export_harness.in_process_worker(api.settings):
        runs_now = (await _schedule(http, api, owner, sid))["runs"]
        await _wait_schedule(http, api, owner, sid, lambda v: v["runs"] >= runs_now + 2)
        await http.post(f"{api.url}/schedules/{sid}/pause", headers=api.headers(owner))
        view = await _wait_schedule(
            http, api, owner, sid, lambda v: not v["running_export_ids"], within=180
        )
        exports = await eventually(
            lambda: _exports_of(http, api, owner), lambda items: len(items) >= view["runs"]
        )
        for item in exports:
            await wait_for_export(
                http, api, owner, item["export_id"], lambda v: v["status"] == "COMPLETED"
            )
    ids = [item["export_id"] for item in exports]
    assert len(ids) == len(set(ids)) == view["runs"]


async def test_schedules_are_isolated_like_exports(
    fast_api: Api, http: httpx.AsyncClient, collection: str
) -> None:
    owner = new_owner()
    neighbour = new_owner()  # same tenant, another user
    stranger = Owner(user_id=owner.user_id, tenant="tenant-b")  # same user id, other tenant
    sid = (await _create(http, fast_api, owner, _body(collection)))["schedule_id"]
    for other in (neighbour, stranger):
        headers = fast_api.headers(other)
        base = f"{fast_api.url}/schedules/{sid}"
        answers = [
            await http.get(base, headers=headers),
            await http.patch(base, json={"interval_seconds": 7200}, headers=headers),
            await http.post(f"{base}/pause", headers=headers),
            await http.post(f"{base}/resume", headers=headers),
            await http.post(f"{base}/run", headers=headers),
            await http.delete(base, headers=headers),
        ]
        assert [a.status_code for a in answers] == [404] * 6
        unknown = await http.get(f"{fast_api.url}/schedules/sch_{'0' * 32}", headers=headers)
        assert answers[0].json()["error"]["code"] == unknown.json()["error"]["code"]
        listed = await http.get(f"{fast_api.url}/schedules", headers=headers)
        assert sid not in listed.text
    # The owner still has it, unchanged.
    mine = await _schedule(http, fast_api, owner, sid)
    assert mine["interval_seconds"] == 3600
    assert not mine["paused"]
    await eventually(  # visibility is eventually consistent
        lambda: http.get(f"{fast_api.url}/schedules", headers=fast_api.headers(owner)),
        lambda listed: sid in listed.text,
    )
    deleted = await http.delete(f"{fast_api.url}/schedules/{sid}", headers=fast_api.headers(owner))
    assert deleted.status_code == 204
    gone = await http.get(f"{fast_api.url}/schedules/{sid}", headers=fast_api.headers(owner))
    assert gone.status_code == 404


async def test_idempotency_key(fast_api: Api, http: httpx.AsyncClient, collection: str) -> None:
    owner = new_owner()
    key = {"Idempotency-Key": f"weekly-{collection}"}
    first = await _create(http, fast_api, owner, _body(collection), **key)
    again = await http.post(
        f"{fast_api.url}/schedules",
        json=_body(collection),
        headers={**fast_api.headers(owner), **key},
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["schedule_id"] == first["schedule_id"]
    different = await http.post(
        f"{fast_api.url}/schedules",
        json=_body(collection, interval_seconds=7200),
        headers={**fast_api.headers(owner), **key},
    )
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "idempotency_key_reused"
    someone_else = await _create(http, fast_api, new_owner(), _body(collection), **key)
    assert someone_else["schedule_id"] != first["schedule_id"]


async def test_limits_per_user_and_tenant(
    idle_api: IdleApiFactory, http: httpx.AsyncClient, collection: str
) -> None:
    api = idle_api(max_schedules_per_user=2, max_schedules_per_tenant=3)
    tenant = f"tenant-{collection}"
    alice, bob = new_owner(tenant), new_owner(tenant)
    for _ in range(2):
        await _create(http, api, alice, _body(collection))
    third = await http.post(
        f"{api.url}/schedules", json=_body(collection), headers=api.headers(alice)
    )
    assert third.status_code == 429, third.text
    assert third.json()["error"]["details"]["scope"] == "user"
    await _create(http, api, bob, _body(collection))
    fourth = await http.post(
        f"{api.url}/schedules", json=_body(collection), headers=api.headers(bob)
    )
    assert fourth.status_code == 429
    assert fourth.json()["error"]["details"]["scope"] == "tenant"


async def test_cron_in_a_time_zone_and_changes(
    fast_api: Api, http: httpx.AsyncClient, collection: str
) -> None:
    owner = new_owner()
    body = _body(collection, cron="0 7 * * MON", timezone="Europe/Paris")
    view = await _create(http, fast_api, owner, body)
    assert view["cron"] == "0 7 * * MON"
    assert view["interval_seconds"] is None
    first = datetime.fromisoformat(view["next_runs"][0])
    paris = first.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.weekday(), paris.hour, paris.minute) == (0, 7, 0)

    sid = view["schedule_id"]
    changed = await http.patch(
        f"{fast_api.url}/schedules/{sid}",
        json={"interval_seconds": 7200},
        headers=fast_api.headers(owner),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["cron"] is None
    assert changed.json()["interval_seconds"] == 7200
    assert changed.json()["timezone"] == "Europe/Paris"
    assert changed.json()["export"]["filename"] == "weekly.csv"


@pytest.mark.parametrize(
    ("timing", "path"),
    [
        ({"cron": "0 7 * * MON", "interval_seconds": 60}, "exactly one"),
        ({}, "exactly one"),
        ({"cron": "every monday"}, "five fields"),
        ({"cron": "99 7 * * MON"}, "refused"),
        ({"interval_seconds": 3600, "timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_invalid_timings_are_refused_with_a_reason(
    fast_api: Api, http: httpx.AsyncClient, timing: dict[str, Any], path: str
) -> None:
    body = {"export": {"collection": "orders"}, **timing}
    response = await http.post(
        f"{fast_api.url}/schedules", json=body, headers=fast_api.headers(new_owner())
    )
    assert response.status_code == 422, response.text
    assert path in response.text


async def test_an_interval_below_the_minimum_is_refused(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(schedule_min_interval_seconds=300)
    response = await http.post(
        f"{api.url}/schedules",
        json={"export": {"collection": "orders"}, "interval_seconds": 60},
        headers=api.headers(new_owner()),
    )
    assert response.status_code == 422
    assert "SCHEDULE_MIN_INTERVAL_SECONDS" in response.json()["error"]["message"]


async def test_a_refused_pipeline_creates_no_schedule(
    fast_api: Api, http: httpx.AsyncClient
) -> None:
    owner = new_owner()
    body = {
        "export": {"collection": "orders", "pipeline": [{"$out": "x"}]},
        "interval_seconds": 3600,
    }
    response = await http.post(
        f"{fast_api.url}/schedules", json=body, headers=fast_api.headers(owner)
    )
    assert response.status_code == 422
    assert "$out" in response.json()["error"]["message"]
