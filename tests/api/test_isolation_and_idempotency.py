"""Who sees what, and repeating a request safely."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from api.visibility import owner_query
from domain.models import Owner
from tests.api.support import Api, IdleApiFactory, new_owner

pytestmark = pytest.mark.services


def _body(collection: str = "orders", **extra: Any) -> dict[str, Any]:
    return {"collection": collection, "pipeline": [{"$match": {"paid": True}}], **extra}


async def _start(http: httpx.AsyncClient, api: Api, owner: Owner, **headers: str) -> httpx.Response:
    return await http.post(
        f"{api.url}/exports", json=_body(), headers={**api.headers(owner), **headers}
    )


async def test_other_users_and_tenants_get_404_and_an_empty_list(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api()
    owner = new_owner("tenant-a")
    export_id = (await _start(http, api, owner)).json()["export_id"]
    same_tenant = Owner(user_id=new_owner().user_id, tenant=owner.tenant)
    same_user_other_tenant = Owner(user_id=owner.user_id, tenant="tenant-b")

    for intruder in (same_tenant, same_user_other_tenant):
        headers = api.headers(intruder)
        for method, path in [
            ("GET", f"/exports/{export_id}"),
            ("DELETE", f"/exports/{export_id}"),
            ("GET", f"/exports/{export_id}/download"),
        ]:
            response = await http.request(method, f"{api.url}{path}", headers=headers)
            assert response.status_code == 404, (intruder, method, path, response.text)
            assert response.json()["error"] == {
                "status": 404,
                "code": "not_found",
                "message": f"export {export_id!r} not found",
            }
        listed = await http.get(f"{api.url}/exports", headers=headers)
        assert listed.json() == {"items": [], "next_page_token": None}

    mine = await http.get(f"{api.url}/exports", headers=api.headers(owner))
    assert [item["export_id"] for item in mine.json()["items"]] == [export_id]


async def test_a_page_token_is_bound_to_its_owner(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api()
    owner, other = new_owner(), new_owner()
    for _ in range(2):
        await _start(http, api, owner)
    page = await http.get(f"{api.url}/exports?limit=1", headers=api.headers(owner))
    token = page.json()["next_page_token"]
    assert token

    for headers, bad_token in [
        (api.headers(other), token),
        (api.headers(owner), token[:-2] + "AA"),
    ]:
        refused = await http.get(
            f"{api.url}/exports", params={"page_token": bad_token}, headers=headers
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_page_token"


def test_visibility_literals_are_escaped() -> None:
    query = owner_query(Owner(user_id="x' OR ExportOwner != 'y", tenant="t\\"))
    assert "ExportOwner = 'x\\' OR ExportOwner != \\'y'" in query
    assert "ExportTenant = 't\\\\'" in query


async def test_same_idempotency_key_gives_the_same_export(
    idle_api: IdleApiFactory, http: httpx.AsyncClient, temporal: Client
) -> None:
    api = idle_api()
    owner = new_owner()
    key = {"Idempotency-Key": "order-export 2024-05-01 #1"}

    first, second = await asyncio.gather(
        _start(http, api, owner, **key), _start(http, api, owner, **key)
    )
    third = await _start(http, api, owner, **key)

    responses = [first, second, third]
    assert [r.status_code for r in responses] == [202, 202, 202], [r.text for r in responses]
    ids = {r.json()["export_id"] for r in responses}
    assert len(ids) == 1
    assert third.headers["Idempotent-Replayed"] == "true"
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 2
    export_id = ids.pop()
    workflows = [w async for w in temporal.list_workflows(f"WorkflowId = '{export_id}'")]
    assert len(workflows) == 1

    other_user = await _start(http, api, new_owner(), **key)
    assert other_user.json()["export_id"] != export_id


async def test_same_idempotency_key_with_another_body_is_a_conflict(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api()
    owner = new_owner()
    headers = {**api.headers(owner), "Idempotency-Key": "k-1"}
    assert (await http.post(f"{api.url}/exports", json=_body(), headers=headers)).status_code == 202

    changed = await http.post(f"{api.url}/exports", json=_body(format="jsonl"), headers=headers)

    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    same_with_defaults = await http.post(
        f"{api.url}/exports", json=_body(format="csv", compression="none"), headers=headers
    )
    assert same_with_defaults.status_code == 202


async def test_a_repeated_key_does_not_count_against_the_running_limit(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(max_running_exports_per_user=1)
    owner = new_owner()
    first = await _start(http, api, owner, **{"Idempotency-Key": "only"})
    again = await _start(http, api, owner, **{"Idempotency-Key": "only"})
    assert again.json()["export_id"] == first.json()["export_id"]
    assert (await _start(http, api, owner)).status_code == 429


async def test_running_exports_beyond_the_limit_get_429(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(max_running_exports_per_user=2)
    owner = new_owner()

    statuses = [(await _start(http, api, owner)).status_code for _ in range(2)]
    refused = await _start(http, api, owner)

    assert statuses == [202, 202]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"]["code"] == "too_many_running_exports"
    assert refused.json()["error"]["details"] == {"running": 2, "limit": 2, "scope": "user"}
    # Another user, and the same user id in another tenant, have slots of their own.
    assert (await _start(http, api, new_owner())).status_code == 202
    assert (await _start(http, api, Owner(user_id=owner.user_id, tenant="t2"))).status_code == 202


async def test_concurrent_starts_respect_the_limit(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(max_running_exports_per_user=3)
    owner = new_owner()

    responses = await asyncio.gather(*(_start(http, api, owner) for _ in range(8)))

    assert sorted(r.status_code for r in responses) == [202] * 3 + [429] * 5


async def test_an_export_that_just_ended_frees_its_slot_at_once(
    idle_api: IdleApiFactory, http: httpx.AsyncClient, temporal: Client
) -> None:
    api = idle_api(max_running_exports_per_user=1)
    owner = new_owner()
    first = await _start(http, api, owner)
    assert first.status_code == 202
    assert (await _start(http, api, owner)).status_code == 429
    # Ended well within the limiter's visibility grace period (10 s): the slot is free again.
    await temporal.get_workflow_handle(first.json()["export_id"]).terminate("ended for the test")
    assert (await _start(http, api, owner)).status_code == 202
