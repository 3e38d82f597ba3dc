"""Parquet parts: one `.parquet` object per export, zstd, each S3 part whole row groups.

How a part becomes bytes: its rows are converted to Arrow (`domain.formats.arrow_values`) and
written by pyarrow as a small Parquet file of their own; the part is that file without its
footer (and, after the first part, without the leading `PAR1`). The footer's offsets count from
that small file's start, so they are moved to where the part lies in the export's object (the
`offset` the workflow passes: the bytes of the parts before) and kept as this part's *footer
piece* (`footer_piece`, a thrift FileMetaData of its row groups, a few KB). The final part
appends the export's footer: every earlier piece (stored by the activity, see
`activities.parquet_footer`), its own, one FileMetaData.

The schema is decided once, from the first rows of the first part, and travels to the later
parts in `carry` (`ExportState.format_state`), so every part of an export, retried or not,
writes the same types and a retried part produces the same bytes.
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

from domain.formats.arrow_values import choose_type, to_array
from domain.formats.column_access import ColumnAccess, paths_to_strip, plan_columns, strip_paths
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
        self._pending.append(strip_paths(row, self._strip) if self._strip else row)
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
        if not rows:
            return
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._batches.append(batch)
        self._batch_bytes += batch.nbytes
        self._batch_rows += batch.num_rows
        if self._batch_bytes >= ROW_GROUP_BYTES or self._batch_rows >= MAX_ROW_GROUP_ROWS:
            self._write_row_group()

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
