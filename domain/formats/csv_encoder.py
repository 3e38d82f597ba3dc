"""CSV parts: RFC 4180 through the stdlib `csv` module (minimal quoting, CRLF, UTF-8).

The optional BOM and the header row (`Column.title`, formula-guarded like any string) open the
first part only. Cells follow `domain.formats.cell_format`; newlines inside strings are kept (quoted).

Speed: rows are encoded in small batches, column by column, so the common cases are decided by
C code for a whole column at once: a column of str/None is checked for formula triggers with one
regex search, a column of int/None needs nothing (the csv module writes both itself), and only
other columns go through `format_cell` value by value (batching: `domain.formats.row_batches`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final

from bson import DatetimeMS

from domain.formats.cell_format import format_cell, guard_formula
from domain.formats.column_access import ColumnAccess, plan_columns
from domain.formats.flatten import MISSING, value_at_parts
from domain.formats.row_batches import BatchedTextEncoder, Row
from domain.formats.timezones import zone_of, zoned_iso
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

UTF8_BOM: Final = "\ufeff"

_TEXT_KINDS: Final[frozenset[type]] = frozenset({str, type(None)})
_INT_KINDS: Final[frozenset[type]] = frozenset({int, type(None)})
_DATE_KINDS: Final[frozenset[type]] = frozenset({datetime, DatetimeMS})
# Values are joined with NUL; a trigger right after a NUL starts a value. A NUL inside a value
# (or a value starting with NUL, which is itself a trigger) can only cause a false alarm, which the value-by-value guard then sorts out.
_TRIGGER_AFTER_NUL: Final = re.compile("\x00[-=+@\t\r\x00＝＋－＠]")


def _any_formula_trigger(texts: list[Any]) -> bool:
    """Whether any of these str/None values starts with a formula trigger (one C-level search)."""
    return _TRIGGER_AFTER_NUL.search("\x00" + "\x00".join(filter(None, texts))) is not None


def _mapping_get(row: Row, key: str) -> Any:
    return row.get(key)


class CsvPartEncoder(BatchedTextEncoder):
    """Encodes the rows of one CSV part (see `domain.formats.encoding.PartEncoder`)."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column], *, first_part: bool) -> None:
        super().__init__(spec, columns)
        self._guard = spec.formula_guard
        self._plan: list[ColumnAccess] = plan_columns(columns, spec.hidden_fields)
        self._writer = csv.writer(
            self._out.text,
            delimiter=spec.delimiter,
            lineterminator="\r\n",
            quoting=csv.QUOTE_MINIMAL,
        )
        self._zone = None if spec.timezone is None else zone_of(spec.timezone)
        if first_part:
            if spec.bom:
                self._out.write(UTF8_BOM)
            if columns:
                titles = [column.title for column in columns]
                self._writer.writerow([guard_formula(t) for t in titles] if self._guard else titles)

    def _write_rows(self, batch: list[Row]) -> None:
        """Write the batch's rows to the text buffer (the Arrow engine replaces this)."""
        cells = self._cells(batch)
        if cells:
            self._writer.writerows(zip(*cells, strict=True))

    def _cells(self, batch: list[Row]) -> list[list[Any]]:
        """The cells of the batch, column by column."""
        get = dict.get if all(issubclass(t, dict) for t in set(map(type, batch))) else _mapping_get
        return [self._column(batch, key, parts, get) for key, parts in self._plan]

    def _column(
        self,
        batch: list[Row],
        key: str,
        parts: tuple[str, ...] | None,
        get: Callable[[Any, str], Any],
    ) -> list[Any]:
        """The cells of one column for the batch: str, int or None (the csv module writes
        None as an empty cell and int as its digits)."""
        if parts is None:
            values = list(map(get, batch, repeat(key, len(batch))))
        else:
            values = [value_at_parts(row, parts) for row in batch]
            values = [None if value is MISSING else value for value in values]
        kinds = set(map(type, values))
        if kinds <= _TEXT_KINDS:
            if self._guard and _any_formula_trigger(values):
                return [guard_formula(value) if value else value for value in values]
            return values
        if kinds <= _INT_KINDS:
            return values
        guard = self._guard
        zone = self._zone
        if zone is not None and not kinds.isdisjoint(_DATE_KINDS):
            return [
                zoned
                if (zoned := zoned_iso(value, zone)) is not None
                else format_cell(value, guard)
                for value in values
            ]
        return [format_cell(value, guard) for value in values]
