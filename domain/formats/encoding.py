"""Row encoders behind one small interface: documents in, the bytes of one S3 part out.

A faster encoder (PyMongoArrow, pyarrow, Parquet) can replace the ones here without touching
the workflow, as long as it produces the same bytes: `domain.formats.csv_encoder` and
`domain.formats.jsonl_encoder` say what those are. A part is encoded in memory from a known cursor, so a
retried activity produces the same bytes for the same part number.

Typical use in an activity::

    encoder = new_part_encoder(spec, columns, first_part=part_number == 1)
    for row in cursor:
        encoder.write(row)
        if encoder.size >= target:
            break
    body = encoder.finish()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from domain.formats.csv_encoder import CsvPartEncoder
from domain.formats.flatten import freeze_columns
from domain.formats.jsonl_encoder import JsonlPartEncoder
from domain.formats.part_buffer import DEFAULT_GZIP_LEVEL
from domain.formats.xlsx_encoder import XlsxPartEncoder
from domain.models import Column, Compression, ExportFormat, ExportRequest

Engine = Literal["python", "arrow"]

__all__ = [
    "EncodingSpec",
    "PartEncoder",
    "encode_part",
    "freeze_columns",
    "needs_frozen_columns",
    "new_part_encoder",
]


@dataclass(frozen=True, slots=True)
class EncodingSpec:
    """How rows become bytes: everything an encoder needs besides the columns."""

    format: ExportFormat = "csv"
    compression: Compression = "none"
    bom: bool = False
    """Start the first CSV part with a UTF-8 byte order mark (never for JSONL)."""
    formula_guard: bool = True
    """Prefix CSV string cells a spreadsheet would run as a formula with `'`."""
    hidden_fields: frozenset[str] = frozenset()
    """Fields (top-level names or dotted paths) the chunk planner keeps for its cursor; they
    never appear in the output (see `domain.formats.column_access`)."""
    gzip_level: int = DEFAULT_GZIP_LEVEL
    engine: Engine = "python"
    """`arrow`: CSV cells and JSON Lines values of raw BSON rows made by PyMongoArrow and Arrow
    compute, the same bytes (`domain.formats.arrow_csv`, `domain.formats.arrow_jsonl`);
    `python`: the reference encoders."""
    delimiter: str = ","
    """The CSV cell separator (`,` `;` or tab)."""
    timezone: str | None = None
    """IANA zone dates are written in (CSV: with their offset); None: UTC with `Z`."""

    @classmethod
    def of(
        cls, request: ExportRequest, hidden_fields: Iterable[str] = (), engine: Engine = "python"
    ) -> EncodingSpec:
        """The spec of a request; `hidden_fields` come from the chunk planner."""
        return cls(
            format=request.format,
            compression=request.compression,
            bom=request.writes_bom,
            formula_guard=request.formula_guard,
            hidden_fields=frozenset(hidden_fields),
            engine=engine,
            delimiter=request.csv_delimiter,
            timezone=request.timezone,
        )

    @property
    def reads_raw_rows(self) -> bool:
        """Whether the encoder wants rows as `RawBSONDocument`: Parquet always (PyMongoArrow
        decodes them, `domain.formats.parquet`), and the Arrow engine for CSV and JSON Lines
        with the options it knows (any other option, a delimiter or a time zone say, leaves the
        part to the Python encoder)."""
        if self.format == "parquet":
            return True
        if self.format not in ("csv", "jsonl"):
            return False
        known = EncodingSpec(
            format=self.format,
            compression=self.compression,
            bom=self.bom,
            formula_guard=self.formula_guard,
            hidden_fields=self.hidden_fields,
            gzip_level=self.gzip_level,
            engine="arrow",
        )
        return self == known


def needs_frozen_columns(request: ExportRequest) -> bool:
    """Whether the workflow must freeze sampled columns before the first part (CSV and XLSX:
    JSONL without requested columns writes whole documents)."""
    return request.format in ("csv", "xlsx") and request.columns is None


class PartEncoder(Protocol):
    """Encodes the rows of one part: `write` rows, watch `size`, then `finish` once."""

    def write(self, row: Mapping[str, Any]) -> None:
        """Encode one document (a dict, SON or any Mapping)."""

    @property
    def size(self) -> int:
        """Bytes of this part so far, never more than `len(finish())`.

        It lags behind: rows still in the CSV batch (about 64 KiB of text, at most 256 rows)
        and, with gzip, up to 256 KiB of text not yet compressed plus what zlib holds back.
        """

    @property
    def rows(self) -> int:
        """Rows written to this part."""

    def finish(self, *, last: bool = False) -> bytes:
        """The complete bytes of this part; the encoder cannot be used afterwards.

        `last`: this is the export's final part, so a format with a trailer (a Parquet footer,
        an XLSX central directory) writes it here. CSV and JSON Lines have none.
        """

    @property
    def carry(self) -> str | None:
        """After `finish`: the format's running state the next part starts from (JSON text that
        the workflow keeps in its durable state), or None for formats without one (CSV, JSONL)."""

    @property
    def warnings(self) -> Mapping[str, int]:
        """Counts of values this part had to change to fit the format (e.g. truncated cells)."""


def new_part_encoder(
    spec: EncodingSpec,
    columns: Sequence[Column] | None,
    *,
    first_part: bool,
    carry: str | None = None,
    offset: int = 0,
) -> PartEncoder:
    """An encoder for one part; `first_part` writes the BOM and the CSV header.

    `columns`: for CSV the requested or the frozen columns (required); for JSONL the requested
    columns, or None for whole documents. `carry` is the previous part's `carry` and `offset`
    the bytes of the object before this part (formats whose trailer indexes the file need both).
    """
    if spec.format == "csv":
        if columns is None:
            raise ValueError("a CSV export needs its columns (requested or frozen)")
        if spec.reads_raw_rows:
            from domain.formats.arrow_csv import ArrowCsvPartEncoder  # PyMongoArrow when asked

            return ArrowCsvPartEncoder(spec, columns, first_part=first_part)
        return CsvPartEncoder(spec, columns, first_part=first_part)
    if spec.format == "jsonl":
        if spec.reads_raw_rows:
            from domain.formats.arrow_jsonl import ArrowJsonlPartEncoder  # PyMongoArrow when asked

            return ArrowJsonlPartEncoder(spec, columns)
        return JsonlPartEncoder(spec, columns)
    if spec.format == "parquet":
        from domain.formats.parquet import ParquetPartEncoder  # pyarrow loads only when asked

        return ParquetPartEncoder(spec, columns, first_part=first_part, carry=carry, offset=offset)
    if spec.format == "xlsx":
        if columns is None:
            raise ValueError("an XLSX export needs its columns (requested or frozen)")
        if not first_part and carry is None:
            raise ValueError("an XLSX part after the first needs the previous part's carry")
        return XlsxPartEncoder(spec, columns, carry=carry, offset=offset)
    raise ValueError(f"unknown export format {spec.format!r}")


def encode_part(
    spec: EncodingSpec,
    columns: Sequence[Column] | None,
    rows: Iterable[Mapping[str, Any]],
    *,
    first_part: bool,
) -> bytes:
    """The bytes of one part holding all of `rows`."""
    encoder = new_part_encoder(spec, columns, first_part=first_part)
    for row in rows:
        encoder.write(row)
    return encoder.finish(last=True)
