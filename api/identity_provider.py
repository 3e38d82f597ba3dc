"""The identity provider's signing keys: a JWKS document fetched from API_JWKS_URL.

PyJWT's `PyJWKClient` fetches and caches the key set (`API_JWKS_CACHE_SECONDS`); a token whose
`kid` is not among the cached keys makes it fetch again at once (a key rotation), at most once
per `API_JWKS_REFRESH_COOLDOWN_SECONDS`, so forged `kid`s cannot turn the API into a load on the
provider. Only the configured URL is ever fetched: a token's `jku`, `x5u` or embedded `jwk`
headers are ignored.

The algorithm is pinned by the key, never chosen by the token: a token must name exactly the
algorithm of the key its `kid` designates (the JWK's `alg`, or the one its type implies), that
algorithm must suit the key's type and curve, and it must be in `API_JWKS_ALGORITHMS` (which
admits no HMAC and no `none`). So a token signed with HS256 using the published RSA key as the
HMAC secret is refused, as is an RS256 token pointing at an EC key.

A provider that cannot be reached, or that answers with no usable keys, fails closed: `503`
with a message naming API_JWKS_URL, never a token accepted unchecked.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from api.errors import ApiError
from domain.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MIN_RSA_BITS = 2048
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _shown(value: object) -> str:
    """A header value, quoted and cut short: it comes from whoever sent the token."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def algorithms_for_key(key: Any) -> frozenset[str]:
    """The algorithms a public key may verify: its type and curve decide, nothing else."""
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS if key.key_size >= MIN_RSA_BITS else frozenset()
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({algorithm}) if algorithm else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()  # symmetric ("oct") keys and anything else


class IdentityProviderKeys:
    """The keys of one provider, cached for the whole process (one instance per app)."""

    def __init__(self, settings: Settings) -> None:
        if problem := settings.identity_provider_problem():
            raise ValueError(problem)
        assert settings.api_jwks_url is not None
        self.url = settings.api_jwks_url
        self.algorithms = settings.jwks_algorithms
        self._client = jwt.PyJWKClient(
            self.url,
            cache_jwk_set=True,
            lifespan=settings.api_jwks_cache_seconds,
            timeout=settings.api_jwks_timeout_seconds,
            cooldown_duration=settings.api_jwks_refresh_cooldown_seconds,
        )

    def _unavailable(self, reason: Exception) -> ApiError:
        log.warning("the JWKS at %s cannot be read: %s", self.url, reason)
        return ApiError(
            503,
            "identity_provider_unavailable",
            f"the identity provider's keys (API_JWKS_URL {self.url}) cannot be read, so no "
            f"token can be verified: {reason}",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def verification_key(self, header: dict[str, Any]) -> tuple[Any, str]:
        """The public key and the one algorithm to verify a token with this header; 401 when
        the header does not fit a provider key, 503 when the keys cannot be fetched.

        Blocking (a fetch on a cache miss): called from a sync dependency, in a worker thread.
        """
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise _unauthorized(
                f"invalid token: algorithm {_shown(algorithm)} is not accepted from the identity provider "
                f"(API_JWKS_ALGORITHMS: {', '.join(sorted(self.algorithms))})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("invalid token: its header has no 'kid' naming the provider's key")
        try:
            self._client.get_signing_keys()  # the cached set; any failure here is the provider's
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError) as exc:
            raise self._unavailable(exc) from exc
        try:
            jwk = self._client.get_signing_key(kid)  # fetches again once on an unknown kid
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError) as exc:
            raise self._unavailable(exc) from exc
        except jwt.PyJWKClientError as exc:
            raise _unauthorized(
                f"invalid token: its key {_shown(kid)} is not among the identity provider's keys"
            ) from exc
        if algorithm != jwk.algorithm_name or algorithm not in algorithms_for_key(jwk.key):
            raise _unauthorized(
                f"invalid token: algorithm {algorithm!r} does not match the provider's key {_shown(kid)} "
                f"({jwk.key_type}, {jwk.algorithm_name})"
            )
        return jwk.key, algorithm
