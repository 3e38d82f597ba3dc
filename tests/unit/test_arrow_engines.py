"""The Arrow engines write the Python encoders' bytes, CSV and JSON Lines alike: on generated
documents of any shape, on typed reports where Arrow does the work, on mixed types that fall
back, and on the shared sample data, gzip included."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Int64, ObjectId, json_util
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.formats.arrow_engine import ArrowTextEngine
from domain.formats.encoding import EncodingSpec, freeze_columns, new_part_encoder
from domain.models import Column, Compression, ExportFormat
from tests.unit.test_encoding import _documents, _scalars

ENCODE: CodecOptions[Any] = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)
# As the worker's client decodes (connections.mongo: tz_aware=True).
PYTHON_ROWS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
RAW_ROWS: CodecOptions[RawBSONDocument] = CodecOptions(
    document_class=RawBSONDocument, tz_aware=True
)


def _both(documents: Sequence[dict[str, Any]]) -> tuple[list[Any], list[RawBSONDocument]]:
    data = [bson.encode(doc, codec_options=ENCODE) for doc in documents]
    return [bson.decode(d, PYTHON_ROWS) for d in data], [RawBSONDocument(d, RAW_ROWS) for d in data]


FORMATS = pytest.mark.parametrize("fmt", ["csv", "jsonl"])


def _encode(
    rows: Sequence[Any],
    columns: list[Column] | None,
    engine: str,
    fmt: ExportFormat,
    compression: Compression = "none",
    cuts: Sequence[int] = (),
    guard: bool = True,
) -> tuple[bytes, int]:
    """The parts' bytes joined, and how many batches Arrow encoded."""
    spec = EncodingSpec(format=fmt, compression=compression, formula_guard=guard, engine=engine)  # type: ignore[arg-type]
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(rows)}), len(rows)]
    body, arrow = b"", 0
    for number, (start, end) in enumerate(itertools.pairwise(bounds), 1):
        encoder = new_part_encoder(spec, columns, first_part=number == 1)
        for row in rows[start:end]:
            encoder.write(row)
        body += encoder.finish(last=end == len(rows))
        if isinstance(encoder, ArrowTextEngine):
            arrow += encoder.arrow_batches
    return body, arrow


def assert_same_bytes(
    documents: Sequence[dict[str, Any]],
    columns: list[Column] | None = None,
    cuts: Sequence[int] = (),
    guard: bool = True,
    fmt: ExportFormat = "csv",
) -> int:
    """Both engines write the same parts, plain and gzip; how many batches Arrow wrote. JSON
    Lines is compared with the columns and as whole documents."""
    python_rows, raw_rows = _both(documents)
    columns = columns if columns is not None else freeze_columns(python_rows[:100])
    arrow_batches = 0
    for compression in ("none", "gzip"):
        for selected in (columns, None) if fmt == "jsonl" else (columns,):
            reference, _ = _encode(python_rows, selected, "python", fmt, compression, cuts, guard)
            by_arrow, batches = _encode(raw_rows, selected, "arrow", fmt, compression, cuts, guard)
            assert by_arrow == reference
            if selected is not None:
                arrow_batches = batches
    return arrow_batches


START = datetime(2024, 1, 1, tzinfo=UTC)


def report(count: int) -> list[dict[str, Any]]:
    """A typed report: Arrow should encode every batch after the first."""
    return [
        {
            "_id": ObjectId(f"{n:024x}"),
            "name": ["Ada", "=SUM(A1)", 'a "q"', "line\nbreak", "Ünï"][n % 5],
            "n": n,
            "big": Int64(n * 10**12),
            "score": [1.5, -0.25, float("nan"), float("inf"), 1e-7, 1e22][n % 6],
            "ok": n % 3 == 0,
            "when": START + timedelta(minutes=n, milliseconds=n % 1000),
            "address": {"city": ["Paris", "Oslo"][n % 2], "zip": f"{n:05d}"},
            **({"maybe": n} if n % 4 else {}),
        }
        for n in range(count)
    ]


@FORMATS
def test_a_typed_report_is_encoded_by_arrow_and_identical(fmt: ExportFormat) -> None:
    assert assert_same_bytes(report(3_000), cuts=[1_000, 2_000], fmt=fmt) > 10


def test_formula_guard_off_too() -> None:
    assert assert_same_bytes(report(500), guard=False) > 0


@FORMATS
def test_mixed_types_in_one_field_fall_back_and_still_match(fmt: ExportFormat) -> None:
    rows = report(600)
    for n, value in [(300, 2.0), (301, True), (302, "7"), (303, Int64(5)), (400, None)]:
        rows[n]["n"] = value
    rows[450]["score"] = 3  # an int in a double column: CSV writes 3, not 3.0
    rows[460]["ok"] = 1
    rows[470]["when"] = "yesterday"
    rows[480]["address"] = "nowhere"
    rows[490]["_id"] = 17
    assert assert_same_bytes(rows, fmt=fmt) > 0


def test_json_lines_tell_a_missing_field_from_a_null_and_a_nan() -> None:
    rows = report(1_000)
    for n in range(0, 1_000, 4):  # "maybe" is missing from these rows: a null in some
        if n % 3 == 0:
            rows[n]["maybe"] = None
    rows[900]["ok"] = None
    assert assert_same_bytes(rows, fmt="jsonl") > 0
    python_rows, _ = _both(rows)
    text = _encode(python_rows, freeze_columns(python_rows[:100]), "python", "jsonl")[0]
    lines = text.decode().splitlines()
    assert '"maybe":null' in lines[0]
    assert '"maybe"' not in lines[4]
    assert '"score":{"$numberDouble":"NaN"}' in lines[2]
    # The first column missing or null, and a row with none of the columns.
    del rows[904]["ok"]
    first_sparse = [Column(path="maybe"), Column(path="ok"), Column(path="nowhere")]
    assert assert_same_bytes(rows, first_sparse, fmt="jsonl") > 0
    text = _encode(_both(rows)[0], first_sparse, "python", "jsonl")[0]
    lines = text.decode().splitlines()
    assert lines[900] == '{"maybe":null,"ok":null}'
    assert lines[904] == "{}"


@FORMATS
def test_dates_beyond_what_arrow_formats_fall_back(fmt: ExportFormat) -> None:
    rows = report(300)
    rows[200]["when"] = datetime(999, 12, 31, tzinfo=UTC)
    rows[220]["when"] = datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    rows[250]["when"] = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert_same_bytes(rows, fmt=fmt)


@FORMATS
def test_keys_with_dots_that_spell_a_column_fall_back(fmt: ExportFormat) -> None:
    rows = report(300)
    rows[100] = {**rows[100], "address": None, "address.city": "Dotted"}
    columns = [Column(path="address.city"), Column(path="n")]
    assert_same_bytes(rows, columns, fmt=fmt)


@FORMATS
def test_columns_through_array_indexes_and_hidden_paths(fmt: ExportFormat) -> None:
    rows = [{**row, "tags": ["x", n]} for n, row in enumerate(report(300))]
    columns = [Column(path="tags.1"), Column(path="address"), Column(path="n")]
    assert_same_bytes(rows, columns, fmt=fmt)
    python_rows, raw_rows = _both(rows)
    hidden = frozenset({"address.zip", "_id"})
    arrow = new_part_encoder(
        EncodingSpec(format=fmt, hidden_fields=hidden, engine="arrow"),
        [*columns, Column(path="_id")],
        first_part=True,
    )
    reference = new_part_encoder(
        EncodingSpec(format=fmt, hidden_fields=hidden),
        [*columns, Column(path="_id")],
        first_part=True,
    )
    for python_row, raw_row in zip(python_rows, raw_rows, strict=True):
        reference.write(python_row)
        arrow.write(raw_row)
    assert arrow.finish() == reference.finish()


_typed_values = {
    "a": st.integers(-(2**31), 2**31 - 1),
    "b": st.floats(),
    "c": st.text(max_size=8),
    "d": st.datetimes(timezones=st.just(UTC)),
    "e": st.booleans(),
}


@st.composite
def _typed_document(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly one type per field (so Arrow works), sometimes another (so it falls back)."""
    doc: dict[str, Any] = {}
    for key, values in _typed_values.items():
        choice = draw(st.integers(0, 19))
        if choice == 0:
            continue  # missing
        doc[key] = draw(_scalars) if choice == 1 else draw(values)
    doc["nested"] = {"x": draw(st.integers(0, 9))}
    return doc


@FORMATS
@pytest.mark.parametrize("document_column", [True, False], ids=["with-document", "scalars"])
@settings(max_examples=60, deadline=None)
@given(st.lists(_typed_document(), min_size=0, max_size=120), st.lists(st.integers(1, 119)))
def test_typed_documents_give_the_same_bytes_from_both_engines(
    fmt: ExportFormat, document_column: bool, documents: list[dict[str, Any]], cuts: list[int]
) -> None:
    """Scalars only: Arrow writes every batch it can; beside a document column (Python's) it
    writes none, since it would make fewer than PYTHON_SHARE columns per Python one."""
    paths = ["a", "b", "c", "d", "e", "nested.x"] + (["nested"] if document_column else [])
    assert_same_bytes(documents, [Column(path=p) for p in paths], cuts, fmt=fmt)


@FORMATS
@settings(max_examples=60, deadline=None)
@given(st.lists(_documents, max_size=60))
def test_any_document_shape_gives_the_same_bytes_from_both_engines(
    fmt: ExportFormat, documents: list[dict[str, Any]]
) -> None:
    assert_same_bytes(documents, fmt=fmt)


@FORMATS
@pytest.mark.parametrize(
    "name", ["analytics_customers", "analytics_accounts", "mflix_theaters", "zips"]
)
def test_the_shared_sample_data_gives_the_same_bytes(
    shared_data: Path, name: str, fmt: ExportFormat
) -> None:
    options = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True)
    lines = (shared_data / f"{name}.jsonl").read_text().splitlines()
    documents = [json_util.loads(line, json_options=options) for line in lines]
    assert_same_bytes(documents, cuts=[len(documents) // 2], fmt=fmt)
