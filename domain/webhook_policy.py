"""Where a webhook may go: the address policy, pure (no network).

A webhook URL is written by the user, and the worker calls it from inside the network. So:

* the scheme is `https`, or `http` only for a receiver listed in `WEBHOOK_ALLOWED_HOSTS`;
* no credentials in the URL;
* the addresses the host resolves to (checked at call time, every one of them) must be public
  (`ipaddress`'s `is_global`), except for a receiver listed by its exact `host:port`, which may
  be loopback or private;
* link-local addresses (169.254.0.0/16, fe80::/10: the cloud metadata services live there),
  known metadata addresses, unspecified, multicast and broadcast addresses are refused always,
  listed or not. IPv4 addresses embedded in IPv6 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`) are
  judged as the IPv4 address they carry.

`static_refusal` is what can be said from the URL alone (the API refuses such a URL at request
time); `address_refusal` judges one resolved address (the transport calls it for each).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA: Final = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack…
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
    )
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACK_NAMES: Final = ("localhost", ".localhost")


@dataclass(frozen=True)
class WebhookTarget:
    """The parts of a webhook URL the policy looks at."""

    scheme: str
    host: str
    port: int

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class WebhookUrlError(ValueError):
    """The URL cannot be a webhook (malformed, or refused by the policy)."""


def parse_target(url: str) -> WebhookTarget:
    """Scheme, lower-cased host and effective port of `url`, or `WebhookUrlError`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlError("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("must not carry credentials (user:password@)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise WebhookUrlError("has no host")
    return WebhookTarget(scheme, host, port or (443 if scheme == "https" else 80))


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped or NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling the resolver accepts (`127.1`,
    `0x7f.0.0.1`, `2130706433` are 127.0.0.1 to `getaddrinfo`), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])  # without an IPv6 zone id
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def address_refusal(
    address: IPAddress, target: WebhookTarget, allowed: frozenset[str]
) -> str | None:
    """Why the worker may not call `target` at `address`; None when it may."""
    address = _unwrap(address)
    if address in _METADATA:
        return f"resolves to {address}, a cloud metadata address (always refused)"
    if address.is_link_local:
        return f"resolves to {address}, a link-local address (always refused)"
    if (
        address.is_unspecified
        or address.is_multicast
        or address == ipaddress.IPv4Address("255.255.255.255")
    ):
        return f"resolves to {address}, which is not a unicast address (always refused)"
    if address.is_global:
        return None
    if target.host_port in allowed:
        return None
    kind = "a loopback" if address.is_loopback else "a private or reserved"
    return (
        f"resolves to {address}, {kind} address; only receivers listed by host:port in "
        f"WEBHOOK_ALLOWED_HOSTS may be ({target.host_port} is not)"
    )


def static_refusal(url: str, allowed: frozenset[str]) -> str | None:
    """Why `url` is refused from the URL alone (scheme, credentials, literal addresses,
    loopback names), or None when only the call-time resolution can tell."""
    try:
        target = parse_target(url)
    except WebhookUrlError as exc:
        return str(exc)
    listed = target.host_port in allowed
    if target.scheme != "https" and not listed:
        return (
            f"must use https; plain http only for receivers listed in WEBHOOK_ALLOWED_HOSTS "
            f"({target.host_port} is not)"
        )
    literal = literal_address(target.host)
    if literal is not None:
        return address_refusal(literal, target, allowed)
    if (target.host == "localhost" or target.host.endswith(_LOOPBACK_NAMES[1])) and not listed:
        return address_refusal(ipaddress.IPv4Address("127.0.0.1"), target, allowed)
    return None
