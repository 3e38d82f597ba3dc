"""Targets, verdicts and the Markdown report. Pure: no I/O but `write_report`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Op = Literal["<=", ">="]


@dataclass(frozen=True)
class Target:
    """A figure and the bound it must meet."""

    key: str
    """Stable id, such as `s1.wall_ratio`."""
    description: str
    op: Op
    threshold: float
    unit: str
    """How values are shown: `×`, `%`, `MB`, ..."""


@dataclass(frozen=True)
class Outcome:
    target: Target
    measured: float | None
    met: bool
    detail: str
    """The figures behind the measured value (repetitions, spread)."""
    reason: str | None
    """Why the target was missed (None when met)."""


def fmt(value: float, unit: str) -> str:
    """A value with its unit, with a sensible number of digits."""
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "×":
        return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"
    return f"{value:.3g} {unit}".strip()


def judge(target: Target, measured: float | None, *, detail: str = "", why: str = "") -> Outcome:
    """The verdict on one target. `why` explains a miss from the measurements themselves; a
    measurement that is absent (the scenario failed) is a miss too."""
    if measured is None or not math.isfinite(measured):
        reason = f"not measured: {why}" if why else "not measured"
        return Outcome(target, None, False, detail, reason)
    met = measured <= target.threshold if target.op == "<=" else measured >= target.threshold
    if met:
        return Outcome(target, measured, True, detail, None)
    side = "above" if target.op == "<=" else "below"
    bound = f"{fmt(measured, target.unit)} is {side} {fmt(target.threshold, target.unit)}"
    return Outcome(target, measured, False, detail, f"{bound}: {why}" if why else bound)


@dataclass
class ScenarioResult:
    number: int
    title: str
    setup: list[str] = field(default_factory=list)
    """Engine, data sizes, repetitions, anything a reader must know to read the figures."""
    outcomes: list[Outcome] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    """(what, value) rows of the scenario's detail table."""
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunInfo:
    stamp: str
    command: str
    quick: bool
    started_at: str
    seconds: float
    machine: dict[str, Any]
    versions: dict[str, str]
    scenarios: list[ScenarioResult]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def targets_table(scenarios: Sequence[ScenarioResult]) -> list[str]:
    lines = [
        "| # | target | measured | verdict | reason when missed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        for outcome in scenario.outcomes:
            target = outcome.target
            bound = f"{target.op} {fmt(target.threshold, target.unit)}"
            measured = "—" if outcome.measured is None else fmt(outcome.measured, target.unit)
            if outcome.detail:
                measured += f" ({outcome.detail})"
            verdict = "**met**" if outcome.met else "**missed**"
            lines.append(
                f"| {scenario.number} | {_cell(target.description)} {bound} | {_cell(measured)} "
                f"| {verdict} | {_cell(outcome.reason or '')} |"
            )
    return lines


def render_markdown(run: RunInfo) -> str:
    out: list[str] = [f"# Benchmarks, {run.stamp}", ""]
    out.append(
        f"`{run.command}`{' (smoke run: small sizes, one repetition)' if run.quick else ''}, "
        f"started {run.started_at}, took {run.seconds / 60:.1f} min. Benchmarks are not tests: "
        "they never run in `make test` and never gate CI. The machine is shared and noisy, so "
        "every figure is a ratio or a distribution of measurements taken side by side in this "
        "run; absolute times only give scale."
    )
    out += ["", "## Machine and engines", ""]
    machine = run.machine
    out.append(
        f"- machine: {machine.get('cores')} cores ({machine.get('cpu', 'unknown CPU')}), "
        f"{machine.get('memory_gib', 0):.1f} GiB memory, {machine.get('os', '')}; load average "
        f"at start {machine.get('load_at_start', '?')}, at end {machine.get('load_at_end', '?')}"
    )
    out += [f"- {name}: {version}" for name, version in run.versions.items()]
    missed = sum(1 for s in run.scenarios for o in s.outcomes if not o.met)
    total = sum(len(s.outcomes) for s in run.scenarios)
    out += ["", f"## Targets: {total - missed} of {total} met", ""]
    out += targets_table(run.scenarios)
    for scenario in run.scenarios:
        out += ["", f"## {scenario.number}. {scenario.title}", ""]
        if scenario.error:
            out += [f"**The scenario failed:** `{_cell(scenario.error)}`", ""]
        out += [f"- {line}" for line in scenario.setup]
        out.append(f"- scenario runtime: {scenario.seconds:.0f} s")
        if scenario.figures:
            out += ["", "| figure | value |", "| --- | --- |"]
            out += [f"| {_cell(what)} | {_cell(value)} |" for what, value in scenario.figures]
        if scenario.notes:
            out.append("")
            out += [f"- {note}" for note in scenario.notes]
        for plot in scenario.plots:
            out += ["", f"![{scenario.title}]({plot})"]
    out.append("")
    return "\n".join(out)


def to_json(run: RunInfo) -> dict[str, Any]:
    data = asdict(run)
    for scenario in data["scenarios"]:
        for outcome in scenario["outcomes"]:
            outcome["verdict"] = "met" if outcome["met"] else "missed"
    return data


def write_report(run: RunInfo, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{run.stamp}.json"
    md_path = directory / f"{run.stamp}.md"
    json_path.write_text(json.dumps(to_json(run), indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(run))
    return json_path, md_path
