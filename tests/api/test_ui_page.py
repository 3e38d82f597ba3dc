"""The /ui page as HTTP sees it: a strict Content-Security-Policy, no inline script or style,
no secret in the page, a development sign-in that exists in development mode only, and the
JSON form of `/exports/{id}/download` the page uses."""

from __future__ import annotations

import re

import httpx
import pytest

from api.ui.routes import CONTENT_SECURITY_POLICY
from domain.settings import Settings
from tests.api.support import Api, new_owner, serve, wait_for_export
from tests.integration import export_harness

pytestmark = pytest.mark.services


async def test_the_page_has_a_strict_policy_and_nothing_inline(
    api: Api, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{api.url}/ui")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in policy
    assert "script-src 'self'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []  # every script is a file
    assert "<style" not in html
    assert " style=" not in html
    assert api.settings.api_jwt_secret not in html
    assert 'id="dev-form"' not in html  # not in development mode
    for static in ("app.js", "app.css"):
        served = await http.get(f"{api.url}/ui/static/{static}")
        assert served.status_code == 200
        assert served.headers["x-content-type-options"] == "nosniff"
    token_field = re.search(r"<textarea[^>]*id=\"token\"[^>]*>", html)
    assert token_field is not None
    assert "name=" not in token_field.group(0)


async def test_development_sign_in_only_in_development_mode(
    api: Api, api_settings: Settings, http: httpx.AsyncClient
) -> None:
    body = {"sub": "dev-user", "tenant": "dev-tenant"}
    refused = await http.post(f"{api.url}/ui/dev-login", json=body)
    assert refused.status_code == 404
    with serve(api_settings.model_copy(update={"development_mode": True})) as dev:
        assert 'id="dev-form"' in (await http.get(f"{dev.url}/ui")).text
        answer = await http.post(f"{dev.url}/ui/dev-login", json=body)
        assert answer.status_code == 200, answer.text
        token = answer.json()["token"]
        listed = await http.get(f"{dev.url}/exports", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
        bad = await http.post(f"{dev.url}/ui/dev-login", json={"sub": "a'b", "tenant": "t"})
        assert bad.status_code == 401


async def test_download_as_json_for_the_page(
    api: Api, http: httpx.AsyncClient, collection: str
) -> None:
    owner = new_owner()
    export_harness.seed(api.settings, collection, [{"n": 1}], tenant=owner.tenant)
    started = await http.post(
        f"{api.url}/exports", json={"collection": collection}, headers=api.headers(owner)
    )
    export_id = started.json()["export_id"]
    await wait_for_export(http, api, owner, export_id, lambda v: v["status"] == "COMPLETED")
    url = f"{api.url}/exports/{export_id}/download"
    as_json = await http.get(url, headers={**api.headers(owner), "Accept": "application/json"})
    assert as_json.status_code == 200
    assert as_json.headers["cache-control"] == "no-store"
    link = as_json.json()["download_url"]
    assert (await http.get(link)).content == (
        await http.get(url, headers=api.headers(owner), follow_redirects=True)
    ).content
    stranger = await http.get(
        url, headers={**api.headers(new_owner()), "Accept": "application/json"}
    )
    assert stranger.status_code == 404
