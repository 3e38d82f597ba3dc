"""Bearer tokens: HS256 JWTs carrying the caller's user id (`sub`) and `tenant`.

The owner of every export comes from here and nowhere else. Identities are 1 to 200 printable
ASCII characters without quotes, backslashes or surrounding spaces: they are matched in Temporal
visibility queries, and the SQL visibility store (the dev server's) fails to match some values
holding quotes even when they are correctly escaped. A user with such an identity could list
nothing and would escape the running-export limit, so such tokens are refused.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SettingsDep
from api.errors import ApiError
from domain.models import Owner
from domain.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "tenant", "exp")
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
    description="An HS256 JWT with the claims `sub` (user id), `tenant` and `exp`.",
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


def owner_from_token(token: str, settings: Settings) -> Owner:
    """The token's owner, or 401 naming what is wrong with it.

    `exp` (and `iat`, `nbf` when present) must be JSON numbers: PyJWT alone would also take
    numeric strings. A small clock leeway is allowed; the token may live at most
    `API_JWT_MAX_LIFETIME_SECONDS` (from `iat`, or from now when it has none); issuer and
    audience are checked when configured.
    """
    leeway = settings.api_jwt_leeway_seconds
    try:
        claims = jwt.decode(
            token,
            settings.api_jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS)},
            leeway=leeway,
            issuer=settings.api_jwt_issuer,
            audience=settings.api_jwt_audience,
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc
    for claim in ("exp", "iat", "nbf"):
        if claim in claims and not _is_number(claims[claim]):
            raise _unauthorized(f"token claim {claim!r} must be a number (seconds since 1970)")
    issued = claims.get("iat", time.time())
    if claims["exp"] - min(issued, time.time()) > settings.api_jwt_max_lifetime_seconds + leeway:
        raise _unauthorized(
            f"the token lives longer than {settings.api_jwt_max_lifetime_seconds} s, the "
            "longest lifetime accepted (API_JWT_MAX_LIFETIME_SECONDS)"
        )
    for claim in ("sub", "tenant"):
        if not _is_identity(claims[claim]):
            raise _unauthorized(
                f"token claim {claim!r} must be 1 to 200 printable ASCII characters "
                "without quotes, backslashes or surrounding spaces"
            )
    if claims["tenant"] in {".", ".."} or "/" in claims["tenant"]:
        raise _unauthorized("token claim 'tenant' must not be a dot segment or hold a slash")
    return Owner(user_id=claims["sub"], tenant=claims["tenant"])


def current_owner(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    settings: SettingsDep,
) -> Owner:
    if credentials is None:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return owner_from_token(credentials.credentials, settings)


OwnerDep = Annotated[Owner, Depends(current_owner)]
