"""The XML of one XLSX cell, for every BSON value (typed where a spreadsheet has the type).

| value | cell |
| --- | --- |
| missing, null | no cell |
| str | inline string (never a formula, so no guard); over 32,767 characters: truncated + marker |
| bool | boolean |
| int, Int64 within ±2^53 | number (beyond: text, as a double would round it) |
| finite float | number (NaN and ±Infinity: text, as the CSV writes them) |
| datetime, DatetimeMS from 1900-03-01 | Excel date (days since 1899-12-30) with a date style, in the request's time zone |
| anything else (ObjectId, UUID, Decimal128, Binary, documents, arrays, older dates…) | text by the CSV rules (`domain.formats.cell_format`) |

Text is XML-escaped; characters XML 1.0 cannot hold (most C0 controls) are written as Excel's
`_xHHHH_` escapes, and a literal `_xHHHH_` in the data is protected as `_x005F_xHHHH_`, the way
Excel itself saves them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from bson import DatetimeMS, Int64

from domain.formats.cell_format import format_cell
from domain.formats.timezones import in_zone, zoned_iso
from domain.formats.xlsx_package import MAX_CELL_CHARS, STYLE_BOLD, STYLE_DATE

TRUNCATION_MARKER: Final = "…[truncated]"
MAX_EXACT_INT: Final = 2**53
_EXCEL_EPOCH: Final = datetime(1899, 12, 30)
_FIRST_EXACT_DATE: Final = datetime(1900, 3, 1)
"""Excel counts a 29 February 1900 that never was: serials are right from 1 March 1900 on."""
_DATE_WIDTH: Final = 23

_NEEDS_ESCAPE: Final = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_x[0-9A-Fa-f]{4}_")
_CONTROL_OR_LITERAL: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)"
)
_EDGE_SPACE: Final = " \t\n\r"


def _excel_escape(match: re.Match[str]) -> str:
    char = match.group()
    return "_x005F_" if char == "_" else f"_x{ord(char):04X}_"


def escape_text(text: str) -> str:
    """Text as the content of an XML element, with Excel's escapes for what XML cannot hold."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    text = _CONTROL_OR_LITERAL.sub(_excel_escape, text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit_text(text: str) -> tuple[str, bool]:
    """The text cut to Excel's 32,767 characters (UTF-16 units) with a marker, and whether it was."""
    if len(text) <= MAX_CELL_CHARS // 2:
        return text, False
    units = text.encode("utf-16-le")
    if len(units) <= 2 * MAX_CELL_CHARS:
        return text, False
    keep = 2 * (MAX_CELL_CHARS - len(TRUNCATION_MARKER))
    return units[:keep].decode("utf-16-le", errors="ignore") + TRUNCATION_MARKER, True


def inline_string(ref: str, text: str, style: str = "") -> str:
    space = (
        ' xml:space="preserve"'
        if text and (text[0] in _EDGE_SPACE or text[-1] in _EDGE_SPACE)
        else ""
    )
    return f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{escape_text(text)}</t></is></c>'


def excel_serial(moment: datetime) -> float | None:
    """Days since 1899-12-30 of a naive wall-clock time, or None before 1 March 1900."""
    if moment < _FIRST_EXACT_DATE:
        return None
    delta = moment - _EXCEL_EPOCH
    return delta.days + (delta.seconds * 1_000_000 + delta.microseconds) / 86_400_000_000


class CellWriter:
    """Renders cells for one export: counts truncations, measures widths when asked."""

    def __init__(self, zone: tzinfo | None) -> None:
        self.zone = zone
        self.truncated = 0
        self._renderers: dict[type, Callable[[str, Any], str]] = {
            str: self._string,
            bool: _boolean,
            int: self._integer,
            Int64: self._integer,
            float: self._float,
            datetime: self._date,
            DatetimeMS: self._date,
        }

    def cell(self, ref: str, value: Any) -> str:
        """The `<c>` element of a non-null value at `ref` (e.g. `B7`)."""
        renderer = self._renderers.get(type(value))
        if renderer is None:
            return self._string(ref, format_cell(value, False))
        return renderer(ref, value)

    def header(self, ref: str, title: str) -> str:
        text, cut = fit_text(title)
        if cut:
            self.truncated += 1
        return inline_string(ref, text, f' s="{STYLE_BOLD}"')

    def _string(self, ref: str, value: str) -> str:
        text, cut = fit_text(value)
        if cut:
            self.truncated += 1
        return inline_string(ref, text)

    def _integer(self, ref: str, value: int) -> str:
        if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            return f'<c r="{ref}"><v>{int.__repr__(value)}</v></c>'
        return self._string(ref, int.__repr__(value))

    def _float(self, ref: str, value: float) -> str:
        if value - value == 0.0:  # finite
            return f'<c r="{ref}"><v>{float.__repr__(value)}</v></c>'
        return self._string(ref, format_cell(value, False))

    def _date(self, ref: str, value: datetime | DatetimeMS) -> str:
        moment = in_zone(value, self.zone or UTC)
        serial = None if moment is None else excel_serial(moment.replace(tzinfo=None))
        if serial is None:
            text = zoned_iso(value, self.zone) if self.zone is not None else None
            return self._string(ref, text if text is not None else format_cell(value, False))
        return f'<c r="{ref}" s="{STYLE_DATE}"><v>{float.__repr__(serial)}</v></c>'

    def width(self, value: Any) -> int:
        """Characters a value shows (for column widths)."""
        if value is None:
            return 0
        if isinstance(value, datetime | DatetimeMS):
            return _DATE_WIDTH
        if isinstance(value, bool):
            return 5
        text = value if isinstance(value, str) else format_cell(value, False)
        return max((len(line) for line in text[:1000].splitlines()), default=0)


def _boolean(ref: str, value: bool) -> str:
    return f'<c r="{ref}" t="b"><v>{1 if value else 0}</v></c>'
