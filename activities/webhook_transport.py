"""One webhook call, safely: the address policy at call time, one deadline, a size cap.

`post_json` resolves the host when it is called, judges every address it resolves to with
`domain.webhook_policy`, and connects to the checked address itself (the `Host` header and the
TLS server name stay the URL's host, so certificates are verified for the name): a DNS answer
that changes between the check and the connection cannot move the call inside the network.
Redirects are not followed (a 3xx answer fails the call). Resolving, connecting, sending and
reading share one total deadline (`WEBHOOK_TIMEOUT_SECONDS`), so a receiver that drips one byte
every few seconds or answers forever costs at most that; at most `WEBHOOK_MAX_RESPONSE_BYTES` of
the answer are read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
from temporalio.exceptions import ApplicationError

from domain.settings import Settings
from domain.webhook_policy import (
    WebhookTarget,
    address_refusal,
    parse_target,
    static_refusal,
)

WEBHOOK_REFUSED = "WebhookRefused"
T = TypeVar("T")


class WebhookRefused(ApplicationError):
    """The policy refuses this webhook: not retried (the same URL would be refused again)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"webhook {url!r} refused: {reason}", type=WEBHOOK_REFUSED, non_retryable=True
        )


class WebhookFailed(RuntimeError):
    """The receiver did not take the call (error status, redirect, too slow, too big): retried."""


def post_json(url: str, body: bytes, headers: Mapping[str, str], settings: Settings) -> int:
    """POST `body` to `url` under the policy and limits; the 2xx status, else an exception."""
    return _run(_post(url, body, dict(headers), settings))


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on an event loop of its own (activities run in threads without one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:  # called from a loop's thread: not this one
        return pool.submit(asyncio.run, coroutine).result()


async def _post(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> int:
    allowed = settings.webhook_allow_list
    refusal = static_refusal(url, allowed)
    if refusal is not None:
        raise WebhookRefused(url, refusal)
    target = parse_target(url)
    deadline = settings.webhook_timeout_seconds
    try:
        async with asyncio.timeout(deadline):
            address = await _checked_address(url, target, allowed)
            return await _send(url, target, address, body, headers, settings)
    except TimeoutError as exc:
        raise WebhookFailed(f"webhook {url!r} did not answer within {deadline:g} s") from exc


async def _checked_address(url: str, target: WebhookTarget, allowed: frozenset[str]) -> str:
    """The first address `target.host` resolves to, once every one has passed the policy."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookFailed(f"webhook host {target.host!r} does not resolve: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        refusal = address_refusal(ipaddress.ip_address(address.split("%")[0]), target, allowed)
        if refusal is not None:
            raise WebhookRefused(url, refusal)
    if not addresses:
        raise WebhookFailed(f"webhook host {target.host!r} resolves to no address")
    return addresses[0]


async def _send(
    url: str,
    target: WebhookTarget,
    address: str,
    body: bytes,
    headers: dict[str, str],
    settings: Settings,
) -> int:
    pinned = httpx.URL(url).copy_with(host=address)
    default_port = 443 if target.scheme == "https" else 80
    host_header = (
        target.host_port if target.port != default_port else target.host_port.rsplit(":", 1)[0]
    )
    cap = settings.webhook_max_response_bytes
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "Host": host_header},
            extensions={"sni_hostname": target.host},
        )
        response = await client.send(request, stream=True)
        try:
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > cap:
                    raise WebhookFailed(
                        f"webhook {url!r} answered with more than {cap} bytes "
                        "(WEBHOOK_MAX_RESPONSE_BYTES)"
                    )
        finally:
            await response.aclose()
    if response.is_redirect:
        raise WebhookFailed(
            f"webhook {url!r} answered {response.status_code} (a redirect); redirects are not "
            "followed: configure the final URL"
        )
    if not response.is_success:
        raise WebhookFailed(f"webhook {url!r} answered {response.status_code}")
    return response.status_code
