"""The text of each CSV cell (golden examples for every BSON type) and relaxed Extended JSON."""

from __future__ import annotations

import decimal
import math
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bson
import pytest
from bson import (
    Binary,
    Code,
    DatetimeMS,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
)
from bson.dbref import DBRef
from bson.json_util import dumps
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from hypothesis import given
from hypothesis import strategies as st

from domain.formats.cell_format import FORMULA_TRIGGERS, format_cell, format_float, guard_formula
from domain.formats.flatten import MISSING
from domain.formats.relaxed_json import JSON_OPTIONS, relaxed_json

OID = ObjectId("65a1b2c3d4e5f60718293a4b")
UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")

GOLDEN: list[tuple[Any, str]] = [
    (MISSING, ""),
    (None, ""),
    ("plain text", "plain text"),
    ("", ""),
    ('multi\nline, "quoted"', 'multi\nline, "quoted"'),
    ("Grüße 東京 🎉", "Grüße 東京 🎉"),
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (-5, "-5"),
    (2**63 - 1, "9223372036854775807"),
    (Int64(-42), "-42"),
    (1.5, "1.5"),
    (0.1, "0.1"),
    (1e300, "1e+300"),
    (-0.0, "-0.0"),
    (123456789.0, "123456789.0"),
    (float("nan"), "NaN"),
    (float("inf"), "Infinity"),
    (float("-inf"), "-Infinity"),
    (Decimal128("1.50"), "1.50"),
    (Decimal128("-1E+3"), "-1E+3"),
    (Decimal128("NaN"), "NaN"),
    (decimal.Decimal("2.500"), "2.500"),
    (datetime(2024, 1, 2, 3, 4, 5, 678999), "2024-01-02T03:04:05.678Z"),
    (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05.000Z"),
    (
        datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        "2024-01-02T03:04:05.000Z",
    ),
    (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05.000Z"),
    (datetime(1, 1, 1), "0001-01-01T00:00:00.000Z"),
    (datetime(1969, 12, 31, 23, 59, 59, 999000), "1969-12-31T23:59:59.999Z"),
    (DatetimeMS(1704164645678), "2024-01-02T03:04:05.678Z"),
    (DatetimeMS(-1), "1969-12-31T23:59:59.999Z"),
    (DatetimeMS(2**62), '{"$date":{"$numberLong":"4611686018427387904"}}'),
    (OID, "65a1b2c3d4e5f60718293a4b"),
    (UUID, "12345678-1234-5678-1234-567812345678"),
    (Binary(UUID.bytes, 4), "12345678-1234-5678-1234-567812345678"),
    (Binary(UUID.bytes, 3), "EjRWeBI0VngSNFZ4EjRWeA=="),
    (Binary(b"\x00\x01\xff", 0), "AAH/"),
    (Binary(b"\xfb\xef", 5), "++8="),  # base64 may start with '+': never formula-guarded
    (b"hello", "aGVsbG8="),
    (b"", ""),
    ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
    ({"z": 1, "a": 2}, '{"z":1,"a":2}'),  # document order, never sorted
    ([1, "x", 2.5], '[1,"x",2.5]'),
    ([], "[]"),
    ({}, "{}"),
    (
        {"when": datetime(2024, 1, 2, 3, 4, 5, 678000)},
        '{"when":{"$date":"2024-01-02T03:04:05.678Z"}}',
    ),
    ({"id": OID}, '{"id":{"$oid":"65a1b2c3d4e5f60718293a4b"}}'),
    ({"n": Int64(7), "d": Decimal128("1.0")}, '{"n":7,"d":{"$numberDecimal":"1.0"}}'),
    ([float("nan"), float("-inf")], '[{"$numberDouble":"NaN"},{"$numberDouble":"-Infinity"}]'),
    (["é", "=1"], '["é","=1"]'),  # UTF-8, not \\u escapes; JSON text is not guarded
    ([UUID], '[{"$binary":{"base64":"EjRWeBI0VngSNFZ4EjRWeA==","subType":"04"}}]'),
    (SON([("b", 1), ("a", 2)]), '{"b":1,"a":2}'),
    (RawBSONDocument(bson.encode({"r": 1})), '{"r":1}'),
    (Regex("^a.b", "im"), '{"$regularExpression":{"pattern":"^a.b","options":"im"}}'),
    (re.compile("x+", re.IGNORECASE), '{"$regularExpression":{"pattern":"x+","options":"iu"}}'),
    (Timestamp(1700000000, 3), '{"$timestamp":{"t":1700000000,"i":3}}'),
    (MinKey(), '{"$minKey":1}'),
    (MaxKey(), '{"$maxKey":1}'),
    (Code("function () { return 1; }"), '{"$code":"function () { return 1; }"}'),
    (Code("f(x)", {"x": 1}), '{"$code":"f(x)","$scope":{"x":1}}'),
    (DBRef("users", OID), '{"$ref":"users","$id":{"$oid":"65a1b2c3d4e5f60718293a4b"}}'),
]


@pytest.mark.parametrize(("value", "cell"), GOLDEN, ids=[repr(v)[:40] for v, _ in GOLDEN])
def test_every_bson_type_has_its_cell_text(value: Any, cell: str) -> None:
    assert format_cell(value) == cell
    assert format_cell(value, formula_guard=False) == cell


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS)
def test_formula_guard_covers_every_trigger(trigger: str) -> None:
    text = f'{trigger}HYPERLINK("http://evil")'
    assert format_cell(text) == "'" + text
    assert guard_formula(text) == "'" + text
    assert format_cell(text, formula_guard=False) == text


def test_formula_guard_is_exactly_the_owasp_set() -> None:
    ascii_triggers = {"=", "+", "-", "@", "\t", "\r", "\x00"}
    assert set(FORMULA_TRIGGERS) == ascii_triggers | {"＝", "＋", "－", "＠"}
    assert format_cell("a＝1") == "a＝1"
    assert format_cell("a=1") == "a=1"
    assert format_cell(" =1") == " =1"
    assert format_cell("'=1") == "'=1"
    assert format_cell("\n=1") == "\n=1"


@pytest.mark.parametrize(
    "number",
    [-5, Int64(-5), -1.5, float("-inf"), -0.0, Decimal128("-1"), decimal.Decimal("-2")],
)
def test_formula_guard_never_touches_numbers(number: Any) -> None:
    assert format_cell(number).startswith("-")
    assert format_cell(number) == format_cell(number, formula_guard=False)


def test_a_str_subclass_is_text_and_guarded() -> None:
    class Name(str):
        pass

    assert format_cell(Name("=1")) == "'=1"
    assert format_cell(Name("ok")) == "ok"


def test_a_bool_subclass_of_int_is_still_a_bool() -> None:
    assert format_cell(True) == "true"


def test_types_outside_bson_are_refused() -> None:
    with pytest.raises(TypeError):
        format_cell(object())


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(value: float) -> None:
    text = format_float(value)
    assert float(text) == value
    assert math.copysign(1, float(text)) == math.copysign(1, value)
    assert text == repr(value)


@given(st.datetimes(timezones=st.none() | st.just(UTC)))
def test_datetimes_are_iso_utc_with_milliseconds(value: datetime) -> None:
    text = format_cell(value)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = datetime.fromisoformat(text[:-1])
    assert parsed == value.replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)


_keys = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4)
_bson_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.integers(-(2**62), 2**62).map(DatetimeMS),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.uuids(),
    st.builds(Binary, st.binary(max_size=8), st.sampled_from([0, 3, 4, 5, 128])),
    st.builds(
        lambda i, e: Decimal128(f"{i}E{e}"), st.integers(-(10**9), 10**9), st.integers(-9, 9)
    ),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.just(MinKey()) | st.just(MaxKey()),
    st.builds(Regex, st.text(max_size=4), st.sampled_from(["", "i", "imsx"])),
    st.builds(Code, st.text(max_size=6)),
)
_bson_values = st.recursive(
    _bson_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=12,
)


@given(_bson_values)
def test_relaxed_json_is_json_util_compact_and_utf8(value: Any) -> None:
    expected = dumps(value, json_options=JSON_OPTIONS, separators=(",", ":"), ensure_ascii=False)
    assert relaxed_json(value) == expected


def test_relaxed_json_writes_aware_datetimes_in_utc() -> None:
    moment = datetime(2024, 1, 2, 5, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))
    assert relaxed_json([moment]) == '[{"$date":"2024-01-02T03:04:05.678Z"}]'


def test_relaxed_json_refuses_types_outside_bson() -> None:
    with pytest.raises(TypeError):
        relaxed_json({"x": object()})
