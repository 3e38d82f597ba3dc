"""Tokens from an identity provider, through the HTTP API: a local JWKS server the test starts,
keys the test generates (RSA, EC P-256, Ed25519), a namespaced tenant claim, key rotation, and
every refusal: wrong algorithm, `none`, HS/RS confusion, wrong issuer or audience, expired,
unknown key, and a provider that is down (503, fail closed).

`POST /exports/explain` is the probe: it authenticates like every export endpoint, and its first
stage is the tenant filter built from the token, so the test sees whose request it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from domain.models import Owner
from domain.settings import Settings
from tests.api.jwks_server import (
    AUDIENCE,
    ISSUER,
    TENANT_CLAIM,
    JwksServer,
    SigningKey,
    jwks_server,
)
from tests.api.support import Api, serve

pytestmark = pytest.mark.services

RSA = SigningKey.generate("rsa-2026-01", "RS256")
EC = SigningKey.generate("ec-2026-01", "ES256")
ED = SigningKey.generate("ed-2026-01", "EdDSA")


def _settings(base: Settings, url: str, **overrides: Any) -> Settings:
    return base.model_copy(
        update={
            "api_jwks_url": url,
            "api_jwks_issuer": ISSUER,
            "api_jwks_audience": AUDIENCE,
            "api_jwks_tenant_claim": TENANT_CLAIM,
            "api_jwks_refresh_cooldown_seconds": 0,
            **overrides,
        }
    )


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    with jwks_server() as server:
        server.publish(RSA, EC, ED)
        yield server


async def _explain(http: httpx.AsyncClient, api: Api, token: str) -> httpx.Response:
    return await http.post(
        f"{api.url}/exports/explain",
        json={"collection": "orders"},
        headers={"Authorization": f"Bearer {token}"},
    )


def _tenant_filter(api: Api, tenant: str) -> dict[str, Any]:
    return {"$match": {api.settings.tenant_field: tenant}}


async def test_tokens_of_each_key_type_name_the_owner(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    with serve(_settings(api_settings, idp.url)) as api:
        for key in (RSA, EC, ED):
            answer = await _explain(http, api, key.token())
            assert answer.status_code == 200, (key.algorithm, answer.text)
            assert answer.json()["pipeline"][0] == _tenant_filter(api, "acme")
        other = await _explain(http, api, RSA.token({TENANT_CLAIM: "globex"}))
        assert other.json()["pipeline"][0] == _tenant_filter(api, "globex")
        # Service tokens with the shared secret still work beside the provider's.
        service = await http.post(
            f"{api.url}/exports/explain",
            json={"collection": "orders"},
            headers=api.headers(owner=_owner("svc", "initech")),
        )
        assert service.status_code == 200, service.text
        assert service.json()["pipeline"][0] == _tenant_filter(api, "initech")
    assert idp.fetches == 1  # one fetch, then the cached keys


def _owner(user: str, tenant: str) -> Owner:
    return Owner(user_id=user, tenant=tenant)


def _hs256_with_public_key(key: SigningKey) -> str:
    """The HS/RS confusion: an HS256 token whose HMAC secret is the provider's public key PEM
    (anyone can fetch it). PyJWT refuses to make one, so it is assembled by hand."""
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = json.loads(base64.urlsafe_b64decode(key.token().split(".")[1] + "==").decode())

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
        + "."
        + b64(json.dumps(payload).encode())
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _unsigned(key: SigningKey) -> str:
    _header, payload, _signature = key.token().split(".")
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{none}.{payload}."


async def test_refusals_name_what_is_wrong(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    stranger = SigningKey.generate(RSA.kid, "RS256")  # the provider's kid, another key
    cases: list[tuple[str, str, str]] = [
        ("wrong issuer", RSA.token(iss="https://evil.example/"), "Invalid issuer"),
        ("wrong audience", RSA.token(aud="another-app"), "Audience doesn't match"),
        ("no audience", RSA.token(aud=None), "aud"),
        ("expired", RSA.token(ttl=timedelta(minutes=-5)), "expired"),
        ("too long-lived", RSA.token(ttl=timedelta(days=3)), "lives longer than"),
        ("no tenant claim", RSA.token({TENANT_CLAIM: None}), TENANT_CLAIM),
        ("tenant with a slash", RSA.token({TENANT_CLAIM: "a/b"}), "slash"),
        ("alg none", _unsigned(RSA), "'none' is not accepted"),
        ("HS/RS confusion", _hs256_with_public_key(RSA), "Signature verification failed"),
        ("RS512 on an RS256 key", RSA.token(algorithm="RS512"), "does not match"),
        ("RS256 on the EC key", RSA.token(kid=EC.kid), "does not match"),
        ("ES256 token, RSA key", EC.token(kid=RSA.kid), "does not match"),
        ("unknown key", SigningKey.generate("nobody", "RS256").token(), "not among"),
        ("the provider's kid, another key", stranger.token(), "Signature verification failed"),
        ("PS256 not configured", RSA.token(algorithm="PS256"), "'PS256' is not accepted"),
    ]
    algorithms = "RS256,RS512,ES256,EdDSA"  # RS512 is accepted, but not with an RS256 key
    with serve(_settings(api_settings, idp.url, api_jwks_algorithms=algorithms)) as api:
        for name, token, fragment in cases:
            answer = await _explain(http, api, token)
            assert answer.status_code == 401, (name, answer.text)
            assert fragment in answer.json()["error"]["message"], (name, answer.text)


async def test_hs256_can_be_turned_off(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    with serve(_settings(api_settings, idp.url, api_jwt_accept_hs256=False)) as api:
        answer = await http.post(
            f"{api.url}/exports/explain",
            json={"collection": "orders"},
            headers=api.headers(owner=_owner("svc", "initech")),
        )
        assert answer.status_code == 401
        assert "(HS256) tokens are not accepted" in answer.json()["error"]["message"]
        assert (await _explain(http, api, ED.token())).status_code == 200


async def test_custom_user_claim(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    settings = _settings(
        api_settings, idp.url, api_jwks_user_claim="email", api_jwks_tenant_claim="org_id"
    )
    token = RSA.token(email="alice@acme.example", org_id="org_42", sub=None)
    with serve(settings) as api:
        answer = await _explain(http, api, token)
        assert answer.status_code == 200, answer.text
        assert answer.json()["pipeline"][0] == _tenant_filter(api, "org_42")
        missing = await _explain(http, api, RSA.token(org_id="org_42"))  # no email claim
        assert missing.status_code == 401
        assert "email" in missing.json()["error"]["message"]


async def test_key_rotation_is_picked_up_on_an_unknown_kid(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    new = SigningKey.generate("rsa-2026-02", "RS256")
    with serve(_settings(api_settings, idp.url)) as api:
        assert (await _explain(http, api, RSA.token())).status_code == 200
        assert idp.fetches == 1
        idp.publish(new, EC, ED)  # the provider rotates: the old RSA key is gone
        answer = await _explain(http, api, new.token())
        assert answer.status_code == 200, answer.text
        assert idp.fetches == 2  # fetched again because the kid was unknown
        retired = await _explain(http, api, RSA.token())
        assert retired.status_code == 401
        assert "not among the identity provider's keys" in retired.json()["error"]["message"]


async def test_unknown_kids_cannot_hammer_the_provider(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    settings = _settings(api_settings, idp.url, api_jwks_refresh_cooldown_seconds=60)
    with serve(settings) as api:
        assert (await _explain(http, api, RSA.token())).status_code == 200
        for n in range(10):
            forged = SigningKey.generate(f"forged-{n}", "ES256").token()
            assert (await _explain(http, api, forged)).status_code == 401
    assert idp.fetches == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_provider_that_is_down_fails_closed_with_503(
    api_settings: Settings, idp: JwksServer, http: httpx.AsyncClient
) -> None:
    down = f"http://127.0.0.1:{_closed_port()}/.well-known/jwks.json"
    with serve(_settings(api_settings, down, api_jwks_timeout_seconds=2)) as api:
        answer = await _explain(http, api, RSA.token())
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "identity_provider_unavailable"
        assert "API_JWKS_URL" in error["message"]
        assert down in error["message"]
        assert answer.headers["Retry-After"]
        # The shared-secret tokens do not depend on the provider.
        service = await http.post(
            f"{api.url}/exports/explain",
            json={"collection": "orders"},
            headers=api.headers(owner=_owner("svc", "initech")),
        )
        assert service.status_code == 200
    for broken in ("500", "garbage"):
        idp.broken = broken
        with serve(_settings(api_settings, idp.url)) as api:
            answer = await _explain(http, api, RSA.token())
            assert answer.status_code == 503, (broken, answer.text)
            assert answer.json()["error"]["code"] == "identity_provider_unavailable"


def test_incomplete_provider_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="API_JWKS_AUDIENCE"):
        Settings(api_jwks_url="https://idp.example/jwks", api_jwks_issuer=ISSUER)
    with pytest.raises(ValueError, match="no token could be accepted"):
        Settings(api_jwt_accept_hs256=False)
    with pytest.raises(ValueError, match="only name asymmetric algorithms"):
        Settings(
            api_jwks_url="https://idp.example/jwks",
            api_jwks_issuer=ISSUER,
            api_jwks_audience=AUDIENCE,
            api_jwks_algorithms="RS256,HS256",
        )
