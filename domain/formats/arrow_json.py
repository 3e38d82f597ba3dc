"""JSON text of the values in Arrow arrays, exactly as `domain.formats.relaxed_json` writes the
same BSON values, for the Arrow JSON Lines engine (`domain.formats.arrow_jsonl`).

| kind | text |
| --- | --- |
| str | `"…"`, with `\\` `"` LF CR tab BS FF escaped as the C `json` encoder does; any other control character leaves the batch to Python (`BatchRefused`) |
| int | its digits |
| float | `float.__repr__` (`2.0`, `1e+300`); ±Infinity as `{"$numberDouble":"Infinity"}` |
| bool | `true` / `false` |
| date | `{"$date":"YYYY-MM-DDTHH:MM:SS.mmmZ"}`, the milliseconds left out when zero, as json_util writes them; a date before 1970 (`$numberLong`) or after 9999 leaves the batch to Python |
| oid | `{"$oid":"<24 hex digits>"}` |

Nulls stay null: PyMongoArrow reads a missing field, a null and a NaN all as null, and only the
encoder can tell them apart.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from domain.formats.arrow_batches import BatchRefused
from domain.formats.arrow_text import DatesOutOfRange, found_bytes, iso_dates, oid_hex
from domain.formats.relaxed_json import relaxed_json

# What the C encoder escapes with a short sequence, backslash first (the others add backslashes).
_SHORT_ESCAPES: Final = (
    ("\\", "\\\\"),
    ('"', '\\"'),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\t", "\\t"),
    ("\b", "\\b"),
    ("\f", "\\f"),
)
_ESCAPED: Final = frozenset(ord(c) for c, _ in _SHORT_ESCAPES)
_UNICODE_ESCAPED: Final = frozenset(range(0x20)) - _ESCAPED
"""Control characters written as `\\u00XX`: rare enough to leave to Python."""
_PLAIN_BYTES: Final = bytes(b for b in range(256) if b not in _ESCAPED | _UNICODE_ESCAPED)


def json_values(array: pa.Array, kind: str) -> pa.Array:
    """The JSON text of each value of a PyMongoArrow leaf array of this kind (nulls kept)."""
    if kind == "str":
        return json_strings(array)
    if kind == "int":
        return array.cast(pa.string())
    if kind == "float":
        texts = [None if v is None else relaxed_json(v) for v in array.to_pylist()]
        return pa.array(texts, pa.string())
    if kind == "bool":
        return pc.if_else(array, "true", "false")
    if kind == "date":
        return json_dates(array)
    if kind == "oid":
        return pc.binary_join_element_wise('{"$oid":"', oid_hex(array.storage), '"}', "")
    raise BatchRefused


def json_strings(array: pa.Array) -> pa.Array:
    """Strings as JSON string literals, UTF-8 kept (`ensure_ascii=False`)."""
    try:
        array.validate(full=True)  # invalid UTF-8: the Python path decides
    except pa.ArrowInvalid as exc:
        raise BatchRefused from exc
    found = found_bytes(array, _PLAIN_BYTES)
    if not found.isdisjoint(_UNICODE_ESCAPED):
        raise BatchRefused
    for char, escape in _SHORT_ESCAPES:
        if ord(char) in found:
            array = pc.replace_substring(array, char, escape)
    return pc.binary_join_element_wise('"', array, '"', "")


def json_dates(array: pa.Array) -> pa.Array:
    """`{"$date":"…Z"}` of timestamp(ms) values from 1970 to 9999 (json_util's relaxed form)."""
    if len(array) == 0:
        return pa.array([], pa.string())
    low = pc.min(array.cast(pa.int64())).as_py()
    if low is not None and low < 0:  # before 1970: `$numberLong`, left to Python
        raise BatchRefused
    try:  # after 9999 too
        iso = iso_dates(array)
    except DatesOutOfRange as exc:
        raise BatchRefused from exc
    # The text is fixed-width, so ".000Z" can only be its end: whole seconds lose the fraction.
    return pc.binary_join_element_wise(
        '{"$date":"', pc.replace_substring(iso, ".000Z", "Z"), '"}', ""
    )
