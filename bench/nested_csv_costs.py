"""Where the CSV of scenario 5's nested report spends its CPU, and what bounds the Arrow engine
there: the measurement behind README "Formats" on the 18-column report.

The Python encoder's time on the report (BSON decoding included, as scenario 5 measures it) is
split into what no engine can skip while writing the same bytes, and the rest:

* decoding the three array columns' values (`violations`, `tags`, `rep`) and writing their
  relaxed Extended JSON text: an exact engine must do both, since the cell text depends on the
  documents' key order and on a key missing versus null, which PyMongoArrow discards;
* the 15 scalar columns: what Arrow can take over. The Arrow engine's cost for them is measured
  on the same rows with the arrays left out (the Arrow engine on a 15-column report).

The bound: Python time ÷ (the arrays' unavoidable time + Arrow's time for the scalars). No
machinery around PyMongoArrow gets past it on this report. CPU time of this process, best of
`--reps` (the machine is shared).

    .venv/bin/python -m bench.nested_csv_costs [--rows 20000] [--reps 5]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bson

from bench.data import documents
from bench.s5_formats import DECODE, encode_rows
from domain.formats.encoding import freeze_columns
from domain.formats.relaxed_json import relaxed_json

ARRAYS = ("violations", "tags", "rep")
BATCH = 256
"""Rows decoded at a time, at most what the encoders batch; each batch's rows are let go."""


def best_cpu_seconds(fn: Callable[[], Any], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        gc.collect()
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


@dataclass(frozen=True)
class NestedCsvCosts:
    """CPU seconds, best of the repetitions, on the same rows."""

    rows: int
    columns: int
    python: float
    """The Python encoder on the whole report (decoding included)."""
    decode_arrays: float
    json_arrays: float
    python_scalars: float
    arrow_scalars: float

    @property
    def floor(self) -> float:
        """The least time an exact Arrow engine can take: the arrays' unavoidable work plus
        Arrow's time for the scalar columns."""
        return self.decode_arrays + self.json_arrays + self.arrow_scalars

    @property
    def bound(self) -> float:
        """The best Arrow ÷ Python speed-up an exact engine can reach on this report."""
        return self.python / self.floor

    def lines(self) -> list[tuple[str, str]]:
        return [
            ("Python encoder, whole report (decoding included)", f"{self.python:.3f} s"),
            ("  decoding the 3 array columns' values", f"{self.decode_arrays:.3f} s"),
            ("  their relaxed JSON text", f"{self.json_arrays:.3f} s"),
            ("Python encoder, the 15 scalar columns alone", f"{self.python_scalars:.3f} s"),
            ("Arrow engine, the 15 scalar columns alone", f"{self.arrow_scalars:.3f} s"),
            ("floor of an exact Arrow engine (arrays + Arrow scalars)", f"{self.floor:.3f} s"),
            ("best possible Arrow ÷ Python on this report", f"{self.bound:.2f}×"),
        ]


def measure(docs: Sequence[Mapping[str, Any]], reps: int) -> NestedCsvCosts:
    """The costs on `docs` (the benchmark's inspections, `bench.data.documents`)."""
    columns = freeze_columns(docs[:100])
    raw = [bson.encode(doc) for doc in docs]
    arrays_only = [bson.encode({k: doc[k] for k in ARRAYS if k in doc}) for doc in docs]
    batches = [b"".join(arrays_only[i : i + BATCH]) for i in range(0, len(arrays_only), BATCH)]
    scalar_columns = [c for c in columns if c.path not in ARRAYS]
    scalars_raw = [bson.encode({k: v for k, v in doc.items() if k not in ARRAYS}) for doc in docs]
    decoded_arrays = [row for data in batches for row in bson.decode_all(data, DECODE)]
    return NestedCsvCosts(
        rows=len(docs),
        columns=len(columns),
        python=best_cpu_seconds(lambda: encode_rows(raw, columns, "csv"), reps),
        decode_arrays=best_cpu_seconds(
            lambda: [len(bson.decode_all(data, DECODE)) for data in batches], reps
        ),
        json_arrays=best_cpu_seconds(
            lambda: [relaxed_json(row[k]) for row in decoded_arrays for k in ARRAYS if k in row],
            reps,
        ),
        python_scalars=best_cpu_seconds(
            lambda: encode_rows(scalars_raw, scalar_columns, "csv"), reps
        ),
        arrow_scalars=best_cpu_seconds(
            lambda: encode_rows(scalars_raw, scalar_columns, "arrow"), reps
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    costs = measure(list(documents(args.rows)), args.reps)
    print(f"{costs.rows:,} rows, {costs.columns} columns, best of {args.reps} (CPU seconds)")
    for what, value in costs.lines():
        print(f"{what:<56} {value:>6}")


if __name__ == "__main__":
    main()
