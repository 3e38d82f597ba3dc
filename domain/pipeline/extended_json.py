"""Extended JSON at the edges: request pipelines in, chunk cursors in and out.

Pipelines arrive as plain JSON in which BSON values are written as MongoDB Extended JSON
(`{"$oid": ...}`, `{"$date": ...}`, `{"$numberLong": ...}`); `bson_from_extended_json` turns them
into real BSON values and names the path of anything it cannot convert.

A chunk cursor is a tuple of BSON values (the sort key of the last row of a part). It is kept in
workflow state as *canonical* Extended JSON, because only the canonical form keeps the BSON type
of every value: `5`, `Int64(5)`, `5.0` and `Decimal128("5")` sort equal in MongoDB but encode
differently, and a cursor must give back exactly the value it was taken from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, overload

from bson import json_util
from bson.code import Code

MAX_NESTING = 100
"""Deepest nesting of documents and arrays accepted in a request (MongoDB's own limit is ~100)."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=False, tzinfo=None)
"""Canonical mode; dates decode as naive UTC datetimes, exactly as PyMongo returns them."""
_AWARE_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)


class ExtendedJsonError(ValueError):
    """A value is not valid Extended JSON. `path` says where, `reason` what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def bson_from_extended_json(value: Any, path: str = "value") -> Any:
    """Convert JSON data with Extended JSON wrappers into BSON values (dicts, lists, scalars).

    Already converted BSON values pass through unchanged, so converting twice is harmless, except
    for non-finite floats: the input is a request as parsed from JSON, where a bare `NaN`,
    `Infinity` or an overflowing literal such as `-1e400` is not JSON and would not survive the
    trip through the workflow (it becomes `null`), so it is refused; the canonical
    `{"$numberDouble": "Infinity"}` carries the value faithfully. Integers outside the 64-bit
    range are refused too (BSON has no such integer). Raises `ExtendedJsonError` naming the path,
    e.g. `pipeline[0].$match._id: invalid $oid ...`.
    """
    return _convert(value, path, 0, _JSON_OPTIONS, raw_json=True)


def _check_number(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ExtendedJsonError(
            path,
            "NaN, Infinity and numbers too large for a double (such as -1e400) are not JSON and "
            'would change on the way to the database; write {"$numberDouble": "Infinity"} '
            '("-Infinity", "NaN") for these values',
        )
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not _INT64_MIN <= value <= _INT64_MAX
    ):
        raise ExtendedJsonError(
            path,
            "integer does not fit in 64 bits and would change on the way to the database; "
            'write {"$numberDecimal": "..."} for it',
        )


def _convert(
    value: Any, path: str, depth: int, options: json_util.JSONOptions, *, raw_json: bool = False
) -> Any:
    if depth > MAX_NESTING:
        raise ExtendedJsonError(path, f"nested more than {MAX_NESTING} levels deep")
    if isinstance(value, Mapping):
        pairs: list[tuple[str, Any]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExtendedJsonError(path, f"key {key!r} is not a string")
            pairs.append(
                (key, _convert(item, f"{path}.{key}", depth + 1, options, raw_json=raw_json))
            )
        return _wrapper_to_bson(pairs, path, options)
    if isinstance(value, list | tuple):
        return [
            _convert(item, f"{path}[{index}]", depth + 1, options, raw_json=raw_json)
            for index, item in enumerate(value)
        ]
    if raw_json:
        _check_number(value, path)
    return value


def _wrapper_to_bson(
    pairs: Sequence[tuple[str, Any]], path: str, options: json_util.JSONOptions
) -> Any:
    """Apply bson.json_util's object hook (bottom-up, like json_util.loads does)."""
    keys = [key for key, _ in pairs]
    if not any(key.startswith("$") for key in keys):
        return dict(pairs)
    if "$regex" in keys and not set(keys) <= {"$regex", "$options"}:
        return dict(pairs)  # the $regex query operator next to others ($not, $ne, ...): keep it
    try:
        converted = json_util.object_pairs_hook(pairs, options)
    except Exception as error:  # json_util raises TypeError, ValueError, InvalidId, ...
        wrapper = next((key for key in keys if key.startswith("$")), "")
        raise ExtendedJsonError(path, f"invalid Extended JSON {wrapper}: {error}") from error
    if isinstance(converted, Code):
        raise ExtendedJsonError(path, "JavaScript code ($code) is not allowed")
    return converted


def cursor_to_json(cursor: Sequence[Any]) -> str:
    """The canonical Extended JSON text of a cursor tuple (a JSON array), for workflow state."""
    try:
        return json_util.dumps(list(cursor), json_options=_JSON_OPTIONS, separators=(",", ":"))
    except Exception as error:
        raise ExtendedJsonError("cursor", f"cannot be written as Extended JSON: {error}") from error


@overload
def cursor_from_json(text: str, *, tz_aware: bool = False) -> tuple[Any, ...]: ...
@overload
def cursor_from_json(text: None, *, tz_aware: bool = False) -> None: ...
def cursor_from_json(text: str | None, *, tz_aware: bool = False) -> tuple[Any, ...] | None:
    """The cursor tuple back from `cursor_to_json`, every BSON type as it was; None stays None.

    Dates come back naive (UTC), as PyMongo returns them by default; `tz_aware=True` gives
    UTC-aware datetimes, for clients created with `tz_aware=True`. Both encode to the same BSON.
    """
    if text is None:
        return None
    try:
        raw = json.loads(text)
    except (TypeError, ValueError) as error:
        raise ExtendedJsonError("cursor", f"is not JSON: {error}") from error
    if not isinstance(raw, list):
        raise ExtendedJsonError("cursor", "must be a JSON array of sort key values")
    options = _AWARE_OPTIONS if tz_aware else _JSON_OPTIONS
    return tuple(_convert(item, f"cursor[{index}]", 1, options) for index, item in enumerate(raw))
