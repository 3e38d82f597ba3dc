"""The XLSX part encoder: typed cells, a valid workbook however the parts are cut, resumable
from its carry alone, new sheets at Excel's row limit, truncated long cells, ZIP64 offsets."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from bson import Binary, Decimal128, Int64, ObjectId

from domain.formats import xlsx_encoder
from domain.formats.encoding import EncodingSpec, needs_frozen_columns, new_part_encoder
from domain.formats.xlsx_cells import TRUNCATION_MARKER
from domain.formats.xlsx_encoder import columns_refusal
from domain.formats.xlsx_package import MAX_CELL_CHARS, MAX_COLUMNS
from domain.formats.zip_stream import central_directory, whole_entry
from domain.models import Column, ExportRequest

XLSX = EncodingSpec(format="xlsx")
COLUMNS = [Column(path="n"), Column(path="text", header="Text"), Column(path="when")]


def encode(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column] = COLUMNS,
    *,
    part_rows: int | None = None,
    spec: EncodingSpec = XLSX,
) -> tuple[bytes, dict[str, int]]:
    """The whole file written `part_rows` rows a part (all in one part by default), carrying the
    state from part to part as the workflow does, and the summed warnings."""
    size = part_rows or max(len(rows), 1)
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)] or [[]]
    body, carry = b"", None
    warnings: dict[str, int] = {}
    for number, chunk in enumerate(chunks):
        encoder = new_part_encoder(
            spec, columns, first_part=number == 0, carry=carry, offset=len(body)
        )
        for row in chunk:
            encoder.write(row)
        body += encoder.finish(last=number == len(chunks) - 1)
        carry = encoder.carry
        for kind, count in encoder.warnings.items():
            warnings[kind] = warnings.get(kind, 0) + count
    return body, warnings


def sheets(body: bytes) -> dict[str, list[tuple[Any, ...]]]:
    workbook = openpyxl.load_workbook(io.BytesIO(body))
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in workbook.worksheets}


def rows_of(count: int) -> list[dict[str, Any]]:
    return [
        {"n": n, "text": f"row {n} <&> ü", "when": datetime(2024, 1, 1, 0, n % 60, tzinfo=UTC)}
        for n in range(count)
    ]


def test_a_workbook_with_a_bold_frozen_filtered_header_and_widths() -> None:
    body, warnings = encode(rows_of(3))
    assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None
    workbook = openpyxl.load_workbook(io.BytesIO(body))
    ws = workbook.active
    assert workbook.sheetnames == ["Sheet1"]
    assert [c.value for c in ws[1]] == ["n", "Text", "when"]
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:C4"
    assert ws.column_dimensions["B"].width >= len("row 0 <&> ü")
    assert ws["C2"].is_date
    assert ws["C2"].number_format == "yyyy-mm-dd hh:mm:ss.000"
    assert warnings == {}


def test_typed_cells_and_text_by_the_csv_rules() -> None:
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    row = {
        "int": 42,
        "int64": Int64(-7),
        "big": 2**60,
        "float": 0.1,
        "nan": float("nan"),
        "bool": True,
        "date": datetime(2024, 2, 29, 13, 14, 15, 678000, tzinfo=UTC),
        "old": datetime(1899, 1, 1, tzinfo=UTC),
        "oid": oid,
        "uuid": Binary(uid.bytes, 4),
        "dec": Decimal128("1.50"),
        "doc": {"a": [1, 2]},
        "formula": "=SUM(A1)",
        "null": None,
    }
    columns = [Column(path=key) for key in [*row, "missing"]]
    body, _ = encode([row], columns)
    (values,) = sheets(body)["Sheet1"][1:]
    assert values == (
        42,
        -7,
        "1152921504606846976",  # beyond 2^53 a double would round it: text
        0.1,
        "NaN",
        True,
        datetime(2024, 2, 29, 13, 14, 15, 678000),
        "1899-01-01T00:00:00.000Z",  # before Excel's exact dates: text
        str(oid),
        str(uid),
        "1.50",
        '{"a":[1,2]}',
        "=SUM(A1)",  # an inline string is never a formula: no guard
        None,
        None,
    )


def test_dates_are_the_wall_clock_time_of_the_requested_zone() -> None:
    spec = EncodingSpec(format="xlsx", timezone="Europe/Paris")
    rows = [{"n": 1, "when": datetime(2024, 7, 1, 10, 0, tzinfo=UTC)}]
    body, _ = encode(rows, [Column(path="when")], spec=spec)
    assert sheets(body)["Sheet1"][1] == (datetime(2024, 7, 1, 12, 0),)


@pytest.mark.parametrize("part_rows", [1, 7, 100, 333])
def test_any_cut_into_parts_gives_the_same_workbook(part_rows: int) -> None:
    rows = rows_of(1000)
    whole, _ = encode(rows)
    cut, _ = encode(rows, part_rows=part_rows)
    assert zipfile.ZipFile(io.BytesIO(cut)).testzip() is None
    assert sheets(cut) == sheets(whole)
    assert len(sheets(cut)["Sheet1"]) == 1001


def test_a_part_regenerated_from_the_same_carry_has_the_same_bytes() -> None:
    rows = rows_of(300)
    first = new_part_encoder(XLSX, COLUMNS, first_part=True, carry=None, offset=0)
    for row in rows[:150]:
        first.write(row)
    head = first.finish()
    carry = first.carry
    assert carry is not None
    assert len(carry) < 2000

    def second() -> bytes:
        encoder = new_part_encoder(XLSX, COLUMNS, first_part=False, carry=carry, offset=len(head))
        for row in rows[150:]:
            encoder.write(row)
        return encoder.finish(last=True)

    assert second() == second()


def test_a_new_sheet_with_the_header_at_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx_encoder, "MAX_ROWS", 5)  # header + 4 rows a sheet
    body, _ = encode(rows_of(10), part_rows=3)
    got = sheets(body)
    assert list(got) == ["Sheet1", "Sheet2", "Sheet3"]
    assert [len(rows) for rows in got.values()] == [5, 5, 3]
    assert all(rows[0] == ("n", "Text", "when") for rows in got.values())
    assert [row[0] for rows in got.values() for row in rows[1:]] == list(range(10))
    workbook = openpyxl.load_workbook(io.BytesIO(body))
    assert workbook["Sheet3"].auto_filter.ref == "A1:C3"


def test_a_cell_over_excels_limit_is_truncated_with_a_marker_and_counted() -> None:
    rows = [
        {"n": 1, "text": "x" * 40_000},
        {"n": 2, "text": "😀" * 20_000},  # 40,000 UTF-16 units: Excel counts those
        {"n": 3, "text": "y" * MAX_CELL_CHARS},  # exactly at the limit: kept
    ]
    body, warnings = encode(rows, part_rows=1)
    assert warnings == {"cells_truncated": 2}
    texts = [row[1] for row in sheets(body)["Sheet1"][1:]]
    assert texts[0] == "x" * (MAX_CELL_CHARS - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER
    assert texts[1].endswith(TRUNCATION_MARKER)
    assert len(texts[1].encode("utf-16-le")) <= 2 * MAX_CELL_CHARS
    assert texts[2] == "y" * MAX_CELL_CHARS


def test_text_xml_cannot_hold_is_escaped_the_way_excel_does() -> None:
    body, _ = encode([{"n": "a\x01b"}, {"n": "_x0041_"}, {"n": "  pad  "}], [Column(path="n")])
    # openpyxl shows Excel's escapes as they are stored (Excel and LibreOffice decode them).
    assert [row[0] for row in sheets(body)["Sheet1"][1:]] == [
        "a_x0001_b",
        "_x005F_x0041_",
        "  pad  ",
    ]


def test_an_empty_export_is_a_workbook_with_its_header() -> None:
    body, _ = encode([])
    assert sheets(body) == {"Sheet1": [("n", "Text", "when")]}


def test_more_columns_than_a_sheet_holds_are_refused() -> None:
    assert columns_refusal(MAX_COLUMNS) is None
    message = columns_refusal(MAX_COLUMNS + 1)
    assert message is not None
    assert "16,384" in message
    too_many = [Column(path=f"c{i}") for i in range(MAX_COLUMNS + 1)]
    with pytest.raises(ValueError, match="at most 16,384 columns"):
        new_part_encoder(XLSX, too_many, first_part=True)


def test_zip64_records_where_offsets_pass_4_gib(tmp_path: Path) -> None:
    """A sparse file: an entry at 5 GiB and the central directory after it."""
    start = 5 * 1024**3
    data, entry = whole_entry("big/far.xml", b"<far/>" * 100, start, 6)
    path = tmp_path / "sparse.zip"
    with path.open("wb") as out:
        out.seek(start)
        out.write(data)
        out.write(central_directory([entry], start + len(data)))
    with zipfile.ZipFile(path) as archive:
        assert archive.read("big/far.xml") == b"<far/>" * 100
        assert archive.getinfo("big/far.xml").header_offset == start


def test_an_xlsx_export_freezes_sampled_columns_like_csv() -> None:
    assert needs_frozen_columns(ExportRequest(collection="c", format="xlsx"))
    assert not needs_frozen_columns(
        ExportRequest(collection="c", format="xlsx", columns=[Column(path="a")])
    )


def test_a_later_part_without_its_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="carry"):
        new_part_encoder(XLSX, COLUMNS, first_part=False, carry=None, offset=100)
