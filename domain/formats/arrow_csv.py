"""The Arrow CSV engine: CSV text from raw BSON batches decoded by PyMongoArrow, byte for byte
what the Python encoder (`domain.formats.csv_encoder`, the reference) writes.

It is the Python encoder with one step replaced: writing a batch's rows. Batching, the header and
the part buffer are the reference's, so the part sizes, and with them the part boundaries and the
gzip members, are the same. A batch of raw rows (`RawBSONDocument`, read with the worker's codec
options) is decoded into Arrow with a schema pinned from the first batch of the part, which the
Python path encodes while noting each column's Python types; Arrow compute formats the cells,
guards formulas, quotes and joins the rows (`domain.formats.arrow_text`), so no Python object is
made per cell. What Arrow cannot make exactly falls back, per column where it can:

* a column of documents, arrays, Decimal128, binary or mixed types, a path through an array
  index or above a hidden path: that column's cells are made by the Python formatter from the
  batch decoded in one `bson.decode_all` call, the other columns by Arrow (when Python would
  make more columns than Arrow, the whole part goes through Python: the Python decoding is
  needed anyway and Arrow's would be extra work);
* PyMongoArrow raises on a value of another BSON type for string, date, ObjectId and bool columns:
  that batch goes through Python, which pins the kinds again for the next batches;
* its int64 and double builders convert silently (a double into an int64 column, an int or a
  bool into a double column, where CSV writes `2.0`, `2` and `true`): the batch's bytes are
  searched for an element of a converting type named like the column's leaf field (type byte,
  name, NUL; a match inside a string is a false alarm, which costs only speed); any hit sends
  the batch through Python; a NaN (null in Arrow) is asked of Python cell by cell;
* a key containing dots that could spell a dotted column path (the Python reader finds such keys,
  PyMongoArrow does not), invalid UTF-8, a NUL in a string, dates outside the years 1000 to
  9999: the batch goes through Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from domain.formats.arrow_batches import (
    BatchRefused,
    PinnedDecoder,
    decoded_batch,
    raw_bytes,
)
from domain.formats.arrow_engine import ArrowTextEngine
from domain.formats.arrow_text import (
    DatesOutOfRange,
    csv_cells,
    csv_text,
    iso_dates,
    oid_hex,
)
from domain.formats.cell_format import format_cell, format_float
from domain.formats.column_access import value_of
from domain.formats.csv_encoder import CsvPartEncoder
from domain.formats.flatten import MISSING
from domain.formats.row_batches import Row
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec


class ArrowCsvPartEncoder(ArrowTextEngine, CsvPartEncoder):
    """`CsvPartEncoder` whose batches of raw rows are decoded, formatted and written by Arrow
    (when and how it falls back to Python: `domain.formats.arrow_engine`)."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column], *, first_part: bool) -> None:
        super().__init__(spec, columns, first_part=first_part)
        self._start_engine(self._plan)

    def _arrow_text(self, batch: list[Row], pinned: PinnedDecoder) -> str:
        data = raw_bytes(batch)
        leaves = pinned.leaves(data)
        rows: list[Row] | None = None
        columns: list[pa.Array] = []
        for (key, parts), path, kind, leaf in zip(
            self._plan, self._column_paths, pinned.kinds, leaves, strict=True
        ):
            if path is None:
                columns.append(pa.nulls(len(batch), pa.string()))
            elif kind is None or leaf is None:  # documents, arrays, mixed types
                if rows is None:
                    rows = decoded_batch(batch, data)
                self.python_columns += 1
                cells = _as_text(self._column(rows, key, parts, dict.get))
                columns.append(csv_cells(cells, guard=False))  # guarded by `_column`
            else:
                column = self._format_arrow(leaf, kind)
                if kind == "float" and column.null_count:
                    column = self._nan_or_empty(column, batch, key, parts)
                columns.append(column)
        return csv_text(columns)

    def _nan_or_empty(
        self, cells: pa.Array, batch: list[Row], key: str, parts: tuple[str, ...] | None
    ) -> pa.Array:
        """PyMongoArrow reads a NaN double as null: ask Python about the null cells only."""
        texts = cells.to_pylist()
        return pa.array(
            [
                format_cell(_or_none(value_of(row, key, parts)), self._guard)
                if cell is None
                else cell
                for cell, row in zip(texts, batch, strict=True)
            ],
            pa.string(),
        )

    def _format_arrow(self, array: pa.Array, kind: str) -> pa.Array:
        """The CSV-ready cells `CsvPartEncoder._column` would make of the same values (nulls
        for empty cells)."""
        if kind == "str":
            try:
                array.validate(full=True)  # invalid UTF-8: the Python path decides
            except pa.ArrowInvalid as exc:
                raise BatchRefused from exc
            return csv_cells(array, self._guard)
        if kind == "int":
            return array.cast(pa.string())
        if kind == "float":
            return pa.array(
                [None if v is None else format_float(v) for v in array.to_pylist()], pa.string()
            )
        if kind == "bool":
            return pc.if_else(array, "true", "false")
        if kind == "date":
            try:
                return iso_dates(array)
            except DatesOutOfRange as exc:
                raise BatchRefused from exc
        if kind == "oid":
            return oid_hex(array.storage)
        raise BatchRefused


def _as_text(cells: list[Any]) -> pa.Array:
    """Cells of `CsvPartEncoder._column` (all str/None, or all int/None) as a string array."""
    try:
        array = pa.array(cells)
    except (pa.ArrowException, UnicodeError) as exc:  # lone surrogates, say: the csv module
        raise BatchRefused from exc
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_null(array.type):
        return array.cast(pa.string())
    if pa.types.is_integer(array.type):
        return array.cast(pa.string())
    raise BatchRefused


def _or_none(value: Any) -> Any:
    return None if value is MISSING else value
