"""Scenario 5, encoding: rows/s of the domain's CSV encoder against bare `csv.writer` on the same
pre-flattened rows, in this process, interleaved, several passes.

The rows are the benchmark's inspections, flattened once beforehand into flat dicts (one key per
column, values as PyMongo returns them: str, int, None, datetime, ObjectId, lists of documents).
The domain encoder does its whole job on them (cell formatting, formula guard, RFC 4180, UTF-8
bytes); bare `csv.writer` writes the same values as they are (`str()` of each) into a StringIO
and encodes it once. For context: the domain encoder on the nested documents (its real input),
and `csv.writer` on cells already formatted as the contract says; and the other per-row work of
the part activity, the row's keyset cursor (`upload_next_part` takes it for every row and turns
only the part's last one into JSON).
"""

from __future__ import annotations

import csv
import gc
import io
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench import nested_csv_costs, plots
from bench.common import settings_for
from bench.context import BenchContext
from bench.data import documents
from bench.product import owner
from bench.report import ScenarioResult, Target, judge
from bench.s5_formats import figures_and_outcomes, run_formats
from bench.stats import median, ratios
from domain.formats.cell_format import format_cell
from domain.formats.encoding import EncodingSpec, freeze_columns, new_part_encoder
from domain.formats.flatten import MISSING, value_at
from domain.models import Column, ExportRequest
from domain.pipeline.export_plan import plan_export
from domain.pipeline.planning import ChunkPlan

TARGET = 0.5
CURSOR = "part activity's per-row `plan.cursor_of(row)`"


def _flat_key(path: str) -> str:
    return path.replace(".", "_")


def prepare(count: int) -> dict[str, Any]:
    docs = list(documents(count))
    columns = freeze_columns(docs[:100])
    keys = [_flat_key(c.path) for c in columns]
    flat: list[dict[str, Any]] = []
    for doc in docs:
        row = {}
        for column, key in zip(columns, keys, strict=True):
            value = value_at(doc, column.path)
            row[key] = None if value is MISSING else value
        flat.append(row)
    formatted = [[format_cell(row[k]) for k in keys] for row in flat]
    return {
        "docs": docs,
        "columns": columns,
        "keys": keys,
        "flat": flat,
        "flat_columns": [Column(path=k) for k in keys],
        "formatted": formatted,
    }


def domain_encoder(rows: list[Any], columns: list[Column]) -> bytes:
    encoder = new_part_encoder(EncodingSpec(), columns, first_part=True)
    for row in rows:
        encoder.write(row)
    return encoder.finish()


def bare_writer(rows: list[dict[str, Any]], keys: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow([row[k] for k in keys])
    return out.getvalue().encode("utf-8")


def bare_preformatted(rows: list[list[str]], keys: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(keys)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def cursor_bookkeeping(rows: list[dict[str, Any]], plan: ChunkPlan) -> bytes:
    """What `upload_next_part` does per row besides encoding: the row's cursor (the reader
    pairs it with the row; only the part's last is serialised)."""
    for row in rows:
        plan.cursor_of(row)
    return b""


def _rate(fn: Callable[[], bytes], rows: int) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return rows / (time.perf_counter() - start)


async def run(ctx: BenchContext) -> ScenarioResult:
    sizes = ctx.sizes
    result = ScenarioResult(5, "Encoding")
    data = prepare(sizes.s5_rows)
    n = len(data["flat"])
    plan = plan_export(
        ExportRequest(collection="inspections"), owner("bench-s5"), settings_for("ferretdb")
    )
    kinds: dict[str, Callable[[], bytes]] = {
        "domain CSV encoder, pre-flattened rows": lambda: domain_encoder(
            data["flat"], data["flat_columns"]
        ),
        "bare csv.writer, same rows": lambda: bare_writer(data["flat"], data["keys"]),
        "domain CSV encoder, nested documents (real input)": lambda: domain_encoder(
            data["docs"], data["columns"]
        ),
        "bare csv.writer, cells pre-formatted": lambda: bare_preformatted(
            data["formatted"], data["keys"]
        ),
        CURSOR: lambda: cursor_bookkeeping(data["docs"], plan),
    }
    rates: dict[str, list[float]] = {label: [] for label in kinds}
    labels = list(kinds)
    for label in labels:  # warm-up pass, not measured
        kinds[label]()
    for rep in range(sizes.s5_reps):
        for label in labels[rep % len(labels) :] + labels[: rep % len(labels)]:
            rates[label].append(_rate(kinds[label], n))
    domain, bare = rates[labels[0]], rates[labels[1]]
    ratio = ratios(domain, bare)
    nested = ratios(rates[labels[2]], bare)
    result.outcomes.append(
        judge(
            Target(
                "s5.ratio", "domain CSV encoder rows/s ÷ bare csv.writer rows/s", ">=", 0.5, "×"
            ),
            median(ratio),
            detail=f"median of {len(ratio)}, {min(ratio):.2f}–{max(ratio):.2f}",
            why="",
        )
    )
    sample = domain_encoder(data["flat"][:1], data["flat_columns"]).decode().splitlines()[-1]
    result.setup += [
        f"{n:,} rows × {len(data['keys'])} columns ({', '.join(c.path for c in data['columns'])})",
        f"{sizes.s5_reps} interleaved passes per encoder after one warm-up pass, one process, "
        "gc collected before each pass",
        f"a row as the domain encodes it: `{sample[:160]}…`",
    ]
    for label, values in rates.items():
        result.figures.append(
            (f"{label} (rows/s)", f"{median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})")
        )
    result.figures.append(
        ("domain on nested documents ÷ bare csv.writer", f"{median(nested):.2f}×")
    )
    cursor_share = ratios(rates[labels[2]], rates[CURSOR])
    result.figures.append(
        (
            "time of the per-row cursor bookkeeping ÷ time of encoding the same nested rows",
            f"{median(cursor_share):.2f}×",
        )
    )
    result.notes.append(
        "`upload_next_part` (activities/export_activities.py, via `activities.chunk_reader`) "
        "takes every row's keyset cursor and serialises only the part's last one: the per-row "
        f"cursors cost {median(cursor_share):.2f}× the time of encoding the same rows."
    )
    formats = run_formats(data["docs"], sizes.s5_reps)
    costs = nested_csv_costs.measure(data["docs"], sizes.s5_reps)
    format_figures, format_outcomes = figures_and_outcomes(formats, n, nested_bound=costs.bound)
    result.figures += format_figures
    result.figures += [
        (f"nested report, CPU seconds (best of {sizes.s5_reps}): {what}", value)
        for what, value in costs.lines()
    ]
    result.outcomes += format_outcomes
    result.setup.append(
        "formats side by side (bench/s5_formats.py): each engine decodes the rows' BSON and "
        "encodes one part, rows per CPU-second of this process"
    )
    result.data = {
        "rows": n,
        "rows_per_second": rates,
        "ratio": ratio,
        "formats": formats,
        "nested_csv_costs": asdict(costs),
    }
    result.plots.append(plots.s5(ctx.plot_path("s5"), result.data))
    return result
