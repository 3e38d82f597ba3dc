"""Fault injection for the reliability suite: worker processes killed with SIGKILL at random
moments, toxics injected into the toxiproxy proxies between the worker and S3 / MongoDB, the
Temporal dev server restarted; and the verdict on every export run through it.

Every random choice comes from one seeded `random.Random`, so a scenario's fault schedule is
reproducible (what is in flight when a fault lands still depends on timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from connections.s3 import make_s3_client
from connections.temporal import connect
from devstack import services
from devstack.toxiproxy import Proxy, Stream
from domain.export_policy import ExportPolicy
from domain.models import ExportInput, ExportRequest, ExportStatus, Owner, ProgressView
from domain.settings import Settings
from tests.integration import export_harness as h
from workflows.export_workflow import ExportWorkflow

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTNAME = socket.gethostname()
psutil: Any = importlib.import_module("psutil")  # a dev dependency without type stubs


class FaultLog:
    """How many faults of each kind were injected, and what was in flight at each kill."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.in_flight_at_kill: Counter[str] = Counter()
        self.kill_times: list[float] = []
        """`time.monotonic()` of every SIGKILL, to count the kills each export lived through."""

    def add(self, kind: str) -> None:
        self.counts[kind] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# -- worker processes -------------------------------------------------------------------------


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment `export-worker` reads its settings from (as export_harness does)."""
    env = dict(os.environ)
    env.update({k.upper(): str(v) for k, v in settings.model_dump().items() if v is not None})
    return env


WorkerRole = Literal["workflows", "activities"]
KillTarget = Literal["activities", "workflows", "both"]
KILL_TARGETS: tuple[KillTarget, ...] = ("activities", "workflows", "both")
"""What a SIGKILL hits: an activity process, the workflow process, or one of each at once."""


class WorkerFleet:
    """`export-worker` subprocesses on one task queue, as `--role all` lays them out: one
    workflow process and `activity_processes` activity processes; the test kills and restarts
    them."""

    def __init__(self, settings: Settings, log: Path, faults: FaultLog) -> None:
        self.settings = settings
        self.log = log
        self.faults = faults
        self.processes: list[subprocess.Popen[bytes]] = []
        self.roles: dict[int, WorkerRole] = {}
        self.peak_rss: dict[int, int] = {}

    def start(self, activity_processes: int = 1) -> None:
        self.spawn("workflows")
        for _ in range(activity_processes):
            self.spawn("activities")

    def spawn(self, role: WorkerRole = "activities") -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            out.write(f"\n--- {role} worker started at {time.strftime('%H:%M:%S')}\n".encode())
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workflows.worker",
                    "--role",
                    role,
                    "--log-level",
                    "WARNING",
                ],
                cwd=REPO_ROOT,
                env=worker_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.roles[process.pid] = role
        return process

    def role_of(self, process: subprocess.Popen[bytes]) -> WorkerRole:
        return self.roles[process.pid]

    def alive_of(self, role: WorkerRole) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.alive() if self.roles[p.pid] == role]

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def by_identity(self, identity: str) -> subprocess.Popen[bytes] | None:
        """The worker whose Temporal identity (`pid@host`, the SDK's default) this is."""
        for process in self.alive():
            if identity == f"{process.pid}@{HOSTNAME}":
                return process
        return None

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no graceful shutdown, whatever it was doing is lost."""
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            self.faults.add(f"{self.role_of(process)} worker process SIGKILL")
            self.faults.kill_times.append(time.monotonic())
        process.wait()

    def sample_rss(self) -> None:
        for process in self.alive():
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(process.pid).memory_info().rss
                self.peak_rss[process.pid] = max(rss, self.peak_rss.get(process.pid, 0))

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


# -- toxics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toxic:
    """A toxic to inject into one proxy: `kind` with `attributes` (see toxiproxy's README)."""

    proxy: str
    kind: str
    stream: Stream = "downstream"
    attributes: tuple[tuple[str, int], ...] = ()
    duration: tuple[float, float] = (1.0, 3.0)
    """How long a burst lasts (seconds, drawn uniformly); steady toxics last the whole run."""
    toxicity: float = 1.0
    """The share of connections it applies to (toxiproxy draws once per connection)."""

    @property
    def label(self) -> str:
        attrs = [f"{k}={v}" for k, v in self.attributes]
        if self.toxicity < 1:
            attrs.append(f"toxicity={self.toxicity}")
        shown = ", ".join(attrs)
        return f"{self.proxy} {self.kind} {self.stream}" + (f" ({shown})" if shown else "")

    def add_to(self, proxies: dict[str, Proxy]) -> str:
        return proxies[self.proxy].add_toxic(
            self.kind, stream=self.stream, toxicity=self.toxicity, **dict(self.attributes)
        )


def toxic(
    proxy: str, kind: str, stream: Stream = "downstream", toxicity: float = 1.0, **attrs: int
) -> Toxic:
    return Toxic(proxy, kind, stream, tuple(sorted(attrs.items())), toxicity=toxicity)


async def inject_bursts(
    proxies: dict[str, Proxy],
    menu: Sequence[Toxic],
    rng: random.Random,
    faults: FaultLog,
    stop: asyncio.Event,
    gap: tuple[float, float],
) -> None:
    """Until `stop`: wait a random gap, inject a random toxic of `menu` for a random while."""
    while not stop.is_set():
        if await _sleep_or_stop(rng.uniform(*gap), stop):
            return
        chosen = rng.choice(menu)
        name = chosen.add_to(proxies)
        faults.add(chosen.label)
        try:
            await _sleep_or_stop(rng.uniform(*chosen.duration), stop)
        finally:
            proxies[chosen.proxy].remove_toxic(name)


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep `seconds`; True if `stop` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


# -- what is in flight ------------------------------------------------------------------------


async def pending_activities(client: Client, workflow_id: str) -> list[tuple[str, str]]:
    """(activity type, identity of the worker that last took it) of the running activities."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return []
    return [
        (pending.activity_type.name, pending.last_worker_identity)
        for pending in described.raw_description.pending_activities
    ]


async def kill_randomly(
    fleet: WorkerFleet,
    client_of: Callable[[], Client],
    workflow_ids: Sequence[str],
    rng: random.Random,
    stop: asyncio.Event,
    gap: tuple[float, float],
    *,
    restart: bool = True,
    targets: Sequence[KillTarget] = KILL_TARGETS,
) -> None:
    """Until `stop`: after a random gap, SIGKILL a random live activity process, the workflow
    process, or one of each (drawn from `targets`), then start the same kinds again.

    Kills are spaced by progress as well as by time: after a kill, the next waits until some
    export has finished another part, so however slow a loaded machine makes a part, the
    exports always progress between kills (the suite proves recovery, not a livelock)."""
    parts_at_kill = -1
    while not stop.is_set():
        if await _sleep_or_stop(rng.uniform(*gap), stop):
            return
        while (parts := await _parts_done(client_of(), workflow_ids)) <= parts_at_kill:
            if await _sleep_or_stop(0.5, stop):
                return
        parts_at_kill = parts
        target = rng.choice(list(targets))
        roles: list[WorkerRole] = ["workflows", "activities"] if target == "both" else [target]
        victims = [rng.choice(alive) for role in roles if (alive := fleet.alive_of(role))]
        if not victims:
            continue
        identities = {f"{victim.pid}@{HOSTNAME}" for victim in victims}
        for workflow_id in workflow_ids:
            for kind, identity in await pending_activities(client_of(), workflow_id):
                if identity in identities:
                    fleet.faults.in_flight_at_kill[kind] += 1
        for victim in victims:
            role = fleet.role_of(victim)
            fleet.kill(victim)
            if restart:
                fleet.spawn(role)


async def _parts_done(client: Client, workflow_ids: Sequence[str]) -> int:
    """Parts finished by these exports, summed; an ended export counts as one more part.
    -1 while a progress query cannot be answered (no worker up yet)."""
    total = 0
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle_for(ExportWorkflow.run, workflow_id)
        try:
            progress = await handle.query(ExportWorkflow.progress, rpc_timeout=timedelta(seconds=5))
        except Exception:
            return -1
        total += progress.parts + (1 if progress.status.is_terminal else 0)
    return total


async def sample_memory(fleet: WorkerFleet, stop: asyncio.Event, every: float = 0.25) -> None:
    while not stop.is_set():
        fleet.sample_rss()
        await _sleep_or_stop(every, stop)


def restart_temporal(faults: FaultLog) -> None:
    """Stop and start the Temporal dev server (same SQLite file: history survives)."""
    services.stop("temporal")
    services.start("temporal")
    faults.add("Temporal server restart")


# -- verdicts ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What one export came to, checked against its unchunked reference."""

    export_id: str
    status: str
    identical: bool
    rows: int
    reference_rows: int
    missing_rows: int
    duplicated_rows: int
    orphaned_uploads: int
    seconds: float
    error: str | None = None
    kills_during: int = 0
    """Worker SIGKILLs between the export's start and its end."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _lines(body: bytes) -> Counter[bytes]:
    return Counter(body.splitlines())


def leftover_uploads(direct: Settings, export: ExportInput) -> list[dict[str, Any]]:
    """Multipart uploads still open under the export's own prefix (any key, any upload id)."""
    prefix = f"{direct.export_prefix.rstrip('/')}/{export.owner.tenant}/{export.export_id}/"
    return h.uploads_under(direct, prefix)


def verdict(
    direct: Settings,
    export: ExportInput,
    progress: ProgressView | None,
    seconds: float,
    error: str | None = None,
) -> Verdict:
    """Compare the object with the reference, row by row, and look for open uploads.

    `direct` reaches MongoDB and S3 without the proxies. Rows are lines (JSON Lines exports,
    or CSV with explicit columns and no newlines in cells): a missing row is a reference line
    absent from the object, a duplicated one a line the object holds more often than the
    reference.
    """
    reference = h.reference_bytes(direct, export, export.request.columns)
    header_lines = 1 if export.request.format == "csv" else 0
    body = b""
    status = progress.status.value if progress else "UNKNOWN"
    if progress is not None and progress.status == ExportStatus.COMPLETED and progress.object_key:
        body = h.fetch_object(direct, progress.object_key)
    want, got = _lines(reference), _lines(body)
    return Verdict(
        export_id=export.export_id,
        status=status,
        identical=body == reference,
        rows=progress.rows if progress else 0,
        reference_rows=sum(want.values()) - header_lines,
        missing_rows=sum((want - got).values()),
        duplicated_rows=sum((got - want).values()),
        orphaned_uploads=len(leftover_uploads(direct, export)),
        seconds=round(seconds, 1),
        error=error,
    )


async def clean_up(client: Client, direct: Settings, export: ExportInput) -> None:
    """After a failed scenario: stop the workflow and abort whatever upload it left open, so
    one failure does not leak into the next scenario (what was left is recorded first)."""
    handle = client.get_workflow_handle(export.export_id)
    with contextlib.suppress(RPCError):
        described = await handle.describe()
        if described.status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("reliability scenario cleanup")
    s3 = make_s3_client(direct)
    for upload in leftover_uploads(direct, export):
        with contextlib.suppress(Exception):
            s3.abort_multipart_upload(
                Bucket=direct.s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )


@dataclass
class ExportRun:
    export: ExportInput
    handle: WorkflowHandle[Any, Any]
    started: float = field(default_factory=time.monotonic)


FAULT_ATTEMPTS = 30


async def start_exports(
    client: Client, settings: Settings, requests: Sequence[ExportRequest], owner: Owner
) -> list[ExportRun]:
    runs = []
    # The faults here are transient by design, injected far more often than a real network
    # fails: each activity may retry more than the default 10 times before the export fails.
    policy = ExportPolicy.of(settings).model_copy(update={"activity_max_attempts": FAULT_ATTEMPTS})
    for request in requests:
        export = h.new_export(request, owner, policy)
        runs.append(ExportRun(export, await h.start(client, settings, export)))
    return runs


async def result_of(
    client_of: Callable[[], Client], run: ExportRun, within: float
) -> tuple[ProgressView | None, str | None, float]:
    """The export's final progress (or None and why not) and how long it took. The client is
    asked for again after an RPC error: a restarted Temporal server gets a new one."""
    try:
        async with asyncio.timeout(within):
            while True:
                handle = client_of().get_workflow_handle_for(
                    ExportWorkflow.run, run.export.export_id
                )
                try:
                    progress = await handle.result()
                    break
                except RPCError:  # Temporal restarting: ask again
                    await asyncio.sleep(1)
    except TimeoutError:
        return None, f"not finished within {within:.0f} s", time.monotonic() - run.started
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        return None, f"{type(exc).__name__}: {cause or exc}", time.monotonic() - run.started
    return progress, None, time.monotonic() - run.started


async def reconnect(settings: Settings, within: float = 60) -> Client:
    async with asyncio.timeout(within):
        while True:
            try:
                return await connect(settings)
            except Exception:
                await asyncio.sleep(0.5)
