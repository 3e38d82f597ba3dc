"""Reading a batch's columns level by level gives exactly what `value_at` reads row by row:
missing fields, nulls, array indexes, keys containing dots, shared prefixes, hidden columns."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.formats.column_access import plan_columns
from domain.formats.column_values import column_values
from domain.formats.flatten import MISSING, value_at
from domain.models import Column
from tests.unit.test_encoding import _documents, _values

_segments = st.sampled_from(["a", "b", "0", "1", "a.b", "c"])
_paths = st.lists(_segments, min_size=1, max_size=3).map(".".join)
_shaped = st.recursive(
    _values,
    lambda children: (
        st.dictionaries(_segments, children, max_size=3) | st.lists(children, max_size=3)
    ),
    max_leaves=10,
)


def _expected(rows: list[Any], columns: list[Column]) -> list[list[Any]]:
    out = []
    for column in columns:
        values = [value_at(row, column.path) for row in rows]
        out.append([None if v is MISSING else v for v in values])
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(_segments, _shaped, max_size=4), max_size=6),
    st.lists(_paths, min_size=1, max_size=5),
)
def test_any_rows_and_paths_read_as_value_at_reads_them(
    rows: list[dict[str, Any]], paths: list[str]
) -> None:
    columns = [Column(path=p) for p in paths]
    assert column_values(rows, plan_columns(columns, ())) == _expected(rows, columns)


@settings(max_examples=50, deadline=None)
@given(st.lists(_documents, max_size=6))
def test_generated_documents(rows: list[dict[str, Any]]) -> None:
    columns = [Column(path=p) for p in ("a", "a.b", "b.c.d")]
    assert column_values(rows, plan_columns(columns, ())) == _expected(rows, columns)


def test_shared_prefixes_and_a_hidden_column() -> None:
    rows: list[dict[str, Any]] = [
        {"business": {"name": "A", "address": {"city": "X", "zip": "1"}}},
        {"business": {"name": "B", "address": None}},
        {"business.address": {"city": "dotted"}},
        {},
    ]
    paths = ["business.name", "business.address.city", "business.address.zip", "secret"]
    columns = [Column(path=p) for p in paths]
    plan = plan_columns(columns, ["secret"])
    assert column_values(rows, plan) == [
        ["A", "B", None, None],
        ["X", None, "dotted", None],
        ["1", None, None, None],
        [None, None, None, None],
    ]
