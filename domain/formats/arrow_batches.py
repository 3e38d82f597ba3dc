"""Raw BSON batches decoded by PyMongoArrow into the columns a part pinned: the decoding the
Arrow engines (`domain.formats.arrow_csv`, `domain.formats.arrow_jsonl`) and the Parquet encoder
(`domain.formats.parquet`) share.

A part's first batch is decoded in Python (the reference); what Python found in each column
pins its *kind* (`kind_of`: str, int, float, bool, date, oid, or None for a column Arrow does not
make: documents, arrays, Decimal128, binary, mixed types, a path through an array index). The
later batches are decoded by PyMongoArrow into a schema built from the kinds (`PinnedDecoder`),
never inferred (inference guessed int32 for a field that later held larger values). A batch
PyMongoArrow cannot be trusted with raises `BatchRefused`, and the encoder takes the batch
through Python:

* PyMongoArrow raises on a value of another BSON type in string, date, ObjectId and bool
  columns, and on invalid UTF-8;
* its int64 and double builders convert silently (a double into an int64 column, an int or a
  bool into a double column): the batch's bytes are searched for an element of a converting
  type named like the column's leaf field (type byte, name, NUL; a match inside a string is a
  false alarm, which costs only speed);
* a key containing dots that could spell a dotted column path (the Python reader finds such
  keys, PyMongoArrow does not) is searched for the same way.

What is left to each encoder: a NaN double, which PyMongoArrow reads as null, and dates each
format can write (`leaves` returns PyMongoArrow's arrays as they are).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import bson
import pyarrow as pa
import pyarrow.compute as pc
from bson.codec_options import CodecOptions
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument

from domain.formats.byte_search import PatternSearch
from domain.formats.column_access import NEVER_A_KEY

with warnings.catch_warnings():
    # PyMongoArrow 1.15's Cython module reports pyarrow 25's larger array structs at import;
    # it uses none of the changed fields (its own tests pass on this pair, as ours do).
    warnings.simplefilter("ignore", RuntimeWarning)
    from pymongoarrow.context import _parse_builder_map, _parse_types
    from pymongoarrow.lib import BuilderManager
    from pymongoarrow.schema import Schema
    from pymongoarrow.types import ObjectIdType, _get_internal_typemap

Path = tuple[str, ...]

KINDS: Final[dict[frozenset[type], str]] = {
    frozenset({str}): "str",
    frozenset({int}): "int",
    frozenset({bson.Int64}): "int",
    frozenset({int, bson.Int64}): "int",
    frozenset({float}): "float",
    frozenset({bool}): "bool",
    frozenset({datetime}): "date",
    frozenset({bson.ObjectId}): "oid",
}
ARROW: Final[dict[str, pa.DataType]] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.timestamp("ms"),
    "oid": ObjectIdType(),
}
# The BSON element types each kind's builder takes silently (see the module doc). A NaN double
# becomes null in every builder, so a double where none is expected is always suspect.
_CONVERTED: Final[dict[str, bytes]] = {
    "str": b"\x01",
    "int": b"\x01\x08",
    "float": b"\x10\x12\x08",
    "bool": b"\x01",
    "date": b"\x01",
    "oid": b"\x01",
}
_OPTIONS: Final = "_RawBSONDocument__codec_options"


class BatchRefused(Exception):
    """This batch cannot be trusted to PyMongoArrow: decode it in Python."""


def column_paths(plan: Sequence[tuple[str, tuple[str, ...] | None]]) -> list[Path | None]:
    """Per column of an encoder's plan (`domain.formats.column_access.plan_columns`), the path
    PyMongoArrow reads; None for a column that reads nothing (at or under a hidden field)."""
    return [
        None if key == NEVER_A_KEY else (key,) if parts is None else parts for key, parts in plan
    ]


def kind_of(values: Sequence[Any]) -> str | None:
    """The kind of a column from the Python values of a batch; None: Python makes it."""
    present = frozenset(type(v) for v in values if v is not None)
    return KINDS.get(present) if present else "str"


def decoded(row: RawBSONDocument) -> dict[str, Any]:
    """A raw row decoded as the Python path's reader decodes it: the options it was read with,
    documents as dicts. (RawBSONDocument keeps its options private; a subclass that kept them
    would cost a Python `__init__` per row, which scenario 5 measured at a third of the gain.)"""
    options = getattr(row, _OPTIONS, DEFAULT_RAW_BSON_OPTIONS)
    return bson.decode(row.raw, _as_dicts(options))


def decoded_batch(batch: Sequence[Any], data: bytes | None = None) -> list[Any]:
    """The batch's rows decoded as the Python path's reader decodes them, in one C call when
    they are all raw with the same options (`data`: their bytes joined, when already made)."""
    if not batch or not all(type(row) is RawBSONDocument for row in batch):
        return [decoded(row) if type(row) is RawBSONDocument else row for row in batch]
    options = getattr(batch[0], _OPTIONS, DEFAULT_RAW_BSON_OPTIONS)
    if any(getattr(row, _OPTIONS, DEFAULT_RAW_BSON_OPTIONS) is not options for row in batch):
        return [decoded(row) for row in batch]
    if data is None:
        data = raw_bytes(batch)
    rows: list[dict[str, Any]] = bson.decode_all(data, _as_dicts(options))
    return list(rows)


def raw_bytes(batch: Sequence[Any]) -> bytes:
    """The BSON of a batch of `RawBSONDocument` rows, joined."""
    return b"".join([row.raw for row in batch])


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


class PinnedDecoder:
    """Decodes raw batches into the leaf arrays of the columns whose kinds are pinned.

    `paths`: per column, its path (None for a column never read, a hidden one); `kinds`: per
    column, `kind_of` its first batch's values. A column through an array index (`tags.1`) or
    above another column (`address` beside `address.city`) is left to Python: its kind becomes
    None (`kinds` says what was kept).
    """

    def __init__(self, paths: Sequence[Path | None], kinds: Sequence[str | None]) -> None:
        kinds = [
            None if path is None or any(p.isascii() and p.isdigit() for p in path) else kind
            for path, kind in zip(paths, kinds, strict=True)
        ]
        pinned = [p for p, k in zip(paths, kinds, strict=True) if k and p]
        for i, path in enumerate(paths):
            if kinds[i] and path and any(o != path and o[: len(path)] == path for o in pinned):
                kinds[i] = None
        self.paths = list(paths)
        self.kinds: list[str | None] = kinds
        tree: dict[str, Any] = {}
        for path, kind in zip(paths, kinds, strict=True):
            if not kind or not path:
                continue
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = ARROW[kind]
        self._map: dict[str, Any] | None = None
        if tree:
            schema = Schema({k: _type_of(v) for k, v in tree.items()})
            self._map = {}
            _parse_types(_get_internal_typemap(schema.typemap), self._map, None)
        typed, dotted = self._suspect_patterns()
        self._suspects = PatternSearch(typed, dotted)

    @property
    def arrow_columns(self) -> int:
        return sum(1 for k, p in zip(self.kinds, self.paths, strict=True) if k and p)

    @property
    def python_columns(self) -> int:
        return sum(1 for k, p in zip(self.kinds, self.paths, strict=True) if p and not k)

    def leaves(self, data: bytes) -> list[pa.Array | None]:
        """Per column, the array PyMongoArrow made of the batch `data` (None for the columns
        left to Python). Raises BatchRefused (see the module's docstring)."""
        if self._suspects and self._suspects.found(data):
            raise BatchRefused
        if self._map is None:
            return [None] * len(self.paths)
        try:
            # The type map is made once per part: `PyMongoArrowContext` would make it again for
            # every batch, which scenario 5 measured at a tenth of the engine's time.
            manager = BuilderManager(self._map, True, None, allow_invalid=False)
            manager.process_bson_stream(data, len(data))
            table: dict[str, pa.Array] = _parse_builder_map(manager.finish())
        except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
            raise BatchRefused from exc
        return [
            _leaf(table, path) if kind and path else None
            for path, kind in zip(self.paths, self.kinds, strict=True)
        ]

    def _suspect_patterns(self) -> tuple[list[bytes], list[bytes]]:
        """Elements that may not be trusted to PyMongoArrow: a type byte with the name an
        element of that type must not have (and its NUL), at any depth; and a segment of a
        column's path followed by a dot, the start of a key containing dots that could spell
        the path (any text holding it matches too). Supersets: a false alarm costs speed only."""
        typed: dict[bytes, None] = {}
        dotted: dict[bytes, None] = {}
        for path, kind in zip(self.paths, self.kinds, strict=True):
            if not kind or not path:
                continue
            name = path[-1].encode("utf-8", "surrogatepass") + b"\x00"
            for code in _CONVERTED.get(kind, b""):
                typed[bytes((code,)) + name] = None
            for segment in path[:-1]:
                dotted[segment.encode("utf-8", "surrogatepass") + b"."] = None
        return list(typed), list(dotted)


def _type_of(node: Any) -> pa.DataType:
    if isinstance(node, dict):
        return pa.struct([(name, _type_of(child)) for name, child in node.items()])
    return node


def _leaf(table: dict[str, pa.Array], path: Path) -> pa.Array:
    column = table[path[0]]
    for part in path[1:]:
        # PyMongoArrow's structs have no nulls of their own (their fields do): the field as is
        column = column.field(part) if column.null_count == 0 else pc.struct_field(column, part)
    return column
