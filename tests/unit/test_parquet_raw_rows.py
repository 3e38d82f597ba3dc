"""Parquet from raw rows (PyMongoArrow decoding, as the worker reads them) is the Parquet of the
same rows decoded in Python, byte for byte and warning for warning: on typed reports, where
PyMongoArrow decodes the batches, and on every case that must go through Python."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
import pyarrow.parquet as pq
import pytest
from bson import DatetimeMS, Decimal128, Int64, ObjectId, json_util
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings
from hypothesis import strategies as st

from connections.decoding import CODEC_OPTIONS
from domain.formats.encoding import EncodingSpec, freeze_columns, new_part_encoder
from domain.formats.parquet import CONVERT_ROWS, NOT_FITTING_WARNING, ParquetPartEncoder
from domain.models import Column
from tests.unit.test_arrow_engines import _typed_document, report
from tests.unit.test_encoding import _documents
from tests.unit.test_parquet import encode_in_parts, read

ENCODE: CodecOptions[Any] = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)
INVALID_MARK = "bad ÿ".encode()
INVALID_UTF8 = b"bad \xff\xfe"
"""A string holding INVALID_MARK is written with invalid UTF-8 in its place (same length)."""
RAW: CodecOptions[RawBSONDocument] = CODEC_OPTIONS.with_options(document_class=RawBSONDocument)


def _both(documents: Sequence[dict[str, Any]]) -> tuple[list[Any], list[RawBSONDocument]]:
    """The documents as the worker's client decodes them, and as it reads them raw."""
    data = [
        bson.encode(doc, codec_options=ENCODE).replace(INVALID_MARK, INVALID_UTF8)
        for doc in documents
    ]
    return [bson.decode(d, CODEC_OPTIONS) for d in data], [RawBSONDocument(d, RAW) for d in data]


def _arrow_batches(rows: Sequence[Any], columns: list[Column] | None) -> int:
    encoder = new_part_encoder(EncodingSpec(format="parquet"), columns, first_part=True)
    assert isinstance(encoder, ParquetPartEncoder)
    for row in rows:
        encoder.write(row)
    encoder.finish(last=True)
    return encoder.arrow_batches


def assert_same_parquet(
    documents: Sequence[dict[str, Any]],
    columns: list[Column] | None,
    cuts: Sequence[int] = (),
) -> tuple[list[bytes], dict[str, int]]:
    python_rows, raw_rows = _both(documents)
    reference = encode_in_parts(python_rows, list(cuts), columns)
    assert encode_in_parts(raw_rows, list(cuts), columns) == reference
    return reference


def test_a_typed_report_is_decoded_by_pyarrow_and_identical() -> None:
    documents = report(20_000)
    python_rows, raw_rows = _both(documents)
    columns = freeze_columns(python_rows[:100])
    parts, warnings = assert_same_parquet(documents, columns, cuts=[7_000, 15_000])
    assert warnings == {}
    assert read(parts).num_rows == 20_000
    # every batch after each part's first: PyMongoArrow (4,096 rows a batch)
    assert _arrow_batches(raw_rows, columns) == 4
    assert _arrow_batches(python_rows, columns) == 0


def test_values_that_must_go_through_python_still_match() -> None:
    """Each case sends its batch (or column) through Python: the file is the reference's. Every
    case has a part of its own, in the part's second batch (the first pins the kinds)."""
    cases: list[tuple[str, Any]] = [
        ("n", 2.0),  # a double in an int64 column: null and counted, by Python
        ("n", True),
        ("n", "7"),
        ("score", float("nan")),  # PyMongoArrow reads NaN as null
        ("score", 3),  # an int in a double column
        ("ok", 1),
        ("when", "yesterday"),
        ("when", DatetimeMS(-62_135_596_800_001)),  # before the year 1: null and counted
        ("when", DatetimeMS(253_402_300_800_000)),  # the year 10000
        ("address", "nowhere"),
        ("address.city", "Dotted"),  # a key with a dot
        ("_id", 17),
        ("name", INVALID_MARK.decode()),  # invalid UTF-8 once encoded
    ]
    part_rows = 2 * CONVERT_ROWS
    documents = report(part_rows * len(cases))
    changed = []
    for number, (field, value) in enumerate(cases):
        n = number * part_rows + CONVERT_ROWS + 100
        if field == "address.city":
            documents[n] = {**documents[n], "address": None, field: value}
        else:
            documents[n][field] = value
        changed.append(n)
    columns = [
        Column(path=p)
        for p in ("_id", "name", "n", "big", "score", "ok", "when", "address.city", "maybe")
    ]
    cuts = [number * part_rows for number in range(1, len(cases))]
    parts, warnings = assert_same_parquet(documents, columns, cuts)
    assert warnings[NOT_FITTING_WARNING] == 6  # "n" thrice, "when" thrice
    table = read(parts)
    assert math.isnan(table.column("score")[changed[3]].as_py())
    assert table.column("address.city")[changed[10]].as_py() == "Dotted"
    assert table.column("name")[changed[12]].as_py() == "bad \ufffd\ufffd"


def test_other_types_and_nested_columns_go_through_python() -> None:
    documents = [
        {
            "_id": ObjectId(),
            "price": Decimal128(f"{n}.25"),
            "blob": bytes([n % 256]) * 3,
            "tags": ["a", str(n)],
            "address": {"city": "Oslo", "zip": n},
            "when": datetime(2024, 1, 1, tzinfo=UTC),
        }
        for n in range(9_000)
    ]
    columns = [Column(path=p) for p in ("_id", "price", "blob", "tags", "address", "when")]
    assert_same_parquet(documents, columns, cuts=[5_000])
    _, raw_rows = _both(documents)
    assert _arrow_batches(raw_rows, columns) == 0  # Python decodes those rows anyway


def test_whole_documents_and_hidden_fields_read_raw_rows_through_python() -> None:
    documents = report(5_000)
    assert_same_parquet(documents, None, cuts=[2_000])
    python_rows, raw_rows = _both(documents)
    spec = EncodingSpec(format="parquet", hidden_fields=frozenset({"address.zip"}))
    columns = [Column(path="address"), Column(path="n")]
    encoded = []
    for rows in (python_rows, raw_rows):
        encoder = new_part_encoder(spec, columns, first_part=True)
        for row in rows:
            encoder.write(row)
        encoded.append(encoder.finish(last=True))
    assert encoded[0] == encoded[1]
    assert "zip" not in str(pq.read_schema(io.BytesIO(encoded[1])))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(_typed_document(), min_size=1, max_size=40),
    st.lists(st.integers(1, 9_999), max_size=2),
)
def test_typed_documents_give_the_same_parquet_either_way(
    documents: list[dict[str, Any]], cuts: list[int]
) -> None:
    """The drawn documents repeated to 10,000 rows, so that PyMongoArrow decodes batches."""
    rows = (documents * (10_000 // len(documents) + 1))[:10_000]
    columns = [Column(path=p) for p in ("a", "b", "c", "d", "e", "nested.x")]
    assert_same_parquet(rows, columns, cuts)


@settings(max_examples=40, deadline=None)
@given(st.lists(_documents, max_size=40))
def test_any_document_shape_gives_the_same_parquet_either_way(
    documents: list[dict[str, Any]],
) -> None:
    python_rows, _ = _both(documents)
    assert_same_parquet(documents, freeze_columns(python_rows[:100]))
    assert_same_parquet(documents, None)


@pytest.mark.parametrize(
    "name", ["analytics_customers", "analytics_accounts", "mflix_theaters", "zips"]
)
def test_the_shared_sample_data_gives_the_same_parquet(shared_data: Path, name: str) -> None:
    options = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True)
    lines = (shared_data / f"{name}.jsonl").read_text().splitlines()
    documents = [json_util.loads(line, json_options=options) for line in lines]
    columns = freeze_columns(documents[:100])
    assert_same_parquet(documents, columns, cuts=[len(documents) // 2])
    assert_same_parquet(documents, None, cuts=[len(documents) // 3])


def test_large_ints_and_dates_at_the_edges() -> None:
    documents = [
        {"n": Int64(2**62 + k), "when": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)}
        for k in range(5_000)
    ]
    documents[4_500]["when"] = datetime(1, 1, 1, tzinfo=UTC)
    assert_same_parquet(documents, [Column(path="n"), Column(path="when")])
