"""Keyset bounds, the Python mirror of BSON order, and cursors in Extended JSON.

The property tests evaluate the bounds with a small Python model of MongoDB's matching rules
(type brackets, null matches missing, NaN never compares); the integration tests check the same
bounds on the real engines.
"""

from __future__ import annotations

import datetime
import functools
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.pipeline import keyset
from domain.pipeline.extended_json import ExtendedJsonError, cursor_from_json, cursor_to_json
from domain.pipeline.keyset import CursorError, after, key_values, sort_key

OID_A = ObjectId("5ca4bbc7a2dd94ee5816238c")
OID_B = ObjectId("5ca4bbc7a2dd94ee5816238d")
DATE = datetime.datetime(2021, 3, 4, 5, 6, 7, 8000)
LATER_THAN_NUMBER = [
    "string",
    "object",
    "binData",
    "objectId",
    "bool",
    "date",
    "timestamp",
    "regex",
]


# ---------------------------------------------------------------------------------------------
# Golden bounds


def test_after_a_number_ascending() -> None:
    assert after([("pop", 1)], (5,)) == {
        "$or": [{"pop": {"$gt": 5}}, {"pop": {"$type": LATER_THAN_NUMBER}}]
    }


def test_after_a_number_descending_includes_nan_null_missing_and_empty_arrays() -> None:
    assert after([("pop", -1)], (5,)) == {
        "$or": [
            {"pop": {"$lt": 5}},
            {"pop": {"$type": "number", "$not": {"$gte": -math.inf}}},
            {"pop": None},
            {"pop": []},
        ]
    }


def test_after_a_string_descending_lists_the_earlier_brackets() -> None:
    assert after([("name", -1)], ("m",)) == {
        "$or": [
            {"name": {"$lt": "m"}},
            {"name": {"$type": ["number"]}},
            {"name": None},
            {"name": []},
        ]
    }


def test_after_null_ascending_is_every_later_bracket() -> None:
    assert after([("k", 1)], (None,)) == {"k": {"$type": ["number", *LATER_THAN_NUMBER]}}


def test_after_null_descending_is_only_the_empty_array() -> None:
    assert after([("k", -1)], (None,)) == {"k": []}


def test_after_the_last_bracket_ascending() -> None:
    assert after([("at", 1)], (Timestamp(5, 1),)) == {
        "$or": [{"at": {"$gt": Timestamp(5, 1)}}, {"at": {"$type": ["regex"]}}]
    }


def test_after_nan() -> None:
    assert after([("x", 1)], (math.nan,)) == {
        "$or": [{"x": {"$gte": -math.inf}}, {"x": {"$type": LATER_THAN_NUMBER}}]
    }
    assert after([("x", -1)], (math.nan,)) == {"$or": [{"x": None}, {"x": []}]}


def test_compound_key_with_a_tie_break() -> None:
    assert after([("state", 1), ("pop", -1), ("_id", 1)], ("MA", 10, OID_A)) == {
        "$or": [
            {"state": {"$gt": "MA"}},
            {"state": {"$type": LATER_THAN_NUMBER[1:]}},
            {"state": "MA", "pop": {"$lt": 10}},
            {"state": "MA", "pop": {"$type": "number", "$not": {"$gte": -math.inf}}},
            {"state": "MA", "pop": None},
            {"state": "MA", "pop": []},
            {"state": "MA", "pop": 10, "_id": {"$gt": OID_A}},
            {"state": "MA", "pop": 10, "_id": {"$type": ["bool", "date", "timestamp", "regex"]}},
        ]
    }


def test_equality_with_a_document_null_or_nan() -> None:
    bound = after([("k", 1), ("_id", 1)], ({"a": 1}, 3))
    assert bound["$or"][2] == {"k": {"$eq": {"a": 1}}, "_id": {"$gt": 3}}
    assert after([("k", 1), ("_id", 1)], (None, 3))["$or"][1] == {"k": None, "_id": {"$gt": 3}}
    nan_equal = after([("k", 1), ("_id", 1)], (math.nan, 3))["$or"][2]
    assert nan_equal == {"k": keyset.NAN_MATCH, "_id": {"$gt": 3}}


def test_inclusive_adds_the_equal_row() -> None:
    assert after([("_id", 1)], (7,), inclusive=True) == {
        "$or": [{"_id": {"$gt": 7}}, {"_id": {"$type": LATER_THAN_NUMBER}}, {"_id": 7}]
    }


@pytest.mark.parametrize(
    ("keys", "cursor", "message"),
    [
        ([("a", 1)], (1, 2), "a cursor of 2 values for a key of 1 fields"),
        ([("a", 2)], (1,), "sort direction of 'a' must be 1 or -1, not 2"),
        ([("a", 1)], ([1],), "sort key 'a' of the row with _id None is an array"),
        ([("a", 1)], (MaxKey(),), "sort key 'a' of the row with _id None is a MaxKey"),
    ],
)
def test_after_refuses_bad_input(keys: Any, cursor: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        after(keys, cursor)


# ---------------------------------------------------------------------------------------------
# Reading a cursor from a row


def test_key_values_reads_dotted_paths_and_missing_as_null() -> None:
    row = {"_id": 1, "a": {"b": 2}, "c": None}
    assert key_values(row, [("a.b", 1), ("c", -1), ("d", 1), ("a.x.y", 1), ("_id", 1)]) == (
        2,
        None,
        None,
        None,
        1,
    )


def test_key_values_refuses_arrays_with_the_row_named() -> None:
    with pytest.raises(CursorError) as error:
        key_values({"_id": "z1", "tags": ["a", "b"]}, [("tags", 1), ("_id", 1)])
    assert str(error.value) == (
        "sort key 'tags' of the row with _id 'z1' is an array: MongoDB sorts an array by its "
        "smallest or largest element, so no keyset can resume after it; sort on a scalar field "
        "or $unwind the array first"
    )


def test_key_values_refuses_a_path_through_an_array() -> None:
    with pytest.raises(CursorError, match=r"'items\.sku' of the row with _id 1 is an array"):
        key_values({"_id": 1, "items": [{"sku": "a"}]}, [("items.sku", 1)])


@pytest.mark.parametrize("value", [Regex("a"), MinKey(), MaxKey()])
def test_key_values_refuses_types_no_bound_can_page(value: Any) -> None:
    with pytest.raises(CursorError, match="exports cannot be paged on this BSON type"):
        key_values({"_id": 1, "k": value}, [("k", 1)])


# ---------------------------------------------------------------------------------------------
# The Python mirror of BSON order


def test_sort_key_follows_the_bson_bracket_order() -> None:
    ordered = [
        MinKey(),
        None,
        math.nan,
        -math.inf,
        -3,
        Decimal128("-2.5"),
        0,
        0.5,
        Int64(1),
        math.inf,
        "",
        "B",
        "a",
        "é",
        {},
        {"a": 1},
        {"a": 1, "b": 0},
        {"a": 2},
        {"b": 0},
        [1],
        b"\xff",
        Binary(b"\x00\x00", 0),
        Binary(b"\x00\x00", 5),
        OID_A,
        OID_B,
        False,
        True,
        datetime.datetime(1960, 1, 1),
        DATE,
        Timestamp(1, 2),
        Timestamp(2, 1),
        Regex("a"),
        MaxKey(),
    ]
    assert sorted(reversed(ordered), key=sort_key) == ordered


def test_numbers_of_every_type_compare_by_value() -> None:
    assert sort_key(1) == sort_key(Int64(1)) == sort_key(1.0) == sort_key(Decimal128("1.00"))
    assert sort_key(-0.0) == sort_key(0)
    assert sort_key(Decimal128("NaN")) == sort_key(math.nan)
    assert sort_key(2**62) < sort_key(float(2**62) + 2**11)


def test_aware_and_naive_dates_are_the_same_instant() -> None:
    aware = DATE.replace(tzinfo=datetime.UTC)
    assert sort_key(aware) == sort_key(DATE)


# ---------------------------------------------------------------------------------------------
# A model of MongoDB matching, to check the bounds select exactly the rows after the cursor


_MISSING = object()
_ALIASES = {
    "number": keyset.NUMBER,
    "string": keyset.STRING,
    "object": keyset.OBJECT,
    "binData": keyset.BIN_DATA,
    "objectId": keyset.OBJECT_ID,
    "bool": keyset.BOOL,
    "date": keyset.DATE,
    "timestamp": keyset.TIMESTAMP,
    "regex": keyset.REGEX,
}


def _get(doc: Mapping[str, Any], path: str) -> Any:
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _equal(value: Any, operand: Any) -> bool:
    if operand is None:
        return value is _MISSING or value is None
    if value is _MISSING:
        return False
    if isinstance(operand, list):
        return isinstance(value, list) and value == operand
    return sort_key(value) == sort_key(operand)


def _compare(value: Any, operand: Any, operator: str) -> bool:
    if value is _MISSING or keyset.bracket(value) != keyset.bracket(operand):
        return False
    if keyset.is_nan(value) or keyset.is_nan(operand):
        both = keyset.is_nan(value) and keyset.is_nan(operand)
        return both and operator in ("$gte", "$lte")
    left, right = sort_key(value), sort_key(operand)
    return {
        "$gt": left > right,
        "$gte": left >= right,
        "$lt": left < right,
        "$lte": left <= right,
    }[operator]


def _field_matches(value: Any, condition: Any) -> bool:
    if not (isinstance(condition, Mapping) and condition and all(k[0] == "$" for k in condition)):
        return _equal(value, condition)
    for operator, operand in condition.items():
        if operator == "$eq":
            ok = _equal(value, operand)
        elif operator in ("$gt", "$gte", "$lt", "$lte"):
            ok = _compare(value, operand, operator)
        elif operator == "$type":
            names = [operand] if isinstance(operand, str) else operand
            ok = value is not _MISSING and any(
                keyset.bracket(value) == _ALIASES[name] for name in names
            )
        elif operator == "$exists":
            ok = (value is not _MISSING) == operand
        elif operator == "$not":
            ok = not _field_matches(value, operand)
        else:
            raise AssertionError(f"the model does not know {operator}")
        if not ok:
            return False
    return True


def matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$or":
            if not any(matches(sub, doc) for sub in condition):
                return False
        elif not _field_matches(_get(doc, key), condition):
            return False
    return True


def _ordered(docs: Sequence[Mapping[str, Any]], keys: Sequence[tuple[str, int]]) -> list[Any]:
    def compare(left: Mapping[str, Any], right: Mapping[str, Any]) -> int:
        for path, direction in keys:
            a, b = _get(left, path), _get(right, path)
            ka = sort_key(None if a is _MISSING else a)
            kb = sort_key(None if b is _MISSING else b)
            if ka != kb:
                return direction if ka > kb else -direction
        return 0

    return sorted(docs, key=functools.cmp_to_key(compare))


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, -0.0, 2.0, 3.0, math.nan, -math.inf, math.inf, Decimal128("NaN")]),
    st.decimals(allow_nan=False, places=2, min_value=-5, max_value=5).map(
        lambda d: Decimal128(Decimal(d))
    ),
    st.sampled_from(["", "a", "B", "ab", "é"]),
    st.sampled_from([OID_A, OID_B]),
    st.sampled_from([DATE, datetime.datetime(1969, 12, 31, 23, 59, 59, 999000)]),
    st.sampled_from([Timestamp(1, 1), Timestamp(1, 2)]),
    st.sampled_from([b"", b"\x01", Binary(b"\x01", 5)]),
)
_values = st.one_of(
    _scalars,
    st.dictionaries(st.sampled_from(["a", "b"]), _scalars, max_size=2),
    st.just(_MISSING),
)
_fields = ["a", "b", "c.d"]


def _doc(index: int, values: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": index}
    for path, value in values.items():
        if value is _MISSING:
            continue
        if "." in path:
            head, tail = path.split(".")
            doc.setdefault(head, {})[tail] = value
        else:
            doc[path] = value
    return doc


@settings(max_examples=500, deadline=None)
@given(
    rows=st.lists(st.fixed_dictionaries({f: _values for f in _fields}), min_size=1, max_size=25),
    key_fields=st.lists(st.sampled_from(_fields), min_size=1, max_size=3, unique=True),
    directions=st.lists(st.sampled_from([1, -1]), min_size=4, max_size=4),
    position=st.integers(min_value=0),
    inclusive=st.booleans(),
)
def test_the_bound_selects_exactly_the_rows_after_the_cursor(
    rows: list[dict[str, Any]],
    key_fields: list[str],
    directions: list[int],
    position: int,
    inclusive: bool,
) -> None:
    docs = [_doc(index, values) for index, values in enumerate(rows)]
    keys = [(field, directions[n]) for n, field in enumerate(key_fields)]
    keys.append(("_id", directions[-1]))
    ordered = _ordered(docs, keys)
    at = position % len(ordered)
    cursor = key_values(ordered[at], keys)
    bound = after(keys, cursor, inclusive=inclusive)
    selected = {doc["_id"] for doc in docs if matches(bound, doc)}
    expected = {doc["_id"] for doc in ordered[at if inclusive else at + 1 :]}
    assert selected == expected


def test_the_model_agrees_that_empty_arrays_sort_last_descending() -> None:
    """`[]` sorts below everything; a descending bound must still reach it."""
    bound = after([("k", -1), ("_id", 1)], ("a", 1))
    assert matches(bound, {"_id": 0, "k": []})
    assert not matches(after([("k", 1), ("_id", 1)], ("a", 1)), {"_id": 0, "k": []})


# ---------------------------------------------------------------------------------------------
# Cursors as canonical Extended JSON


def test_cursor_round_trip_keeps_every_bson_type() -> None:
    cursor = (
        5,
        Int64(5),
        5.0,
        Decimal128("5.0"),
        OID_A,
        DATE,
        None,
        "x",
        True,
        {"a": [1, Int64(2)]},
        Timestamp(7, 8),
        Binary(b"\x01", 5),
        b"\x02",
    )
    text = cursor_to_json(cursor)
    assert text.startswith('[{"$numberInt":"5"},{"$numberLong":"5"},{"$numberDouble":"5.0"},')
    back = cursor_from_json(text)
    assert back == cursor
    assert [type(value) for value in back] == [type(value) for value in cursor]
    assert type(back[9]["a"][1]) is Int64


def test_cursor_round_trip_of_nan_and_aware_dates() -> None:
    back = cursor_from_json(cursor_to_json((math.nan, DATE.replace(tzinfo=datetime.UTC))))
    assert math.isnan(back[0])
    assert back[1] == DATE
    assert back[1].tzinfo is None
    aware = cursor_from_json(cursor_to_json((DATE,)), tz_aware=True)
    assert aware[0] == DATE.replace(tzinfo=datetime.UTC)


def test_a_large_python_int_comes_back_as_the_int64_it_was_stored_as() -> None:
    assert cursor_from_json(cursor_to_json((2**40,))) == (Int64(2**40),)


def test_no_cursor_stays_none() -> None:
    assert cursor_from_json(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "cursor: is not JSON"),
        ('{"a": 1}', "cursor: must be a JSON array of sort key values"),
        ('[1, {"$oid": "nope"}]', "cursor[1]: invalid Extended JSON $oid"),
    ],
)
def test_a_broken_cursor_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ExtendedJsonError, match=message.replace("[", r"\[").replace("$", r"\$")):
        cursor_from_json(text)
