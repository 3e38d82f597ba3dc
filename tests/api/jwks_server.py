"""A stand-in identity provider for the tests: keys generated in the test, their public halves
served as a JWKS document by a local HTTP server, and tokens signed with them.

The served key set can be replaced (a rotation), made to answer 500 or garbage, and the server
counts the fetches it answered.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.test.example/"
AUDIENCE = "durable-export-api"
TENANT_CLAIM = "https://acme.example/claims/org"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A private key, its `kid` and the algorithm its JWK announces."""

    kid: str
    algorithm: str
    private: PrivateKey

    @staticmethod
    def generate(kid: str, algorithm: str) -> SigningKey:
        private: PrivateKey
        if algorithm.startswith(("RS", "PS")):
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(algorithm)
        return SigningKey(kid=kid, algorithm=algorithm, private=private)

    def jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        """The public JWK, as a provider publishes it."""
        public = self.private.public_key()
        data: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        data.update(kid=self.kid, use="sig")
        if with_alg:
            data["alg"] = self.algorithm
        return data

    def token(
        self,
        extra: dict[str, Any] | None = None,
        *,
        algorithm: str | None = None,
        kid: str | None = None,
        ttl: timedelta = timedelta(minutes=10),
        **claims: Any,
    ) -> str:
        """A provider token: `sub`, the tenant claim, issuer and audience by default; `extra`
        (for claim names that are not identifiers) and `claims` override or (with None) remove
        them."""
        now = datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": "auth0|alice",
            TENANT_CLAIM: "acme",
            "iss": ISSUER,
            "aud": [AUDIENCE, "https://idp.test.example/userinfo"],
            "iat": now,
            "exp": now + ttl,
        }
        payload.update(extra or {})
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(
            payload,
            self.private,
            algorithm=algorithm or self.algorithm,
            headers={"kid": kid or self.kid},
        )


@dataclass
class JwksServer:
    """The served state: the key set (or a broken answer) and the fetches answered."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    broken: str | None = None
    """None: serve the keys; "500": answer 500; "garbage": answer a body that is not JSON."""
    fetches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, *keys: SigningKey) -> None:
        with self._lock:
            self.keys = [key.jwk() for key in keys]

    def answer(self) -> tuple[int, bytes]:
        with self._lock:
            self.fetches += 1
            if self.broken == "500":
                return 500, b'{"error": "internal"}'
            if self.broken == "garbage":
                return 200, b"<html>maintenance</html>"
            return 200, json.dumps({"keys": self.keys}).encode()


@contextlib.contextmanager
def jwks_server() -> Iterator[JwksServer]:
    """A JWKS endpoint on a free 127.0.0.1 port, for the duration of the block."""
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = state.answer()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
