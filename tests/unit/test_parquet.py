"""Parquet parts: whole row groups per part, the footer assembled from per-part pieces, the
schema pinned by the first rows and carried to the later parts."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson import DatetimeMS, Decimal128, Int64, ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import objects
from domain.formats.arrow_values import to_array
from domain.formats.encoding import EncodingSpec, new_part_encoder
from domain.formats.parquet import NOT_FITTING_WARNING, ParquetPartEncoder
from domain.formats.thrift_compact import decode_struct, encode_struct, shift_offsets
from domain.models import Column, ExportRequest
from tests.unit.test_encoding import _documents

SPEC = EncodingSpec(format="parquet")


def encode_in_parts(
    rows: Sequence[Mapping[str, Any]],
    cuts: list[int],
    columns: list[Column] | None = None,
    spec: EncodingSpec = SPEC,
) -> tuple[list[bytes], dict[str, int]]:
    """The parts of an export cut before each index in `cuts`, as the workflow drives them."""
    bounds = [0, *sorted(set(cuts) - {0}), len(rows)]
    parts: list[bytes] = []
    pieces: list[bytes] = []
    carry: str | None = None
    warnings: dict[str, int] = {}
    for number, (start, end) in enumerate(itertools.pairwise(bounds), 1):
        encoder = new_part_encoder(
            spec, columns, first_part=number == 1, carry=carry, offset=sum(map(len, parts))
        )
        assert isinstance(encoder, ParquetPartEncoder)
        for row in rows[start:end]:
            encoder.write(row)
        last = end == len(rows)
        body = encoder.finish_with_footer(pieces) if last else encoder.finish()
        pieces.append(encoder.footer_piece)
        parts.append(body)
        carry = encoder.carry
        for key, count in encoder.warnings.items():
            warnings[key] = warnings.get(key, 0) + count
        if last:
            break
    return parts, warnings


def read(parts: list[bytes]) -> pa.Table:
    return pq.read_table(io.BytesIO(b"".join(parts)))


def test_types_are_mapped_explicitly() -> None:
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    row = {
        "s": "x",
        "i": 5,
        "l": Int64(2**40),
        "f": 1.5,
        "b": True,
        "d": when,
        "o": oid,
        "dec": Decimal128("1.50"),
        "doc": {"a": 1, "b": ["x", "y"]},
        "arr": [{"k": 1}, {"k": 2}],
    }
    table = read(encode_in_parts([row], [])[0])
    assert {f.name: str(f.type) for f in table.schema} == {
        "s": "string",
        "i": "int64",
        "l": "int64",
        "f": "double",
        "b": "bool",
        "d": "timestamp[ms, tz=UTC]",
        "o": "string",
        "dec": "decimal128(38, 2)",
        "doc": "struct<a: int64, b: list<element: string>>",
        "arr": "list<element: struct<k: int64>>",
    }
    (back,) = table.to_pylist()
    assert back["o"] == "65a1b2c3d4e5f60718293a4b"
    assert back["dec"] == Decimal("1.50")
    assert back["d"] == when
    assert back["arr"] == [{"k": 1}, {"k": 2}]


def test_parts_hold_whole_row_groups_and_one_footer() -> None:
    rows = [{"n": n, "s": f"row {n}"} for n in range(10_000)]
    parts, _ = encode_in_parts(rows, [3_000, 7_000])
    assert parts[0].startswith(b"PAR1")
    assert not parts[1].startswith(b"PAR1")
    assert parts[-1].endswith(b"PAR1")
    table = read(parts)
    assert table.column("n").to_pylist() == list(range(10_000))
    metadata = pq.read_metadata(io.BytesIO(b"".join(parts)))
    assert metadata.num_row_groups == 3
    assert [metadata.row_group(i).num_rows for i in range(3)] == [3_000, 4_000, 3_000]


def test_a_retried_part_gives_the_same_bytes() -> None:
    rows = [{"n": n, "when": datetime(2024, 1, 1, tzinfo=UTC)} for n in range(500)]
    assert encode_in_parts(rows, [200]) == encode_in_parts(rows, [200])


def test_a_value_its_column_cannot_hold_is_null_and_counted() -> None:
    rows: list[dict[str, Any]] = [
        {"n": 1, "doc": {"a": 1}},
        {"n": "two", "doc": {"a": 2, "new": 1}},
        {"n": 3, "z": 1},
    ]
    parts, warnings = encode_in_parts(rows, [1])  # the first part's row decides the schema
    assert read(parts).to_pylist() == [
        {"n": 1, "doc": {"a": 1}},
        {"n": None, "doc": None},
        {"n": 3, "doc": None},
    ]
    assert warnings == {NOT_FITTING_WARNING: 3}  # "two", the unseen field "new", the field "z"


def test_a_number_among_dates_is_not_a_timestamp() -> None:
    """pyarrow infers `[date, int]` as a list of timestamps, the int a count of microseconds:
    this one lies before year 1, and reading the file back raised `OverflowError: date value out
    of range` (found by the property test below)."""
    rows = [{"0": [datetime(2000, 1, 1), -62135596800000001]}]
    parts, warnings = encode_in_parts(rows, [])
    table = read(parts)
    assert str(table.schema.field("0").type) == "string"
    assert table.to_pylist() == [{"0": '[{"$date":"2000-01-01T00:00:00Z"},-62135596800000001]'}]
    assert warnings == {}


def test_a_later_number_or_a_date_beyond_year_9999_in_a_timestamp_is_null_and_counted() -> None:
    when = datetime(2000, 1, 2, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"t": when, "l": [when], "s": {"a": when}},  # the first part types all three as dates
        {"t": 5, "l": [when, -62135596800000001], "s": {"a": 1.5}},
        {"t": DatetimeMS(-62135596800001), "l": [None], "s": {"a": None}},  # 1 ms before year 1
        {"t": DatetimeMS(253402300799999), "l": [], "s": {}},  # the last ms of year 9999
    ]
    parts, warnings = encode_in_parts(rows, [1])
    table = read(parts)
    assert [str(f.type) for f in table.schema] == [
        "timestamp[ms, tz=UTC]",
        "list<element: timestamp[us, tz=UTC]>",
        "struct<a: timestamp[us, tz=UTC]>",
    ]
    assert table.to_pylist() == [
        {"t": when, "l": [when], "s": {"a": when}},
        {"t": None, "l": None, "s": None},
        {"t": None, "l": [None], "s": {"a": None}},
        {"t": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "l": [], "s": {"a": None}},
    ]
    assert warnings == {NOT_FITTING_WARNING: 4}


def test_mixed_types_in_the_first_rows_make_a_string_column_of_cell_text() -> None:
    rows: list[dict[str, Any]] = [{"v": 1}, {"v": "a"}, {"v": [1, "x"]}, {"v": None}]
    assert read(encode_in_parts(rows, [])[0]).column("v").to_pylist() == [
        "1",
        "a",
        '[1,"x"]',
        None,
    ]


def test_requested_columns_and_hidden_fields() -> None:
    spec = EncodingSpec(format="parquet", hidden_fields=frozenset({"_id", "a.h"}))
    rows = [{"_id": 1, "a": {"b": 2, "h": 3}, "c": "x"}]
    columns = [Column(path="a.b", header="B"), Column(path="a"), Column(path="_id")]
    table = read(encode_in_parts(rows, [], columns, spec)[0])
    assert table.to_pylist() == [{"B": 2, "a": {"b": 2}, "_id": None}]
    whole = read(encode_in_parts(rows, [], None, spec)[0])
    assert whole.to_pylist() == [{"a": {"b": 2}, "c": "x"}]


def test_thrift_round_trip_and_shift() -> None:
    out = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2, 3]}), out)
    data = out.getvalue()
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length : -8]
    assert encode_struct(decode_struct(footer)) == footer
    moved = shift_offsets(footer, 1000)
    wrapped = b"PAR1" + moved + len(moved).to_bytes(4, "little") + b"PAR1"
    column = pq.read_metadata(io.BytesIO(wrapped)).row_group(0).column(0)
    original = pq.read_metadata(io.BytesIO(data)).row_group(0).column(0)
    assert column.data_page_offset == original.data_page_offset + 1000


def test_parquet_requests_objects_and_refusals() -> None:
    request = ExportRequest(collection="c", format="parquet", report_id="r")
    assert objects.content_type(request) == "application/vnd.apache.parquet"
    assert objects.download_filename(request, "e1") == "r-e1.parquet"
    with pytest.raises(ValueError, match="compresses its columns itself"):
        ExportRequest(collection="c", format="parquet", compression="gzip")
    with pytest.raises(ValueError, match="needs the schema"):
        new_part_encoder(SPEC, None, first_part=False)


def _rows(table: pa.Table) -> list[Any]:
    """The table's rows, NaN spelled out (NaN never equals NaN)."""

    def spelled(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: spelled(v) for k, v in value.items()}
        if isinstance(value, list):
            return [spelled(v) for v in value]
        return "NaN" if isinstance(value, float) and math.isnan(value) else value

    return [spelled(row) for row in table.to_pylist()]


@settings(max_examples=80, deadline=None)
@given(st.lists(_documents, max_size=12), st.lists(st.integers(1, 11), max_size=3))
def test_any_split_into_parts_holds_every_row_as_the_first_part_typed_it(
    documents: list[dict[str, Any]], cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c < len(documents)]
    table = read(encode_in_parts(documents, cuts)[0])
    first_part = documents[: min(cuts, default=len(documents))]
    schema = read(encode_in_parts(first_part, [])[0]).schema
    assert table.schema == schema
    expected = pa.table(
        {f.name: to_array([d.get(f.name) for d in documents], f.type)[0] for f in schema},
        schema=schema,
    )
    if table.num_columns:  # Arrow cannot count rows of no columns (documents all `{}`)
        assert _rows(table) == _rows(expected)


def test_mostly_distinct_columns_are_delta_encoded_and_read_back_everywhere(
    tmp_path: Path,
) -> None:
    """Serial numbers, certificates and event times take delta encodings (README, Formats);
    the other columns keep dictionaries, nested ones included; every reader gets the values."""
    import duckdb
    import polars as pl

    start = datetime(2023, 1, 1, tzinfo=UTC)
    rows = [
        {
            "n": n,
            "certificate": f"INS-2024-{n:07d}",
            "when": start + timedelta(minutes=37 * n),
            "city": ["Oslo", "Paris"][n % 2],
            "score": n % 7,
            "address": {"zip": f"{n % 3:05d}", "street": f"street {n}"},
            "tags": ["a", "b"][: n % 3],
        }
        for n in range(3_000)
    ]
    parts, _ = encode_in_parts(rows, [1_000, 2_000])
    data = b"".join(parts)
    metadata = pq.read_metadata(io.BytesIO(data))
    encodings = {
        metadata.schema.column(i).path: set(metadata.row_group(0).column(i).encodings)
        for i in range(metadata.num_columns)
    }
    assert "DELTA_BINARY_PACKED" in encodings["n"]
    assert "DELTA_BINARY_PACKED" in encodings["when"]
    assert "DELTA_BYTE_ARRAY" in encodings["certificate"]
    assert "RLE_DICTIONARY" in encodings["city"]
    assert "RLE_DICTIONARY" in encodings["address.zip"]
    table = read(parts)
    assert table.column("n").to_pylist() == [r["n"] for r in rows]
    assert table.column("certificate").to_pylist() == [r["certificate"] for r in rows]
    assert table.column("when").to_pylist() == [r["when"] for r in rows]
    path = tmp_path / "export.parquet"
    path.write_bytes(data)
    relation = duckdb.sql(f"select count(*), sum(n) from '{path}'")
    assert relation is not None
    assert relation.fetchall() == [(3_000, 4_498_500)]
    assert pl.read_parquet(path)["certificate"].to_list() == [r["certificate"] for r in rows]
