"""Scenario 5, formats side by side: the Python and Arrow engines of CSV and JSON Lines, and
Parquet, on the same rows, in rows per CPU-second of this process, BSON decoding included (the
rows start as the BSON bytes the wire delivers and are decoded as the worker's PyMongo client
decodes them).

Two reports: the inspections' frozen columns (nested documents, arrays of documents) and the
demo's 7-column report (`bench.product.REPORT_COLUMNS`, as its `$project` returns it).
The Arrow engines and Parquet get the rows as the raw reader hands them over
(`RawBSONDocument`) and decode them with PyMongoArrow; the run also checks that each Arrow
engine's bytes equal its Python encoder's, and Parquet's equal those of Parquet from rows decoded
in Python (the reference, reported beside it). JSON Lines is written with the report's columns.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from bench.product import REPORT_COLUMNS
from bench.report import Outcome, Target, judge
from bench.stats import median, ratios
from domain.formats.encoding import EncodingSpec, freeze_columns, new_part_encoder
from domain.formats.flatten import MISSING, value_at
from domain.models import Column

DECODE: CodecOptions[Mapping[str, Any]] = CodecOptions(tz_aware=True)
"""As `connections.mongo` decodes (a client created with tz_aware=True)."""
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
PARQUET_RATE_TARGET = 60_000
PARQUET_SIZE_TARGET = 15.0
RAW_ENGINES: dict[str, EncodingSpec] = {
    "arrow": EncodingSpec(engine="arrow"),
    "arrow-jsonl": EncodingSpec(format="jsonl", engine="arrow"),
    "parquet": EncodingSpec(format="parquet"),
}


def _projected(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as `{$project: {path: 1 ...}}` returns it: `_id` and the paths, nested."""
    out: dict[str, Any] = {"_id": doc["_id"]}
    for path in REPORT_COLUMNS:
        value = value_at(doc, path)
        if value is MISSING:
            continue
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def encode_rows(raw: Sequence[bytes], columns: list[Column], engine: str) -> bytes:
    """`engine`: a format decoding rows in Python, `arrow`, `arrow-jsonl` or `parquet` (raw
    rows)."""
    if engine in RAW_ENGINES:  # rows as the raw reader hands them over
        spec = RAW_ENGINES[engine]
        encoder = new_part_encoder(spec, columns, first_part=True)
        for data in raw:
            encoder.write(RawBSONDocument(data, RAW))
        return encoder.finish(last=True)
    fmt = engine.removesuffix("-python")
    encoder = new_part_encoder(EncodingSpec(format=fmt), columns, first_part=True)  # type: ignore[arg-type]
    for data in raw:
        encoder.write(bson.decode(data, DECODE))
    return encoder.finish(last=True)


def _cpu_rate(fn: Callable[[], bytes], rows: int) -> tuple[float, int]:
    gc.collect()
    start = time.process_time()
    size = len(fn())
    return rows / (time.process_time() - start), size


def run_formats(docs: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    """{report: {engine: {"rates": [...], "bytes": n}}} for both reports."""
    reports = {
        f"nested report ({len(freeze_columns(docs[:100]))} columns)": (
            [bson.encode(doc) for doc in docs],
            freeze_columns(docs[:100]),
        ),
        f"demo report ({len(REPORT_COLUMNS)} columns)": (
            [bson.encode(_projected(doc)) for doc in docs],
            [Column(path=path) for path in REPORT_COLUMNS],
        ),
    }
    engines = {
        "Python CSV encoder": "csv",
        "Arrow CSV engine": "arrow",
        "Python JSON Lines encoder": "jsonl",
        "Arrow JSON Lines engine": "arrow-jsonl",
        "Parquet (zstd)": "parquet",
        "Parquet (zstd), rows decoded in Python": "parquet-python",
    }
    measured: dict[str, Any] = {}
    for report, (raw, columns) in reports.items():
        results: dict[str, Any] = {name: {"rates": [], "bytes": 0} for name in engines}
        for fmt in engines.values():  # warm-up
            encode_rows(raw[:1000], columns, fmt)
        for rep in range(reps):
            order = list(engines.items())
            order = order[rep % len(order) :] + order[: rep % len(order)]
            for name, fmt in order:
                rate, size = _cpu_rate(partial(encode_rows, raw, columns, fmt), len(raw))
                results[name]["rates"].append(rate)
                results[name]["bytes"] = size
        results["identical"] = encode_rows(raw, columns, "arrow") == encode_rows(
            raw, columns, "csv"
        )
        results["jsonl identical"] = encode_rows(raw, columns, "arrow-jsonl") == encode_rows(
            raw, columns, "jsonl"
        )
        parquet = encode_rows(raw, columns, "parquet")
        results["parquet identical"] = parquet == encode_rows(raw, columns, "parquet-python")
        measured[report] = results
    return measured


def figures_and_outcomes(
    measured: dict[str, Any], rows: int, *, nested_bound: float | None = None
) -> tuple[list[tuple[str, str]], list[Outcome]]:
    """`nested_bound`: the best Arrow ÷ Python an exact engine can reach on the nested report
    (`bench.nested_csv_costs`), given as the reason when its target is missed."""
    figures: list[tuple[str, str]] = []
    outcomes: list[Outcome] = []
    for report, results in measured.items():
        csv_bytes = results["Python CSV encoder"]["bytes"]
        for name, result in results.items():
            if name in ("identical", "jsonl identical", "parquet identical"):
                continue
            rates = result["rates"]
            figures.append(
                (
                    f"{report}, {name}: rows per CPU-second (BSON decoding included)",
                    f"{median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}); "
                    f"{result['bytes'] / 1e6:.1f} MB for {rows:,} rows",
                )
            )
        speedup = ratios(
            results["Arrow CSV engine"]["rates"], results["Python CSV encoder"]["rates"]
        )
        figures.append(
            (
                f"{report}, Arrow CSV ÷ Python CSV",
                f"{median(speedup):.2f}×; same bytes: {'yes' if results['identical'] else 'NO'}",
            )
        )
        jsonl_speedup = ratios(
            results["Arrow JSON Lines engine"]["rates"],
            results["Python JSON Lines encoder"]["rates"],
        )
        figures.append(
            (
                f"{report}, Arrow JSON Lines ÷ Python JSON Lines",
                f"{median(jsonl_speedup):.2f}×; same bytes: "
                f"{'yes' if results['jsonl identical'] else 'NO'}",
            )
        )
        outcomes.append(
            judge(
                Target(
                    f"s5.arrow_csv.{report.split()[0]}",
                    f"Arrow CSV rows per CPU-second ÷ Python CSV, {report.split(' (')[0]}",
                    ">=",
                    1.5,
                    "×",
                ),
                median(speedup),
                detail="same bytes" if results["identical"] else "DIFFERENT BYTES",
                why=(
                    f"an exact engine's bound on this report is {nested_bound:.2f}× "
                    "(bench/nested_csv_costs.py, measured in this run)"
                    if nested_bound is not None and report.startswith("nested")
                    else ""
                ),
            )
        )
        same = results["parquet identical"]
        figures.append(
            (
                f"{report}, Parquet from raw rows = Parquet from rows decoded in Python",
                "yes, same bytes" if same else "NO: DIFFERENT BYTES",
            )
        )
        if report.startswith("demo"):
            parquet = results["Parquet (zstd)"]
            outcomes.append(
                judge(
                    Target(
                        "s5.parquet_rate",
                        "Parquet rows per CPU-second, demo report",
                        ">=",
                        PARQUET_RATE_TARGET,
                        "rows/s",
                    ),
                    median(parquet["rates"]) if same else None,
                    detail="same bytes as from rows decoded in Python",
                    why="Parquet from raw rows differs from Parquet from rows decoded in Python",
                )
            )
            outcomes.append(
                judge(
                    Target(
                        "s5.parquet_size",
                        "Parquet bytes ÷ CSV bytes, demo report",
                        "<=",
                        PARQUET_SIZE_TARGET,
                        "%",
                    ),
                    100 * parquet["bytes"] / csv_bytes,
                )
            )
    return figures, outcomes
