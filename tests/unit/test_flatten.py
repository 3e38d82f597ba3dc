"""Dotted paths: frozen columns of sampled documents, and reading a value at a path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from hypothesis import given
from hypothesis import strategies as st

from domain.formats.column_access import NEVER_A_KEY, paths_to_strip, plan_columns
from domain.formats.flatten import (
    MAX_PATH_LENGTH,
    MISSING,
    freeze_columns,
    is_document,
    strip_paths,
    value_at,
)
from domain.models import Column


def paths(columns: list[Column]) -> list[str]:
    return [column.path for column in columns]


def test_paths_in_first_seen_order_across_documents() -> None:
    rows = [
        {"_id": 1, "name": "Ada", "address": {"city": "London", "zip": "N1"}},
        {"_id": 2, "email": "b@x", "address": {"country": "UK", "city": "Leeds"}, "name": "Bo"},
    ]
    assert paths(freeze_columns(rows)) == [
        "_id",
        "name",
        "address.city",
        "address.zip",
        "email",
        "address.country",
    ]


def test_columns_have_no_header_so_the_title_is_the_path() -> None:
    (column,) = freeze_columns([{"a": {"b": 1}}])
    assert column == Column(path="a.b")
    assert column.title == "a.b"


def test_arrays_are_one_cell_even_when_they_hold_documents() -> None:
    rows = [{"tags": ["x", "y"], "lines": [{"sku": "A"}, {"sku": "B"}], "deep": {"list": [1]}}]
    assert paths(freeze_columns(rows)) == ["tags", "lines", "deep.list"]


def test_hidden_fields_never_become_columns() -> None:
    rows = [{"_id": 1, "name": "Ada", "_chunk": {"k": 1}}, {"_id": 2, "name": "Bo"}]
    assert paths(freeze_columns(rows, frozenset({"_id", "_chunk"}))) == ["name"]


def test_a_hidden_name_hides_only_the_top_level_field() -> None:
    rows = [{"meta": {"_id": 1}}]
    assert paths(freeze_columns(rows, frozenset({"_id"}))) == ["meta._id"]


def test_hidden_dotted_paths_never_become_columns() -> None:
    rows = [{"a": {"b": 1, "c": 2}, "d": {"e": 3}}]
    # As after the user's own {$unset: "d.e"}: "d" stays, an empty document.
    assert paths(freeze_columns(rows, {"a.b", "d.e"})) == ["a.c", "d"]


def test_an_empty_embedded_document_is_one_cell() -> None:
    assert paths(freeze_columns([{"a": {}, "b": 1}])) == ["a", "b"]


def test_a_field_that_is_a_value_in_one_row_and_a_document_in_another_keeps_both() -> None:
    rows: list[dict[str, Any]] = [{"a": 1}, {"a": {"b": 2}}]
    assert paths(freeze_columns(rows)) == ["a", "a.b"]
    assert value_at(rows[1], "a") == {"b": 2}
    assert value_at(rows[0], "a.b") is MISSING


def test_names_that_cannot_be_path_segments() -> None:
    rows = [{"$weird": 1, "": 2, "ok": {"$x": 1, "y": 2}, "fine": {"z": 3}}]
    # Top-level: skipped. Nested: the embedded document stays one cell.
    assert paths(freeze_columns(rows)) == ["ok", "fine.z"]


def test_paths_never_exceed_what_a_column_accepts() -> None:
    long_key = "k" * 300
    rows = [{long_key: {long_key: 1}, "x" * (MAX_PATH_LENGTH + 1): 1}]
    assert paths(freeze_columns(rows)) == [long_key]


def test_no_sample_no_columns() -> None:
    assert freeze_columns([]) == []


def test_missing_is_not_none() -> None:
    assert MISSING is not None
    assert repr(MISSING) == "MISSING"


def test_value_at_reads_nested_paths() -> None:
    row = {"a": {"b": {"c": 3}}, "n": None}
    assert value_at(row, "a.b.c") == 3
    assert value_at(row, "a.b") == {"c": 3}
    assert value_at(row, "n") is None
    assert value_at(row, "a.x") is MISSING
    assert value_at(row, "nope") is MISSING
    assert value_at(row, "n.deeper") is MISSING


def test_value_at_indexes_arrays_with_numeric_segments() -> None:
    row = {"items": [{"sku": "A"}, {"sku": "B"}], "t": ("x",)}
    assert value_at(row, "items.1.sku") == "B"
    assert value_at(row, "items.2.sku") is MISSING
    assert value_at(row, "items.sku") is MISSING
    assert value_at(row, "t.0") == "x"


def test_value_at_finds_field_names_that_contain_dots() -> None:
    row = {"a.b": 1, "c": {"d.e": 2}, "x": {"y": 1}, "x.z": 3}
    assert value_at(row, "a.b") == 1
    assert value_at(row, "c.d.e") == 2
    assert value_at(row, "x.y") == 1
    assert value_at(row, "x.z") == 3  # "x" exists but has no "z": the dotted key is found
    assert paths(freeze_columns([row])) == ["a.b", "c.d.e", "x.y", "x.z"]


def test_value_at_prefers_the_nested_reading_as_mongodb_does() -> None:
    assert value_at({"a": {"b": "nested"}, "a.b": "dotted"}, "a.b") == "nested"


def test_value_at_reads_any_mapping() -> None:
    son = SON([("a", SON([("b", 1)]))])
    raw = RawBSONDocument(bson.encode({"a": {"b": 1}}))
    assert value_at(son, "a.b") == 1
    assert value_at(raw, "a.b") == 1
    assert is_document(son)
    assert is_document(raw)
    assert not is_document([1])


def test_plan_columns_reads_hidden_fields_from_a_key_no_document_has() -> None:
    columns = [
        Column(path="_id"),
        Column(path="a.b"),
        Column(path="c"),
        Column(path="_id.x"),
        Column(path="s.k"),
        Column(path="s.k.deep"),
        Column(path="s.other"),
        Column(path="s"),
    ]
    assert plan_columns(columns, frozenset({"_id", "s.k"})) == [
        (NEVER_A_KEY, None),
        ("a", ("a", "b")),
        ("c", None),
        (NEVER_A_KEY, None),
        (NEVER_A_KEY, None),
        (NEVER_A_KEY, None),
        ("s", ("s", "other")),
        ("s", None),
    ]
    # Only a column above a hidden path needs the rows stripped first.
    assert paths_to_strip(columns, {"_id", "s.k"}) == [("s", "k")]
    assert paths_to_strip([Column(path="s.other")], {"_id", "s.k"}) == []
    assert paths_to_strip(None, {"s.k", "_id"}) == [("_id",), ("s", "k")]


def test_strip_paths_copies_only_what_it_changes() -> None:
    row = {"_id": 1, "a": {"b": 1, "c": {"d": 2}}, "keep": {"x": 1}, "arr": [{"i": 1}]}
    stripped = strip_paths(row, [("_id",), ("a", "c", "d"), ("arr", "i"), ("nope", "x")])
    assert stripped == {"a": {"b": 1, "c": {}}, "keep": {"x": 1}, "arr": [{"i": 1}]}
    assert row == {"_id": 1, "a": {"b": 1, "c": {"d": 2}}, "keep": {"x": 1}, "arr": [{"i": 1}]}
    assert stripped["keep"] is row["keep"]
    assert strip_paths(row, [("nope",)]) is row


_keys = st.text(st.characters(codec="utf-8", exclude_characters=".$\x00"), min_size=1, max_size=5)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=12,
)
_documents = st.dictionaries(_keys, _values, max_size=6)


def _leaves(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(_leaves(value, path + "."))
        else:
            leaves[path] = value
    return leaves


@given(_documents)
def test_frozen_columns_are_exactly_the_leaves_and_read_back(document: dict[str, Any]) -> None:
    leaves = _leaves(document)
    columns = freeze_columns([document])
    assert paths(columns) == list(leaves)
    for column in columns:
        assert value_at(document, column.path) == leaves[column.path]


@given(st.lists(_documents, max_size=4), st.sets(_keys, max_size=3))
def test_frozen_columns_are_unique_and_never_hidden(
    documents: list[dict[str, Any]], hidden: set[str]
) -> None:
    found = paths(freeze_columns(documents, frozenset(hidden)))
    assert len(found) == len(set(found))
    assert not any(path.split(".")[0] in hidden for path in found)
