"""Bearer tokens: the caller's user id and tenant, from a JWT.

Two kinds of token are accepted (README, "Integrate with your app"):

- HS256 tokens signed with the shared API_JWT_SECRET, with the claims `sub` and `tenant`
  (service tokens, `exportctl token`); `API_JWT_ACCEPT_HS256=false` turns them off.
- Asymmetric tokens (RS256, ES256, EdDSA…) from the application's identity provider, verified
  against its JWKS (`api.identity_provider`), with the configured issuer and audience and the
  user id and tenant read from the claims API_JWKS_USER_CLAIM and API_JWKS_TENANT_CLAIM.

The token's `alg` header only chooses which of the two verifies it; each then pins its own
algorithms, so `none`, an HMAC keyed with a public key, or any other algorithm is refused.

The owner of every export comes from here and nowhere else. Identities are 1 to 200 printable
ASCII characters without quotes, backslashes or surrounding spaces: they are matched in Temporal
visibility queries, and the SQL visibility store (the dev server's) fails to match some values
holding quotes even when they are correctly escaped. A user with such an identity could list
nothing and would escape the running-export limit, so such tokens are refused.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SettingsDep
from api.errors import ApiError
from api.identity_provider import IdentityProviderKeys
from domain.models import Owner
from domain.settings import Settings

ALGORITHM = "HS256"
_IDENTITY = re.compile(r"[\x20-\x7e]{1,200}")
_UNMATCHABLE = frozenset("'\"\\")


def _is_identity(value: object) -> bool:
    return (
        isinstance(value, str)
        and _IDENTITY.fullmatch(value) is not None
        and value == value.strip()
        and not _UNMATCHABLE.intersection(value)
    )


bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A JWT: HS256 with the claims `sub` (user id), `tenant` and `exp`, or, when the "
    "API is configured with an identity provider (API_JWKS_URL), one of its tokens (RS256, "
    "ES256, EdDSA) with its issuer, audience and the configured user and tenant claims.",
)


def mint_token(secret: str, sub: str, tenant: str, ttl: timedelta) -> str:
    """A token for `sub` in `tenant`, valid for `ttl` (negative: already expired). For tests
    and the CLI; production tokens come from the identity provider."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": sub, "tenant": tenant, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Verified:
    claims: dict[str, Any]
    user_claim: str
    tenant_claim: str


def _claims(token: str, settings: Settings, idp: IdentityProviderKeys | None) -> _Verified:
    """The verified claims of either kind of token, and the names of its identity claims."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc
    algorithm = header.get("alg")
    key: Any
    if idp is not None and algorithm != ALGORITHM:
        key, algorithm = idp.verification_key(header)
        issuer, audience = settings.api_jwks_issuer, settings.api_jwks_audience
        names = (settings.api_jwks_user_claim, settings.api_jwks_tenant_claim)
    elif settings.api_jwt_accept_hs256:
        # Only HS256 is allowed: any other `alg` (none, HS512…) is refused by PyJWT below.
        key, algorithm = settings.api_jwt_secret, ALGORITHM
        issuer, audience = settings.api_jwt_issuer, settings.api_jwt_audience
        names = ("sub", "tenant")
    else:
        raise _unauthorized(
            "invalid token: shared-secret (HS256) tokens are not accepted "
            "(API_JWT_ACCEPT_HS256=false); send the identity provider's"
        )
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={"require": ["exp", *names]},
            leeway=settings.api_jwt_leeway_seconds,
            issuer=issuer,
            audience=audience,
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc
    return _Verified(claims=claims, user_claim=names[0], tenant_claim=names[1])


def owner_from_token(
    token: str, settings: Settings, idp: IdentityProviderKeys | None = None
) -> Owner:
    """The token's owner, or 401 naming what is wrong with it (503 when the identity
    provider's keys cannot be fetched).

    `exp` (and `iat`, `nbf` when present) must be JSON numbers: PyJWT alone would also take
    numeric strings. A small clock leeway is allowed; the token may live at most
    `API_JWT_MAX_LIFETIME_SECONDS` (from `iat`, or from now when it has none); issuer and
    audience are checked when configured (always for the identity provider's tokens).
    """
    verified = _claims(token, settings, idp)
    claims = verified.claims
    leeway = settings.api_jwt_leeway_seconds
    for claim in ("exp", "iat", "nbf"):
        if claim in claims and not _is_number(claims[claim]):
            raise _unauthorized(f"token claim {claim!r} must be a number (seconds since 1970)")
    issued = claims.get("iat", time.time())
    if claims["exp"] - min(issued, time.time()) > settings.api_jwt_max_lifetime_seconds + leeway:
        raise _unauthorized(
            f"the token lives longer than {settings.api_jwt_max_lifetime_seconds} s, the "
            "longest lifetime accepted (API_JWT_MAX_LIFETIME_SECONDS)"
        )
    user, tenant = claims[verified.user_claim], claims[verified.tenant_claim]
    for claim, value in ((verified.user_claim, user), (verified.tenant_claim, tenant)):
        if not _is_identity(value):
            raise _unauthorized(
                f"token claim {claim!r} must be 1 to 200 printable ASCII characters "
                "without quotes, backslashes or surrounding spaces"
            )
    if tenant in {".", ".."} or "/" in tenant:
        raise _unauthorized(
            f"token claim {verified.tenant_claim!r} must not be a dot segment or hold a slash"
        )
    return Owner(user_id=user, tenant=tenant)


def identity_provider(request: Request) -> IdentityProviderKeys | None:
    """The app's identity-provider keys (built by `create_app`), or None without API_JWKS_URL."""
    return cast(IdentityProviderKeys | None, request.app.state.identity_provider)


def current_owner(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    settings: SettingsDep,
    idp: Annotated[IdentityProviderKeys | None, Depends(identity_provider)],
) -> Owner:
    """Sync on purpose: FastAPI runs it in a worker thread, where a JWKS fetch may block."""
    if credentials is None:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return owner_from_token(credentials.credentials, settings, idp)


OwnerDep = Annotated[Owner, Depends(current_owner)]
