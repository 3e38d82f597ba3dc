"""Scenario 3, memory is flat: the worker's peak RSS exporting a small and a ten times larger
result, on each engine.

Each export runs on a freshly started worker process, so the kernel's high-water mark of its
resident memory (VmHWM) belongs to that export alone; psutil also samples RSS every 100 ms for
the plot. The two sizes alternate which goes first.

* mongo-java-server, 50,000 vs 500,000 rows: `$match {seq: {$lt: N / 5}}`, a `$project` of three
  fields, then `$unwind: "$rep"`, which repeats each document five times (the larger size is
  repeated data: 100,000 documents → 500,000 rows). The projection keeps the engine's single
  reply under its 48 MB limit: mongo-java-server ignores `batchSize` (measured below).
* FerretDB, which honours `batchSize` (batches of 1,000 rows, as MongoDB does), 3,000 vs 30,000
  rows (it has no `includeArrayIndex` for `$unwind`, and reads about 5,000 rows/s):
  `$match {seq: {$lt: N}}` on whole documents, so that the larger export has several parts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bench import plots
from bench.common import ENGINE_LABELS, ProductStack, RssSampler, log, mb
from bench.context import BenchContext
from bench.data import REPEATS, ensure_collection
from bench.product import first_reply_rows, owner, plan_of, run_export, terminate_running
from bench.report import ScenarioResult, Target, judge
from bench.stats import median

USER = "bench-s3"
BOUND_MB = 300.0
FLAT = 1.2


@dataclass(frozen=True)
class Case:
    engine: str
    documents: int
    small: int
    large: int
    unwind: bool

    def request(self, collection: str, rows: int) -> dict[str, Any]:
        if self.unwind:
            pipeline: list[dict[str, Any]] = [
                {"$match": {"seq": {"$lt": rows // REPEATS}}},
                {"$project": {"result": 1, "score": 1, "rep": 1}},
                {"$unwind": "$rep"},
            ]
        else:
            pipeline = [{"$match": {"seq": {"$lt": rows}}}]
        return {"collection": collection, "pipeline": pipeline}


async def measure(ctx: BenchContext, case: Case, reps: int) -> dict[str, Any]:
    name, _ = ensure_collection(case.engine, case.documents)
    stack = ProductStack(case.engine, "mem")
    stack.start_api()
    sizes = (case.small, case.large)
    peaks: dict[int, list[float]] = {n: [] for n in sizes}
    idle: dict[int, list[float]] = {n: [] for n in sizes}
    timelines: dict[str, list[tuple[float, int]]] = {}
    details: dict[int, dict[str, Any]] = {}
    try:
        for rep in range(reps):
            for rows in sizes if rep % 2 == 0 else sizes[::-1]:
                log.info("scenario 3, %s, repetition %d: %d rows", case.engine, rep + 1, rows)
                worker = stack.restart_worker()
                await asyncio.sleep(1.0)  # let the worker settle after connecting
                idle[rows].append(worker.rss_bytes())
                with RssSampler(worker) as sampler:
                    export = await run_export(
                        stack,
                        ctx.temporal,
                        case.request(name, rows),
                        user=USER,
                        label=f"s3-{case.engine}-{rows}",
                    )
                if export.rows != rows:
                    raise RuntimeError(f"exported {export.rows} rows, expected {rows}")
                peaks[rows].append(worker.peak_rss_bytes())
                timelines[f"{ENGINE_LABELS[case.engine]}, {rows:,} rows"] = sampler.samples
                details[rows] = {
                    "parts": len(export.history.parts),
                    "bytes": export.bytes,
                    "sampled_peak": sampler.peak,
                    "wall_seconds": export.wall_seconds,
                }
    finally:
        await terminate_running(ctx.temporal, stack.task_queue)
        stack.stop()
    plan = plan_of(case.request(name, case.large), owner(USER), stack.settings)
    return {
        "case": case.__dict__,
        "peak_rss_bytes": {str(k): v for k, v in peaks.items()},
        "idle_rss_bytes": {str(k): v for k, v in idle.items()},
        "ratio": [lg / sm for lg, sm in zip(peaks[case.large], peaks[case.small], strict=True)],
        "details": {str(k): v for k, v in details.items()},
        "first_reply_rows": first_reply_rows(stack.settings, name, plan.pipeline_for(None)),
        "timelines": timelines,
    }


def _outcomes(case: Case, m: dict[str, Any]) -> list[Any]:
    label = ENGINE_LABELS[case.engine]
    small, large = str(case.small), str(case.large)
    peaks, idle, details = m["peak_rss_bytes"], m["idle_rss_bytes"], m["details"]
    first = m["first_reply_rows"]
    if first > 1000:
        why = (
            f"{label} ignores batchSize: it answers each part's query with every row after the "
            f"cursor in one reply ({first:,} rows for the first part of {case.large:,}), which "
            "the driver decodes at once, so the worker holds the rest of the result, not a batch"
        )
    else:
        why = (
            f"the server sends batches of {first:,} rows; the growth is the worker's own: "
            f"{details[large]['parts']} parts against {details[small]['parts']}"
        )
    return [
        judge(
            Target(
                f"s3.{case.engine}.flat",
                f"worker peak RSS, {case.large:,} ÷ {case.small:,} rows, {label}",
                "<=",
                FLAT,
                "×",
            ),
            median(m["ratio"]),
            detail=f"{mb(median(peaks[large])):.0f} MB vs {mb(median(peaks[small])):.0f} MB",
            why=why,
        ),
        judge(
            Target(
                f"s3.{case.engine}.bound",
                f"worker peak RSS at {case.large:,} rows, {label}",
                "<=",
                BOUND_MB,
                "MB",
            ),
            mb(max(peaks[large])),
            detail=f"max of {len(peaks[large])}; idle worker {mb(median(idle[large])):.0f} MB",
            why=why,
        ),
    ]


async def run(ctx: BenchContext) -> ScenarioResult:
    sizes = ctx.sizes
    result = ScenarioResult(3, "Memory is flat")
    cases = [
        Case(
            "mongo-java-server",
            max(sizes.s1_docs, sizes.s3_large_rows // REPEATS),
            sizes.s3_small_rows,
            sizes.s3_large_rows,
            unwind=True,
        ),
        Case(
            "ferretdb",
            sizes.s3_ferret_rows,
            sizes.s3_ferret_rows // 10,
            sizes.s3_ferret_rows,
            unwind=False,
        ),
    ]
    measured: dict[str, Any] = {"cases": {}, "timelines": {}}
    for case in cases:
        m = await measure(ctx, case, sizes.s3_reps)
        measured["cases"][case.engine] = m
        measured["timelines"].update(m["timelines"])
        result.outcomes += _outcomes(case, m)
        label = ENGINE_LABELS[case.engine]
        details = m["details"]
        small, large = str(case.small), str(case.large)
        shape = (
            f'`$match` on `seq`, `$project` of 3 fields, `$unwind: "$rep"`: '
            f"{case.small // REPEATS:,} and {case.large // REPEATS:,} documents → "
            if case.unwind
            else "`$match` on `seq`, whole documents: "
        )
        result.setup.append(
            f"{label}: {shape}{case.small:,} rows ({mb(details[small]['bytes']):.0f} MB, "
            f"{details[small]['parts']} part(s)) and {case.large:,} rows "
            f"({mb(details[large]['bytes']):.0f} MB, {details[large]['parts']} parts); the "
            f"server's first reply held {m['first_reply_rows']:,} rows"
        )
        for rows in (case.small, case.large):
            result.figures += [
                (
                    f"{label}, {rows:,} rows: worker peak RSS (MB)",
                    _mb(m["peak_rss_bytes"][str(rows)]),
                ),
                (
                    f"{label}, {rows:,} rows: idle worker RSS before the export (MB)",
                    _mb(m["idle_rss_bytes"][str(rows)]),
                ),
                (
                    f"{label}, {rows:,} rows: export wall time (s)",
                    f"{details[str(rows)]['wall_seconds']:.1f}",
                ),
            ]
    result.setup.append(
        f"{sizes.s3_reps} repetition(s) per size, each on a freshly started worker (peak = "
        "VmHWM of the process), sizes alternating"
    )
    result.data = measured
    result.plots.append(plots.s3(ctx.plot_path("s3"), measured))
    return result


def _mb(values: list[float]) -> str:
    shown = ", ".join(f"{mb(v):.0f}" for v in values)
    return f"{mb(median(values)):.0f} (each: {shown})"
