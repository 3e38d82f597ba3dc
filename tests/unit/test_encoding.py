"""Part encoders: CSV and JSONL, plain and gzip, split into parts in any way."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from bson.json_util import loads
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.formats.cell_format import format_cell
from domain.formats.csv_encoder import UTF8_BOM
from domain.formats.encoding import (
    EncodingSpec,
    PartEncoder,
    encode_part,
    needs_frozen_columns,
    new_part_encoder,
)
from domain.formats.flatten import freeze_columns, value_at
from domain.formats.relaxed_json import relaxed_json
from domain.formats.row_batches import MAX_BATCH_ROWS
from domain.models import Column, ExportRequest

BOM = UTF8_BOM.encode("utf-8")

# Strategies: documents as MongoDB returns them.
_text = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(['"', ",", "\n", "\r", "=", "-", "+", "@", "\t", "'", " ", "\x00"]),
    ),
    max_size=12,
)
_keys = st.text(st.characters(codec="utf-8", exclude_characters=".$\x00"), min_size=1, max_size=4)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(),
    _text,
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.builds(
        lambda i, e: Decimal128(f"{i}E{e}"), st.integers(-(10**9), 10**9), st.integers(-9, 9)
    ),
    st.uuids(),
    st.builds(Binary, st.binary(max_size=6), st.sampled_from([0, 4, 5])),
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=8,
)
_documents = st.dictionaries(_keys, _values, max_size=5)


def _parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _expected_rows(
    documents: Iterable[Mapping[str, Any]], columns: Sequence[Column], guard: bool = True
) -> list[list[str]]:
    return [[format_cell(value_at(doc, c.path), guard) for c in columns] for doc in documents]


def _encode_in_parts(
    spec: EncodingSpec,
    columns: Sequence[Column] | None,
    documents: Sequence[Mapping[str, Any]],
    cuts: Sequence[int],
) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(documents)]
    return [
        encode_part(spec, columns, documents[start:end], first_part=index == 0)
        for index, (start, end) in enumerate(itertools.pairwise(bounds))
    ]


# CSV


@settings(max_examples=150)
@given(st.lists(_documents, max_size=8), st.booleans())
def test_csv_parses_back_to_exactly_the_cells(documents: list[dict[str, Any]], guard: bool) -> None:
    columns = freeze_columns(documents)
    spec = EncodingSpec(formula_guard=guard)
    data = encode_part(spec, columns, documents, first_part=True)
    if not columns:
        assert data == b""
        return
    header = [format_cell(c.title, guard) for c in columns]
    expected = [header, *_expected_rows(documents, columns, guard)]
    assert _parse_csv(data) == expected
    # Every record ends with CRLF: the only other line breaks are those inside cells.
    text = data.decode("utf-8")
    cells = [cell for row in expected for cell in row]
    assert text.endswith("\r\n")
    assert text.count("\n") == len(expected) + sum(cell.count("\n") for cell in cells)
    assert text.count("\r") == len(expected) + sum(cell.count("\r") for cell in cells)


def test_csv_golden_output() -> None:
    columns = [
        Column(path="_id"),
        Column(path="name", header="Name"),
        Column(path="address.city", header="City"),
        Column(path="tags"),
        Column(path="score"),
    ]
    rows = [
        {"_id": ObjectId("65a1b2c3d4e5f60718293a4b"), "name": "Ada, \"the\" first", "score": -5,
         "address": {"city": "London"}, "tags": ["x", "y"]},
        {"_id": 2, "name": "=cmd()", "address": None, "tags": [], "score": 1.5},
        {"_id": 3, "name": "line\nbreak", "score": None},
    ]  # fmt: skip
    data = encode_part(EncodingSpec(bom=True), columns, rows, first_part=True)
    assert data == BOM + (
        b"_id,Name,City,tags,score\r\n"
        b'65a1b2c3d4e5f60718293a4b,"Ada, ""the"" first",London,"[""x"",""y""]",-5\r\n'
        b"2,'=cmd(),,[],1.5\r\n"
        b'3,"line\nbreak",,,\r\n'
    )


def test_csv_header_is_the_title_and_only_in_the_first_part() -> None:
    columns = [Column(path="a", header="Alpha"), Column(path="b")]
    spec = EncodingSpec()
    first = encode_part(spec, columns, [{"a": 1, "b": 2}], first_part=True)
    later = encode_part(spec, columns, [{"a": 3, "b": 4}], first_part=False)
    assert first == b"Alpha,b\r\n1,2\r\n"
    assert later == b"3,4\r\n"


def test_csv_header_is_formula_guarded_like_any_string() -> None:
    columns = [Column(path="=x", header="=SUM(A1)"), Column(path="-y")]
    assert encode_part(EncodingSpec(), columns, [], first_part=True) == b"'=SUM(A1),'-y\r\n"
    off = EncodingSpec(formula_guard=False)
    assert encode_part(off, columns, [], first_part=True) == b"=SUM(A1),-y\r\n"


def test_csv_formula_guard_on_cells_never_on_numbers() -> None:
    columns = [Column(path="s"), Column(path="n"), Column(path="f"), Column(path="d")]
    rows = [
        {"s": t, "n": -5, "f": -1.5, "d": Decimal128("-2")}
        for t in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok"]
    ]
    guarded = _parse_csv(encode_part(EncodingSpec(), columns, rows, first_part=False))
    assert [row[0] for row in guarded] == ["'=1+2", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "ok"]
    assert all(row[1:] == ["-5", "-1.5", "-2"] for row in guarded)
    off = EncodingSpec(formula_guard=False)
    plain = _parse_csv(encode_part(off, columns, rows, first_part=False))
    assert [row[0] for row in plain] == ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok"]


@pytest.mark.parametrize("trigger", ["\x00", "＝", "＋", "－", "＠"])
def test_csv_fast_path_guards_the_owasp_triggers(trigger: str) -> None:
    """A column of plain strings takes the one-search fast path: it must see these too."""
    columns = [Column(path="s")]
    rows: list[dict[str, Any]] = [{"s": "ok"}, {"s": f"{trigger}HYPERLINK(1)"}, {"s": None}]
    guarded = encode_part(EncodingSpec(), columns, rows, first_part=False)
    assert guarded == f'ok\r\n\'{trigger}HYPERLINK(1)\r\n""\r\n'.encode()
    assert (
        encode_part(EncodingSpec(), columns, [{"s": "a＝1"}], first_part=False)
        == "a＝1\r\n".encode()
    )


def test_csv_missing_and_null_columns_are_empty() -> None:
    columns = [Column(path="a"), Column(path="b.c"), Column(path="d")]
    rows: list[dict[str, Any]] = [{"a": None}, {"b": {"c": None}}, {"b": 5}, {}]
    assert encode_part(EncodingSpec(), columns, rows, first_part=False) == b",,\r\n" * 4


def test_csv_single_empty_column_is_still_one_record_per_row() -> None:
    data = encode_part(EncodingSpec(), [Column(path="a")], [{}, {"a": ""}], first_part=False)
    assert _parse_csv(data) == [[""], [""]]


def test_csv_bom_only_once_at_the_very_start() -> None:
    columns = [Column(path="a")]
    rows = [{"a": str(i)} for i in range(10)]
    for compression in ("none", "gzip"):
        spec = EncodingSpec(bom=True, compression=compression)
        parts = _encode_in_parts(spec, columns, rows, [3, 7])
        data = b"".join(parts)
        if compression == "gzip":
            data = gzip.decompress(data)
        assert data.startswith(BOM + b"a\r\n0\r\n")
        assert data.count(BOM) == 1
        assert data.count(b"a\r\n") == 1


def test_jsonl_never_has_a_bom() -> None:
    spec = EncodingSpec(format="jsonl", bom=True)
    assert encode_part(spec, None, [{"a": 1}], first_part=True) == b'{"a":1}\n'


def test_csv_hidden_fields_never_appear() -> None:
    rows = [{"_id": ObjectId(), "_k": 1, "name": "Ada"}, {"_id": 2, "name": "Bo"}]
    hidden = frozenset({"_id", "_k"})
    columns = freeze_columns(rows, hidden)
    spec = EncodingSpec(hidden_fields=hidden)
    assert encode_part(spec, columns, rows, first_part=True) == b"name\r\nAda\r\nBo\r\n"
    # Even a requested column cannot read a hidden field.
    asked = [Column(path="_id"), Column(path="_k.x"), Column(path="name")]
    assert encode_part(spec, asked, rows, first_part=False) == b",,Ada\r\n,,Bo\r\n"


def test_hidden_dotted_paths_never_appear() -> None:
    rows = [{"name": "Ada", "sort": {"k": 7, "shown": "x"}, "_id": 1}]
    hidden = frozenset({"sort.k", "_id"})
    columns = [Column(path="name"), Column(path="sort"), Column(path="sort.k")]
    spec = EncodingSpec(hidden_fields=hidden)
    assert encode_part(spec, columns, rows, first_part=False) == b'Ada,"{""shown"":""x""}",\r\n'
    jsonl = EncodingSpec(format="jsonl", hidden_fields=hidden)
    assert encode_part(jsonl, None, rows, first_part=True) == (
        b'{"name":"Ada","sort":{"shown":"x"}}\n'
    )
    assert encode_part(jsonl, columns, rows, first_part=True) == (
        b'{"name":"Ada","sort":{"shown":"x"}}\n'
    )
    assert rows == [{"name": "Ada", "sort": {"k": 7, "shown": "x"}, "_id": 1}]  # unchanged


def test_csv_needs_columns() -> None:
    with pytest.raises(ValueError, match="columns"):
        new_part_encoder(EncodingSpec(), None, first_part=True)


def test_csv_without_columns_writes_nothing() -> None:
    assert encode_part(EncodingSpec(bom=False), [], [{"a": 1}], first_part=True) == b""


def test_csv_reads_any_mapping_the_same_way() -> None:
    document = {"a": 1, "b": {"c": "x"}, "d": [1]}
    columns = freeze_columns([document])
    as_dict = encode_part(EncodingSpec(), columns, [document], first_part=True)
    son = SON([("a", 1), ("b", SON([("c", "x")])), ("d", [1])])
    raw = RawBSONDocument(bson.encode(document))
    for row in (son, raw):
        assert encode_part(EncodingSpec(), columns, [row], first_part=True) == as_dict


def test_csv_rows_of_very_different_sizes() -> None:
    columns = [Column(path="i"), Column(path="s")]
    rows = [{"i": i, "s": ("x" * (i % 7) * 10_000) if i % 50 == 0 else "y"} for i in range(2000)]
    data = encode_part(EncodingSpec(), columns, rows, first_part=False)
    assert _parse_csv(data) == [[str(r["i"]), r["s"]] for r in rows]


# JSONL


@given(st.lists(_documents, max_size=6), st.sets(_keys, max_size=2))
def test_jsonl_is_each_whole_document_minus_hidden_fields(
    documents: list[dict[str, Any]], hidden: set[str]
) -> None:
    spec = EncodingSpec(format="jsonl", hidden_fields=frozenset(hidden))
    data = encode_part(spec, None, documents, first_part=True)
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert len(lines) == len(documents) + 1
    for line, document in zip(lines, documents, strict=False):
        visible = {k: v for k, v in document.items() if k not in hidden}
        assert line == relaxed_json(visible)
        json.loads(line)  # valid JSON: no NaN or Infinity tokens
        assert loads(line).keys() == visible.keys()


def test_jsonl_golden_output() -> None:
    rows = [
        {"_id": ObjectId("65a1b2c3d4e5f60718293a4b"), "at": datetime(2024, 1, 2, 3, 4, 5, 678000),
         "n": Int64(3), "x": float("nan"), "s": "é\n=1"},
    ]  # fmt: skip
    assert (
        encode_part(EncodingSpec(format="jsonl"), None, rows, first_part=True)
        == (
            '{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"at":{"$date":"2024-01-02T03:04:05.678Z"},'
            '"n":3,"x":{"$numberDouble":"NaN"},"s":"é\\n=1"}\n'
        ).encode()
    )


def test_jsonl_with_columns_is_flat_by_title_in_column_order() -> None:
    columns = [
        Column(path="address.city", header="City"),
        Column(path="_id"),
        Column(path="n"),
        Column(path="gone"),
    ]
    rows = [{"_id": 1, "n": None, "address": {"city": "Paris", "zip": "75001"}, "other": 2}]
    spec = EncodingSpec(format="jsonl", hidden_fields=frozenset({"_id"}))
    assert encode_part(spec, columns, rows, first_part=True) == b'{"City":"Paris","n":null}\n'


# Parts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_documents, min_size=0, max_size=10),
    st.lists(st.integers(0, 10), max_size=4),
    st.sampled_from(["csv", "jsonl"]),
    st.booleans(),
)
def test_any_split_into_parts_equals_encoding_in_one_go(
    documents: list[dict[str, Any]], cuts: list[int], fmt: str, bom: bool
) -> None:
    columns = freeze_columns(documents) if fmt == "csv" else None
    cuts = [cut for cut in cuts if cut <= len(documents)]
    plain = EncodingSpec(format="csv" if fmt == "csv" else "jsonl", bom=bom)
    whole = encode_part(plain, columns, documents, first_part=True)
    assert b"".join(_encode_in_parts(plain, columns, documents, cuts)) == whole

    zipped = EncodingSpec(format=plain.format, bom=bom, compression="gzip")
    parts = _encode_in_parts(zipped, columns, documents, cuts)
    assert gzip.decompress(b"".join(parts)) == whole
    for part in parts:  # each part is one complete gzip member
        assert part[:2] == b"\x1f\x8b"
        decompressor = zlib.decompressobj(31)
        decompressor.decompress(part)
        assert decompressor.eof
        assert decompressor.unused_data == b""


def test_gzip_parts_are_reproducible() -> None:
    spec = EncodingSpec(compression="gzip")
    columns = [Column(path="a")]
    rows = [{"a": i} for i in range(1000)]
    first = encode_part(spec, columns, rows, first_part=True)
    assert first == encode_part(spec, columns, rows, first_part=True)
    assert gzip.decompress(encode_part(spec, columns, [], first_part=False)) == b""


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_size_grows_but_never_exceeds_the_final_length(fmt: str, compression: str) -> None:
    spec = EncodingSpec(format=fmt, compression=compression)  # type: ignore[arg-type]
    columns = [Column(path="i"), Column(path="s")]
    encoder: PartEncoder = new_part_encoder(spec, columns, first_part=True)
    sizes = []
    for i in range(20_000):
        encoder.write({"i": i, "s": f"row {i} " + "abcdefgh" * (i % 5)})
        sizes.append(encoder.size)
    assert encoder.rows == 20_000
    data = encoder.finish()
    assert sizes == sorted(sizes)
    assert sizes[-1] <= len(data)
    assert sizes[-1] > 0
    if compression == "none":  # the lag is at most one batch of rows
        assert len(data) - sizes[-1] <= MAX_BATCH_ROWS * 60


def test_a_finished_part_cannot_be_written_or_finished_again() -> None:
    for spec in (EncodingSpec(format="csv"), EncodingSpec(format="jsonl")):
        encoder = new_part_encoder(spec, [Column(path="a")], first_part=True)
        encoder.write({"a": 1})
        encoder.finish()
        with pytest.raises(RuntimeError):
            encoder.write({"a": 2})
        with pytest.raises(RuntimeError):
            encoder.finish()


# Spec


def test_spec_of_a_request() -> None:
    request = ExportRequest(
        collection="orders", format="jsonl", compression="gzip", csv_bom=True, formula_guard=False
    )
    spec = EncodingSpec.of(request, hidden_fields=["_id"])
    assert spec == EncodingSpec(
        format="jsonl",
        compression="gzip",
        bom=True,
        formula_guard=False,
        hidden_fields=frozenset({"_id"}),
    )
    assert EncodingSpec.of(ExportRequest(collection="c")) == EncodingSpec()


def test_which_exports_freeze_sampled_columns() -> None:
    assert needs_frozen_columns(ExportRequest(collection="c"))
    assert not needs_frozen_columns(ExportRequest(collection="c", columns=[Column(path="a")]))
    assert not needs_frozen_columns(ExportRequest(collection="c", format="jsonl"))
