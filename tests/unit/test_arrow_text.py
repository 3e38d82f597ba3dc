"""The Arrow CSV text of a batch is what the stdlib csv writer (the encoder's dialect) writes for
the same cells: quoting, doubled quotes, the lone empty cell, the formula guard, ObjectIds."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pyarrow as pa
import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.formats.arrow_text import (
    NeedsCsvModule,
    csv_cells,
    csv_text,
    guarded,
    iso_dates,
    oid_hex,
    quoted,
)
from domain.formats.cell_format import format_datetime, guard_formula

_cells = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list(",\"\r\n '=+-@\tab\u00e9＝＋－＠")), max_size=6),
    st.text(max_size=6).filter(lambda t: "\x00" not in t),
)


def _by_csv_module(rows: list[list[str | None]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return out.getvalue()


def _by_arrow(rows: list[list[str | None]], width: int, guard: bool) -> str:
    columns = [pa.array([row[i] for row in rows], pa.string()) for i in range(width)]
    by_checks = csv_text([csv_cells(c, guard) for c in columns])
    assert by_checks == csv_text([quoted(guarded(c) if guard else c) for c in columns])
    return by_checks


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda w: st.tuples(
            st.just(w), st.lists(st.lists(_cells, min_size=w, max_size=w), max_size=12)
        )
    ),
    st.booleans(),
)
def test_any_string_cells_give_the_csv_modules_text(
    shaped: tuple[int, list[list[str | None]]], guard: bool
) -> None:
    width, rows = shaped
    expected = [[guard_formula(c) if guard and c else c for c in row] for row in rows]
    assert _by_arrow(rows, width, guard) == _by_csv_module(expected)


def test_a_lone_empty_cell_is_quoted_as_the_csv_module_does() -> None:
    rows: list[list[str | None]] = [[None], [""], ["x"]]
    assert _by_arrow(rows, 1, True) == _by_csv_module(rows) == '""\r\n""\r\nx\r\n'


def test_a_nul_is_left_to_the_csv_module() -> None:
    with pytest.raises(NeedsCsvModule):
        quoted(pa.array(["a\x00b"]))


def test_object_ids_as_hex_with_nulls_and_slices() -> None:
    ids = [ObjectId(), None, ObjectId(), ObjectId()]
    storage = pa.array([None if i is None else i.binary for i in ids], pa.binary(12))
    assert oid_hex(storage).to_pylist() == [None if i is None else str(i) for i in ids]
    assert oid_hex(storage.slice(1)).to_pylist() == [None, str(ids[2]), str(ids[3])]
    assert oid_hex(storage.slice(2, 1)).to_pylist() == [str(ids[2])]


_MS_RANGE = (-30_610_224_000_000, 253_402_300_799_999)  # the years 1000 to 9999


@settings(max_examples=100, deadline=None)
@given(st.lists(st.none() | st.integers(*_MS_RANGE), max_size=40))
def test_dates_as_the_cell_formatter_writes_them(millis: list[int | None]) -> None:
    array = pa.array(millis, pa.int64()).cast(pa.timestamp("ms"))
    epoch = datetime(1970, 1, 1)
    expected = [
        None if ms is None else format_datetime(epoch + timedelta(milliseconds=ms)) for ms in millis
    ]
    assert iso_dates(array).to_pylist() == expected
    assert iso_dates(array.slice(len(millis) // 2)).to_pylist() == expected[len(millis) // 2 :]
