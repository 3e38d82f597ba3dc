"""XLSX parts: one workbook streamed into the multipart upload, resumable at every part.

The file is one ZIP (`domain.formats.zip_stream`) whose parts are cut wherever the upload cuts
them. Part 1 opens with the fixed entries (`domain.formats.xlsx_package`) and starts
`xl/worksheets/sheet1.xml`; every part deflates its rows with a compressor of its own and ends
with a full flush, so the raw deflate stream of an entry is simply the concatenation of its
parts and no compressor state crosses a part boundary. What does cross it is `XlsxCarry`: the
open sheet's running CRC-32 (`zlib.crc32(data, running)`), its sizes and local-header offset,
the finished entries, the rows of each sheet and the column widths; the workflow keeps it as
`ExportState.format_state`. The last part closes the sheet and writes the workbook, its
relationships and the central directory. The same rows and carry give the same bytes, so a
retried part, or a worker killed at any part and resumed, gives a byte-identical file.

Sheets: a new one starts (header repeated) when the current one holds Excel's 1,048,576 rows,
or when its XML would reach 4 GiB (the ZIP entry's data descriptor holds 32-bit sizes). Column
widths come from the header and the first `WIDTH_SAMPLE_ROWS` rows, which part 1 holds back
until it has them (the `<cols>` element precedes the rows), and are frozen in the carry.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict

from domain.formats.column_access import paths_to_strip, plan_columns, strip_paths
from domain.formats.flatten import MISSING, value_at_parts
from domain.formats.timezones import zone_of
from domain.formats.xlsx_cells import CellWriter
from domain.formats.xlsx_package import (
    HEAD_ENTRIES,
    MAX_COLUMNS,
    MAX_ROWS,
    SHEET_TAIL_MAX,
    column_letters,
    sheet_head,
    sheet_path,
    sheet_tail,
    tail_entries,
)
from domain.formats.zip_stream import (
    MAX_ENTRY_BYTES,
    OpenEntry,
    ZipEntry,
    central_directory,
    data_descriptor,
    local_header,
    new_deflater,
    whole_entry,
)
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

Row = Mapping[str, Any]

DEFLATE_LEVEL: Final = 6
"""zlib's default, as zipfile (and so xlsxwriter) uses."""
FLUSH_CHARS: Final = 256 * 1024
"""Sheet XML collected before it is encoded and deflated (bounds how far `size` lags)."""
WIDTH_SAMPLE_ROWS: Final = 100
MIN_WIDTH: Final = 8
MAX_WIDTH: Final = 60
CARRY_VERSION: Final = 1


class XlsxCarry(BaseModel):
    """The running state between parts (JSON in the workflow's `format_state`)."""

    model_config = ConfigDict(extra="forbid")

    v: int = CARRY_VERSION
    entries: list[ZipEntry]
    """Entries already complete: the fixed head entries and every finished sheet."""
    sheet: OpenEntry
    """The sheet being written."""
    sheet_rows: list[int]
    """Rows written to each sheet, its header included; the last is the open sheet."""
    widths: list[int]


def columns_refusal(count: int) -> str | None:
    """Why an XLSX export of `count` columns cannot be written, or None when it can."""
    if count > MAX_COLUMNS:
        return (
            f"an xlsx sheet holds at most {MAX_COLUMNS:,} columns and this export has "
            f"{count:,}: choose the columns, or export as csv or jsonl"
        )
    return None


class XlsxPartEncoder:
    """Encodes the rows of one XLSX part (see `domain.formats.encoding.PartEncoder`)."""

    def __init__(
        self,
        spec: EncodingSpec,
        columns: Sequence[Column],
        *,
        carry: str | None,
        offset: int,
    ) -> None:
        refusal = columns_refusal(len(columns))
        if refusal is not None:
            raise ValueError(refusal)
        self._titles = [column.title for column in columns]
        self._plan = plan_columns(columns, spec.hidden_fields)
        self._strip = paths_to_strip(columns, spec.hidden_fields)
        self._letters = [column_letters(i) for i in range(len(columns))]
        self._cells = CellWriter(None if spec.timezone is None else zone_of(spec.timezone))
        self._offset = offset
        self._chunks: list[bytes] = []
        self._size = 0
        self._text: list[str] = []
        self._text_chars = 0
        self._rows = 0
        self._finished = False
        self._carry: str | None = None
        self._deflater = new_deflater(DEFLATE_LEVEL)
        self._sample: list[Row] | None = None
        if carry is None:
            self._entries: list[ZipEntry] = []
            self._sheet_rows: list[int] = []
            self._widths: list[int] = []
            self._sheet: OpenEntry | None = None
            for name, xml in HEAD_ENTRIES:
                self._whole_entry(name, xml)
            self._sample = []
        else:
            state = XlsxCarry.model_validate_json(carry)
            if state.v != CARRY_VERSION:
                raise ValueError(f"cannot continue an xlsx written by carry version {state.v}")
            self._entries = list(state.entries)
            self._sheet_rows = list(state.sheet_rows)
            self._widths = list(state.widths)
            self._sheet = state.sheet

    # -- the PartEncoder interface ---------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def carry(self) -> str | None:
        return self._carry

    @property
    def warnings(self) -> Mapping[str, int]:
        truncated = self._cells.truncated
        return {"cells_truncated": truncated} if truncated else {}

    def write(self, row: Row) -> None:
        if self._finished:
            raise RuntimeError("this part is already finished")
        self._rows += 1
        if self._sample is not None:
            self._sample.append(row)
            if len(self._sample) >= WIDTH_SAMPLE_ROWS:
                self._release_sample()
            return
        self._write_row(row)

    def finish(self, *, last: bool = False) -> bytes:
        if self._finished:
            raise RuntimeError("this part is already finished")
        self._finished = True
        if self._sample is not None:
            self._release_sample()
        if last:
            self._end_sheet()
            for name, xml in tail_entries(self._sheet_rows, len(self._titles)):
                self._whole_entry(name, xml)
            self._emit(central_directory(self._entries, self._position))
        else:
            sheet = self._open_sheet
            self._deflate_text()
            tail = self._deflater.flush(zlib.Z_FULL_FLUSH)
            sheet.compressed += len(tail)
            self._emit(tail)
            self._carry = XlsxCarry(
                entries=self._entries,
                sheet=sheet,
                sheet_rows=self._sheet_rows,
                widths=self._widths,
            ).model_dump_json()
        body = b"".join(self._chunks)
        self._chunks = []
        return body

    # -- rows ------------------------------------------------------------------------------------

    def _release_sample(self) -> None:
        sample, self._sample = self._sample or [], None
        self._widths = self._measure(sample)
        self._start_sheet()
        for row in sample:
            self._write_row(row)

    def _write_row(self, row: Row) -> None:
        if self._strip:
            row = strip_paths(row, self._strip)
        number = self._sheet_rows[-1] + 1
        if number > MAX_ROWS:
            self._next_sheet()
            number = 2
        truncated = self._cells.truncated
        xml = self._row_xml(row, number)
        sheet = self._open_sheet
        if sheet.size + 4 * (self._text_chars + len(xml)) + SHEET_TAIL_MAX > MAX_ENTRY_BYTES:
            self._deflate_text()
            if sheet.size + len(xml.encode()) + SHEET_TAIL_MAX > MAX_ENTRY_BYTES:
                self._next_sheet()
                number = 2
                self._cells.truncated = truncated
                xml = self._row_xml(row, number)
        self._text.append(xml)
        self._text_chars += len(xml)
        self._sheet_rows[-1] = number
        if self._text_chars >= FLUSH_CHARS:
            self._deflate_text()

    def _row_xml(self, row: Row, number: int) -> str:
        suffix = str(number)
        cell = self._cells.cell
        xml = [f'<row r="{suffix}">']
        for (key, parts), letters in zip(self._plan, self._letters, strict=True):
            value = row.get(key) if parts is None else value_at_parts(row, parts)
            if value is not None and value is not MISSING:
                xml.append(cell(letters + suffix, value))
        xml.append("</row>")
        return "".join(xml)

    def _measure(self, sample: list[Row]) -> list[int]:
        """Column widths in characters: the header (plus its filter button) and the sample."""
        widths = [len(title) + 3 for title in self._titles]
        for row in sample:
            stripped = strip_paths(row, self._strip) if self._strip else row
            for i, (key, parts) in enumerate(self._plan):
                value = stripped.get(key) if parts is None else value_at_parts(stripped, parts)
                if value is not MISSING:
                    widths[i] = max(widths[i], self._cells.width(value) + 1)
        return [min(max(width, MIN_WIDTH), MAX_WIDTH) for width in widths]

    # -- sheets ----------------------------------------------------------------------------------

    @property
    def _open_sheet(self) -> OpenEntry:
        if self._sheet is None:
            raise RuntimeError("no sheet is open")
        return self._sheet

    def _start_sheet(self) -> None:
        number = len(self._sheet_rows) + 1
        name = sheet_path(number)
        self._sheet = OpenEntry(name=name, offset=self._position)
        self._emit(local_header(name))
        self._deflater = new_deflater(DEFLATE_LEVEL)
        header = "".join(
            self._cells.header(letters + "1", title)
            for letters, title in zip(self._letters, self._titles, strict=True)
        )
        self._sheet_rows.append(1)
        self._text.append(sheet_head(number, self._widths) + f'<row r="1">{header}</row>')
        self._text_chars += len(self._text[-1])

    def _end_sheet(self) -> None:
        sheet = self._open_sheet
        self._text.append(sheet_tail(len(self._titles), self._sheet_rows[-1]))
        self._deflate_text()
        tail = self._deflater.flush(zlib.Z_FINISH)
        sheet.compressed += len(tail)
        self._emit(tail)
        self._emit(data_descriptor(sheet))
        self._entries.append(sheet.closed())
        self._sheet = None

    def _next_sheet(self) -> None:
        self._end_sheet()
        self._start_sheet()

    # -- bytes -----------------------------------------------------------------------------------

    @property
    def _position(self) -> int:
        """Where the next byte lands in the whole object."""
        return self._offset + self._size

    def _emit(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._size += len(data)

    def _deflate_text(self) -> None:
        if not self._text:
            return
        data = "".join(self._text).encode("utf-8")
        self._text = []
        self._text_chars = 0
        sheet = self._open_sheet
        sheet.crc = zlib.crc32(data, sheet.crc)
        sheet.size += len(data)
        packed = self._deflater.compress(data)
        sheet.compressed += len(packed)
        self._emit(packed)

    def _whole_entry(self, name: str, xml: str) -> None:
        data, entry = whole_entry(name, xml.encode("utf-8"), self._position, DEFLATE_LEVEL)
        self._entries.append(entry)
        self._emit(data)
