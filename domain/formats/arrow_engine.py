"""What the Arrow text engines (CSV: `domain.formats.arrow_csv`, JSON Lines:
`domain.formats.arrow_jsonl`) share: when a batch of raw rows goes to Arrow and when to Python.

Each engine is its Python encoder (the reference) with one step replaced, writing a batch's rows.
A part's first batch goes through Python, decoded in one `bson.decode_all` call, and pins each
column's kind (`domain.formats.arrow_batches`); the later batches go to Arrow while it pays and
can be exact:

* Arrow pays when it makes at least PYTHON_SHARE times as many columns as Python must (documents,
  arrays, mixed types): those need the whole rows decoded in Python, and Arrow's decoding on top
  is extra work;
* a batch Arrow refuses (`BatchRefused`, `NeedsCsvModule`) goes through Python, which pins the
  kinds again for the next batches; after MAX_FAILED_BATCHES such batches the rest of the part
  is Python's.
"""

from __future__ import annotations

from typing import Any, Final

from bson.raw_bson import RawBSONDocument

from domain.formats.arrow_batches import (
    BatchRefused,
    PinnedDecoder,
    column_paths,
    decoded_batch,
    kind_of,
)
from domain.formats.arrow_text import NeedsCsvModule
from domain.formats.column_access import ColumnAccess, value_of
from domain.formats.flatten import MISSING
from domain.formats.row_batches import BatchedTextEncoder, Row

PYTHON_SHARE: Final = 8
"""Arrow makes a part's cells when it makes at least this many times as many columns as Python
must (scenario 5: 15 Arrow columns beside 3 Python ones cost more than Python alone, since the
rows must be decoded in Python in full for those 3)."""
MAX_FAILED_BATCHES: Final = 4
"""Batches Arrow may fail in one part before the rest of the part goes through Python only."""


class ArrowTextEngine(BatchedTextEncoder):
    """Mixed in before a Python text encoder: its `_write_rows` becomes the Python path, and
    `_arrow_text` (the engine's) writes the batches Arrow takes. Call `_start_engine` from
    `__init__`."""

    def _start_engine(self, plan: list[ColumnAccess] | None) -> None:
        self._engine_plan = plan or []
        self._column_paths = column_paths(self._engine_plan)
        self._pinned: PinnedDecoder | None = None
        """The kinds of the part's columns and their decoder (after the first batch)."""
        self._arrow_pays = False
        self._failed = 0
        self.arrow_batches = 0
        """Batches whose text Arrow made (for tests and benchmarks)."""
        self.python_batches = 0
        self.python_columns = 0
        """Columns of the Arrow batches that Python made (documents, arrays, mixed)."""

    def _write_rows(self, batch: list[Row]) -> None:
        if (
            self._pinned is None
            or not self._arrow_pays
            or self._failed >= MAX_FAILED_BATCHES
            or not all(type(row) is RawBSONDocument for row in batch)
        ):
            self._python_rows(batch)
            return
        try:
            text = self._arrow_text(batch, self._pinned)
        except (BatchRefused, NeedsCsvModule):
            self._failed += 1
            self._pinned = None  # the kinds of this batch, for the next ones
            self._python_rows(batch)
            return
        self._out.text.write(text)
        self.arrow_batches += 1

    def _python_rows(self, batch: list[Row]) -> None:
        """The reference path, which also pins the kinds when none are."""
        self.python_batches += 1
        rows = decoded_batch(batch)
        if self._pinned is None and self._engine_plan:
            self._pin(rows)
        super()._write_rows(rows)

    def _pin(self, batch: list[Row]) -> None:
        """The kinds of the part's later batches, from this batch's values."""
        kinds = [
            None if self._strip else kind_of(values_of(batch, key, parts))
            for key, parts in self._engine_plan
        ]
        self._pinned = pinned = PinnedDecoder(self._column_paths, kinds)
        arrow = pinned.arrow_columns
        self._arrow_pays = arrow > 0 and arrow >= PYTHON_SHARE * pinned.python_columns

    def _arrow_text(self, batch: list[Row], pinned: PinnedDecoder) -> str:
        """The batch's text, made by Arrow; raises BatchRefused (or NeedsCsvModule)."""
        raise NotImplementedError


def values_of(batch: list[Row], key: str, parts: tuple[str, ...] | None) -> list[Any]:
    """The column's values in a decoded batch, None where absent."""
    values = [value_of(row, key, parts) for row in batch]
    return [None if value is MISSING else value for value in values]
