"""The Arrow CSV engine: CSV cells from raw BSON batches decoded by PyMongoArrow, byte for byte
what the Python encoder (`domain.formats.csv_encoder`, the reference) writes.

It is the Python encoder with one step replaced: the cells of a batch. Batching, the header, the
formula guard, the csv module and the part buffer are the reference's, so the part sizes, and
with them the part boundaries and the gzip members, are the same. A batch of raw rows
(`RawBSONDocument`, read with the worker's codec options) is decoded into Arrow with a schema
pinned from the first batch of the part, which the Python path encodes while noting each
column's Python types. Where Arrow's values could differ from Python's, the Python path encodes
(the whole part, or the batch that fails a check):

* mixed types, documents, arrays, Decimal128, binary, columns through array indexes or above a
  hidden path: such a column needs the rows decoded in Python, and then Arrow's decoding is
  extra work, so the whole part goes through Python;
* PyMongoArrow raises on a value of another BSON type for string, date, ObjectId and bool columns:
  that batch goes through Python;
* its int64 and double builders convert silently (a double into an int64 column, an int or a
  bool into a double column, where CSV writes `2.0`, `2` and `true`): the batch's bytes are
  searched for an element of a converting type named like the column's leaf field (type byte,
  name, NUL; a match inside a string is a false alarm, which costs only speed); any hit sends
  the batch through Python;
* a key containing dots that could spell a dotted column path (the Python reader finds such keys,
  PyMongoArrow does not), invalid UTF-8, dates outside the years 1000 to 9999: Python.
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

from domain.formats.cell_format import format_cell, format_float, guard_formula
from domain.formats.column_access import NEVER_A_KEY
from domain.formats.csv_encoder import CsvPartEncoder, Row, _any_formula_trigger, _mapping_get
from domain.formats.flatten import MISSING, value_at_parts
from domain.models import Column

with warnings.catch_warnings():
    # PyMongoArrow 1.15's Cython module reports pyarrow 25's larger array structs at import;
    # it uses none of the changed fields (its own tests pass on this pair, as ours do).
    warnings.simplefilter("ignore", RuntimeWarning)
    from pymongoarrow.context import PyMongoArrowContext
    from pymongoarrow.schema import Schema
    from pymongoarrow.types import ObjectIdType

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

MAX_FAILED_BATCHES: Final = 4
"""Batches Arrow may fail in one part before the rest of the part goes through Python only."""
_MIN_DATE: Final = datetime(1000, 1, 1)
_MAX_DATE: Final = datetime(9999, 12, 31, 23, 59, 59, 999000)

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


def decoded(row: RawBSONDocument) -> dict[str, Any]:
    """A raw row decoded as the Python path's reader decodes it: the options it was read with,
    documents as dicts. (RawBSONDocument keeps its options private; a subclass that kept them
    would cost a Python `__init__` per row, which scenario 5 measured at a third of the gain.)"""
    options = getattr(row, "_RawBSONDocument__codec_options", DEFAULT_RAW_BSON_OPTIONS)
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
    """`CsvPartEncoder` whose batches of raw rows are decoded and formatted with Arrow."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column], *, first_part: bool) -> None:
        super().__init__(spec, columns, first_part=first_part)
        self._kinds: list[str | None] | None = None
        """Per column: the pinned kind, None for the Python path (after the first batch)."""
        self._schema: Schema | None = None
        self._arrow_pays = False
        self._failed = 0
        self.arrow_batches = 0
        """Batches whose cells Arrow made (for tests and benchmarks)."""
        self.python_batches = 0
        self._column_paths = [
            None if key == NEVER_A_KEY else (key,) if parts is None else parts
            for key, parts in self._plan
        ]

    def _cells(self, batch: list[Row]) -> list[list[Any]]:
        if (
            self._kinds is None
            or not self._arrow_pays
            or self._failed >= MAX_FAILED_BATCHES
            or not all(type(row) is RawBSONDocument for row in batch)
        ):
            return self._python(batch, pin=self._kinds is None)
        try:
            cells = self._arrow(batch)
        except _ArrowFailed:
            self._failed += 1
            return self._python(batch, pin=True)  # the kinds of this batch, for the next ones
        self.arrow_batches += 1
        return cells

    # -- the Python path (the reference), which also pins the kinds --------------------------

    def _python(self, batch: list[Row], *, pin: bool) -> list[list[Any]]:
        self.python_batches += 1
        batch = [decoded(row) if type(row) is RawBSONDocument else row for row in batch]
        if pin:
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
        # A column Arrow cannot make needs the rows decoded in Python anyway, and then Arrow's
        # own decoding is extra work: such a part goes through Python (scenario 5 measured it).
        self._arrow_pays = all(k for k, p in zip(kinds, self._column_paths, strict=True) if p)
        self._schema = Schema({k: _type_of(v) for k, v in tree.items()}) if tree else None

    # -- the Arrow path ------------------------------------------------------------------------

    def _arrow(self, batch: list[Row]) -> list[list[Any]]:
        assert self._kinds is not None
        data = b"".join(row.raw for row in batch)  # type: ignore[attr-defined]
        self._check_bytes(data)
        table = None
        if self._schema is not None:
            context = PyMongoArrowContext(self._schema, None)
            try:
                context.process_bson_stream(data)
                table = context.finish()
            except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
                raise _ArrowFailed from exc
        cells: list[list[Any]] = []
        for (key, parts), path, kind in zip(
            self._plan, self._column_paths, self._kinds, strict=True
        ):
            if path is None:
                cells.append([None] * len(batch))
            elif kind is None or table is None:
                cells.append(self._column(batch, key, parts, _mapping_get))
            else:
                column = self._format_arrow(_leaf(table, path), kind)
                if kind == "float":
                    column = self._nan_or_empty(column, batch, key, parts)
                cells.append(column)
        return cells

    def _nan_or_empty(
        self, cells: list[Any], batch: list[Row], key: str, parts: tuple[str, ...] | None
    ) -> list[Any]:
        """PyMongoArrow reads a NaN double as null: ask Python about the null cells only."""
        if "" not in cells:
            return cells
        return [
            format_cell(_value(row, key, parts), self._guard) if cell == "" else cell
            for cell, row in zip(cells, batch, strict=True)
        ]

    def _check_bytes(self, data: bytes) -> None:
        assert self._kinds is not None
        for path, kind in zip(self._column_paths, self._kinds, strict=True):
            if not kind or not path:
                continue
            leaf = path[-1].encode("utf-8", "surrogatepass") + b"\x00"
            for code in _CONVERTED.get(kind, b""):
                if bytes((code,)) + leaf in data:
                    raise _ArrowFailed
            for start in range(len(path) - 1):
                for end in range(start + 2, len(path) + 1):
                    if ".".join(path[start:end]).encode() + b"\x00" in data:
                        raise _ArrowFailed

    def _format_arrow(self, array: pa.Array, kind: str) -> list[Any]:
        """The cells `CsvPartEncoder._column` would make of the same values."""
        if kind == "str":
            try:
                array.validate(full=True)  # invalid UTF-8: the Python path decides
            except pa.ArrowInvalid as exc:
                raise _ArrowFailed from exc
            values: list[Any] = array.to_pylist()
            if self._guard and _any_formula_trigger(values):
                return [guard_formula(v) if v else v for v in values]
            return values
        if kind == "int":
            numbers: list[Any] = array.to_pylist()
            return numbers
        if kind == "float":
            return ["" if v is None else format_float(v) for v in array.to_pylist()]
        if kind == "bool":
            words: list[Any] = pc.if_else(array, "true", "false").fill_null("").to_pylist()
            return words
        if kind == "date":
            bounds = pc.min_max(array.cast(pa.int64()))
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is not None and (low < _ms(_MIN_DATE) or high > _ms(_MAX_DATE)):
                raise _ArrowFailed
            text: list[Any] = pc.strftime(array, "%Y-%m-%dT%H:%M:%SZ").fill_null("").to_pylist()
            return text
        if kind == "oid":
            return ["" if v is None else v.hex() for v in array.storage.to_pylist()]
        raise _ArrowFailed


def _ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)


def _type_of(node: Any) -> pa.DataType:
    if isinstance(node, dict):
        return pa.struct([(name, _type_of(child)) for name, child in node.items()])
    return node


def _leaf(table: pa.Table, path: tuple[str, ...]) -> pa.Array:
    column = table.column(path[0]).combine_chunks()
    for part in path[1:]:
        column = pc.struct_field(column, part)
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
