"""JSONL parts: one compact relaxed Extended JSON document per line, `\\n` line ends.

Never a BOM and no formula guard: JSON is not opened as a spreadsheet. Without columns a line is
the whole document minus the hidden fields (see `domain.formats.column_access`). With columns it is a flat object
`{Column.title: value}` in column order, the values kept as typed BSON (dates stay `$date`,
numbers stay numbers); a missing value leaves its key out, a null stays `null`. Rows are written
a batch at a time (`domain.formats.row_batches`), as CSV's are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from domain.formats.column_access import ColumnAccess, plan_columns, value_of
from domain.formats.flatten import MISSING
from domain.formats.relaxed_json import relaxed_json
from domain.formats.row_batches import BatchedTextEncoder, Row
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec


class JsonlPartEncoder(BatchedTextEncoder):
    """Encodes the rows of one JSONL part (see `domain.formats.encoding.PartEncoder`)."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column] | None) -> None:
        super().__init__(spec, columns)
        self._plan: list[ColumnAccess] | None = None
        self._titles: list[str] = []
        if columns is not None:
            self._plan = plan_columns(columns, spec.hidden_fields)
            self._titles = [column.title for column in columns]

    def _write_rows(self, batch: list[Row]) -> None:
        if self._plan is None:
            lines = [relaxed_json(row) for row in batch]
        else:
            lines = [relaxed_json(self._select(row)) for row in batch]
        self._out.text.write("\n".join(lines) + "\n")

    def _select(self, row: Mapping[str, Any]) -> dict[str, Any]:
        assert self._plan is not None
        selected: dict[str, Any] = {}
        for (key, parts), title in zip(self._plan, self._titles, strict=True):
            value = value_of(row, key, parts)
            if value is not MISSING:
                selected[title] = value
        return selected
