"""Parquet parts: one `.parquet` object per export, zstd, each S3 part whole row groups.

How a part becomes bytes: its rows are converted to Arrow and written by pyarrow as a small
Parquet file of their own; the part is that file without its footer (and, after the first part,
without the leading `PAR1`). The footer's offsets count from that small file's start, so they
are moved to where the part lies in the export's object (the `offset` the workflow passes: the
bytes of the parts before) and kept as this part's *footer piece* (`footer_piece`, a thrift
FileMetaData of its row groups, a few KB). The final part appends the export's footer: every
earlier piece (stored by the activity, see `activities.parquet_footer`), its own, one
FileMetaData.

The schema is decided once, from the first rows of the first part, and travels to the later
parts in `carry` (`ExportState.format_state`), so every part of an export, retried or not,
writes the same types and a retried part produces the same bytes.

Rows become Arrow two ways, to the same arrays. Decoded rows (dicts) are converted value by
value (`domain.formats.arrow_values`, the reference). Raw rows (`RawBSONDocument`, as the
worker reads them for Parquet) of an export with columns are decoded by PyMongoArrow
(`domain.formats.arrow_batches`): each part's first batch goes through Python, which pins per
column what PyMongoArrow may make, and later batches are decoded straight into Arrow, column by
column: strings, ObjectIds (as hex text), int64, doubles, booleans and dates within the years 1
to 9999 where the schema has those types. A batch PyMongoArrow cannot be trusted with goes
through Python, and so does a double column holding a NaN (that column of that batch). A part
with a column only Python converts (documents, arrays, Decimal128, binary, mixed types) goes
through Python whole: its rows must be decoded in Python anyway, and PyMongoArrow's decoding
would be extra work. Whole-document exports (no columns) decode raw rows in Python: the fields
no schema column holds are counted.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from bson.raw_bson import RawBSONDocument

from domain.formats.arrow_batches import (
    BatchRefused,
    PinnedDecoder,
    column_paths,
    decoded,
    decoded_batch,
    kind_of,
    raw_bytes,
)
from domain.formats.arrow_text import oid_hex
from domain.formats.arrow_values import TIMESTAMP, choose_type, timestamp_ms_fits, to_array
from domain.formats.column_access import (
    ColumnAccess,
    paths_to_strip,
    plan_columns,
    strip_paths,
)
from domain.formats.column_values import column_values
from domain.formats.thrift_compact import shift_offsets
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

MAGIC: Final = b"PAR1"
CONTENT_TYPE: Final = "application/vnd.apache.parquet"
CONVERT_ROWS: Final = 4096
"""Rows converted to Arrow at a time; the first batch of the first part decides the schema."""
ROW_GROUP_BYTES: Final = 8 * 1024 * 1024
"""Arrow bytes (uncompressed) gathered before a row group is written."""
MAX_ROW_GROUP_ROWS: Final = 1_000_000
NOT_FITTING_WARNING: Final = "parquet_values_written_as_null"
ARROW_MAKES: Final[dict[str, pa.DataType]] = {
    "str": pa.string(),
    "oid": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": TIMESTAMP,
}
"""Per pinned kind, the schema type a PyMongoArrow array of it becomes exactly (see
`_from_arrow`); any other pair goes through Python."""
MAX_REFUSED_BATCHES: Final = 4
"""Batches PyMongoArrow may refuse in one part before the rest goes through Python only."""
CARRY_VERSION: Final = 1


def schema_to_carry(schema: pa.Schema) -> str:
    """The running state of a Parquet export: its schema (Arrow IPC, base64) as JSON."""
    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    return json.dumps({"v": CARRY_VERSION, "schema": encoded}, separators=(",", ":"))


def schema_from_carry(carry: str) -> pa.Schema:
    state = json.loads(carry)
    if state.get("v") != CARRY_VERSION:
        raise ValueError(f"unknown Parquet format state version {state.get('v')!r}")
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(state["schema"])))


def _split_file(data: bytes) -> tuple[bytes, bytes]:
    """A whole Parquet file as (everything before the footer, the footer's thrift bytes)."""
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    return data[:start], data[start : len(data) - 8]


def _metadata(piece: bytes) -> pq.FileMetaData:
    wrapped = MAGIC + piece + len(piece).to_bytes(4, "little") + MAGIC
    return pq.read_metadata(io.BytesIO(wrapped))


def footer(pieces: Sequence[bytes]) -> bytes:
    """The export's trailer: one FileMetaData of all row groups, its length and `PAR1`."""
    combined = _metadata(pieces[0])
    for piece in pieces[1:]:
        combined.append_row_groups(_metadata(piece))
    out = io.BytesIO()
    combined.write_metadata_file(out)
    return out.getvalue()[len(MAGIC) :]


class ParquetPartEncoder:
    """Encodes the rows of one Parquet part (see `domain.formats.encoding.PartEncoder`)."""

    def __init__(
        self,
        spec: EncodingSpec,
        columns: Sequence[Column] | None,
        *,
        first_part: bool,
        carry: str | None,
        offset: int,
    ) -> None:
        if not first_part and carry is None:
            raise ValueError("a Parquet part after the first needs the schema (format_state)")
        self._first = first_part
        self._offset = offset
        self._hidden = spec.hidden_fields
        self._strip = paths_to_strip(columns, spec.hidden_fields)
        self._selection: list[tuple[ColumnAccess, str]] | None = None
        if columns is not None:
            plan = plan_columns(columns, spec.hidden_fields)
            self._selection = list(zip(plan, (c.title for c in columns), strict=True))
        self._schema: pa.Schema | None = None if carry is None else schema_from_carry(carry)
        self._pending: list[Mapping[str, Any]] = []
        self._paths: list[tuple[str, ...] | None] = []
        if self._selection is not None and not self._strip:
            self._paths = column_paths([access for access, _ in self._selection])
        self._pinned: PinnedDecoder | None = None
        self._arrow_pays = False
        self._refused = 0
        self.arrow_batches = 0
        """Batches PyMongoArrow decoded (for tests and benchmarks)."""
        self._batches: list[pa.RecordBatch] = []
        self._batch_bytes = 0
        self._batch_rows = 0
        self._sink = io.BytesIO()
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0
        self._dropped = 0
        self._piece: bytes | None = None
        self._finished = False

    # -- the PartEncoder interface -----------------------------------------------------------

    @property
    def size(self) -> int:
        return self._sink.tell()

    @property
    def rows(self) -> int:
        return self._rows

    def write(self, row: Mapping[str, Any]) -> None:
        if self._finished:
            raise RuntimeError("this part is already finished")
        if self._strip:
            row = strip_paths(decoded(row) if type(row) is RawBSONDocument else row, self._strip)
        self._pending.append(row)
        self._rows += 1
        if len(self._pending) >= CONVERT_ROWS:
            self._convert()

    @property
    def carry(self) -> str | None:
        return None if self._schema is None else schema_to_carry(self._schema)

    @property
    def warnings(self) -> Mapping[str, int]:
        return {NOT_FITTING_WARNING: self._dropped} if self._dropped else {}

    def finish(self, *, last: bool = False) -> bytes:
        """This part's bytes; with `last`, the footer too (possible alone only for a first part:
        later final parts need the earlier pieces, see `finish_with_footer`)."""
        if last and not self._first:
            raise ValueError("the last of several Parquet parts needs finish_with_footer")
        return self.finish_with_footer([]) if last else self._finish_row_groups()

    def finish_with_footer(self, earlier_pieces: Sequence[bytes]) -> bytes:
        """The final part's bytes: its row groups, then the footer of the whole export."""
        body = self._finish_row_groups()
        assert self._piece is not None
        return body + footer([*earlier_pieces, self._piece])

    @property
    def footer_piece(self) -> bytes:
        """After finishing: this part's row groups as a FileMetaData, offsets in the object."""
        if self._piece is None:
            raise RuntimeError("finish the part first")
        return self._piece

    # -- inside ----------------------------------------------------------------------------

    def _finish_row_groups(self) -> bytes:
        if self._finished:
            raise RuntimeError("this part is already finished")
        self._convert()
        self._write_row_group()
        writer = self._open_writer()
        writer.close()
        self._finished = True
        data, piece = _split_file(self._sink.getvalue())
        if self._first:
            self._piece = piece  # the small file starts where the object does
            return data
        self._piece = shift_offsets(piece, self._offset - len(MAGIC))
        return data[len(MAGIC) :]

    def _values(self, rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
        if self._selection is not None:
            read = column_values(rows, [access for access, _ in self._selection])
            return {title: values for (_, title), values in zip(self._selection, read, strict=True)}
        if self._schema is not None:
            names = self._schema.names
        else:
            seen: dict[str, None] = {}
            for row in rows:
                seen.update(dict.fromkeys(row))
            names = list(seen)
        known = set(names)
        extra = sum(1 for row in rows for key in row if key not in known)
        self._dropped += extra
        return {name: [row.get(name) for row in rows] for name in names}

    def _convert(self) -> None:
        rows, self._pending = self._pending, []
        if not rows and self._schema is not None:
            return
        arrays = None
        if self._pinned is not None and self._arrow_pays and self._refused < MAX_REFUSED_BATCHES:
            try:
                arrays = self._arrays_by_arrow(rows, self._pinned)
            except BatchRefused:
                self._refused += 1
                self._pinned = None  # pinned again from this batch's values
        if arrays is None:
            arrays = self._arrays_by_python(decoded_batch(rows))
        else:
            self.arrow_batches += 1
        if not rows:
            return
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._batches.append(batch)
        self._batch_bytes += batch.nbytes
        self._batch_rows += batch.num_rows
        if self._batch_bytes >= ROW_GROUP_BYTES or self._batch_rows >= MAX_ROW_GROUP_ROWS:
            self._write_row_group()

    def _arrays_by_python(self, rows: list[Mapping[str, Any]]) -> list[pa.Array]:
        """The batch's columns converted value by value (the reference); the first batch of
        the export decides the schema, every part's first batch pins what Arrow may make."""
        values = self._values(rows)
        if self._schema is None:
            self._schema = pa.schema(
                [pa.field(name, choose_type(column)) for name, column in values.items()]
            )
        arrays = []
        for field in self._schema:
            array, dropped = to_array(values[field.name], field.type)
            arrays.append(array)
            self._dropped += dropped
        titles = [title for _, title in self._selection or ()]
        if self._pinned is None and self._paths and rows and self._schema.names == titles:
            kinds = [
                kind
                if (kind := kind_of(values[field.name])) and ARROW_MAKES.get(kind) == field.type
                else None
                for field in self._schema
            ]
            self._pinned = pinned = PinnedDecoder(self._paths, kinds)
            # A column Python must convert needs the rows decoded in Python, which makes the
            # others cheap too: PyMongoArrow's decoding would be extra work (scenario 5).
            self._arrow_pays = pinned.arrow_columns > 0 and not pinned.python_columns
        return arrays

    def _arrays_by_arrow(
        self, rows: list[Mapping[str, Any]], pinned: PinnedDecoder
    ) -> list[pa.Array] | None:
        """The batch's columns decoded by PyMongoArrow where pinned, by Python elsewhere; None
        when the rows are not raw. Raises BatchRefused for a batch to take through Python."""
        if not all(type(row) is RawBSONDocument for row in rows):
            return None
        assert self._schema is not None
        assert self._selection is not None
        data = raw_bytes(rows)
        arrays: list[pa.Array | None] = [
            None if kind is None or leaf is None else _from_arrow(leaf, kind)
            for kind, leaf in zip(pinned.kinds, pinned.leaves(data), strict=True)
        ]
        missing = [i for i, array in enumerate(arrays) if array is None]
        if missing:
            python_rows = decoded_batch(rows, data)
            read = column_values(python_rows, [self._selection[i][0] for i in missing])
            for i, values in zip(missing, read, strict=True):
                array, dropped = to_array(values, self._schema.field(i).type)
                arrays[i] = array
                self._dropped += dropped
        return [array for array in arrays if array is not None]

    def _open_writer(self, first: pa.Table | None = None) -> pq.ParquetWriter:
        if self._writer is None:
            assert self._schema is not None
            delta = [] if first is None else delta_columns(first)
            encodings: dict[str, Any] = {}
            if delta:  # the other columns keep their dictionaries: pyarrow wants their leaves
                encodings["use_dictionary"] = [
                    p for p in leaf_paths(self._schema) if p not in delta
                ]
                encodings["column_encoding"] = {
                    name: _delta_encoding(self._schema.field(name).type) for name in delta
                }
            self._writer = pq.ParquetWriter(
                self._sink,
                self._schema,
                compression="zstd",
                compression_level=ZSTD_LEVEL,
                write_page_index=False,
                **encodings,
            )
        return self._writer

    def _write_row_group(self) -> None:
        if not self._batches:
            return
        table = pa.Table.from_batches(self._batches, schema=self._schema)
        self._batches, self._batch_bytes, self._batch_rows = [], 0, 0
        if table.num_rows:  # documents without any field: Arrow has no rows to hold them
            self._open_writer(table).write_table(table, row_group_size=table.num_rows)


def _from_arrow(leaf: pa.Array, kind: str) -> pa.Array | None:
    """PyMongoArrow's array of a pinned kind as the schema's type (`ARROW_MAKES`), or None when
    Python must convert this column of the batch (a NaN, which PyMongoArrow reads as null).
    Raises BatchRefused for values the reference would not write as they are."""
    if kind == "str":
        try:
            leaf.validate(full=True)  # invalid UTF-8: Python decides
        except pa.ArrowInvalid as exc:
            raise BatchRefused from exc
        return leaf
    if kind == "oid":
        return oid_hex(leaf.storage)
    if kind == "float":
        return None if leaf.null_count else leaf
    if kind == "date":
        if not timestamp_ms_fits(leaf):
            raise BatchRefused  # beyond the years 1 to 9999: null and counted, by Python
        return leaf.cast(TIMESTAMP)
    return leaf  # int64, bool


ZSTD_LEVEL: Final = 1
"""Arrow's own default for zstd; scenario 5 measured higher levels (see README, Formats)."""
DELTA_SHARE: Final = 0.5
"""Columns whose first row group has more distinct values than this share of its rows."""


def _delta_encoding(kind: pa.DataType) -> str | None:
    if pa.types.is_int64(kind) or pa.types.is_timestamp(kind):
        return "DELTA_BINARY_PACKED"
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return "DELTA_BYTE_ARRAY"
    return None


def leaf_paths(schema: pa.Schema) -> list[str]:
    """The dotted paths of the Parquet leaf columns of `schema` (as writer options name them)."""
    sink = io.BytesIO()
    pq.write_table(schema.empty_table(), sink)
    parquet_schema = pq.read_metadata(io.BytesIO(sink.getvalue())).schema
    return [parquet_schema.column(i).path for i in range(len(parquet_schema))]


def delta_columns(table: pa.Table) -> list[str]:
    """The top-level int64, timestamp, string and binary columns of mostly distinct values
    (serial numbers, certificates, times of events, ObjectIds): delta encodings store them in a
    fraction of what a dictionary, which they would overflow, or plain values take. Decided from
    the part's first row group, so a retried part decides the same."""
    rows = table.num_rows
    chosen = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if _delta_encoding(field.type) is None or rows < 2:
            continue
        if pc.count_distinct(column).as_py() > DELTA_SHARE * rows:
            chosen.append(field.name)
    return chosen
