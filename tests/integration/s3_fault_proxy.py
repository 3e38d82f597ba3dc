"""An HTTP proxy in front of the real S3 server that injects request-level faults.

toxiproxy works on TCP streams; some failures only make sense per S3 request: a permanent 500 on
every UploadPart, a CompleteMultipartUpload that S3 carries out but whose answer never arrives, a
HEAD that fails once, a request held for a while. Requests are forwarded unchanged (Host header
included, so SigV4 signatures still verify) and matched against rules in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, urlsplit

Action = Literal["status", "delay", "drop_answer"]
WAIT_SECONDS = 120.0
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade"}


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    query: dict[str, list[str]]

    @property
    def is_upload_part(self) -> bool:
        return self.method == "PUT" and "partNumber" in self.query

    @property
    def is_create_upload(self) -> bool:
        return self.method == "POST" and "uploads" in self.query

    @property
    def is_complete_upload(self) -> bool:
        return self.method == "POST" and "uploadId" in self.query

    @property
    def is_head_object(self) -> bool:
        return self.method == "HEAD"


@dataclass
class Rule:
    """Apply `action` to requests `matches` accepts, at most `times` times (None: always)."""

    matches: Callable[[S3Request], bool]
    action: Action
    status: int = 500
    code: str = "InternalError"
    seconds: float = 0.0
    times: int | None = None
    hits: int = 0
    hit: threading.Event = field(default_factory=threading.Event)

    def takes(self, request: S3Request) -> bool:
        return (self.times is None or self.hits < self.times) and self.matches(request)


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def rule_for(self, request: S3Request) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.takes(request):
                    rule.hits += 1
                    rule.hit.set()
                    return rule
        return None

    async def wait_for_hit(self, rule: Rule) -> None:
        """Wait (without blocking the event loop an in-process worker runs on) for a match."""
        if not await asyncio.to_thread(rule.hit.wait, WAIT_SECONDS):
            raise TimeoutError(f"no request matched {rule}")


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = S3Request(self.command, parts.path, parse_qs(parts.query, True))
            rule = proxy.rule_for(request)
            if rule is not None and rule.action == "status":
                self._answer_error(rule)
                return
            if rule is not None and rule.action == "delay":
                time.sleep(rule.seconds)
            status, headers, answer = self._forward(body)
            if rule is not None and rule.action == "drop_answer":
                self.close_connection = True  # S3 did it; the client never hears so
                return
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=60
            )
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                return response.status, response.getheaders(), response.read()
            finally:
                upstream.close()

        def _answer_error(self, rule: Rule) -> None:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{rule.code}</Code>'
                f"<Message>injected by the test's fault proxy</Message></Error>"
            ).encode()
            self.send_response(rule.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(xml)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 (stdlib names)

    return Handler


@contextlib.contextmanager
def fault_proxy(upstream_url: str) -> Iterator[FaultProxy]:
    """A proxy on a free loopback port in front of `upstream_url` (http only)."""
    parts = urlsplit(upstream_url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 80)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="s3-fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
