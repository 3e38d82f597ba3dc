"""`/healthz` latency while 10 clients post 1 MiB bodies to `POST /exports/explain`.

Planning a 1 MiB body is about a second of pure Python. The API plans off the event loop in a
bounded pool (`API_PLANNING_THREADS`), so `/healthz` should stay fast while bodies are planned.
This starts the API as its own process (`export-api`, settings from `.devstack/env`; explain
needs neither Temporal nor MongoDB), measures `/healthz` idle and then under the load, and
prints p50/p99/max.

    .venv/bin/python -m bench.healthz_under_planning [--seconds 20] [--clients 10]

Probes go out at a fixed rate and each latency counts from its scheduled send time, so a stalled
server cannot hide its delay by slowing the prober.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx

from api.auth import mint_token
from bench.common import free_port, load_stack_env

BODY_BYTES = 1024 * 1024 - 4096  # just under API_MAX_BODY_BYTES (1 MiB)
PROBES_PER_SECOND = 20


def big_body() -> bytes:
    """A valid-looking request of about 1 MiB: one `$match` with many small `$or` branches."""
    branches: list[dict[str, object]] = []
    body = b""
    step = 1000
    while True:
        more = [{"a": i, "b": {"$gt": i}} for i in range(len(branches), len(branches) + step)]
        candidate = json.dumps(
            {"collection": "orders", "pipeline": [{"$match": {"$or": branches + more}}]}
        ).encode()
        if len(candidate) > BODY_BYTES:
            if step == 1:
                return body
            step //= 10
            continue
        branches += more
        body = candidate


@contextlib.contextmanager
def api_process(port: int, source: str | None) -> Iterator[str]:
    """`export-api` on `port`; from another checkout's code when `source` is given."""
    env = {**os.environ, "TEMPORAL_TASK_QUEUE": "bench-healthz"}
    process = subprocess.Popen(
        [sys.executable, "-m", "api.main", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=source,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the API did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def probe(url: str, seconds: float) -> list[float]:
    """`/healthz` latencies (ms) at a fixed rate, each from its scheduled send time."""
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60) as http:
        start = time.monotonic()

        async def one(scheduled: float) -> None:
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            await http.get(f"{url}/healthz")
            latencies.append((time.monotonic() - scheduled) * 1000)

        count = int(seconds * PROBES_PER_SECOND)
        await asyncio.gather(*(one(start + i / PROBES_PER_SECOND) for i in range(count)))
    return latencies


async def post_bodies(url: str, body: bytes, token: str, stop: asyncio.Event) -> dict[int, int]:
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=120) as http:
        while not stop.is_set():
            answer = await http.post(f"{url}/exports/explain", content=body, headers=headers)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return statuses


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(ordered)} p50={statistics.median(ordered):.1f} ms "
        f"p99={p99:.1f} ms max={ordered[-1]:.1f} ms"
    )


async def run(seconds: float, clients: int, source: str | None) -> None:
    load_stack_env()
    body = big_body()
    token = mint_token(os.environ["API_JWT_SECRET"], "bench", "bench-tenant", timedelta(hours=1))
    with api_process(free_port(), source) as url:
        idle = await probe(url, seconds / 2)
        stop = asyncio.Event()
        posters = [asyncio.create_task(post_bodies(url, body, token, stop)) for _ in range(clients)]
        await asyncio.sleep(1.0)  # let the load build up
        loaded = await probe(url, seconds)
        stop.set()
        statuses: dict[int, int] = {}
        for counted in await asyncio.gather(*posters):
            for status, n in counted.items():
                statuses[status] = statuses.get(status, 0) + n
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, body {len(body)} bytes, {clients} clients")
    print(f"/healthz idle:                 {summary(idle)}")
    print(f"/healthz while bodies planned: {summary(loaded)}")
    print(f"explain answers: {dict(sorted(statuses.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument(
        "--source",
        help="run the API from this directory (e.g. `git worktree add /tmp/before <commit>`) "
        "to compare with an earlier version",
    )
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.clients, args.source))


if __name__ == "__main__":
    main()
