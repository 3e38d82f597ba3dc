"""Isolation across users and tenants, and presigned links that expire when they say.

A victim has a completed export and a running one. Every intruder (same tenant, other user;
same user id, other tenant; look-alike identities differing in case or made of wildcard
characters) probes every per-export endpoint and the list: nothing is visible, cancellable or
downloadable, a repeated Idempotency-Key gives the intruder an export of their own, the
victim's page token is refused, and a presigned link of the victim's cannot be pointed at
another object. Afterwards the victim's exports are untouched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from domain.models import Owner
from domain.settings import Settings
from tests.api.support import Api, serve, terminate_running
from tests.integration import export_harness as h
from tests.reliability.results import Results
from workflows.export_workflow import ExportWorkflow

pytestmark = [pytest.mark.reliability, pytest.mark.services]

PRESIGN_EXPIRY_SECONDS = 2


@pytest.fixture(scope="module")
def victim() -> Owner:
    return Owner(user_id=f"victim-{uuid.uuid4().hex[:8]}", tenant=f"tenant-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def source(app_settings: Settings, victim: Owner) -> Iterator[str]:
    name = f"reliability_isolation_{uuid.uuid4().hex[:8]}"
    h.seed(app_settings, name, [{"_id": i, "v": f"secret-{i}"} for i in range(50)], victim.tenant)
    yield name
    h.drop(app_settings, name)


@pytest.fixture(scope="module")
def idle_api(app_settings: Settings) -> Iterator[Api]:
    """The API on a task queue no worker polls: its exports stay running."""
    queue = f"isolation-idle-{uuid.uuid4().hex[:8]}"
    with serve(app_settings.model_copy(update={"temporal_task_queue": queue})) as api:
        yield api


async def _start(
    http: httpx.AsyncClient, api: Api, owner: Owner, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        f"{api.url}/exports", json=body, headers={**api.headers(owner), **headers}
    )


async def _completed(
    http: httpx.AsyncClient, api: Api, worker: Client, owner: Owner, body: dict[str, Any]
) -> str:
    answer = await _start(http, api, owner, body)
    assert answer.status_code == 202, answer.text
    export_id: str = answer.json()["export_id"]
    await asyncio.wait_for(
        worker.get_workflow_handle_for(ExportWorkflow.run, export_id).result(), 60
    )
    return export_id


def _intruders(victim: Owner) -> dict[str, Owner]:
    other_user = f"intruder-{uuid.uuid4().hex[:8]}"
    return {
        "same tenant, other user": Owner(user_id=other_user, tenant=victim.tenant),
        "same user id, other tenant": Owner(user_id=victim.user_id, tenant="tenant-other"),
        "other user, other tenant": Owner(user_id=other_user, tenant="tenant-other"),
        "user id in upper case": Owner(user_id=victim.user_id.upper(), tenant=victim.tenant),
        "tenant in upper case": Owner(user_id=victim.user_id, tenant=victim.tenant.upper()),
        "wildcards %": Owner(user_id="%", tenant="%"),
        "wildcards *": Owner(user_id="*", tenant="*"),
        "wildcards _": Owner(user_id="_" * len(victim.user_id), tenant="_" * len(victim.tenant)),
    }


async def _listed_ids(http: httpx.AsyncClient, api: Api, owner: Owner) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        params = {"limit": "100", **({"page_token": token} if token else {})}
        page = await http.get(f"{api.url}/exports", params=params, headers=api.headers(owner))
        assert page.status_code == 200, page.text
        ids += [item["export_id"] for item in page.json()["items"]]
        token = page.json()["next_page_token"]
        if not token:
            return ids


async def test_nothing_crosses_users_or_tenants(
    app_api: Api,
    app_worker: Client,
    idle_api: Api,
    victim: Owner,
    source: str,
    results: Results,
) -> None:
    body = {"collection": source, "format": "jsonl"}
    key = f"victim-key-{uuid.uuid4().hex[:8]}"  # the intruders' identities repeat across runs
    probes: list[dict[str, Any]] = []
    leaks: list[str] = []
    async with httpx.AsyncClient(timeout=60) as http:
        done_id = await _completed(http, app_api, app_worker, victim, body)
        running = await _start(http, idle_api, victim, body, **{"Idempotency-Key": key})
        assert running.status_code == 202, running.text
        running_id = running.json()["export_id"]
        for _ in range(2):  # a second page for the page-token probe
            await _start(http, idle_api, victim, {**body, "report_id": uuid.uuid4().hex})
        victim_page = await http.get(
            f"{idle_api.url}/exports?limit=1", headers=idle_api.headers(victim)
        )
        victim_token = victim_page.json()["next_page_token"]
        victim_link = (
            await http.get(f"{app_api.url}/exports/{done_id}", headers=app_api.headers(victim))
        ).json()["download_url"]

        for who, intruder in _intruders(victim).items():
            for api in (app_api, idle_api):
                headers = api.headers(intruder)
                for export_id in (done_id, running_id):
                    for method, path in [
                        ("GET", f"/exports/{export_id}"),
                        ("DELETE", f"/exports/{export_id}"),
                        ("GET", f"/exports/{export_id}/download"),
                    ]:
                        answer = await http.request(method, f"{api.url}{path}", headers=headers)
                        probes.append(
                            {"who": who, "probe": f"{method} {path}", "status": answer.status_code}
                        )
                        if answer.status_code != 404 or export_id in answer.text.replace(
                            f"export {export_id!r} not found", ""
                        ):
                            leaks.append(
                                f"{who}: {method} {path} -> {answer.status_code} {answer.text[:200]}"
                            )
                listed = await _listed_ids(http, api, intruder)
                probes.append({"who": who, "probe": "GET /exports", "status": 200})
                if {done_id, running_id} & set(listed):
                    leaks.append(f"{who}: GET /exports lists the victim's exports")
                refused = await http.get(
                    f"{api.url}/exports", params={"page_token": victim_token}, headers=headers
                )
                probes.append(
                    {
                        "who": who,
                        "probe": "GET /exports?page_token=<victim's>",
                        "status": refused.status_code,
                    }
                )
                if refused.status_code != 422:
                    leaks.append(f"{who}: the victim's page token answered {refused.status_code}")
            same_key = await _start(http, idle_api, intruder, body, **{"Idempotency-Key": key})
            probes.append(
                {
                    "who": who,
                    "probe": "POST /exports with the victim's Idempotency-Key",
                    "status": same_key.status_code,
                }
            )
            if same_key.status_code != 202 or same_key.json()["export_id"] == running_id:
                leaks.append(f"{who}: the victim's Idempotency-Key gave {same_key.text[:200]}")

        # A link of the victim's, pointed at another object, is refused.
        neighbour = Owner(user_id=f"neighbour-{uuid.uuid4().hex[:8]}", tenant=victim.tenant)
        other_id = await _completed(http, app_api, app_worker, neighbour, body)
        other_key = (
            await app_worker.get_workflow_handle_for(ExportWorkflow.run, other_id).result()
        ).object_key
        assert other_key is not None
        parts = urlsplit(victim_link)
        retargeted = urlunsplit(parts._replace(path=f"/{app_api.settings.s3_bucket}/{other_key}"))
        retarget = await http.get(retargeted)
        probes.append(
            {
                "who": "holder of the victim's link",
                "probe": "the link pointed at another key",
                "status": retarget.status_code,
            }
        )
        if retarget.status_code != 403:
            leaks.append(f"a presigned link pointed at another key answered {retarget.status_code}")

        # The victim's exports are untouched.
        described = await app_worker.get_workflow_handle(running_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING, "an intruder cancelled it"
        mine = await http.get(
            f"{app_api.url}/exports/{done_id}/download", headers=app_api.headers(victim)
        )
        assert mine.status_code == 302
        assert (await http.get(mine.headers["location"])).status_code == 200
    await terminate_running(app_worker, f"TaskQueue = '{idle_api.settings.temporal_task_queue}'")

    results.section("isolation").update(
        {
            "intruders": list(_intruders(victim)),
            "probes": len(probes),
            "probes_refused": sum(
                1
                for p in probes
                if p["status"] in (403, 404, 422)
                or p["probe"] == "GET /exports"
                or p["probe"].startswith("POST")
            ),
            "leaks": leaks,
            "endpoints": sorted(
                {p["probe"].replace(done_id, "{id}").replace(running_id, "{id}") for p in probes}
            ),
        }
    )
    assert not leaks, "\n".join(leaks)


async def test_presigned_links_expire_when_they_say(
    app_api: Api, app_worker: Client, victim: Owner, source: str, results: Results
) -> None:
    short = app_api.settings.model_copy(update={"presign_expiry_seconds": PRESIGN_EXPIRY_SECONDS})
    owner = Owner(user_id=f"linker-{uuid.uuid4().hex[:8]}", tenant=victim.tenant)
    async with httpx.AsyncClient(timeout=30) as http:
        export_id = await _completed(
            http, app_api, app_worker, owner, {"collection": source, "format": "jsonl"}
        )
        with serve(short) as api:
            view = (
                await http.get(f"{api.url}/exports/{export_id}", headers=api.headers(owner))
            ).json()
            redirect = await http.get(
                f"{api.url}/exports/{export_id}/download", headers=api.headers(owner)
            )
        issued = time.time()
        link, expires_at = view["download_url"], datetime.fromisoformat(view["download_expires_at"])
        before = await http.get(link)
        via_redirect = await http.get(redirect.headers["location"])
        waited = max(0.0, expires_at.timestamp() - time.time()) + 1.5
        await asyncio.sleep(waited)
        after = await http.get(link)
        after_redirect = await http.get(redirect.headers["location"])
    results.section("isolation")["presigned_expiry"] = {
        "expiry_seconds": PRESIGN_EXPIRY_SECONDS,
        "before": [before.status_code, via_redirect.status_code],
        "after": [after.status_code, after_redirect.status_code],
        "checked_after_seconds": round(time.time() - issued, 1),
    }
    assert "X-Amz-Expires=2" in link
    assert before.status_code == via_redirect.status_code == 200
    assert before.content
    assert before.content == via_redirect.content
    assert after.status_code == after_redirect.status_code == 403, after.text[:300]
