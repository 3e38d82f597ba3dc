"""The benchmark report's pure logic: statistics, verdicts on targets, and the Markdown table.

The benchmarks themselves (`make bench`) are not tests and never run here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.report import (
    RunInfo,
    ScenarioResult,
    Target,
    fmt,
    judge,
    render_markdown,
    targets_table,
    write_report,
)
from bench.stats import latency_summary, median, percentile, ratios

AT_MOST = Target("t.max", "export ÷ reads", "<=", 1.3, "×")
AT_LEAST = Target("t.min", "seed ÷ product", ">=", 10.0, "×")


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 99) == pytest.approx(3.97)
    assert median([5.0, 1.0, 3.0]) == 3.0


@pytest.mark.parametrize("bad", [-1, 101])
def test_percentile_refuses_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], bad)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_ratios_pair_measurements_of_the_same_repetition() -> None:
    assert ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]
    with pytest.raises(ValueError, match="pairs"):
        ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        ratios([1.0], [0.0])


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.001] * 99 + [0.1])
    assert summary["p50_ms"] == pytest.approx(1.0)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert summary["n"] == 100


@pytest.mark.parametrize(
    ("target", "measured", "met"),
    [
        (AT_MOST, 1.2, True),
        (AT_MOST, 1.3, True),  # the bound itself meets the target
        (AT_MOST, 1.31, False),
        (AT_LEAST, 10.0, True),
        (AT_LEAST, 9.99, False),
    ],
)
def test_judge_compares_with_the_bound(target: Target, measured: float, met: bool) -> None:
    outcome = judge(target, measured, why="the reason")
    assert outcome.met is met
    assert outcome.reason is None if met else "the reason" in (outcome.reason or "")


def test_a_miss_says_which_side_of_the_bound_and_why() -> None:
    above = judge(AT_MOST, 1.5, why="encoding is serial")
    assert above.reason == "1.50× is above 1.30×: encoding is serial"
    below = judge(AT_LEAST, 6.2)
    assert below.reason == "6.20× is below 10.0×"


@pytest.mark.parametrize("measured", [None, math.nan, math.inf])
def test_an_absent_measurement_is_a_miss(measured: float | None) -> None:
    outcome = judge(AT_MOST, measured, why="an export ended early")
    assert not outcome.met
    assert outcome.measured is None
    assert outcome.reason == "not measured: an export ended early"


def test_fmt_units() -> None:
    assert fmt(1.234, "×") == "1.23×"
    assert fmt(12.34, "×") == "12.3×"
    assert fmt(8.44, "%") == "8.4 %"
    assert fmt(529.6, "MB") == "530 MB"


def _run(tmp_path: Path) -> RunInfo:
    scenario = ScenarioResult(
        1,
        "End-to-end",
        setup=["200,000 rows"],
        outcomes=[
            judge(AT_MOST, 1.2, detail="median of 3"),
            judge(AT_LEAST, 6.0, why="fixed cost | dominates"),
        ],
        figures=[("export (s)", "11.3")],
        plots=["s1.png"],
    )
    return RunInfo(
        stamp="2026-01-01",
        command="make bench",
        quick=False,
        started_at="2026-01-01 00:00 UTC",
        seconds=600,
        machine={"cores": 2, "memory_gib": 23.5, "cpu": "test CPU", "os": "Linux"},
        versions={"FerretDB": "v1.24.2"},
        scenarios=[scenario],
    )


def test_the_table_marks_every_target_met_or_missed_with_the_reason(tmp_path: Path) -> None:
    lines = targets_table(_run(tmp_path).scenarios)
    assert lines[0].startswith("| # | target | measured | verdict | reason when missed |")
    met, missed = lines[2], lines[3]
    assert "**met**" in met
    assert "1.20× (median of 3)" in met
    assert "**missed**" in missed
    assert "fixed cost \\| dominates" in missed  # a pipe in a reason does not break the table


def test_the_report_states_machine_versions_and_counts(tmp_path: Path) -> None:
    text = render_markdown(_run(tmp_path))
    assert "2 cores" in text
    assert "23.5 GiB" in text
    assert "FerretDB: v1.24.2" in text
    assert "## Targets: 1 of 2 met" in text
    assert "![End-to-end](s1.png)" in text


def test_write_report_writes_json_and_markdown_named_by_date(tmp_path: Path) -> None:
    json_path, md_path = write_report(_run(tmp_path), tmp_path)
    assert json_path.name == "2026-01-01.json"
    assert md_path.name == "2026-01-01.md"
    data = json.loads(json_path.read_text())
    verdicts = [o["verdict"] for o in data["scenarios"][0]["outcomes"]]
    assert verdicts == ["met", "missed"]
