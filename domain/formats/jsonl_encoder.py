"""JSONL parts: one compact relaxed Extended JSON document per line, `\\n` line ends.

Never a BOM and no formula guard: JSON is not opened as a spreadsheet. Without columns a line is
the whole document minus the hidden fields (see `domain.formats.column_access`). With columns it is a flat object
`{Column.title: value}` in column order, the values kept as typed BSON (dates stay `$date`,
numbers stay numbers); a missing value leaves its key out, a null stays `null`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from domain.formats.column_access import ColumnAccess, paths_to_strip, plan_columns, strip_paths
from domain.formats.flatten import MISSING, value_at_parts
from domain.formats.part_buffer import PartBuffer
from domain.formats.relaxed_json import relaxed_json
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec


class JsonlPartEncoder:
    """Encodes the rows of one JSONL part (see `domain.formats.encoding.PartEncoder`)."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column] | None) -> None:
        self._out = PartBuffer(spec.compression, spec.gzip_level)
        self._strip = paths_to_strip(columns, spec.hidden_fields)
        self._selection: list[tuple[ColumnAccess, str]] | None = None
        if columns is not None:
            plan = plan_columns(columns, spec.hidden_fields)
            self._selection = list(zip(plan, (c.title for c in columns), strict=True))
        self._rows = 0

    @property
    def size(self) -> int:
        return self._out.size

    @property
    def rows(self) -> int:
        return self._rows

    def write(self, row: Mapping[str, Any]) -> None:
        if self._out.finished:
            raise RuntimeError("this part is already finished")
        if self._strip:
            row = strip_paths(row, self._strip)
        document = row if self._selection is None else self._select(row, self._selection)
        self._out.write(relaxed_json(document) + "\n")
        self._rows += 1

    @property
    def carry(self) -> str | None:
        return None

    @property
    def warnings(self) -> Mapping[str, int]:
        return {}

    def finish(self, *, last: bool = False) -> bytes:
        return self._out.finish()

    @staticmethod
    def _select(
        row: Mapping[str, Any], selection: list[tuple[ColumnAccess, str]]
    ) -> dict[str, Any]:
        selected: dict[str, Any] = {}
        for (key, parts), title in selection:
            value = row.get(key, MISSING) if parts is None else value_at_parts(row, parts)
            if value is not MISSING:
                selected[title] = value
        return selected
