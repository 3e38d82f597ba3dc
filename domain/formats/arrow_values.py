"""BSON values as Arrow holds them in a Parquet file: the type of a column, chosen once from the
first rows of the export, and each value converted to that type.

| BSON | Arrow |
| --- | --- |
| str | string |
| bool | bool |
| int, Int64 | int64 (float64 when the column also holds floats) |
| float | float64 (NaN and ±Infinity kept) |
| Decimal128 | decimal128(38, s), s the largest scale of the first rows (at most 18) |
| datetime | timestamp(ms, UTC) |
| ObjectId | string of 24 hex digits |
| UUID, Binary subtype 4 | string, canonical form |
| other Binary, bytes | binary |
| document | struct (fields of the first rows) |
| array | list |
| anything else, or a column of mixed types | string: the CSV cell text (`domain.formats.cell_format`) |

A value that cannot be held by its column's type (a string in an int64 column, a field no
document of the first rows had) is written as null and counted in the part's warnings.

Only a date is a timestamp: pyarrow would take any int or float as a count of units since 1970
(`[date, 5]` inferred as a list of timestamps, 5 as 1970-01-01T00:00:00.000005), which changes
the value and, for a count beyond the years 1 to 9999, writes a timestamp no Python reader can
turn back into a datetime (`OverflowError: date value out of range` for the whole column). So a
number where a timestamp goes does not fit; neither does a date outside the years 1 to 9999
(`DatetimeMS`), which the CSV writes as Extended JSON.
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from bson import Binary, DatetimeMS, Decimal128, Int64, ObjectId

from domain.formats.cell_format import format_cell
from domain.formats.relaxed_json import relaxed_json

TIMESTAMP: Final = pa.timestamp("ms", tz="UTC")
MAX_DECIMAL_SCALE: Final = 18
_UUID_SUBTYPE: Final = 4
_ARROW_ERRORS: Final = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_FIRST_MS: Final = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MS
_LAST_MS: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MS


_PLAIN: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None), bytes, datetime})


def plain(value: Any) -> Any:
    """A Python value pyarrow understands, for a value inside a document or an array."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is dict:
        return {k: v if type(v) in _PLAIN else plain(v) for k, v in value.items()}
    if cls is list:
        return [v if type(v) in _PLAIN else plain(v) for v in value]
    if cls is Int64:
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if cls is ObjectId:
        return str(value)
    if cls is Decimal128:
        number = value.to_decimal()
        return number if number.is_finite() else str(number)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Binary):
        if value.subtype == _UUID_SUBTYPE and len(value) == 16:
            return str(uuid.UUID(bytes=bytes(value)))
        return bytes(value)
    if isinstance(value, DatetimeMS):
        return relaxed_json(value)  # outside the years 1 to 9999: no timestamp holds it
    if isinstance(value, bool | int | float | str):
        return value
    return relaxed_json(value)


def _scale(value: decimal.Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _writable(kind: pa.DataType) -> bool:
    """Whether Parquet can store the type (no empty structs, no null-typed leaves)."""
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(
            _writable(kind.field(i).type) for i in range(kind.num_fields)
        )
    if pa.types.is_list(kind):
        return _writable(kind.value_type)
    return not pa.types.is_null(kind)


def choose_type(values: list[Any]) -> pa.DataType:
    """The Arrow type of a column from its first values (nulls and missing values ignored)."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if not kinds:
        return pa.string()
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int, Int64}:
        return pa.int64()
    if kinds <= {int, Int64, float}:
        return pa.float64()
    if kinds <= {str}:
        return pa.string()
    if kinds <= {datetime}:
        return TIMESTAMP
    if kinds <= {ObjectId}:
        return pa.string()
    if kinds <= {Decimal128}:
        numbers = [v.to_decimal() for v in present]
        if all(n.is_finite() for n in numbers):
            return pa.decimal128(38, min(MAX_DECIMAL_SCALE, max(map(_scale, numbers))))
        return pa.string()
    if all(isinstance(v, Mapping | list | tuple) for v in present):
        converted = [plain(v) for v in present]
        try:
            kind = pa.array(converted).type
        except _ARROW_ERRORS:
            return pa.string()
        if not _writable(kind) or not all(map(_fits(kind), converted)):
            return pa.string()  # mixed types pyarrow took for one (a number among dates)
        return kind
    if kinds <= {bytes, Binary} and not any(
        isinstance(v, Binary) and v.subtype == _UUID_SUBTYPE for v in present
    ):
        return pa.binary()
    return pa.string()


def _scalar(value: Any, kind: pa.DataType) -> Any:
    """A top-level value converted for a column of `kind` (pyarrow checks the rest)."""
    if value is None:
        return None
    if pa.types.is_string(kind):
        return value if type(value) is str else format_cell(value, False)
    if pa.types.is_decimal(kind) and type(value) is Decimal128:
        return value.to_decimal()
    if pa.types.is_timestamp(kind):
        return _timestamp(value)
    if pa.types.is_struct(kind) or pa.types.is_list(kind):
        return plain(value) if isinstance(value, Mapping | list | tuple) else _NOT_FITTING
    return plain(value)


class _NotFitting:
    """A value its column's type cannot hold."""


_NOT_FITTING: Final = _NotFitting()


def _timestamp(value: Any) -> Any:
    """A top-level value for a timestamp column: a date of the years 1 to 9999, else not
    fitting (see the module's docstring)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, DatetimeMS) and _FIRST_MS <= int(value) <= _LAST_MS:
        return value.as_datetime()
    return _NOT_FITTING


def timestamp_ms_fits(array: pa.Array) -> bool:
    """Whether every value of a timestamp(ms) array is a date of the years 1 to 9999."""
    if len(array) == array.null_count:
        return True
    bounds = pc.min_max(array.cast(pa.int64()))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return bool(low >= _FIRST_MS and high <= _LAST_MS)


def _always(value: Any) -> bool:
    return True


def _checked(kind: pa.DataType) -> bool:
    """Whether pyarrow may take a value for `kind` it should not (see `_fits`)."""
    return bool(pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_timestamp(kind))


@lru_cache(maxsize=256)
def _fits(kind: pa.DataType) -> Callable[[Any], bool]:
    """Whether a converted value keeps all its fields in `kind` (pyarrow would silently drop a
    field the struct type does not have) and holds only dates where `kind` has timestamps
    (pyarrow would take a number for one). Built once per type: it runs for every value."""
    if pa.types.is_struct(kind):
        fields = {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}
        names = fields.keys()
        inner = {name: _fits(t) for name, t in fields.items() if _checked(t)}

        def struct(value: Any) -> bool:
            if value is None:
                return True
            if not isinstance(value, dict) or not names >= value.keys():
                return False
            for key, item in value.items():
                check = inner.get(key)
                if check is not None and not check(item):
                    return False
            return True

        return struct
    if pa.types.is_list(kind):
        child = kind.value_type
        check = _fits(child) if _checked(child) else None

        def list_(value: Any) -> bool:
            if value is None:
                return True
            if type(value) is not list:
                return False
            return check is None or all(map(check, value))

        return list_
    if pa.types.is_timestamp(kind):
        return lambda value: value is None or isinstance(value, datetime)
    return _always  # another scalar type: pyarrow itself refuses a value it cannot hold


def _direct(kind: pa.DataType) -> frozenset[type]:
    """The Python types pyarrow converts to `kind` exactly as `_scalar` would, without help."""
    if pa.types.is_string(kind):
        return frozenset({str, type(None)})
    if pa.types.is_int64(kind):
        return frozenset({int, type(None)})
    if pa.types.is_float64(kind):
        return frozenset({float, int, type(None)})
    if pa.types.is_boolean(kind):
        return frozenset({bool, type(None)})
    if pa.types.is_timestamp(kind):
        return frozenset({datetime, type(None)})
    return frozenset()


def to_array(values: list[Any], kind: pa.DataType) -> tuple[pa.Array, int]:
    """The column as an Arrow array of `kind`, and how many values it could not hold (nulls)."""
    if set(map(type, values)) <= _direct(kind):  # the common case: one C-level conversion
        try:
            return pa.array(values, type=kind), 0
        except _ARROW_ERRORS:
            pass  # an int beyond int64, say: value by value below
    converted = [_scalar(v, kind) for v in values]
    dropped = 0
    fits = _fits(kind)
    for i, v in enumerate(converted):
        if v is _NOT_FITTING or not fits(v):
            converted[i] = None
            dropped += 1
    try:
        return pa.array(converted, type=kind), dropped
    except _ARROW_ERRORS:
        pass
    for i, v in enumerate(converted):  # value by value: find the ones that do not fit
        if v is None:
            continue
        try:
            pa.array([v], type=kind)
        except _ARROW_ERRORS:
            converted[i] = None
            dropped += 1
    return pa.array(converted, type=kind), dropped
