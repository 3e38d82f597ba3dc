"""The text of one CSV cell, for every BSON value (the CSV contract in DESIGN.md).

| value | cell |
| --- | --- |
| missing, null | empty |
| str | as is (formula guard aside) |
| bool | `true` / `false` |
| int, Int64 | digits |
| float | shortest round-trip repr; NaN, Infinity, -Infinity as Extended JSON spells them |
| Decimal128, decimal.Decimal | the decimal string (`1.50`, `1E+3`, `NaN`) |
| datetime, DatetimeMS | `2024-01-02T03:04:05.678Z` (naive means UTC; always milliseconds) |
| ObjectId | 24 hex digits |
| uuid.UUID, Binary subtype 4 | canonical `xxxxxxxx-xxxx-...` |
| other Binary, bytes | standard base64 with padding |
| document, array, Code, Regex, Timestamp, MinKey, MaxKey, DBRef | compact relaxed Extended JSON |

A DatetimeMS outside the years 1 to 9999 has no ISO form; it is written as Extended JSON.

Formula guard: a *string* cell starting with `=`, `+`, `-`, `@`, tab, carriage return, NUL or
one of the full-width forms `＝ ＋ － ＠` (the OWASP CSV-injection set; spreadsheets fold the
full-width forms to ASCII and some skip a leading NUL) gets a leading `'`, so a spreadsheet shows it instead of running it. Numbers (`-5`, `-Infinity`) are never
touched, and neither is base64 (it may start with `+`, but its alphabet cannot spell a call).
"""

from __future__ import annotations

import base64
import decimal
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bson import Binary, Code, DatetimeMS, Decimal128, Int64, ObjectId

from domain.formats.flatten import Missing
from domain.formats.relaxed_json import relaxed_json

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r", "\x00", "＝", "＋", "－", "＠")
"""The first characters that make a spreadsheet treat a cell as a formula."""

Formatter = Callable[[Any], str]

_EPOCH: Final = datetime(1970, 1, 1)
_UUID_SUBTYPE: Final = 4


def guard_formula(text: str) -> str:
    """Prefix text that a spreadsheet would run as a formula with `'`."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def format_cell(value: Any, formula_guard: bool = True) -> str:
    """The CSV cell text of one value."""
    cls = type(value)
    if cls is str:
        return guard_formula(value) if formula_guard else value
    formatter = _FORMATTERS.get(cls) or _formatter_for_subclass(cls)
    text = formatter(value)
    if formatter is _format_text and formula_guard:
        return guard_formula(text)
    return text


def format_float(value: float) -> str:
    """Shortest round-trip repr; non-finite values as Extended JSON spells them."""
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds (truncated, as BSON stores them) and `Z`."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def _format_datetime_ms(value: DatetimeMS) -> str:
    try:
        moment = _EPOCH + timedelta(milliseconds=int(value))
    except OverflowError:
        return relaxed_json(value)
    return format_datetime(moment)


def _format_none(value: Any) -> str:
    return ""


def _format_text(value: Any) -> str:
    return str(value)


def _format_bool(value: bool) -> str:
    return "true" if value else "false"


def _format_int(value: int) -> str:
    return int.__repr__(value)


def _format_binary(value: bytes) -> str:
    if isinstance(value, Binary) and value.subtype == _UUID_SUBTYPE and len(value) == 16:
        return str(uuid.UUID(bytes=bytes(value)))
    return base64.b64encode(value).decode("ascii")


_FORMATTERS: dict[type, Formatter] = {
    type(None): _format_none,
    Missing: _format_none,
    str: _format_text,
    bool: _format_bool,
    int: _format_int,
    Int64: _format_int,
    float: format_float,
    Decimal128: str,
    decimal.Decimal: str,
    datetime: format_datetime,
    DatetimeMS: _format_datetime_ms,
    ObjectId: str,
    uuid.UUID: str,
    Binary: _format_binary,
    bytes: _format_binary,
    dict: relaxed_json,
    list: relaxed_json,
    tuple: relaxed_json,
    Code: relaxed_json,  # a str subclass, but a BSON type of its own
}

# For subclasses of the types above, the first base that matches, in this order.
_BASES: Final[tuple[tuple[type, Formatter], ...]] = (
    (Code, relaxed_json),
    (bool, _format_bool),
    (str, _format_text),
    (int, _format_int),
    (float, format_float),
    (datetime, format_datetime),
    (Binary, _format_binary),
    (bytes, _format_binary),
    (Mapping, relaxed_json),
    (list, relaxed_json),
    (tuple, relaxed_json),
)


def _formatter_for_subclass(cls: type) -> Formatter:
    """The formatter of a type not in the table (subclasses, other BSON types); cached."""
    formatter: Formatter = relaxed_json  # Regex, Timestamp, MinKey, MaxKey, DBRef, re.Pattern
    for base, candidate in _BASES:
        if issubclass(cls, base):
            formatter = candidate
            break
    _FORMATTERS[cls] = formatter
    return formatter
