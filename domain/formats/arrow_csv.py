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

import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import bson
import pyarrow as pa
import pyarrow.compute as pc
from bson.codec_options import CodecOptions
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument

from domain.formats.arrow_text import (
    DatesOutOfRange,
    NeedsCsvModule,
    csv_cells,
    csv_text,
    iso_dates,
    oid_hex,
)
from domain.formats.cell_format import format_cell, format_float
from domain.formats.column_access import NEVER_A_KEY
from domain.formats.csv_encoder import CsvPartEncoder, Row
from domain.formats.flatten import MISSING, value_at_parts
from domain.models import Column

with warnings.catch_warnings():
    # PyMongoArrow 1.15's Cython module reports pyarrow 25's larger array structs at import;
    # it uses none of the changed fields (its own tests pass on this pair, as ours do).
    warnings.simplefilter("ignore", RuntimeWarning)
    from pymongoarrow.context import _parse_builder_map, _parse_types
    from pymongoarrow.lib import BuilderManager
    from pymongoarrow.schema import Schema
    from pymongoarrow.types import ObjectIdType, _get_internal_typemap

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

PYTHON_SHARE: Final = 8
"""Arrow makes a part's cells when it makes at least this many times as many columns as Python
must (scenario 5: 15 Arrow columns beside 3 Python ones cost more than Python alone, since the
rows must be decoded in Python in full for those 3)."""
SHORT_NAME: Final = 4
MAX_FAILED_BATCHES: Final = 4
"""Batches Arrow may fail in one part before the rest of the part goes through Python only."""

# The BSON element types each pinned kind's builder takes silently (see the module doc). A NaN
# double becomes null in every builder, so a double where none is expected is always suspect.
_CONVERTED: Final[dict[str, bytes]] = {
    "str": b"\x01",
    "int": b"\x01\x08",
    "float": b"\x10\x12\x08",
    "bool": b"\x01",
    "date": b"\x01",
    "oid": b"\x01",
}

_KINDS: Final[dict[frozenset[type], str]] = {
    frozenset({str}): "str",
    frozenset({int}): "int",
    frozenset({bson.Int64}): "int",
    frozenset({int, bson.Int64}): "int",
    frozenset({float}): "float",
    frozenset({bool}): "bool",
    frozenset({datetime}): "date",
    frozenset({bson.ObjectId}): "oid",
}
_ARROW: Final[dict[str, pa.DataType]] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.timestamp("ms"),
    "oid": ObjectIdType(),
}


_OPTIONS: Final = "_RawBSONDocument__codec_options"


def decoded(row: RawBSONDocument) -> dict[str, Any]:
    """A raw row decoded as the Python path's reader decodes it: the options it was read with,
    documents as dicts. (RawBSONDocument keeps its options private; a subclass that kept them
    would cost a Python `__init__` per row, which scenario 5 measured at a third of the gain.)"""
    options = getattr(row, _OPTIONS, DEFAULT_RAW_BSON_OPTIONS)
    return bson.decode(row.raw, _as_dicts(options))


_AS_DICTS: dict[int, tuple[CodecOptions[Any], CodecOptions[dict[str, Any]]]] = {}


def _as_dicts(options: CodecOptions[Any]) -> CodecOptions[dict[str, Any]]:
    """The same options decoding to dicts, made once per options object (not hashable)."""
    known = _AS_DICTS.get(id(options))
    if known is None or known[0] is not options:
        known = (options, options.with_options(document_class=dict))
        if len(_AS_DICTS) > 64:
            _AS_DICTS.clear()
        _AS_DICTS[id(options)] = known
    return known[1]


class _ArrowFailed(Exception):
    """This batch cannot be trusted to Arrow."""


class ArrowCsvPartEncoder(CsvPartEncoder):
    """`CsvPartEncoder` whose batches of raw rows are decoded, formatted and written by Arrow."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column], *, first_part: bool) -> None:
        super().__init__(spec, columns, first_part=first_part)
        self._kinds: list[str | None] | None = None
        """Per column: the pinned kind, None for the Python path (after the first batch)."""
        self._decoder: _BatchDecoder | None = None
        self._suspects: list[bytes] = []
        self._arrow_pays = False
        self._failed = 0
        self.arrow_batches = 0
        """Batches whose text Arrow made (for tests and benchmarks)."""
        self.python_batches = 0
        self.python_columns = 0
        """Columns of the Arrow batches that Python formatted (documents, arrays, mixed)."""
        self._column_paths = [
            None if key == NEVER_A_KEY else (key,) if parts is None else parts
            for key, parts in self._plan
        ]

    def _write_rows(self, batch: list[Row]) -> None:
        if (
            self._kinds is None
            or not self._arrow_pays
            or self._failed >= MAX_FAILED_BATCHES
            or not self._plan
            or not all(type(row) is RawBSONDocument for row in batch)
        ):
            super()._write_rows(batch)  # Python cells (`_cells`), pinning the kinds if first
            return
        try:
            text = self._arrow(batch)
        except (_ArrowFailed, NeedsCsvModule):
            self._failed += 1
            self._kinds = None  # the kinds of this batch, for the next ones
            super()._write_rows(batch)
            return
        self._out.text.write(text)
        self.arrow_batches += 1

    # -- the Python path (the reference), which also pins the kinds --------------------------

    def _cells(self, batch: list[Row]) -> list[list[Any]]:
        self.python_batches += 1
        if all(type(row) is RawBSONDocument for row in batch):  # one C call for the batch
            batch = _decoded_batch(batch, b"".join([row.raw for row in batch]))  # type: ignore[attr-defined]
        else:
            batch = [decoded(row) if type(row) is RawBSONDocument else row for row in batch]
        if self._kinds is None:
            self._pin(
                [
                    self._kind_of(_values(batch, key, parts), path)
                    for (key, parts), path in zip(self._plan, self._column_paths, strict=True)
                ]
            )
        return super()._cells(batch)

    def _kind_of(self, values: list[Any], path: tuple[str, ...] | None) -> str | None:
        if path is None or self._strip or any(p.isascii() and p.isdigit() for p in path):
            return None
        present = frozenset(type(v) for v in values if v is not None)
        return _KINDS.get(present) if present else "str"

    def _pin(self, kinds: list[str | None]) -> None:
        """The schema of the part's later batches: nested structs for dotted paths."""
        paths = [p for p, k in zip(self._column_paths, kinds, strict=True) if k and p]
        for i, (path, kind) in enumerate(zip(self._column_paths, kinds, strict=True)):
            if kind and path and any(o != path and o[: len(path)] == path for o in paths):
                kinds[i] = None  # a column above another one: Python
        tree: dict[str, Any] = {}
        for path, kind in zip(self._column_paths, kinds, strict=True):
            if not kind or not path:
                continue
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = _ARROW[kind]
        self._kinds = kinds
        # Columns Arrow cannot make (documents, arrays, mixed types) need the batch decoded in
        # Python too; Arrow still pays when it makes PYTHON_SHARE times as many columns.
        arrow = sum(1 for k, p in zip(kinds, self._column_paths, strict=True) if k and p)
        python = sum(1 for k, p in zip(kinds, self._column_paths, strict=True) if p and not k)
        self._arrow_pays = arrow > 0 and arrow >= PYTHON_SHARE * python
        schema = Schema({k: _type_of(v) for k, v in tree.items()}) if tree else None
        self._decoder = None if schema is None else _BatchDecoder(schema)
        self._suspects = self._suspect_patterns()

    # -- the Arrow path ------------------------------------------------------------------------

    def _arrow(self, batch: list[Row]) -> str:
        assert self._kinds is not None
        data = b"".join([row.raw for row in batch])  # type: ignore[attr-defined]
        self._check_bytes(data)
        table = None
        if self._decoder is not None:
            try:
                table = self._decoder.decode(data)
            except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
                raise _ArrowFailed from exc
        rows: list[Row] | None = None
        columns: list[pa.Array] = []
        for (key, parts), path, kind in zip(
            self._plan, self._column_paths, self._kinds, strict=True
        ):
            if path is None:
                columns.append(pa.nulls(len(batch), pa.string()))
            elif kind is None or table is None:  # documents, arrays, mixed types
                if rows is None:
                    rows = _decoded_batch(batch, data)
                self.python_columns += 1
                cells = _as_text(self._column(rows, key, parts, dict.get))
                columns.append(csv_cells(cells, guard=False))  # guarded by `_column`
            else:
                column = self._format_arrow(_leaf(table, path), kind)
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
                format_cell(_value(row, key, parts), self._guard) if cell is None else cell
                for cell, row in zip(texts, batch, strict=True)
            ],
            pa.string(),
        )

    def _check_bytes(self, data: bytes) -> None:
        if any(pattern in data for pattern in self._suspects):
            raise _ArrowFailed

    def _suspect_patterns(self) -> list[bytes]:
        """What sends a batch through Python (see the module's docstring): a type byte and the
        name an element of that type must not have, and a segment of a column's path followed
        by a dot (the start of a key containing dots that could spell the path). Both are
        supersets (the NUL ending a key is left out but for short names; any text holding
        `segment.` matches): a false alarm costs speed only, and the search is much faster,
        since CPython's substring search skips on the pattern's last byte and BSON is full
        of NULs."""
        assert self._kinds is not None
        patterns: dict[bytes, None] = {}
        for path, kind in zip(self._column_paths, self._kinds, strict=True):
            if not kind or not path:
                continue
            leaf = path[-1].encode("utf-8", "surrogatepass")
            if len(leaf) < SHORT_NAME:
                leaf += b"\x00"  # `\x01n` would be found in binary values all the time
            for code in _CONVERTED.get(kind, b""):
                patterns[bytes((code,)) + leaf] = None
            for segment in path[:-1]:
                patterns[segment.encode("utf-8", "surrogatepass") + b"."] = None
        return list(patterns)

    def _format_arrow(self, array: pa.Array, kind: str) -> pa.Array:
        """The CSV-ready cells `CsvPartEncoder._column` would make of the same values (nulls
        for empty cells)."""
        if kind == "str":
            try:
                array.validate(full=True)  # invalid UTF-8: the Python path decides
            except pa.ArrowInvalid as exc:
                raise _ArrowFailed from exc
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
                raise _ArrowFailed from exc
        if kind == "oid":
            return oid_hex(array.storage)
        raise _ArrowFailed


class _BatchDecoder:
    """PyMongoArrow's decoding of a BSON stream into the pinned schema, its type map made once
    per part (`PyMongoArrowContext` makes it again for every batch, which scenario 5 measured
    at a tenth of the engine's time). The arrays are PyMongoArrow's, by top-level field."""

    def __init__(self, schema: Schema) -> None:
        self._map: dict[str, Any] = {}
        _parse_types(_get_internal_typemap(schema.typemap), self._map, None)

    def decode(self, data: bytes) -> dict[str, pa.Array]:
        manager = BuilderManager(self._map, True, None, allow_invalid=False)
        manager.process_bson_stream(data, len(data))
        arrays: dict[str, pa.Array] = _parse_builder_map(manager.finish())
        return arrays


def _decoded_batch(batch: list[Row], data: bytes) -> list[Row]:
    """The batch's rows decoded as the Python path's reader decodes them, in one C call."""
    options = getattr(batch[0], _OPTIONS, DEFAULT_RAW_BSON_OPTIONS)
    if any(getattr(row, _OPTIONS, DEFAULT_RAW_BSON_OPTIONS) is not options for row in batch):
        return [decoded(row) if type(row) is RawBSONDocument else row for row in batch]
    rows: list[dict[str, Any]] = bson.decode_all(data, _as_dicts(options))
    return list(rows)


def _as_text(cells: list[Any]) -> pa.Array:
    """Cells of `CsvPartEncoder._column` (all str/None, or all int/None) as a string array."""
    try:
        array = pa.array(cells)
    except (pa.ArrowException, UnicodeError) as exc:  # lone surrogates, say: the csv module
        raise _ArrowFailed from exc
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_null(array.type):
        return array.cast(pa.string())
    if pa.types.is_integer(array.type):
        return array.cast(pa.string())
    raise _ArrowFailed


def _type_of(node: Any) -> pa.DataType:
    if isinstance(node, dict):
        return pa.struct([(name, _type_of(child)) for name, child in node.items()])
    return node


def _leaf(table: dict[str, pa.Array], path: tuple[str, ...]) -> pa.Array:
    column = table[path[0]]
    for part in path[1:]:
        # PyMongoArrow's structs have no nulls of their own (their fields do): the field as is
        column = column.field(part) if column.null_count == 0 else pc.struct_field(column, part)
    return column


def _value(row: Row, key: str, parts: tuple[str, ...] | None) -> Any:
    if parts is None:
        return row.get(key)
    value = value_at_parts(row, parts)
    return None if value is MISSING else value


def _values(batch: list[Row], key: str, parts: tuple[str, ...] | None) -> list[Any]:
    if parts is None:
        return [row.get(key) for row in batch]
    values = [value_at_parts(row, parts) for row in batch]
    return [None if value is MISSING else value for value in values]
