"""Compact relaxed Extended JSON: the text of JSONL lines and of CSV cells holding documents.

The output is exactly `bson.json_util.dumps(value, json_options=JSON_OPTIONS,
separators=(",", ":"), ensure_ascii=False)`, which any other encoder must match byte for byte:

* relaxed mode: plain JSON numbers for int, Int64 and finite floats; `{"$numberDouble": "NaN"}`
  and friends for the rest; dates from 1970 to 9999 as `{"$date": "...Z"}` (milliseconds shown
  only when not zero, as json_util does), other dates as `{"$date": {"$numberLong": ...}}`;
* uuid.UUID as standard binary subtype 4 (json_util cannot encode a UUID without a
  representation);
* no spaces, field order as in the document (never sorted), non-ASCII text written as UTF-8
  rather than `\\u` escapes.

One deliberate difference: a timezone-aware datetime is converted to UTC first, so every date is
written with `Z` (json_util would write the original offset). Naive datetimes, what pymongo
returns by default, are UTC already.

It is faster than json_util because plain values skip the per-value conversion and the C JSON
encoder does the writing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bson import Int64
from bson.binary import UuidRepresentation
from bson.json_util import RELAXED_JSON_OPTIONS, JSONOptions
from bson.json_util import default as _json_util_default

JSON_OPTIONS: Final[JSONOptions] = RELAXED_JSON_OPTIONS.with_options(
    uuid_representation=UuidRepresentation.STANDARD
)
JSON_SEPARATORS: Final = (",", ":")

# Types the C encoder writes exactly as json_util would. Not str subclasses such as bson.Code.
_PLAIN: Final[frozenset[type]] = frozenset({str, int, bool, type(None), Int64})

_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False,
    separators=JSON_SEPARATORS,
    allow_nan=False,  # non-finite floats are converted first; anything left is a bug
    check_circular=False,  # BSON values cannot be circular
)
_ZERO: Final = timedelta(0)


def relaxed_json(value: Any) -> str:
    """The compact relaxed Extended JSON text of a BSON value (document, array or scalar)."""
    return _ENCODER.encode(value if type(value) in _PLAIN else _convert(value))


def _convert(value: Any) -> Any:
    """A JSON-ready copy of value, in the same order of checks as json_util._json_convert."""
    cls = type(value)
    if cls is dict:
        return {k: v if type(v) in _PLAIN else _convert(v) for k, v in value.items()}
    if cls is list:
        return [v if type(v) in _PLAIN else _convert(v) for v in value]
    if cls is datetime and value.tzinfo is not None and value.utcoffset() != _ZERO:
        value = value.astimezone(UTC)
    elif hasattr(value, "items"):
        return {k: v if type(v) in _PLAIN else _convert(v) for k, v in value.items()}
    elif hasattr(value, "__iter__") and not isinstance(value, str | bytes):
        return [v if type(v) in _PLAIN else _convert(v) for v in value]
    # Scalars and BSON types: floats (NaN, Infinity), dates, ObjectId, Binary, Code, Regex ...
    return _json_util_default(value, JSON_OPTIONS)
