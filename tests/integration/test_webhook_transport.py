"""Webhook calls against real local receivers: the address policy at call time, no redirects,
one total deadline and a response-size cap (`activities/webhook_transport.py`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from activities.webhook_transport import WebhookFailed, WebhookRefused, post_json
from domain.settings import Settings

Behaviour = Callable[[BaseHTTPRequestHandler], None]
STOP = threading.Event()


def _ok(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(204)
    handler.end_headers()


def _drip(handler: BaseHTTPRequestHandler) -> None:
    """200 with a body that arrives one byte every 0.3 s, forever."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000000")
    handler.end_headers()
    while not STOP.is_set():
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.3)


def _huge(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.end_headers()  # no length: the body ends when the connection does
    with contextlib.suppress(OSError):
        for _ in range(10_000):  # 640 MB if nobody stops reading
            handler.wfile.write(b"y" * 65536)


@contextlib.contextmanager
def receiver(behaviour: Behaviour) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server; yields its `host:port` and the paths it was called on."""
    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            calls.append(self.path)
            with contextlib.suppress(OSError):
                behaviour(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", calls
    finally:
        STOP.set()
        server.shutdown()
        server.server_close()
        STOP.clear()


def _settings(allowed: str = "", **update: Any) -> Settings:
    return Settings(webhook_allowed_hosts=allowed, **update)


def _post(url: str, settings: Settings) -> int:
    return post_json(url, b"{}", {"Content-Type": "application/json"}, settings)


def test_a_listed_loopback_receiver_is_called() -> None:
    with receiver(_ok) as (host_port, calls):
        assert _post(f"http://{host_port}/hook", _settings(host_port)) == 204
    assert calls == ["/hook"]


def test_an_unlisted_loopback_receiver_is_refused_and_never_called() -> None:
    with receiver(_ok) as (host_port, calls):
        with pytest.raises(WebhookRefused, match="must use https"):
            _post(f"http://{host_port}/hook", _settings(allowed="127.0.0.1:1"))
        port = host_port.rsplit(":", 1)[1]
        for spelling in ("127.0.0.1", "2130706433", "127.1", "0x7f.0.0.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(WebhookRefused, match="only receivers listed by host:port"):
                _post(f"https://{spelling}:{port}/hook", _settings(allowed=f"{spelling}:1"))
    assert calls == []


def test_the_name_is_resolved_at_call_time_and_every_address_checked() -> None:
    """`localhost` listed by name reaches the receiver; the machine's own name, which resolves
    to a loopback or private address, is refused when it is not listed."""
    with receiver(_ok) as (host_port, calls):
        port = host_port.rsplit(":", 1)[1]
        settings = _settings(f"localhost:{port}")
        with contextlib.suppress(WebhookFailed):  # localhost may resolve to ::1 first
            _post(f"http://localhost:{port}/by-name", settings)
        own_name = socket.gethostname().lower()
        with pytest.raises((WebhookRefused, WebhookFailed)) as refused:
            _post(f"https://{own_name}:{port}/own-name", _settings())
    assert "/own-name" not in calls
    if refused.type is WebhookRefused:
        assert "address" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://100.100.100.200/latest/meta-data/",
        "https://[fe80::1]/",
        "https://0.0.0.0:8080/",
    ],
)
def test_link_local_and_metadata_addresses_are_refused_even_when_listed(url: str) -> None:
    host_port = url.split("/")[2]
    if ":" not in host_port.rsplit("]", 1)[-1]:
        host_port += ":443" if url.startswith("https") else ":80"
    with pytest.raises(WebhookRefused, match="always refused"):
        _post(url, _settings(host_port))


def test_plain_http_needs_a_listed_host() -> None:
    with pytest.raises(WebhookRefused, match="must use https"):
        _post("http://hooks.example.com/x", _settings())


def test_a_redirect_is_not_followed() -> None:
    with receiver(_ok) as (target, target_calls):

        def redirect(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(302)
            handler.send_header("Location", f"http://{target}/moved")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with receiver(redirect) as (host_port, calls):
            settings = _settings(f"{host_port},{target}")
            with pytest.raises(WebhookFailed, match="redirects are not followed"):
                _post(f"http://{host_port}/hook", settings)
    assert calls == ["/hook"]
    assert target_calls == []


def test_a_dripping_receiver_costs_at_most_the_deadline() -> None:
    with receiver(_drip) as (host_port, _):
        settings = _settings(host_port, webhook_timeout_seconds=1.5)
        started = time.monotonic()
        with pytest.raises(WebhookFailed, match=r"did not answer within 1\.5 s"):
            _post(f"http://{host_port}/hook", settings)
        took = time.monotonic() - started
    assert took < 1.5 + 1.0, took


def test_an_endless_answer_is_cut_at_the_size_cap() -> None:
    with receiver(_huge) as (host_port, _):
        settings = _settings(host_port, webhook_max_response_bytes=100_000)
        with pytest.raises(WebhookFailed, match="more than 100000 bytes"):
            _post(f"http://{host_port}/hook", settings)
