"""Scenario 4, the application stays responsive: API latency at a steady request rate, idle and
with three large exports running, for the new worker layout and the old one in the same run.

A bounded, open-loop load generator (loopback only) sends `GET /exports/{id}` and `/healthz`
alternately at a fixed rate per endpoint; each request's latency is measured from its scheduled
send time, so a stalled server cannot hide its delay by slowing the generator.

* Product, two layouts, each its own API and workers on a task queue of its own:
  `split` (`export-worker --role all`: one workflow process, one activity process per core) and
  `single` (`--role combined`: workflows and activities in one process, the layout before).
  `GET /exports/{id}` answers from the Temporal server alone (memo + pending heartbeat) in both;
  beside it the benchmark sends the workflow's `progress` query at the same rate (the status
  path before: the worker had to answer it within 2 s), which shows what each layout does to a
  workflow task. Idle: three small exports held open by their completion webhook. Load: three
  large exports running (cancelled once the window is measured).
* The alternative to `split` (issue 13): `pool`, `--role all` with
  `WORKER_ACTIVITY_EXECUTOR=processes` (one workflow process; one activity process that runs the
  activities in a process pool of one process per core), measured the same way in the same run.
* Contrast: `bench.sync_app`, where the same export runs inside the request handler; idle, then
  with three such requests in flight.

The load must be real inside the measured window, or the scenario says "invalid": the rows of
each of the three exports advance during the window (read from the server), the worker
processes are busy (CPU), and the export-inside-the-handler baseline degrades.

Target: the split layout's `GET /exports/{id}` p99 under load ≤ 2× its idle p99, with no answer
degraded (without counters); `/healthz` the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
from temporalio.client import Client, WorkflowFailureError

from api.server_progress import progress_from_server
from bench import plots
from bench.common import (
    BENCH_WEBHOOK_PORT,
    ENGINE_LABELS,
    Layout,
    ManagedProcess,
    ProductStack,
    RssSampler,
    free_port,
    log,
    mb,
    settings_for,
)
from bench.context import BenchContext
from bench.data import ensure_collection
from bench.product import auth_headers, delete_objects, owner, start_export
from bench.report import ScenarioResult, Target, judge
from bench.s1_end_to_end import request_for
from bench.stats import latency_summary
from devstack import services
from domain.settings import Settings
from workflows.export_workflow import ExportWorkflow

ENGINE = "mongo-java-server"
TARGET = 2.0
EXPORTS = 3
LAYOUTS: tuple[Layout, ...] = ("split", "single", "pool")
LAYOUT_LABELS = {
    "split": "new layout (1 workflow + N activity processes)",
    "single": "old layout (one worker process)",
    "pool": "pool layout (1 workflow + 1 activity process with a pool of N)",
}
APPS = ("split", "single", "pool", "sync")
JUDGED = ("split", "single", "sync")
"""The apps whose windows decide the scenario's validity; the pool layout (the alternative
measured for issue 13) reports its own, so that it cannot invalidate the others."""
GET = "GET /exports/{id}"
HEALTHZ = "/healthz"
QUERY = "progress query (old status path)"
QUERY_TIMEOUT = timedelta(seconds=2)
"""The old API waited this long for the worker's answer, then showed no counters."""
WARM_UP_SECONDS = 240.0
BUSY_CORES = 0.25
"""The export's processes (the workers and the engine they read) must use at least this many
cores during the loaded window. The engine counts: on mongo-java-server most of an export's CPU
is the server scanning and sorting for each part, while the workers wait for its reply. A
quarter of a core: the machine's 2 cores are shared with Temporal, S3, the API and whatever
else runs on it, so the export's share is a fraction of what it would take alone."""
BASELINE_DEGRADES = 2.0
"""The export-inside-the-handler baseline's p99 under load ÷ idle must reach this."""

QUIET_CORES = 0.15
QUIET_SAMPLE_SECONDS = 2.0
QUIET_WITHIN_SECONDS = 300.0

Probe = Callable[[], Awaitable[bool]]
"""Sends one request; True when the answer is degraded (no counters, or timed out)."""


class HeldWebhook:
    """Receives completion webhooks and answers only when released (or after `hold` seconds,
    with 503, so that the notify activity retries and the workflow stays open)."""

    def __init__(self, hold: float = 8.0) -> None:
        self.release = threading.Event()
        self.received: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.add(json.loads(body)["export_id"])
                released = receiver.release.wait(hold)
                self.send_response(204 if released else 503)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", BENCH_WEBHOOK_PORT), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/done"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


async def steady_load(
    probes: dict[str, list[Probe]], rate: float, count: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """`count` requests per endpoint at `rate` per second each, interleaved, open loop.

    Returns each endpoint's latencies (seconds, from the scheduled send time) and how many of
    its answers were degraded."""
    names = list(probes)
    interval = 1.0 / (rate * len(names))
    latencies: dict[str, list[float]] = {name: [] for name in names}
    degraded: dict[str, int] = dict.fromkeys(names, 0)
    failures: list[str] = []
    start = time.perf_counter() + 0.05

    async def one(name: str, probe: Probe, scheduled: float) -> None:
        try:
            worse = await probe()
        except Exception as exc:
            failures.append(f"{name}: {exc!r}")
            return
        latencies[name].append(time.perf_counter() - scheduled)
        degraded[name] += worse

    tasks = []
    for k in range(count * len(names)):
        scheduled = start + k * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name = names[k % len(names)]
        choices = probes[name]
        probe = choices[(k // len(names)) % len(choices)]
        tasks.append(asyncio.create_task(one(name, probe, scheduled)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return latencies, degraded


def http_probe(client: httpx.AsyncClient, path: str) -> Probe:
    async def probe() -> bool:
        response = await client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} {response.text[:200]}")
        body = response.json()
        return isinstance(body, dict) and "strategy" in body and body["strategy"] is None

    return probe


def query_probe(temporal: Client, export_id: str) -> Probe:
    handle = temporal.get_workflow_handle_for(ExportWorkflow.run, export_id)

    async def probe() -> bool:
        try:
            await handle.query(ExportWorkflow.progress, rpc_timeout=QUERY_TIMEOUT)
        except Exception:
            return True  # the old API showed a view without counters after 2 s
        return False

    return probe


def product_probes(
    api: httpx.AsyncClient, temporal: Client, ids: list[str]
) -> dict[str, list[Probe]]:
    return {
        GET: [http_probe(api, f"/exports/{i}") for i in ids],
        HEALTHZ: [http_probe(api, "/healthz")],
        QUERY: [query_probe(temporal, i) for i in ids],
    }


async def rows_now(temporal: Client, ids: list[str]) -> list[int | None]:
    """Each export's rows as the server knows them (memo + heartbeat of the part in flight);
    None for one that is no longer running."""
    found: list[int | None] = []
    for export_id in ids:
        description = await temporal.get_workflow_handle(export_id).describe()
        progress = await progress_from_server(description)
        running = description.status is not None and description.status.name == "RUNNING"
        if not running:
            found.append(None)
        else:  # no memo yet: its first workflow task is still to come
            found.append(progress.rows if progress is not None else 0)
    return found


def _engine_process() -> psutil.Process | None:
    pid = services.SERVICES[ENGINE].pid()
    return psutil.Process(pid) if pid is not None else None


def _cpu(processes: list[Any]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def wait_quiet(stack: ProductStack, within: float = QUIET_WITHIN_SECONDS) -> float:
    """Wait until the workers and the engine are idle again: a cancelled export's part in
    flight runs on (the workflow does not wait for it) and would load the next phase.
    Returns the seconds waited."""
    began = time.perf_counter()
    while time.perf_counter() - began < within:
        engine = _engine_process()
        processes = stack.require_worker().tree() + ([engine] if engine else [])
        before = _cpu(processes)
        await asyncio.sleep(QUIET_SAMPLE_SECONDS)
        if (_cpu(processes) - before) / QUIET_SAMPLE_SECONDS < QUIET_CORES:
            break
    return time.perf_counter() - began


async def _wait_for(predicate: Any, seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await predicate():  # noqa: ASYNC110 (polls other processes)
                await asyncio.sleep(0.2)
    except TimeoutError as exc:
        raise RuntimeError(f"timed out waiting for {what}") from exc


async def product_phases(
    ctx: BenchContext, stack: ProductStack, collection: str, rep: int
) -> dict[str, Any]:
    sizes = ctx.sizes
    settings = stack.settings
    worker = stack.require_worker()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    phases: dict[str, Any] = {}
    keys: list[str] = []
    await wait_quiet(stack)

    # -- idle: three small exports held open at their completion webhook ---------------------
    webhook = HeldWebhook()
    idle_owner = owner(f"bench-s4-idle-{stack.layout}-{rep}")
    try:
        async with httpx.AsyncClient(
            base_url=stack.api_url,
            headers=auth_headers(settings, idle_owner),
            timeout=30,
            limits=limits,
        ) as api:
            ids = [
                await start_export(
                    api,
                    {
                        "collection": collection,
                        "pipeline": [{"$match": {"seq": {"$lt": 500}}}],
                        "notify": {"webhook_url": webhook.url},
                    },
                )
                for _ in range(EXPORTS)
            ]

            async def all_held() -> bool:
                return set(ids) <= webhook.received

            await _wait_for(all_held, 120, "the idle exports to reach their webhook")
            idle_rss = worker.rss_by_process()
            samples, degraded = await steady_load(
                product_probes(api, ctx.temporal, ids), sizes.s4_rate, sizes.s4_requests
            )
            held = webhook.received >= set(ids) and not webhook.release.is_set()
            phases["idle"] = {
                "samples": samples,
                "fallbacks": degraded,
                "valid": held,
                "why_invalid": [] if held else ["an idle export ended during its window"],
                "rss_by_process": idle_rss,
            }
            webhook.release.set()
            for export_id in ids:
                progress = await ctx.temporal.get_workflow_handle_for(
                    ExportWorkflow.run, export_id
                ).result()
                if progress.object_key:
                    keys.append(progress.object_key)
    finally:
        webhook.close()

    # -- load: three large exports running ----------------------------------------------------
    handles = []
    async with contextlib.AsyncExitStack() as stack_of_clients:
        clients = [
            await stack_of_clients.enter_async_context(
                httpx.AsyncClient(
                    base_url=stack.api_url,
                    headers=auth_headers(
                        settings, owner(f"bench-s4-load-{stack.layout}-{rep}-{n}")
                    ),
                    timeout=30,
                    limits=limits,
                )
            )
            for n in range(EXPORTS)
        ]
        ids = [await start_export(c, request_for(collection)) for c in clients]
        handles = [ctx.temporal.get_workflow_handle_for(ExportWorkflow.run, i) for i in ids]

        async def all_writing_or_one_ended() -> bool:
            rows = await rows_now(ctx.temporal, ids)
            return None in rows or all(rows)

        # The window opens once every export has read rows (planning and the first reply of a
        # large read are behind it), so it measures exports at work, not exports starting. One
        # that ended already makes the window invalid (the check after it says so).
        warm = time.perf_counter()
        warm_up_why: list[str] = []
        try:
            await _wait_for(
                all_writing_or_one_ended, WARM_UP_SECONDS, "the three large exports to read rows"
            )
        except RuntimeError:  # measure anyway: the window's checks say why it is invalid
            warm_up_why.append(f"not every export had read rows after {WARM_UP_SECONDS:.0f} s")
        warm_up = time.perf_counter() - warm
        rows_before = await rows_now(ctx.temporal, ids)
        engine = _engine_process()
        engine_before = _cpu([engine] if engine else [])
        cpu_before, began = worker.cpu_seconds(), time.perf_counter()
        with RssSampler(worker, interval=0.25) as memory:
            samples, degraded = await steady_load(
                product_probes(clients[0], ctx.temporal, ids[:1]),
                sizes.s4_rate,
                sizes.s4_requests,
            )
        window = time.perf_counter() - began
        busy = (worker.cpu_seconds() - cpu_before) / window
        engine_busy = (_cpu([engine] if engine else []) - engine_before) / window
        rows_after = await rows_now(ctx.temporal, ids)
        load_rss = worker.rss_by_process()
        why: list[str] = list(warm_up_why)
        # An export that ended inside the window advanced too (to its last row).
        advanced = [
            b is not None and (a is None or a > b)
            for b, a in zip(rows_before, rows_after, strict=True)
        ]
        if not all(advanced):
            why.append(
                f"rows did not advance during the window for {advanced.count(False)} of "
                f"{EXPORTS} exports ({rows_before} → {rows_after})"
            )
        if busy + engine_busy < BUSY_CORES:
            why.append(
                f"the workers and the engine used {busy + engine_busy:.2f} cores, under "
                f"{BUSY_CORES}"
            )
        phases["load"] = {
            "samples": samples,
            "fallbacks": degraded,
            "valid": not why,
            "why_invalid": why,
            "warm_up_seconds": warm_up,
            "window_seconds": window,
            "rows_before": rows_before,
            "rows_after": rows_after,
            "worker_cores_busy": busy,
            "engine_cores_busy": engine_busy,
            "worker_peak_rss_bytes": memory.peak,
            "rss_by_process": load_rss,
        }
        log.info(
            "scenario 4, %s layout, loaded window: %.0f s after %.0f s of warm-up, rows %s → %s, "
            "cores busy: workers %.2f, engine %.2f%s",
            stack.layout,
            window,
            warm_up,
            rows_before,
            rows_after,
            busy,
            engine_busy,
            f"; INVALID: {'; '.join(why)}" if why else "",
        )
        for c, i in zip(clients, ids, strict=True):
            await c.delete(f"/exports/{i}")
    for handle in handles:
        with contextlib.suppress(WorkflowFailureError):
            progress = await handle.result()
            if progress.object_key:
                keys.append(progress.object_key)
    delete_objects(settings, keys)
    phases["load"]["quiet_after_seconds"] = await wait_quiet(stack)
    return phases


async def sync_phases(ctx: BenchContext, collection: str) -> dict[str, Any]:
    sizes = ctx.sizes
    port = free_port()
    settings = settings_for(ENGINE)
    app = ManagedProcess(
        "sync-app",
        [sys.executable, "-m", "bench.sync_app", "--port", str(port)],
        {
            **os.environ,
            "MONGODB_URI": settings.mongodb_uri,
            "MONGODB_DATABASE": settings.mongodb_database,
        },
    )
    phases: dict[str, Any] = {}
    base = f"http://127.0.0.1:{port}"
    ids = [uuid.uuid4().hex for _ in range(EXPORTS)]
    try:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as api:

            async def up() -> bool:
                try:
                    return (await api.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await _wait_for(up, 60, "the sync app to answer")
            probes = {
                GET: [http_probe(api, f"/exports/{i}") for i in ids],
                HEALTHZ: [http_probe(api, "/healthz")],
            }
            samples, fallbacks = await steady_load(probes, sizes.s4_rate, sizes.s4_requests)
            phases["idle"] = {
                "samples": samples,
                "fallbacks": fallbacks,
                "valid": True,
                "why_invalid": [],
            }

            async def download(export_id: str) -> int:
                total = 0
                async with api.stream(
                    "POST", f"/exports/{export_id}", json=request_for(collection)
                ) as response:
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                return total

            async def encoded() -> list[int | None]:
                """Rows each export has encoded; None for one that has answered already."""
                answers = [(await api.get(f"/exports/{i}")).json() for i in ids]
                return [
                    None
                    if a["status"] == "COMPLETED"
                    else int(a["rows"])
                    if a["status"] == "ENCODING"
                    else 0
                    for a in answers
                ]

            async def all_encoding() -> bool:
                return all(r is None or r > 0 for r in await encoded())

            downloads = [asyncio.create_task(download(i)) for i in ids]
            # As for the product, the window opens once every export is at work (encoding rows,
            # past the engine's first reply), so it measures exports at work, not waiting.
            why: list[str] = []
            try:
                await _wait_for(all_encoding, WARM_UP_SECONDS, "the in-handler exports to encode")
            except RuntimeError:
                why.append(f"not every export was encoding after {WARM_UP_SECONDS:.0f} s")
            rows_before = await encoded()
            samples, fallbacks = await steady_load(probes, sizes.s4_rate, sizes.s4_requests)
            still = sum(1 for d in downloads if not d.done())
            rows_after = await encoded()
            # An export that ended inside the window advanced too (to its last row).
            advanced = [
                b is not None and (a is None or a > b)
                for b, a in zip(rows_before, rows_after, strict=True)
            ]
            if not all(advanced):
                why.append(
                    f"rows did not advance during the window for {advanced.count(False)} of "
                    f"{EXPORTS} exports ({rows_before} → {rows_after})"
                )
            phases["load"] = {
                "samples": samples,
                "fallbacks": fallbacks,
                "valid": not why,
                "why_invalid": why,
                "running": still,
                "rows_before": rows_before,
                "rows_after": rows_after,
            }
            for task in downloads:
                task.cancel()
            await asyncio.gather(*downloads, return_exceptions=True)
    finally:
        app.stop(timeout=5)
    return phases


def _p99(phases: dict[str, Any], phase: str, endpoint: str) -> float:
    return float(latency_summary(phases[phase]["samples"][endpoint])["p99_ms"])


def _ratio(phases: dict[str, Any], endpoint: str) -> float:
    return _p99(phases, "load", endpoint) / _p99(phases, "idle", endpoint)


def _merge(into: dict[str, Any], phases: dict[str, Any]) -> None:
    for phase, data in phases.items():
        slot = into.setdefault(
            phase, {"samples": {}, "fallbacks": {}, "valid": True, "why_invalid": []}
        )
        slot["valid"] = slot["valid"] and data["valid"]
        slot["why_invalid"] += data["why_invalid"]
        for endpoint, values in data["samples"].items():
            slot["samples"].setdefault(endpoint, []).extend(values)
        for endpoint, count in data["fallbacks"].items():
            slot["fallbacks"][endpoint] = slot["fallbacks"].get(endpoint, 0) + count
        for key in (
            "worker_cores_busy",
            "engine_cores_busy",
            "worker_peak_rss_bytes",
            "warm_up_seconds",
        ):
            if key in data:
                slot.setdefault(key, []).append(data[key])
        if "rss_by_process" in data:
            slot["rss_by_process"] = data["rss_by_process"]


def _memory(rss: list[tuple[str, int]]) -> str:
    by_role: dict[str, list[int]] = {}
    for role, value in rss:
        by_role.setdefault(role, []).append(value)
    parts = [
        f"{role} {' + '.join(f'{mb(v):.0f}' for v in values)}" for role, values in by_role.items()
    ]
    return f"{mb(sum(v for _, v in rss)):.0f} MB ({'; '.join(parts)})"


async def run(ctx: BenchContext) -> ScenarioResult:
    sizes = ctx.sizes
    result = ScenarioResult(4, "The application stays responsive")
    collection, _ = ensure_collection(ENGINE, sizes.s1_docs)
    measured: dict[str, Any] = {app: {} for app in APPS}
    measured["per_rep"] = []
    for rep in range(sizes.s4_reps):
        per_rep: dict[str, Any] = {}
        for layout in LAYOUTS:
            log.info("scenario 4, repetition %d: the product, %s layout", rep + 1, layout)
            stack = ctx.stack(ENGINE, layout)
            phases = await product_phases(ctx, stack, collection, rep)
            _merge(measured[layout], phases)
            per_rep[layout] = phases
        log.info("scenario 4, repetition %d: the export inside the handler", rep + 1)
        sync = await sync_phases(ctx, collection)
        _merge(measured["sync"], sync)
        per_rep["sync"] = sync
        measured["per_rep"].append(
            {
                app: {
                    phase: {
                        "valid": data["valid"],
                        **{e: latency_summary(v) for e, v in data["samples"].items()},
                    }
                    for phase, data in phases_of_app.items()
                }
                for app, phases_of_app in per_rep.items()
            }
        )
    summaries: dict[str, Any] = {}
    for app in APPS:
        for phase in ("idle", "load"):
            for endpoint, values in measured[app][phase]["samples"].items():
                summaries[f"{app}.{phase}.{endpoint}"] = latency_summary(values)
    measured["summaries"] = summaries

    why_invalid = [
        f"{app} {phase}: {reason}"
        for app in JUDGED
        for phase in ("idle", "load")
        for reason in measured[app][phase]["why_invalid"]
    ]
    baseline = _ratio(measured["sync"], GET)
    if baseline < BASELINE_DEGRADES:
        why_invalid.append(
            f"the export-inside-the-handler baseline did not degrade ({baseline:.2f}× < "
            f"{BASELINE_DEGRADES}×): the load was not real"
        )
    valid = not why_invalid
    measured["valid"] = valid
    measured["why_invalid"] = why_invalid
    invalid = "invalid: " + "; ".join(why_invalid)

    split = measured["split"]
    degraded = split["load"]["fallbacks"][GET]
    answers = len(split["load"]["samples"][GET])
    for endpoint in (GET, HEALTHZ):
        ratio = _ratio(split, endpoint)
        result.outcomes.append(
            judge(
                Target(
                    f"s4.{endpoint}",
                    f"`{endpoint}` p99 with 3 large exports ÷ idle p99 (new layout)",
                    "<=",
                    TARGET,
                    "×",
                ),
                ratio if valid else None,
                detail=f"{_p99(split, 'load', endpoint):.0f} ms vs "
                f"{_p99(split, 'idle', endpoint):.0f} ms",
                why=invalid
                if not valid
                else "the API, both engines, Temporal, S3 and the activity processes share "
                "2 cores, all busy with the three exports",
            )
        )
    result.outcomes.append(
        judge(
            Target("s4.degraded", f"`{GET}` answers without counters under load", "<=", 0, ""),
            float(degraded) if valid else None,
            detail=f"{degraded} of {answers}",
            why=invalid if not valid else "some answers came without counters",
        )
    )

    for endpoint in (GET, HEALTHZ, QUERY):
        for app in APPS:
            if endpoint not in measured[app]["idle"]["samples"]:
                continue
            label = LAYOUT_LABELS.get(app, "export inside the request handler")
            for phase in ("idle", "load"):
                summary = summaries[f"{app}.{phase}.{endpoint}"]
                result.figures.append(
                    (
                        f"`{endpoint}`, {label}, {phase}: p50 / p99 / max (ms)",
                        f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} / "
                        f"{summary['max_ms']:.0f}",
                    )
                )
        ratios = " vs ".join(
            f"{_ratio(measured[app], endpoint):.2f}×"
            for app in APPS
            if endpoint in measured[app]["idle"]["samples"]
        )
        result.figures.append(
            (
                f"`{endpoint}` p99 ratio, load ÷ idle: new layout vs old layout vs pool layout"
                + (" vs export inside the handler" if endpoint != QUERY else ""),
                ratios,
            )
        )
    for app in LAYOUTS:
        load = measured[app]["load"]
        result.figures.append(
            (
                f"{LAYOUT_LABELS[app]}: answers degraded under load, `{GET}` / progress query",
                f"{load['fallbacks'][GET]} of {len(load['samples'][GET])} / "
                f"{load['fallbacks'][QUERY]} of {len(load['samples'][QUERY])}",
            )
        )
        result.figures.append(
            (
                f"{LAYOUT_LABELS[app]}: load proof — cores busy in the window, workers + "
                "engine; warm-up before it (s)",
                ", ".join(
                    f"{w:.2f} + {e:.2f}"
                    for w, e in zip(
                        load.get("worker_cores_busy", []),
                        load.get("engine_cores_busy", []),
                        strict=True,
                    )
                )
                + f"; {', '.join(f'{v:.0f}' for v in load.get('warm_up_seconds', []))}",
            )
        )
        result.figures.append(
            (
                f"{LAYOUT_LABELS[app]}: worker memory, idle (RSS by process, MB)",
                _memory(measured[app]["idle"].get("rss_by_process", [])),
            )
        )
        result.figures.append(
            (
                f"{LAYOUT_LABELS[app]}: worker memory under load (RSS by process, MB); peak of "
                "the sum",
                f"{_memory(load.get('rss_by_process', []))}; "
                f"{mb(max(load.get('worker_peak_rss_bytes', [0]))):.0f} MB",
            )
        )
    result.figures.append(
        (
            "load real (rows advanced, workers busy, baseline degraded)",
            ("yes" if valid else invalid),
        )
    )
    pool_why = [
        f"{phase}: {reason}"
        for phase in ("idle", "load")
        for reason in measured["pool"][phase]["why_invalid"]
    ]
    result.figures.append(
        (
            "pool layout's own windows valid (rows advanced, workers busy)",
            "yes" if not pool_why else "invalid: " + "; ".join(pool_why),
        )
    )
    result.setup += [
        f"{ENGINE_LABELS[ENGINE]}; each large export is scenario 1's report of the whole "
        f"{sizes.s1_docs:,}-document collection, three at once, each by its own user",
        f"{sizes.s4_requests} requests per endpoint per phase at {sizes.s4_rate:.0f} requests/s "
        f"per endpoint, open loop, over loopback; {sizes.s4_reps} repetition(s), samples pooled",
        "new layout: `export-worker --role all` (one workflow process, "
        f"{os.cpu_count()} activity processes at niceness {Settings().worker_activity_nice}); "
        "old layout: `--role combined` (one process, default priority); "
        "pool layout: `--role all` with `WORKER_ACTIVITY_EXECUTOR=processes` (one workflow "
        f"process, one activity process at niceness {Settings().worker_activity_nice} running "
        f"the activities in a spawned process pool of {os.cpu_count()}, one activity per pool "
        "process, plus the SDK's shared-state manager process); "
        "each with its own API process and task queue; both APIs answer `GET /exports/{id}` "
        "from the Temporal server (memo + heartbeat)",
        "the progress query is the old status path, sent by the benchmark (2 s timeout, as the "
        "old API had); a timed-out query counts as degraded",
        "the loaded window opens once all three exports have read rows; it is valid when every "
        "export's rows advance inside it (as the server shows them; an export that ends inside "
        f"it counts), the workers and the engine use ≥ {BUSY_CORES} cores, and "
        f"the export-inside-the-handler baseline degrades ≥ {BASELINE_DEGRADES}×",
        "memory: RSS of each worker process (psutil; `pool` = the pool's processes, its "
        "manager and the resource tracker), and the sampled peak of their sum",
    ]
    result.data = measured
    result.plots.append(plots.s4(ctx.plot_path("s4"), measured))
    return result
