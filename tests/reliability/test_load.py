"""Load: 8 users submit 40 exports at the same instant against a per-user limit of 3.

The API and one worker run as separate processes, as in production. The limit holds (at most 3
of a user's exports ever run at once, by Temporal's own start and close times; the rest get 429
with Retry-After), every accepted export completes byte-identical to its reference with no
upload left open, the worker's resident memory stays bounded, and /healthz keeps answering
quickly during the burst.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import mint_token
from connections.temporal import connect
from devstack.toxiproxy import free_port
from domain.models import ExportInput, ExportRequest, Owner, ProgressView
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents
from tests.reliability import chaos
from tests.reliability.conftest import full_only
from tests.reliability.results import Results
from workflows.export_workflow import ExportWorkflow

pytestmark = [pytest.mark.reliability, pytest.mark.services, pytest.mark.slow, full_only]

MIB = 1024 * 1024
USERS = 8
EXPORTS_PER_USER = 5
LIMIT = 3
ROWS_PER_TENANT = 4_000  # about 6.9 MB of JSON Lines: two parts each
TENANTS = ("tenant-load-a", "tenant-load-b")
RSS_LIMIT_MIB = 400  # 4 activities at once, each holding one 5 MiB part, on ~110 MiB idle
HEALTHZ_P99_LIMIT = 0.5


@pytest.fixture(scope="module")
def load_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "temporal_task_queue": f"load-{uuid.uuid4().hex[:8]}",
            "max_running_exports_per_user": LIMIT,
            "part_size_bytes": 5 * MIB,
        }
    )


@pytest.fixture(scope="module")
def source(load_settings: Settings) -> Iterator[str]:
    name = f"reliability_load_{uuid.uuid4().hex[:8]}"
    for seed, tenant in enumerate(TENANTS):
        docs = (
            {**d, "_id": f"{tenant}-{d['n']:06d}"}
            for d in documents(ROWS_PER_TENANT, seed=seed, pad=1500)
        )
        h.seed(load_settings, name, docs, tenant=tenant)
    yield name
    h.drop(load_settings, name)


@pytest.fixture(scope="module")
def api_process(load_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`export-api` as its own process on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("load") / "api.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.main",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=chaos.REPO_ROOT,
            env=chaos.worker_env(load_settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _watch_health(
    url: str, stop: asyncio.Event, latencies: list[float], failures: Counter[str]
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                answer = await http.get(f"{url}/healthz")
                if answer.status_code != 200:
                    failures[str(answer.status_code)] += 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


async def test_forty_exports_from_eight_users_at_once(
    load_settings: Settings, source: str, api_process: str, results: Results, tmp_path: Path
) -> None:
    owners = [
        Owner(user_id=f"load-{i}-{uuid.uuid4().hex[:6]}", tenant=TENANTS[i % 2])
        for i in range(USERS)
    ]
    request = ExportRequest(collection=source, format="jsonl")
    references = {
        tenant: h.reference_bytes(
            load_settings, h.new_export(request, Owner(user_id="ref", tenant=tenant)), None
        )
        for tenant in TENANTS
    }
    fleet = chaos.WorkerFleet(load_settings, tmp_path / "worker.log", chaos.FaultLog())
    fleet.start()
    await asyncio.sleep(3)  # the workers import and connect
    fleet.sample_rss()
    idle_rss = max(fleet.peak_rss.values(), default=0)
    stop = asyncio.Event()
    latencies: list[float] = []
    health_failures: Counter[str] = Counter()
    watchers = [
        asyncio.create_task(_watch_health(api_process, stop, latencies, health_failures)),
        asyncio.create_task(chaos.sample_memory(fleet, stop)),
    ]
    client = await connect(load_settings)
    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as http:

            async def submit(owner: Owner) -> httpx.Response:
                token = mint_token(
                    load_settings.api_jwt_secret, owner.user_id, owner.tenant, timedelta(hours=1)
                )
                return await http.post(
                    f"{api_process}/exports",
                    json=request.model_dump(mode="json"),
                    headers={"Authorization": f"Bearer {token}"},
                )

            burst_started = time.monotonic()
            answers = await asyncio.gather(
                *(submit(o) for o in owners for _ in range(EXPORTS_PER_USER))
            )
            burst_seconds = time.monotonic() - burst_started
        submitted = [
            (o, a)
            for o, a in zip(
                [o for o in owners for _ in range(EXPORTS_PER_USER)], answers, strict=True
            )
        ]
        accepted = [(o, a.json()["export_id"]) for o, a in submitted if a.status_code == 202]
        refused = [a for _, a in submitted if a.status_code == 429]
        others = [a.text[:200] for _, a in submitted if a.status_code not in (202, 429)]

        async def finish(export_id: str) -> Any:
            return await asyncio.wait_for(
                client.get_workflow_handle_for(ExportWorkflow.run, export_id).result(), 600
            )

        finished = await asyncio.gather(
            *(finish(export_id) for _, export_id in accepted), return_exceptions=True
        )
        all_done_seconds = time.monotonic() - burst_started
    finally:
        stop.set()
        await asyncio.gather(*watchers, return_exceptions=True)
        fleet.close()

    verdicts = []
    for (owner, export_id), progress in zip(accepted, finished, strict=True):
        export = ExportInput.model_validate(
            {**h.new_export(request, owner).model_dump(), "export_id": export_id}
        )
        key = progress.object_key if isinstance(progress, ProgressView) else None
        ok = key is not None
        body = h.fetch_object(load_settings, key) if key is not None else b""
        verdicts.append(
            {
                "export_id": export_id,
                "completed": ok,
                "identical": body == references[owner.tenant],
                "orphaned_uploads": len(chaos.leftover_uploads(load_settings, export)),
                "error": None if ok else str(progress),
            }
        )
    peak_overlap: dict[str, int] = {}
    for owner in owners:
        intervals = []
        for o, export_id in accepted:
            if o == owner:
                described = await client.get_workflow_handle(export_id).describe()
                assert described.close_time is not None
                intervals.append((described.start_time, described.close_time))
        peak_overlap[owner.user_id] = _max_overlap(intervals)
    accepted_per_user = Counter(o.user_id for o, _ in accepted)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else None
    peak_rss = max(fleet.peak_rss.values(), default=0)
    results.section("load").update(
        {
            "users": USERS,
            "submitted": len(submitted),
            "limit_per_user": LIMIT,
            "accepted": len(accepted),
            "accepted_per_user": sorted(accepted_per_user.values()),
            "refused_429": len(refused),
            "refused_429_with_retry_after": sum(1 for a in refused if a.headers.get("retry-after")),
            "other_answers": others,
            "completed": sum(1 for v in verdicts if v["completed"]),
            "identical": sum(1 for v in verdicts if v["identical"]),
            "orphaned_uploads": sum(v["orphaned_uploads"] for v in verdicts),
            "max_running_per_user": max(peak_overlap.values(), default=0),
            "burst_seconds": round(burst_seconds, 2),
            "all_done_seconds": round(all_done_seconds, 1),
            "worker_rss_idle_mib": round(idle_rss / MIB, 1),
            "worker_rss_peak_mib": round(peak_rss / MIB, 1),
            "worker_rss_limit_mib": RSS_LIMIT_MIB,
            "healthz_requests": len(latencies),
            "healthz_failures": dict(health_failures),
            "healthz_p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            "healthz_p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
            "healthz_max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
            "exports": verdicts,
        }
    )
    assert not others, others
    assert len(submitted) == USERS * EXPORTS_PER_USER
    assert all(a.headers.get("retry-after") for a in refused), "a 429 without Retry-After"
    assert max(peak_overlap.values()) <= LIMIT, peak_overlap
    assert len(refused) >= USERS * (EXPORTS_PER_USER - LIMIT)
    assert all(v["completed"] and v["identical"] for v in verdicts), verdicts
    assert sum(v["orphaned_uploads"] for v in verdicts) == 0
    assert peak_rss < RSS_LIMIT_MIB * MIB, f"worker RSS peaked at {peak_rss / MIB:.0f} MiB"
    assert not health_failures, health_failures
    assert p99 is not None
    assert p99 < HEALTHZ_P99_LIMIT, f"/healthz p99 {p99:.3f} s"
