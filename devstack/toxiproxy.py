"""Toxiproxy: a fault-injecting TCP proxy for the reliability suite (`make reliability`).

`toxiproxy_binary()` builds the pinned server with `go install` into the shared binary cache,
like versitygw. `ToxiproxyServer` runs one server on 127.0.0.1 in its own session (started and
stopped by whoever uses it: the tests start theirs on a free port) and drives its HTTP API:
proxies between the worker and a real server, and the toxics (latency, reset_peer, bandwidth,
timeout, ...) injected into them.

`python -m devstack.toxiproxy install` builds it (a second run finds the cached binary).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from devstack import installers, services
from devstack.paths import cache_dir, state_dir

# The server lives in cmd/server of the v2 module (the binary `go install` makes is `server`).
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
TOXIPROXY_VERSION = "v2.12.0"
HOST = services.HOST
START_TIMEOUT = 20.0

Stream = Literal["upstream", "downstream"]


def toxiproxy_binary() -> Path:
    """toxiproxy-server, by `go install` into a versioned folder of the cache."""
    gobin = cache_dir() / "bin" / f"toxiproxy-{TOXIPROXY_VERSION}.d"
    target = gobin / "toxiproxy-server"
    if target.exists():
        return target
    env = installers._go_env("toxiproxy")
    env["GOBIN"] = str(gobin)
    installers._run(
        ["go", "install", f"{TOXIPROXY_MODULE}@{TOXIPROXY_VERSION}"], service="toxiproxy", env=env
    )
    (gobin / "server").rename(target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ToxiproxyError(RuntimeError):
    """The toxiproxy server did not start, or refused an API call; the message says which."""


@dataclass
class Proxy:
    """One proxy: clients connect to `port`, the proxy forwards to `upstream`."""

    server: ToxiproxyServer
    name: str
    upstream: str
    port: int
    toxic_count: int = field(default=0)

    def add_toxic(
        self,
        kind: str,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        **attributes: int | float,
    ) -> str:
        """Add a toxic (`latency`, `reset_peer`, `bandwidth`, `timeout`, `slicer`, ...); its name."""
        self.toxic_count += 1
        name = f"{kind}_{stream}_{self.toxic_count}"
        self.server.call(
            "POST",
            f"/proxies/{self.name}/toxics",
            {
                "name": name,
                "type": kind,
                "stream": stream,
                "toxicity": toxicity,
                "attributes": attributes,
            },
        )
        return name

    def remove_toxic(self, name: str) -> None:
        self.server.call("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def clear(self) -> None:
        for toxic in self.server.call("GET", f"/proxies/{self.name}/toxics") or []:
            self.remove_toxic(str(toxic["name"]))

    def set_enabled(self, enabled: bool) -> None:
        """Disabled, the proxy closes every connection and refuses new ones."""
        self.server.call("POST", f"/proxies/{self.name}", {"enabled": enabled})

    @contextlib.contextmanager
    def toxic(
        self,
        kind: str,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        **attributes: int | float,
    ) -> Iterator[str]:
        name = self.add_toxic(kind, stream=stream, toxicity=toxicity, **attributes)
        try:
            yield name
        finally:
            self.remove_toxic(name)


class ToxiproxyServer:
    """A toxiproxy-server process of our own, and a client of its API."""

    def __init__(self, log: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = log or state_dir() / "logs" / "toxiproxy.log"
        self.url = f"http://{HOST}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def start(self) -> ToxiproxyServer:
        binary = toxiproxy_binary()
        self._process = services.spawn(
            [str(binary), "-host", HOST, "-port", str(self.port)], self.log
        )
        process = self._process
        if not services.wait_until(
            self._answers, timeout=START_TIMEOUT, alive=lambda: process.poll() is None
        ):
            self.stop()
            raise ToxiproxyError(
                f"toxiproxy-server did not answer on {self.url} within {START_TIMEOUT:.0f} s; "
                f"log: {self.log}"
            )
        return self

    def _answers(self) -> bool:
        try:
            return self._http.get("/version").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        process = self._process
        self._process = None
        self._http.close()
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 300:
            raise ToxiproxyError(
                f"toxiproxy {method} {path}: {response.status_code} {response.text.strip()}"
            )
        return response.json() if response.content else None

    def proxy(self, name: str, upstream: str) -> Proxy:
        """A new proxy on a free port of 127.0.0.1 forwarding to `upstream` (host:port)."""
        created = self.call(
            "POST",
            "/proxies",
            {"name": name, "listen": f"{HOST}:0", "upstream": upstream, "enabled": True},
        )
        port = int(str(created["listen"]).rsplit(":", 1)[1])
        return Proxy(self, name, upstream, port)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.call("POST", "/reset")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.toxiproxy",
        description=f"Build toxiproxy-server {TOXIPROXY_VERSION} into the binary cache.",
    )
    parser.add_argument("action", choices=["install"])
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        binary = toxiproxy_binary()
    except installers.InstallError as exc:
        print(f"FAILED to install toxiproxy: {exc}", file=sys.stderr)
        return 1
    print(f"toxiproxy-server {TOXIPROXY_VERSION}: {binary} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
