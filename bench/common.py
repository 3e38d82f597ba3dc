"""Shared machinery: the stack's settings, the product's processes, and measuring them."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil  # type: ignore[import-untyped]

from devstack import services
from domain.settings import Settings

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
LOG_DIR = REPO / ".devstack" / "logs"
BENCH_DATABASE = "durable_export_bench"
TENANT = "bench-tenant"

ENGINE_URI_VARIABLES = {"ferretdb": "MONGODB_URI", "mongo-java-server": "SECOND_MONGODB_URI"}
ENGINE_LABELS = {"ferretdb": "FerretDB", "mongo-java-server": "mongo-java-server"}


def load_stack_env() -> None:
    """Put the local stack's endpoints and secrets (`.devstack/env`) into this process's
    environment, as `make` targets see them."""
    for key, value in services.env_values().items():
        os.environ[key] = value


def engine_uri(engine: str) -> str:
    return os.environ[ENGINE_URI_VARIABLES[engine]]


def settings_for(engine: str, task_queue: str = "bench-unused") -> Settings:
    """The product's settings for a worker reading `engine`'s bench database."""
    return Settings(
        mongodb_uri=engine_uri(engine),
        mongodb_database=BENCH_DATABASE,
        temporal_task_queue=task_queue,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


BENCH_WEBHOOK_PORT = free_port()
"""The loopback port of the benchmarks' webhook receiver, listed in every stack's
`WEBHOOK_ALLOWED_HOSTS` (plain-http loopback receivers must be listed by exact host and port)."""


class ManagedProcess:
    """A child process in its own session, with its output in a log; stopped by its own id."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = LOG_DIR / f"bench-{name}.log"
        with self.log.open("ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n".encode())
            self.popen = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.process = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[Any]:
        """This process and its live descendants (`export-worker --role all` supervises one
        workflow and N activity processes)."""
        with contextlib.suppress(psutil.Error):
            return [self.process, *self.process.children(recursive=True)]
        return [self.process]

    def cpu_seconds(self) -> float:
        """CPU time of the whole tree, children that ended (and were reaped) included."""
        total = 0.0
        for index, process in enumerate(self.tree()):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
                if index == 0:
                    total += times.children_user + times.children_system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the whole tree."""
        total = 0
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                total += int(process.memory_info().rss)
        return total

    def rss_by_process(self) -> list[tuple[str, int]]:
        """(command line's role, RSS) of each process of the tree."""
        found = []
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                cmdline = process.cmdline()
                role = (
                    cmdline[cmdline.index("--role") + 1]
                    if "--role" in cmdline
                    # what a pooled activity worker spawned: the pool, its manager, the
                    # resource tracker
                    else "pool"
                    if any("multiprocessing" in arg for arg in cmdline)
                    else "?"
                )
                found.append((role, int(process.memory_info().rss)))
        return found

    def peak_rss_bytes(self) -> int:
        """The kernel's high-water marks of resident memory (VmHWM) of the tree's processes,
        added up (each process's own peak: an upper bound of the tree's peak)."""
        total = 0
        for process in self.tree():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        if total == 0:
            raise RuntimeError(f"no VmHWM for pid {self.pid}")
        return total

    def log_text(self) -> str:
        return self.log.read_text(errors="replace").rsplit("\n--- ", 1)[-1]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to this child's own process group, SIGKILL after `timeout`."""
        if not self.alive():
            self.popen.wait()
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                continue


def _wait(what: str, ready: Any, process: ManagedProcess, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not process.alive():
            raise RuntimeError(f"{what} exited; log {process.log}:\n{process.log_text()[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s; log {process.log}")


Layout = Literal["split", "single", "pool"]
"""`split`: `export-worker --role all` (one workflow process, one activity process per core);
`single`: `export-worker --role combined`, the previous layout (both in one process);
`pool`: `--role all` with `WORKER_ACTIVITY_EXECUTOR=processes` (one workflow process, one
activity process running the activities in a pool of one process per core)."""


@dataclass
class ProductStack:
    """The product's own processes for a benchmark: an API and the workers on a task queue of
    their own, the workers reading one engine's bench database."""

    engine: str
    label: str
    layout: Layout = "split"
    task_queue: str = field(init=False)
    api_port: int = field(init=False)
    worker: ManagedProcess | None = field(init=False, default=None)
    api: ManagedProcess | None = field(init=False, default=None)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.task_queue = f"bench-{self.label}-{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def settings(self) -> Settings:
        return settings_for(self.engine, self.task_queue)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_TASK_QUEUE": self.task_queue,
            "MONGODB_URI": engine_uri(self.engine),
            "MONGODB_DATABASE": BENCH_DATABASE,
            "API_PUBLIC_URL": self.api_url,
            "PYTHONUNBUFFERED": "1",
            "WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{BENCH_WEBHOOK_PORT}",
            **self.extra_env,
        }

    def start_worker(self) -> ManagedProcess:
        role = "combined" if self.layout == "single" else "all"
        env = self.env()
        if self.layout == "pool":
            env["WORKER_ACTIVITY_EXECUTOR"] = "processes"
        worker = ManagedProcess(
            f"worker-{self.label}",
            [sys.executable, "-m", "workflows.worker", "--role", role, "--log-level", "INFO"],
            env,
        )
        self.worker = worker
        kinds = ("workflows", "activities") if role == "all" else ("combined",)

        def polling() -> bool:
            text = worker.log_text()
            return all(f"worker polling ({kind})" in text for kind in kinds)

        _wait(f"worker {self.label}", polling, worker)
        return worker

    def restart_worker(self) -> ManagedProcess:
        """A fresh worker process (a fresh peak-RSS mark) on the same task queue."""
        if self.worker is not None:
            self.worker.stop()
        return self.start_worker()

    def start_api(self) -> ManagedProcess:
        api = ManagedProcess(
            f"api-{self.label}",
            [
                sys.executable,
                "-m",
                "api.main",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
            self.env(),
        )
        self.api = api

        def ready() -> bool:
            try:
                return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(f"API {self.label}", ready, api)
        return api

    def start(self) -> ProductStack:
        self.start_worker()
        self.start_api()
        return self

    def stop(self) -> None:
        for process in (self.api, self.worker):
            if process is not None:
                process.stop()

    def require_worker(self) -> ManagedProcess:
        assert self.worker is not None, "the worker is not started"
        return self.worker


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a side thread."""

    def __init__(self, process: ManagedProcess, interval: float = 0.1) -> None:
        self._process = process
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples: list[tuple[float, int]] = []
        self._t0 = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.perf_counter() - self._t0, self._process.rss_bytes()))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then `t[0]` holds the seconds the block took."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


MIB = 1024 * 1024


def mb(value: float) -> float:
    """Bytes to MB (10^6), as the report shows memory."""
    return value / 1e6
