"""Scenario 6, orchestration overhead: the share of an export's workflow time not spent inside
activities, read from the workflow history (ActivityTaskStarted → ActivityTaskCompleted against
WorkflowExecutionStarted → the closing event), for exports with 8 MiB parts.

It reads the multi-part exports scenarios 1 and 2 measured in this run; when there are none
(run alone), it runs its own exports of scenario 1's collection.
"""

from __future__ import annotations

from typing import Any

from bench import plots
from bench.context import BenchContext
from bench.data import ensure_collection
from bench.product import ExportRun, run_export
from bench.report import ScenarioResult, Target, judge
from bench.stats import median

ENGINE = "mongo-java-server"
TARGET = 10.0


async def run(ctx: BenchContext) -> ScenarioResult:
    result = ScenarioResult(6, "Orchestration overhead")
    exports: list[ExportRun] = [e for e in ctx.exports if len(e.history.parts) >= 2]
    source = "the multi-part exports of scenarios 1 and 2 in this run"
    if not exports:
        name, _ = ensure_collection(ENGINE, ctx.sizes.s1_docs)
        stack = ctx.stack(ENGINE)
        for _ in range(ctx.sizes.s6_reps):
            exports.append(
                await run_export(
                    stack,
                    ctx.temporal,
                    {"collection": name, "pipeline": []},
                    user="bench-s6",
                    label="s6",
                )
            )
        source = f"{len(exports)} exports of the {ctx.sizes.s1_docs:,}-document collection"
    if not exports:
        raise RuntimeError("no export to read")
    shares, gaps, transitions, client = [], [], [], []
    for export in exports:
        history = export.history
        gap = history.workflow_seconds - history.activity_seconds
        shares.append(100 * gap / history.workflow_seconds)
        gaps.append(gap)
        transitions.append(gap / max(1, len(history.activities)))
        client.append(100 * (export.wall_seconds - history.activity_seconds) / export.wall_seconds)
    share = median(shares)
    result.outcomes.append(
        judge(
            Target(
                "s6.share", "time outside activities ÷ workflow time, 8 MiB parts", "<=", 10, "%"
            ),
            share,
            detail=f"median of {len(shares)}, {min(shares):.1f}–{max(shares):.1f} %",
            why=(
                f"{median(gaps):.2f} s between activities per export, "
                f"{1000 * median(transitions):.0f} ms per activity hand-off"
            ),
        )
    )
    parts = sorted({len(e.history.parts) for e in exports})
    result.setup += [
        f"{source}: {len(exports)} exports of {min(parts)}–{max(parts)} parts (8 MiB, the "
        "default `PART_SIZE_BYTES`)",
        "activity time is the union of ActivityTaskStarted → ActivityTaskCompleted intervals; "
        "workflow time is WorkflowExecutionStarted → its closing event, both from the history",
    ]
    result.figures += [
        ("time outside activities, share of workflow time", _pct(shares)),
        ("the same, as the client sees it (POST → result)", _pct(client)),
        ("seconds outside activities per export", f"{median(gaps):.2f}"),
        ("per activity hand-off (ms)", f"{1000 * median(transitions):.0f}"),
    ]
    data: dict[str, Any] = {"exports": [e.to_json() for e in exports], "shares": shares}
    result.data = data
    result.plots.append(plots.s6(ctx.plot_path("s6"), data))
    return result


def _pct(values: list[float]) -> str:
    return f"{median(values):.1f} % ({min(values):.1f}–{max(values):.1f})"
