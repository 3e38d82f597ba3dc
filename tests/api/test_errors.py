"""Every error status, in the one error shape, never a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from api.auth import mint_token
from domain.settings import Settings
from tests.api.support import Api, IdleApiFactory, new_owner, serve

pytestmark = pytest.mark.services

VALID = {"collection": "orders", "pipeline": [{"$match": {"paid": True}}]}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.text
    return error


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing bearer token"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid token"),
    ],
)
async def test_401_without_a_usable_token(
    api: Api, http: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await http.get(f"{api.url}/exports", headers=headers)
    error = assert_error(response, 401, "unauthorized")
    assert reason in error["message"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_401_for_expired_forged_and_incomplete_tokens(
    api: Api, http: httpx.AsyncClient
) -> None:
    owner = new_owner()
    secret = api.settings.api_jwt_secret
    forged = mint_token(
        "a-different-secret-of-32-bytes-or-more", owner.user_id, owner.tenant, timedelta(hours=1)
    )
    expired = api.headers(owner, ttl=timedelta(seconds=-120))  # beyond the 30 s leeway
    no_tenant = {"Authorization": "Bearer " + _token_without_tenant(secret)}
    quoted = {"Authorization": "Bearer " + mint_token(secret, "o'brien", "t", timedelta(hours=1))}

    for headers, reason in [
        (expired, "expired"),
        ({"Authorization": f"Bearer {forged}"}, "Signature verification failed"),
        (no_tenant, "tenant"),
        (quoted, "sub"),
    ]:
        response = await http.post(f"{api.url}/exports", json=VALID, headers=headers)
        assert reason in assert_error(response, 401, "unauthorized")["message"]


def _token_without_tenant(secret: str) -> str:
    return jwt.encode({"sub": "u", "exp": 4102444800}, secret, algorithm="HS256")


async def test_404_for_unknown_exports_and_routes(api: Api, http: httpx.AsyncClient) -> None:
    headers = api.headers(new_owner())
    for path in [f"/exports/exp_{'a' * 32}", "/exports/not-an-id", "/exports/..%2F..%2Fetc"]:
        assert_error(await http.get(f"{api.url}{path}", headers=headers), 404, "not_found")
    assert_error(await http.get(f"{api.url}/nowhere"), 404, "not_found")
    assert_error(await http.put(f"{api.url}/exports", headers=headers), 405, "method_not_allowed")


async def test_409_download_before_complete(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api()
    owner = new_owner()
    started = await http.post(f"{api.url}/exports", json=VALID, headers=api.headers(owner))
    export_id = started.json()["export_id"]

    response = await http.get(f"{api.url}/exports/{export_id}/download", headers=api.headers(owner))

    assert "PENDING" in assert_error(response, 409, "not_complete")["message"]


async def test_413_for_bodies_over_the_limit(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api(api_max_body_bytes=2048)
    headers = {**api.headers(new_owner()), "Content-Type": "application/json"}
    big = {**VALID, "report_id": "x" * 4000}

    declared = await http.post(f"{api.url}/exports", json=big, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        body = httpx.Request("POST", "/", json=big).content
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    streamed = await http.post(f"{api.url}/exports", content=chunks(), headers=headers)

    for response in (declared, streamed):
        assert assert_error(response, 413, "payload_too_large")["details"] == {"max_bytes": 2048}
    small = await http.post(f"{api.url}/exports/explain", json=VALID, headers=headers)
    assert small.status_code == 200


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{not json", "body"),
        ({"pipeline": []}, "body.collection"),
        ({"collection": "orders", "format": "xls"}, "body.format"),
        ({"collection": "orders", "pipeline": {"$match": {}}}, "body.pipeline"),
        ({"collection": "orders", "filename": "../etc/passwd"}, "body.filename"),
        ({"collection": "orders", "unknown": 1}, "body.unknown"),
    ],
)
async def test_422_for_invalid_bodies(
    api: Api, http: httpx.AsyncClient, body: dict[str, Any] | bytes, where: str
) -> None:
    headers = {**api.headers(new_owner()), "Content-Type": "application/json"}
    if isinstance(body, bytes):
        response = await http.post(f"{api.url}/exports", content=body, headers=headers)
    else:
        response = await http.post(f"{api.url}/exports", json=body, headers=headers)
    error = assert_error(response, 422, "invalid_request")
    assert error["message"].startswith(where)
    assert error["details"]


@pytest.mark.parametrize("path", ["/exports", "/exports/explain"])
async def test_422_names_the_path_and_reason_of_a_refused_stage(
    api: Api, http: httpx.AsyncClient, path: str
) -> None:
    body = {"collection": "orders", "pipeline": [{"$match": {}}, {"$out": "stolen"}]}
    response = await http.post(f"{api.url}{path}", json=body, headers=api.headers(new_owner()))

    error = assert_error(response, 422, "pipeline_refused")
    assert error["message"].startswith("pipeline[1]")
    assert "$out" in error["message"]
    assert error["details"]["path"].startswith("pipeline[1]")
    assert error["details"]["reason"]


async def test_422_for_an_invalid_idempotency_key(api: Api, http: httpx.AsyncClient) -> None:
    headers = {**api.headers(new_owner()), "Idempotency-Key": "x" * 201}
    response = await http.post(f"{api.url}/exports", json=VALID, headers=headers)
    assert_error(response, 422, "invalid_request")


@pytest.fixture(scope="module")
def dead_temporal_api(api_settings: Settings) -> Iterator[Api]:
    with serve(api_settings.model_copy(update={"temporal_address": "127.0.0.1:1"})) as api:
        yield api


async def test_503_when_temporal_is_unreachable(
    dead_temporal_api: Api, http: httpx.AsyncClient
) -> None:
    api = dead_temporal_api
    headers = api.headers(new_owner())

    assert (await http.get(f"{api.url}/healthz")).json() == {"status": "ok"}
    assert_error(await http.get(f"{api.url}/readyz"), 503, "temporal_unavailable")
    for method, path in [
        ("POST", "/exports"),
        ("GET", "/exports"),
        ("GET", f"/exports/exp_{'a' * 32}"),
        ("DELETE", f"/exports/exp_{'a' * 32}"),
    ]:
        response = await http.request(method, f"{api.url}{path}", json=VALID, headers=headers)
        assert_error(response, 503, "temporal_unavailable")
        assert response.headers["Retry-After"]
    # Validation and planning need no Temporal.
    assert (
        await http.post(f"{api.url}/exports/explain", json=VALID, headers=headers)
    ).status_code == 200
    bad = await http.post(f"{api.url}/exports", json={"pipeline": []}, headers=headers)
    assert bad.status_code == 422


async def test_readyz_when_temporal_is_up(api: Api, http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{api.url}/readyz")).json() == {"status": "ok"}
