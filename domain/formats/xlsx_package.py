"""The fixed files of an XLSX package (SpreadsheetML, ECMA-376) and the sheet XML around the rows.

Entry order: `[Content_Types].xml`, `_rels/.rels` and `xl/styles.xml` open the file (they do not
depend on the rows: the content types give every `.xml` part the worksheet type by default and
name the two others), then the streamed sheets, then `xl/workbook.xml` and its relationships,
which list the sheets and are written with the central directory in the last part.

Styles: 0 default, 1 bold (the header row), 2 a date (`yyyy-mm-dd hh:mm:ss.000`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

MAX_ROWS: Final = 1_048_576
"""Rows in one sheet, header included (Excel's limit)."""
MAX_COLUMNS: Final = 16_384
MAX_CELL_CHARS: Final = 32_767
STYLE_BOLD: Final = 1
STYLE_DATE: Final = 2

_XML: Final = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN: Final = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml"

CONTENT_TYPES: Final = (
    _XML + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    f'<Default Extension="xml" ContentType="{_CT}.worksheet+xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
    "</Types>"
)

ROOT_RELS: Final = (
    _XML + f'<Relationships xmlns="{_PKG_REL}">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)

_FONT: Final = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
STYLES: Final = (
    _XML + f'<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss.000"/></numFmts>'
    f'<fonts count="2"><font>{_FONT}</font><font><b/>{_FONT}</font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)

HEAD_ENTRIES: Final = (
    ("[Content_Types].xml", CONTENT_TYPES),
    ("_rels/.rels", ROOT_RELS),
    ("xl/styles.xml", STYLES),
)


def column_letters(index: int) -> str:
    """`A` for 0, `Z` for 25, `AA` for 26 … `XFD` for 16,383."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def sheet_name(number: int) -> str:
    return f"Sheet{number}"


def sheet_path(number: int) -> str:
    return f"xl/worksheets/sheet{number}.xml"


def sheet_head(number: int, widths: Sequence[int]) -> str:
    """The sheet's XML up to its first row: the frozen header pane and the column widths."""
    selected = ' tabSelected="1"' if number == 1 else ""
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>'
        for i, width in enumerate(widths, start=1)
    )
    return (
        _XML + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
        f'<sheetViews><sheetView workbookViewId="0"{selected}>'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
        "</sheetView></sheetViews>"
        '<sheetFormatPr defaultRowHeight="15"/>'
        + (f"<cols>{cols}</cols>" if cols else "")
        + "<sheetData>"
    )


def filter_range(columns: int, rows: int) -> str | None:
    """The autofilter's range over the header and the rows, or None without columns."""
    if columns == 0:
        return None
    return f"A1:{column_letters(columns - 1)}{max(rows, 1)}"


def sheet_tail(columns: int, rows: int) -> str:
    """The sheet's XML after its last row (`rows` counts the header)."""
    area = filter_range(columns, rows)
    return "</sheetData>" + (f'<autoFilter ref="{area}"/>' if area else "") + "</worksheet>"


SHEET_TAIL_MAX: Final = len(sheet_tail(MAX_COLUMNS, MAX_ROWS))


def workbook(sheet_rows: Sequence[int], columns: int) -> str:
    """`xl/workbook.xml`: the sheets, and the hidden names Excel keeps for their autofilters."""
    sheets = "".join(
        f'<sheet name="{sheet_name(n)}" sheetId="{n}" r:id="rId{n}"/>'
        for n in range(1, len(sheet_rows) + 1)
    )
    names = ""
    for index, rows in enumerate(sheet_rows):
        area = filter_range(columns, rows)
        if area is not None:
            first, last = area.split(":")
            absolute = _absolute(first) + ":" + _absolute(last)
            names += (
                f'<definedName name="_xlnm._FilterDatabase" localSheetId="{index}" '
                f'hidden="1">{sheet_name(index + 1)}!{absolute}</definedName>'
            )
    return (
        _XML + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        '<bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{sheets}</sheets>"
        + (f"<definedNames>{names}</definedNames>" if names else "")
        + "</workbook>"
    )


def _absolute(cell: str) -> str:
    letters = cell.rstrip("0123456789")
    return f"${letters}${cell[len(letters) :]}"


def workbook_rels(sheets: int) -> str:
    relations = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, sheets + 1)
    )
    return (
        _XML + f'<Relationships xmlns="{_PKG_REL}">{relations}'
        f'<Relationship Id="rId{sheets + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        "</Relationships>"
    )


def tail_entries(sheet_rows: Sequence[int], columns: int) -> tuple[tuple[str, str], ...]:
    return (
        ("xl/workbook.xml", workbook(sheet_rows, columns)),
        ("xl/_rels/workbook.xml.rels", workbook_rels(len(sheet_rows))),
    )
