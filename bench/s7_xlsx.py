"""Scenario 7, XLSX: rows per CPU-second and peak RSS of the product's resumable XLSX encoder
against xlsxwriter's constant-memory mode, on the same rows, in the same run.

Each measurement runs in a fresh Python process (`python -m bench.s7_xlsx ENGINE ROWS`), so its
CPU time and its peak RSS (`ru_maxrss`, the kernel's high-water mark) belong to that one export.
Both engines get the same documents: the benchmark's inspections (a pool of `POOL` generated
once per process, cycled up to the row count), the same 16 frozen columns, the same cell types.

* product: the part loop of `upload_next_part` without MongoDB and S3: rows go into
  `new_part_encoder(... format="xlsx")`; a part is finished at the target part size with its
  carry handed to the next one, as the workflow does, and its bytes are written to a file (the
  upload) and dropped.
* xlsxwriter 3.3 with `constant_memory: True`: each row extracted with the same column paths and
  written with `write_number`/`write_string`/`write_boolean`/`write_datetime` as the product types
  it; `close()` (which builds the zip) is counted.

CPU is `time.process_time()` around the encoding only (generating the pool is not counted).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import log, mb
from bench.context import BenchContext
from bench.report import ScenarioResult, Target, judge

POOL = 5_000
RATE_TARGET = 1.0
FLAT = 1.2
ENGINES = ("product", "xlsxwriter")


def _rows(count: int) -> tuple[list[Any], Iterator[dict[str, Any]]]:
    from bench.data import documents
    from domain.formats.flatten import freeze_columns

    pool = list(documents(POOL))
    for doc in pool:  # the bench's own bookkeeping fields are not part of a report
        for key in ("seq", "site", "rep", "tenantId"):
            doc.pop(key, None)
    columns = freeze_columns(pool[:100])
    return columns, (pool[n % POOL] for n in range(count))


def product(count: int, out: Path) -> int:
    from domain.formats.encoding import EncodingSpec, new_part_encoder
    from domain.part_sizing import target_part_size

    columns, rows = _rows(count)
    spec = EncodingSpec(format="xlsx")
    written, number, carry = 0, 1, None
    started = time.process_time()
    with out.open("wb") as upload:
        encoder = new_part_encoder(spec, columns, first_part=True, carry=None, offset=0)
        target = target_part_size(0, 0, base=8 * 1024 * 1024)
        for row in rows:
            encoder.write(row)
            if encoder.size >= target:
                body = encoder.finish(last=False)
                upload.write(body)
                written += len(body)
                carry, number = encoder.carry, number + 1
                target = target_part_size(written, number - 1, base=8 * 1024 * 1024)
                encoder = new_part_encoder(
                    spec, columns, first_part=False, carry=carry, offset=written
                )
        upload.write(encoder.finish(last=True))
    _report(count, started, out, len(columns), parts=number)
    return 0


def xlsxwriter_constant_memory(count: int, out: Path) -> int:
    import xlsxwriter

    from domain.formats.cell_format import format_cell
    from domain.formats.flatten import MISSING, value_at

    columns, rows = _rows(count)
    paths = [column.path for column in columns]
    started = time.process_time()
    workbook = xlsxwriter.Workbook(str(out), {"constant_memory": True, "remove_timezone": True})
    sheet = workbook.add_worksheet()
    bold = workbook.add_format({"bold": True})
    date = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"})
    for c, column in enumerate(columns):
        sheet.write_string(0, c, column.title, bold)
    sheet.freeze_panes(1, 0)
    for r, row in enumerate(rows, start=1):
        for c, path in enumerate(paths):
            value = value_at(row, path)
            if value is None or value is MISSING:
                continue
            kind = type(value)
            if kind is bool:
                sheet.write_boolean(r, c, value)
            elif kind is int or kind is float:
                sheet.write_number(r, c, value)
            elif kind is datetime:
                sheet.write_datetime(r, c, value, date)
            else:
                text = value if kind is str else format_cell(value, False)
                sheet.write_string(r, c, text)
    sheet.autofilter(0, 0, count, len(columns) - 1)
    workbook.close()
    _report(count, started, out, len(columns), parts=1)
    return 0


def _report(count: int, started: float, out: Path, columns: int, *, parts: int) -> None:
    cpu = time.process_time() - started
    print(
        json.dumps(
            {
                "rows": count,
                "columns": columns,
                "cpu_seconds": cpu,
                "rows_per_cpu_second": count / cpu,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "bytes": out.stat().st_size,
                "parts": parts,
            }
        )
    )


def measure(engine: str, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-s7-") as directory:
        done = subprocess.run(
            [sys.executable, "-m", "bench.s7_xlsx", engine, str(rows), directory],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


async def run(ctx: BenchContext) -> ScenarioResult:
    small, large = (10_000, 100_000) if ctx.quick else (100_000, 1_000_000)
    result = ScenarioResult(7, "XLSX: resumable encoder vs xlsxwriter constant memory")
    runs: dict[str, dict[int, dict[str, Any]]] = {engine: {} for engine in ENGINES}
    for rows in (small, large):
        for engine in ENGINES if rows == small else ENGINES[::-1]:
            log.info("scenario 7: %s, %d rows", engine, rows)
            runs[engine][rows] = measure(engine, rows)
    ours, theirs = runs["product"], runs["xlsxwriter"]
    rate_ratio = ours[large]["rows_per_cpu_second"] / theirs[large]["rows_per_cpu_second"]
    flat = ours[large]["peak_rss_bytes"] / ours[small]["peak_rss_bytes"]
    result.outcomes += [
        judge(
            Target(
                "s7.rate",
                f"XLSX rows per CPU-second ÷ xlsxwriter constant memory's, {large:,} rows",
                ">=",
                RATE_TARGET,
                "×",
            ),
            rate_ratio,
            detail=f"{ours[large]['rows_per_cpu_second']:,.0f} vs "
            f"{theirs[large]['rows_per_cpu_second']:,.0f} rows/CPU-s",
        ),
        judge(
            Target(
                "s7.flat",
                f"XLSX encoder peak RSS, {large:,} ÷ {small:,} rows",
                "<=",
                FLAT,
                "×",
            ),
            flat,
            detail=f"{mb(ours[large]['peak_rss_bytes']):.0f} MB vs "
            f"{mb(ours[small]['peak_rss_bytes']):.0f} MB",
        ),
    ]
    columns = ours[small]["columns"]
    result.setup += [
        f"the benchmark's inspections, {columns} frozen columns, a pool of {POOL:,} documents "
        f"cycled to {small:,} and {large:,} rows; each measurement in a fresh process",
        "product: the part loop of `upload_next_part` (8 MiB parts, carry between parts) "
        "without MongoDB and S3; xlsxwriter 3.3.1 with constant_memory, close() counted",
    ]
    for engine, label in (("product", "product XLSX"), ("xlsxwriter", "xlsxwriter const-mem")):
        for rows in (small, large):
            m = runs[engine][rows]
            result.figures += [
                (
                    f"{label}, {rows:,} rows: rows per CPU-second",
                    f"{m['rows_per_cpu_second']:,.0f}",
                ),
                (f"{label}, {rows:,} rows: peak RSS (MB)", f"{mb(m['peak_rss_bytes']):.0f}"),
                (
                    f"{label}, {rows:,} rows: file (MB), parts",
                    f"{mb(m['bytes']):.1f}, {m['parts']}",
                ),
            ]
    result.data = {"runs": {e: {str(k): v for k, v in r.items()} for e, r in runs.items()}}
    return result


def main(argv: list[str]) -> int:
    engine, rows, directory = argv[0], int(argv[1]), Path(argv[2])
    out = directory / f"{engine}.xlsx"
    if engine == "product":
        return product(rows, out)
    if engine == "xlsxwriter":
        return xlsxwriter_constant_memory(rows, out)
    raise SystemExit(f"unknown engine {engine!r}: choose among {', '.join(ENGINES)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
