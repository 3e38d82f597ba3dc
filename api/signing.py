"""Keyed digests (HMAC-SHA256 with the API secret) for values clients hold but must not forge."""

from __future__ import annotations

import hashlib
import hmac
import json


def keyed_digest(secret: str, purpose: str, *parts: str) -> bytes:
    """An HMAC over `purpose` and `parts`, framed as a JSON array so that no two different
    inputs collide (`("ab", "c")` and `("a", "bc")` differ)."""
    framed = json.dumps([purpose, *parts], ensure_ascii=False).encode()
    return hmac.new(secret.encode(), framed, hashlib.sha256).digest()


def same_digest(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
