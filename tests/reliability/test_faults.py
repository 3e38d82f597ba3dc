"""Exports under real faults: toxiproxy between the worker and S3 / MongoDB, SIGKILLed workers,
a restarted Temporal server, two workers with one killed.

For every export: the object is byte-identical to the unchunked reference, no row is missing
or duplicated, and no multipart upload is left open under the export's prefix. `combined` runs
in `make test`; the rest only in `make reliability`.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import CursorNotFound
from temporalio.client import Client

from activities import errors
from connections.temporal import connect
from devstack.toxiproxy import Proxy
from domain.models import Column, ExportRequest, ProgressView
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents
from tests.reliability import chaos
from tests.reliability.chaos import Toxic, toxic
from tests.reliability.conftest import full_only, through_proxies
from tests.reliability.results import Results, logs_dir

pytestmark = [pytest.mark.reliability, pytest.mark.services, pytest.mark.slow]

ERROR_LINE = re.compile(r"^((?:pymongo\.errors|botocore\.exceptions)\.\w+):", re.MULTILINE)
"""The last line of a failed activity attempt's traceback in a worker's log."""
SEED = 20240501
LOGS = logs_dir()
MIB = 1024 * 1024
SOURCE_DOCUMENTS = 12_000  # about 20 MB of JSON Lines: four parts of 5 MiB
CSV_COLUMNS = [
    Column(path="_id"),
    Column(path="n", header="Number"),
    Column(path="when"),
    Column(path="price"),
    Column(path="address.city", header="City"),
    Column(path="tags"),
    Column(path="pad"),  # incompressible: the CSV spans as many parts as the JSON Lines
]


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    rows: tuple[int, ...] = (SOURCE_DOCUMENTS,)
    """One export per entry, of the first N source documents, run at the same time."""
    csv: bool = False
    """The second and later exports are CSV with explicit columns (the first is JSON Lines)."""
    steady: tuple[Toxic, ...] = ()
    bursts: tuple[Toxic, ...] = ()
    burst_gap: tuple[float, float] = (1.0, 4.0)
    kill_gap: tuple[float, float] | None = None
    min_kills: int = 0
    """SIGKILLs each export must live through (between its start and its end)."""
    workers: int = 1
    """Activity worker processes (beside the one workflow process)."""
    restart_temporal: bool = False
    kill_one_of_two: bool = False
    batch_size: int | None = None
    """The worker's MONGODB_BATCH_SIZE (small: many getMores on one cursor)."""
    repeat_for: float = 0.0
    """Keep starting the same batch of exports again until this many seconds have passed."""
    silences: tuple[tuple[str, float], ...] = ()
    """(proxy, seconds): black-hole that proxy's traffic while a part is in flight, one silence
    per part from the second on; removing the toxic then closes the silenced connections."""
    within: float = 420.0


@dataclass
class Outcome:
    scenario: Scenario
    faults: chaos.FaultLog
    verdicts: list[chaos.Verdict] = field(default_factory=list)
    seconds: float = 0.0
    peak_worker_rss_mib: float = 0.0
    worker_log: str = ""
    retried_errors: dict[str, int] = field(default_factory=dict)
    """Failed activity attempts by error, from the workers' log (each was retried)."""


S3_BURSTS = (
    toxic("s3", "reset_peer", "downstream", timeout=0),
    toxic("s3", "reset_peer", "upstream", timeout=300),
    toxic("s3", "timeout", "upstream", timeout=1500),
    toxic("s3", "limit_data", "upstream", bytes=1_000_000),
    toxic("s3", "slicer", "downstream", average_size=64, size_variation=32, delay=10),
)
MONGO_BURSTS = (
    toxic("mongo", "reset_peer", "downstream", timeout=0),
    toxic("mongo", "reset_peer", "downstream", timeout=500),
    toxic("mongo", "timeout", "downstream", timeout=1500),
    toxic("mongo", "limit_data", "downstream", bytes=2_000_000),
)

COMBINED = Scenario(
    "combined",
    "S3 and MongoDB connections reset, cut after a byte budget and timed out in random bursts, "
    "S3 latency, and worker processes (activity, workflow, both) SIGKILLed at random moments "
    "(CI-sized)",
    rows=(8_000,),
    steady=(toxic("s3", "latency", "downstream", latency=40, jitter=20),),
    bursts=S3_BURSTS + MONGO_BURSTS,
    burst_gap=(1.0, 3.0),
    # A killed part waits out its 10 s heartbeat timeout and a retry backoff, and a new process
    # takes seconds to start on a loaded machine; `chaos.kill_randomly` therefore also waits for a
    # finished part between two kills, so the export always progresses however slow the machine.
    kill_gap=(4.0, 8.0),
    min_kills=2,
    within=360.0,
)

FULL_SCENARIOS = [
    Scenario(
        "latency_and_bandwidth",
        "S3: 250 ± 150 ms latency both ways, uploads cut to 1.5 MB/s; MongoDB: 30 ms latency, "
        "reads cut to 3 MB/s; a JSON Lines and a CSV export at once",
        rows=(SOURCE_DOCUMENTS, 8_000),
        csv=True,
        steady=(
            toxic("s3", "latency", "downstream", latency=250, jitter=150),
            toxic("s3", "latency", "upstream", latency=250, jitter=150),
            toxic("s3", "bandwidth", "upstream", rate=1500),
            toxic("mongo", "latency", "downstream", latency=30, jitter=10),
            toxic("mongo", "bandwidth", "downstream", rate=3000),
        ),
    ),
    Scenario(
        "s3_resets_and_timeouts",
        "S3 connections reset (at once and after 300 ms), timed out after 1.5 s, cut after "
        "1 MB of upload, and sliced into 64-byte segments, in random bursts; exports repeated "
        "for 60 s",
        bursts=S3_BURSTS,
        burst_gap=(0.5, 2.0),
        repeat_for=60.0,
    ),
    Scenario(
        "mongo_resets_and_timeouts",
        "MongoDB connections reset (at once and after 500 ms), timed out after 1.5 s and cut "
        "after 2 MB of reply, in random bursts; exports repeated for 60 s",
        bursts=MONGO_BURSTS,
        burst_gap=(0.5, 2.0),
        repeat_for=60.0,
    ),
    Scenario(
        "worker_sigkill",
        "worker processes SIGKILLed at random moments (an activity process, the workflow "
        "process, or both at once), at least three times per export, two exports (JSON Lines "
        "and CSV) at once",
        rows=(SOURCE_DOCUMENTS, SOURCE_DOCUMENTS),
        csv=True,
        kill_gap=(3.0, 7.0),
        min_kills=3,
    ),
    Scenario(
        "temporal_restart",
        "the Temporal dev server stopped and started again mid-export",
        restart_temporal=True,
    ),
    Scenario(
        "two_workers_kill_one",
        "two activity worker processes; the one running the part in flight is SIGKILLed and "
        "not restarted",
        workers=2,
        kill_one_of_two=True,
    ),
    Scenario(
        "silent_network",
        "connections that go silent mid-part (nothing passes, nothing is closed) for 20 s: "
        "first MongoDB's, then S3's",
        silences=(("mongo", 20.0), ("s3", 20.0)),
    ),
    Scenario(
        "mongo_connections_closed_mid_cursor",
        "three exports reading with 100-row batches (many getMores per part) while MongoDB "
        "connections are black-holed for 1.5 s and then closed, in bursts; repeated for 60 s",
        rows=(8_000, 8_000, 8_000),
        batch_size=100,
        bursts=(toxic("mongo", "timeout", "downstream", timeout=1500),),
        burst_gap=(2.0, 5.0),
        repeat_for=60.0,
    ),
    Scenario(
        "s3_responses_lost",
        "half of the S3 connections reset as their response starts (the request was done, the "
        "answer is lost), for the whole run; eight one-part exports at once, repeated for 30 s",
        rows=(2_000,) * 8,
        repeat_for=30.0,
        steady=(toxic("s3", "reset_peer", "downstream", toxicity=0.5, timeout=0),),
    ),
    Scenario(
        "everything_at_once",
        "three exports (JSON Lines and CSV) at once through every S3 and MongoDB burst above, "
        "S3 latency, random worker SIGKILLs and a Temporal restart",
        rows=(SOURCE_DOCUMENTS, 8_000, 8_000),
        csv=True,
        steady=(toxic("s3", "latency", "downstream", latency=40, jitter=20),),
        bursts=S3_BURSTS + MONGO_BURSTS,
        burst_gap=(1.0, 3.0),
        kill_gap=(5.0, 10.0),
        min_kills=1,
        restart_temporal=True,
    ),
]


@pytest.fixture(scope="module")
def source(settings: Settings) -> Iterator[str]:
    """The source collection every scenario exports from (FerretDB, read through the proxy)."""
    name = f"reliability_faults_{int(time.time())}"
    h.seed(settings, name, documents(SOURCE_DOCUMENTS, pad=1500))
    yield name
    h.drop(settings, name)


def _requests(scenario: Scenario, collection: str) -> list[ExportRequest]:
    requests = []
    for index, rows in enumerate(scenario.rows):
        pipeline = [] if rows >= SOURCE_DOCUMENTS else [{"$match": {"n": {"$lt": rows}}}]
        if scenario.csv and index > 0:
            requests.append(
                ExportRequest(
                    collection=collection, pipeline=pipeline, columns=CSV_COLUMNS, format="csv"
                )
            )
        else:
            requests.append(ExportRequest(collection=collection, pipeline=pipeline, format="jsonl"))
    return requests


class _Clients:
    """The test's Temporal client, replaced after a Temporal restart."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self) -> Client:
        return self.client


async def _restart_temporal_mid_export(
    scenario_settings: Settings,
    clients: _Clients,
    runs: list[chaos.ExportRun],
    faults: chaos.FaultLog,
) -> None:
    await h.wait_for(runs[0].handle, lambda p: p.parts >= 1, within=240)
    await asyncio.to_thread(chaos.restart_temporal, faults)
    clients.client = await chaos.reconnect(scenario_settings)


async def _kill_the_busy_worker(
    fleet: chaos.WorkerFleet, clients: _Clients, runs: list[chaos.ExportRun]
) -> None:
    """Wait for a part in flight after the first, then SIGKILL the worker running it."""
    await h.wait_for(runs[0].handle, lambda p: p.parts >= 1, within=240)
    async with asyncio.timeout(240):
        while True:
            for kind, identity in await chaos.pending_activities(
                clients(), runs[0].export.export_id
            ):
                busy = fleet.by_identity(identity)
                if kind == "upload_next_part" and busy is not None:
                    fleet.faults.in_flight_at_kill[kind] += 1
                    fleet.kill(busy)
                    return
            await asyncio.sleep(0.1)


async def _silence_mid_part(
    scenario: Scenario,
    proxies: dict[str, Proxy],
    clients: _Clients,
    runs: list[chaos.ExportRun],
    faults: chaos.FaultLog,
) -> None:
    """Black-hole each proxy in turn while the part after the n-th is being produced."""
    export_id = runs[0].export.export_id
    for done, (proxy, seconds) in enumerate(scenario.silences, start=1):
        await h.wait_for(runs[0].handle, lambda p, n=done: p.parts >= n, within=240)
        async with asyncio.timeout(60):
            while True:
                pending = await chaos.pending_activities(clients(), export_id)
                if "upload_next_part" in [kind for kind, _ in pending]:
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # into the part: reading, encoding or uploading
        with proxies[proxy].toxic("timeout", stream="downstream", timeout=0):
            faults.add(f"{proxy} silent for {seconds:.0f} s mid-part")
            await asyncio.sleep(seconds)


async def run_scenario(
    scenario: Scenario,
    settings: Settings,
    proxies: dict[str, Proxy],
    collection: str,
    log_dir: Path,
) -> Outcome:
    direct = settings.model_copy(
        update={"temporal_task_queue": f"faults-{scenario.name}-{random.randbytes(4).hex()}"}
    )
    worker_settings = through_proxies(direct, proxies).model_copy(
        update={"part_size_bytes": 5 * MIB}
        | ({"mongodb_batch_size": scenario.batch_size} if scenario.batch_size else {})
    )
    seed = f"{SEED}-{scenario.name}"
    burst_rng, kill_rng = random.Random(f"{seed}-bursts"), random.Random(f"{seed}-kills")
    faults = chaos.FaultLog()
    outcome = Outcome(scenario, faults)
    log = log_dir / f"{scenario.name}-workers.log"
    log.unlink(missing_ok=True)
    fleet = chaos.WorkerFleet(worker_settings, log, faults)
    clients = _Clients(await connect(direct))
    for proxy in proxies.values():
        proxy.clear()
    steady = [(item.proxy, item.add_to(proxies)) for item in scenario.steady]
    for item in scenario.steady:
        faults.add(item.label)
    started = time.monotonic()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    runs: list[chaos.ExportRun] = []
    finished: list[tuple[ProgressView | None, str | None, float]] = []
    try:
        fleet.start(activity_processes=scenario.workers)
        runs = await chaos.start_exports(
            clients(), worker_settings, _requests(scenario, collection), h.OWNER
        )
        ids = [run.export.export_id for run in runs]
        tasks.append(asyncio.create_task(chaos.sample_memory(fleet, stop)))
        if scenario.bursts:
            tasks.append(
                asyncio.create_task(
                    chaos.inject_bursts(
                        proxies, scenario.bursts, burst_rng, faults, stop, scenario.burst_gap
                    )
                )
            )
        if scenario.kill_gap:
            tasks.append(
                asyncio.create_task(
                    chaos.kill_randomly(fleet, clients, ids, kill_rng, stop, scenario.kill_gap)
                )
            )
        if scenario.restart_temporal:
            tasks.append(
                asyncio.create_task(_restart_temporal_mid_export(direct, clients, runs, faults))
            )
        if scenario.kill_one_of_two:
            tasks.append(asyncio.create_task(_kill_the_busy_worker(fleet, clients, runs)))
        if scenario.silences:
            tasks.append(
                asyncio.create_task(_silence_mid_part(scenario, proxies, clients, runs, faults))
            )
        finished += await asyncio.gather(
            *(chaos.result_of(clients, run, scenario.within) for run in runs)
        )
        while time.monotonic() - started < scenario.repeat_for:
            batch = await chaos.start_exports(
                clients(), worker_settings, _requests(scenario, collection), h.OWNER
            )
            runs += batch
            ids += [run.export.export_id for run in batch]
            finished += await asyncio.gather(
                *(chaos.result_of(clients, run, scenario.within) for run in batch)
            )
        stop.set()
        for task in tasks:
            await task  # a failing fault task fails the scenario
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for proxy_name, name in steady:
            proxies[proxy_name].remove_toxic(name)
        for proxy in proxies.values():
            proxy.clear()
    outcome.seconds = time.monotonic() - started
    for run, (progress, error, seconds) in zip(runs, finished, strict=False):
        verdict = await asyncio.to_thread(
            chaos.verdict, direct, run.export, progress, seconds, error
        )
        verdict.kills_during = sum(
            run.started <= at <= run.started + seconds for at in faults.kill_times
        )
        outcome.verdicts.append(verdict)
    if any(v.status != "COMPLETED" for v in outcome.verdicts):
        for run in runs:
            await chaos.clean_up(clients(), direct, run.export)
    fleet.close()
    outcome.peak_worker_rss_mib = round(max(fleet.peak_rss.values(), default=0) / MIB, 1)
    outcome.worker_log = str(log)
    text = log.read_text(errors="replace") if log.exists() else ""
    outcome.retried_errors = dict(Counter(ERROR_LINE.findall(text)))
    return outcome


def record(results: Results, outcome: Outcome) -> None:
    scenario = outcome.scenario
    results.section("faults")[scenario.name] = {
        "what": scenario.what,
        "seed": f"{SEED}-{scenario.name}",
        "faults": dict(outcome.faults.counts),
        "faults_total": outcome.faults.total,
        "in_flight_at_kill": dict(outcome.faults.in_flight_at_kill),
        "exports": [v.as_dict() for v in outcome.verdicts],
        "seconds": round(outcome.seconds, 1),
        "peak_worker_rss_mib": outcome.peak_worker_rss_mib,
        "retried_errors": outcome.retried_errors,
        "worker_log": outcome.worker_log,
    }


def check(outcome: Outcome) -> None:
    scenario = outcome.scenario
    for verdict in outcome.verdicts:
        assert verdict.status == "COMPLETED", verdict
        assert verdict.identical, verdict
        assert verdict.missing_rows == verdict.duplicated_rows == 0, verdict
        assert verdict.rows == verdict.reference_rows, verdict
        assert verdict.orphaned_uploads == 0, verdict
        assert verdict.kills_during >= scenario.min_kills, (
            f"only {verdict.kills_during} SIGKILLs landed while {verdict.export_id} ran"
        )
    if scenario.bursts:
        assert outcome.faults.total > len(scenario.steady), "no burst was injected"


async def test_combined_faults(
    settings: Settings,
    toxiproxy: dict[str, Proxy],
    source: str,
    results: Results,
) -> None:
    outcome = await run_scenario(COMBINED, settings, toxiproxy, source, LOGS)
    record(results, outcome)
    check(outcome)


@full_only
@pytest.mark.parametrize("scenario", FULL_SCENARIOS, ids=lambda s: s.name)
async def test_fault_scenario(
    scenario: Scenario,
    settings: Settings,
    toxiproxy: dict[str, Proxy],
    source: str,
    results: Results,
) -> None:
    outcome = await run_scenario(scenario, settings, toxiproxy, source, LOGS)
    record(results, outcome)
    check(outcome)


def test_a_cursor_lost_with_its_connection_is_retried_not_fatal(
    settings: Settings, source: str, results: Results
) -> None:
    """FerretDB drops a cursor when the connection that opened it closes; the next getMore, on
    another connection, gets CursorNotFound. A part re-read from its chunk cursor gives the same
    rows, so the activity must leave it to Temporal's retry instead of failing the export
    (`maxIdleTimeMS=1` makes the pool close the cursor's connection between two batches)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongodb_uri, maxIdleTimeMS=1, serverSelectionTimeoutMS=5000
    )

    def read_slowly() -> None:
        rows = client[settings.mongodb_database][source].aggregate([], batchSize=50)
        for n, _ in enumerate(rows):
            if n % 50 == 49:
                time.sleep(0.01)  # the connection idles past maxIdleTimeMS

    try:
        with pytest.raises(CursorNotFound) as lost:
            read_slowly()
    finally:
        client.close()
    classified = errors.classify_mongo(lost.value, max_time_ms=settings.mongodb_max_time_ms)
    results.section("faults_checks")["cursor_not_found"] = {
        "error": str(lost.value)[:120],
        "classified_as": classified.type,
        "retryable": not classified.non_retryable,
    }
    assert not classified.non_retryable, f"CursorNotFound became {classified!r}"
