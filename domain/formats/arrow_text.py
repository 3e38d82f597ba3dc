"""CSV text of a batch made by Arrow compute: the stdlib `csv` writer's bytes without a Python
object per cell.

The Arrow CSV engine (`domain.formats.arrow_csv`) hands over one Arrow string array per column,
its cells formatted as `domain.formats.cell_format` says (nulls are empty cells); this module guards
formula triggers, quotes as `csv.QUOTE_MINIMAL` does with the encoder's dialect (`,`, `"`,
CRLF, doubled quotes) and joins the rows into one string. `pyarrow.csv` cannot be used for the
last step: it quotes every string and ends lines with LF.

What the csv module does and this mirrors:

* a cell is quoted when it holds the delimiter, a quote, CR or LF; quotes inside are doubled;
* a row whose only cell is empty is written as `""` (so that it is not an empty line);
* a cell holding NUL is left to the csv module (`NeedsCsvModule`): Python 3.11 treats NUL as
  a special character in some dialects, and the engine never guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_NEEDS_QUOTES: Final = r'[,"\r\n]'
_TRIGGER: Final = r"^[-=+@\t\r\x00＝＋－＠]"
"""`domain.formats.cell_format.FORMULA_TRIGGERS` as a regular expression (RE2 syntax)."""
_NUL: Final = "\x00"


class NeedsCsvModule(Exception):
    """This batch holds a cell the engine leaves to the csv module."""


# Bytes that may need work: formula triggers (a full-width one starts with EF BC), what makes the
# csv module quote, NUL. `bytes.translate` deletes every other byte in one C pass, so a column
# without any of them costs no Arrow call at all.
_TRIGGER_BYTES: Final = frozenset(b"-=+@\t\r\x00\xef")
_QUOTE_BYTES: Final = frozenset(b',"\r\n')
_OTHER_BYTES: Final = bytes(b for b in range(256) if b not in _TRIGGER_BYTES | _QUOTE_BYTES)


def found_bytes(cells: pa.Array, others: bytes) -> frozenset[int]:
    """The bytes found in the column's string data but those in `others` (its whole buffer: a
    slice's neighbours can only cause a false alarm, which costs speed)."""
    data = cells.buffers()[2]
    if data is None:
        return frozenset()
    return frozenset(data.to_pybytes().translate(None, others))


def csv_cells(cells: pa.Array, guard: bool) -> pa.Array:
    """String cells as the csv module writes them, formula-guarded when `guard`."""
    found = found_bytes(cells, _OTHER_BYTES)
    if not found:
        return cells
    if 0 in found:
        raise NeedsCsvModule
    if guard and not found.isdisjoint(_TRIGGER_BYTES) and _any_first_byte_a_trigger(cells):
        cells = guarded(cells)
    if not found.isdisjoint(_QUOTE_BYTES):
        cells = quoted(cells)
    return cells


_FIRST_TRIGGER_BYTES: Final = np.array(sorted(_TRIGGER_BYTES), np.uint8)


def _any_first_byte_a_trigger(cells: pa.Array) -> bool:
    """Whether a cell starts with a byte a trigger can start with (`-` inside a certificate
    number is no trigger): one numpy lookup of the first byte of every non-empty cell."""
    _, offset_data, data = cells.buffers()
    if offset_data is None or data is None:
        return False
    offsets = np.frombuffer(offset_data, np.int32, count=len(cells) + 1, offset=4 * cells.offset)
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]
    firsts = np.frombuffer(data, np.uint8)[starts]
    return bool(np.isin(firsts, _FIRST_TRIGGER_BYTES).any())


def guarded(cells: pa.Array) -> pa.Array:
    """String cells with a formula trigger prefixed with `'` (`cell_format.guard_formula`)."""
    triggered = pc.match_substring_regex(cells, _TRIGGER)
    if not pc.any(triggered).as_py():
        return cells
    return pc.if_else(triggered, pc.binary_join_element_wise("'", cells, ""), cells)


def quoted(cells: pa.Array) -> pa.Array:
    """String cells as the csv module writes them (QUOTE_MINIMAL, doubled quotes)."""
    if pc.any(pc.match_substring(cells, _NUL)).as_py():
        raise NeedsCsvModule
    special = pc.match_substring_regex(cells, _NEEDS_QUOTES)
    if not pc.any(special).as_py():
        return cells
    doubled = pc.replace_substring(cells, '"', '""')
    return pc.if_else(special, pc.binary_join_element_wise('"', doubled, '"', ""), cells)


_DAY_MS: Final = 86_400_000
_EPOCH_DAY: Final = date(1970, 1, 1)
FIRST_MS: Final = -30_610_224_000_000
"""1000-01-01T00:00:00.000Z: before it Python writes the year with fewer than 4 digits."""
LAST_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z."""


class DatesOutOfRange(ValueError):
    """A date outside the years 1000 to 9999: the Python formatter decides."""


@cache
def _clock() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The bytes of `HH:MM:` for every minute of a day, `SS.mmmZ` for every millisecond of a
    minute (one row each)."""
    minutes = "".join(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
    millis = "".join(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000))
    return (
        np.frombuffer(minutes.encode("ascii"), np.uint8).reshape(1440, 6),
        np.frombuffer(millis.encode("ascii"), np.uint8).reshape(60_000, 7),
    )


def _int64s(array: pa.Array) -> npt.NDArray[np.int64]:
    """The values of a timestamp or int64 array (nulls as 0) as numpy, without a copy if it
    has no nulls."""
    if array.null_count:
        values: npt.NDArray[np.int64] = array.cast(pa.int64()).fill_null(0).to_numpy()
        return values
    data = array.buffers()[1]
    assert data is not None
    return np.frombuffer(data, np.int64, count=len(array), offset=8 * array.offset)


def iso_dates(array: pa.Array) -> pa.Array:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` of timestamp(ms) values (`cell_format.format_datetime`),
    nulls kept, as a fixed-width text matrix: each distinct day's text made once, the time
    of day looked up in tables. Raises DatesOutOfRange for a date outside the years 1000 to
    9999."""
    size = len(array)
    if size == 0:
        return pa.array([], pa.string())
    values = _int64s(array)
    if int(values.min()) < FIRST_MS or int(values.max()) > LAST_MS:
        raise DatesOutOfRange
    days, rest = np.divmod(values, _DAY_MS)
    minutes, millis = np.divmod(rest, 60_000)
    low, high = int(days.min()), int(days.max())
    if high - low <= 4 * size + 64:  # clustered (the usual case): no sort
        span: list[int] = list(range(low, high + 1))
        which = days - low
    else:
        distinct, which = np.unique(days, return_inverse=True)
        span = [int(d) for d in distinct]
    day_text = "".join((_EPOCH_DAY + timedelta(days=d)).isoformat() + "T" for d in span)
    day_table = np.frombuffer(day_text.encode("ascii"), np.uint8).reshape(len(span), 11)
    minute_table, milli_table = _clock()
    text = np.empty((size, 24), np.uint8)
    text[:, :11] = day_table[which]
    text[:, 11:17] = minute_table[minutes]
    text[:, 17:] = milli_table[millis]
    return _fixed_width(text, array)


def _fixed_width(text: npt.NDArray[np.uint8], like: pa.Array) -> pa.Array:
    """A string array of the rows of a (rows x width) byte matrix, nulls where `like` has them."""
    size, width = text.shape
    offsets = np.arange(0, width * size + 1, width, dtype=np.int32)
    validity = None
    if like.null_count:
        validity = pc.is_valid(like).buffers()[1]
    return pa.StringArray.from_buffers(
        size, pa.py_buffer(offsets), pa.py_buffer(text), validity, null_count=like.null_count
    )


def oid_hex(array: pa.Array) -> pa.Array:
    """24 hex digits per ObjectId (fixed_size_binary(12) storage), nulls kept, in one pass."""
    size = len(array)
    data = array.buffers()[1]
    assert data is not None
    start = array.offset * 12
    text = data[start : start + 12 * size].to_pybytes().hex().encode("ascii")
    matrix = np.frombuffer(text, np.uint8).reshape(size, 24)
    return _fixed_width(matrix, array)


def csv_text(columns: Sequence[pa.Array]) -> str:
    """The rows of these columns (string arrays of CSV-ready cells, nulls empty) as CSV text,
    CRLF after every row."""
    filled = [column.fill_null("") if column.null_count else column for column in columns]
    if len(filled) == 1:
        filled = [pc.if_else(pc.equal(filled[0], ""), '""', filled[0])]
    rows = pc.binary_join_element_wise(*filled, ",") if len(filled) > 1 else filled[0]
    return text_of(pc.binary_join_element_wise(rows, "", "\r\n"))


def text_of(lines: pa.Array) -> str:
    """A string array's values joined, as one str (its data buffer, decoded once)."""
    if len(lines) == 0:
        return ""
    _, offsets, data = lines.buffers()
    assert offsets is not None
    assert data is not None
    first, last = 4 * lines.offset, 4 * (lines.offset + len(lines))
    start = int.from_bytes(offsets[first : first + 4].to_pybytes(), "little")
    end = int.from_bytes(offsets[last : last + 4].to_pybytes(), "little")
    text: str = data[start:end].to_pybytes().decode("utf-8")
    return text
