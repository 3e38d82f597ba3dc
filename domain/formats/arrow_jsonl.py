"""The Arrow JSON Lines engine: the lines of a JSONL export with `columns` made from raw BSON
batches by PyMongoArrow and Arrow compute, byte for byte what `domain.formats.jsonl_encoder` (the
reference) writes.

It is the Python encoder with one step replaced, writing a batch's rows; when Arrow takes a batch
and when Python does is `domain.formats.arrow_engine`'s (the CSV engine's rules). A line is
`{"title":value,…}`; each column's value text comes from `domain.formats.arrow_json`, and one Arrow
join of the keys and values makes the lines (a key whose value is missing is left out with it).
What is JSONL's own:

* a missing field leaves its key out and a null writes `null`, but PyMongoArrow reads both (and
  a NaN) as null. A null cell is taken as missing unless its row's bytes hold a null-like element
  (null, undefined, MinKey, MaxKey) named like the column's leaf, or a double of that name in a
  double column; those rows are decoded in Python, which reads the value;
* whole documents (no `columns`) cannot come from Arrow: a line follows each document's own key
  order, which PyMongoArrow's structs do not keep. Those parts are Python's, decoded from the raw
  rows in one `bson.decode_all` call per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from domain.formats.arrow_batches import BatchRefused, PinnedDecoder, decoded_batch, raw_bytes
from domain.formats.arrow_engine import ArrowTextEngine
from domain.formats.arrow_json import json_values
from domain.formats.arrow_text import text_of
from domain.formats.column_access import value_of
from domain.formats.flatten import MISSING
from domain.formats.jsonl_encoder import JsonlPartEncoder
from domain.formats.relaxed_json import relaxed_json
from domain.formats.row_batches import Row
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

_NULL_LIKE: Final = (b"\x0a", b"\x06", b"\xff", b"\x7f")
"""BSON element types that PyMongoArrow may read as null: null, undefined, MinKey, MaxKey."""


class ArrowJsonlPartEncoder(ArrowTextEngine, JsonlPartEncoder):
    """`JsonlPartEncoder` whose batches of raw rows are decoded and written by Arrow."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column] | None) -> None:
        super().__init__(spec, columns)
        self._start_engine(self._plan)
        self._keys = [relaxed_json(title) + ":" for title in self._titles]

    def _arrow_text(self, batch: list[Row], pinned: PinnedDecoder) -> str:
        data = raw_bytes(batch)
        leaves = pinned.leaves(data)
        rows: list[Row] | None = None
        columns: list[tuple[str, pa.Array]] = []
        for (key, parts), path, kind, leaf, name in zip(
            self._engine_plan, self._column_paths, pinned.kinds, leaves, self._keys, strict=True
        ):
            if path is None:  # at or under a hidden field: never written
                continue
            if kind is None or leaf is None:  # documents, arrays, mixed types
                if rows is None:
                    rows = decoded_batch(batch, data)
                self.python_columns += 1
                values = _texts([_json_or_none(value_of(row, key, parts)) for row in rows])
            else:
                values = json_values(leaf, kind)
                if values.null_count:
                    values = _nulls_read_by_python(values, batch, data, key, parts, kind)
            columns.append((name, values))
        return text_of(_lines(columns, len(batch)))


def _lines(columns: list[tuple[str, pa.Array]], size: int) -> pa.Array:
    """`{"title":value,…}\n` per row, in one Arrow join: a column with no nulls is passed as its
    key and its values, one with nulls as `,"title":value` pieces (null where missing, then
    empty). When the first column has nulls, a line may start `{,`, which loses its comma."""
    if not columns:
        return pa.array(["{}\n"] * size, pa.string())
    args: list[Any] = []
    for number, (name, values) in enumerate(columns):
        key = ("{" if number == 0 else ",") + name
        if values.null_count == 0:
            args += [key, values]
        else:
            if number == 0:
                args.append("{")
                key = "," + name
            args.append(pc.binary_join_element_wise(key, values, ""))
    lines = pc.binary_join_element_wise(
        *args, "}\n", "", null_handling="replace", null_replacement=""
    )
    if columns[0][1].null_count:
        lines = pc.replace_substring_regex(lines, r"^\{,", "{", max_replacements=1)
    return lines


def _nulls_read_by_python(
    values: pa.Array,
    batch: list[Row],
    data: bytes,
    key: str,
    parts: tuple[str, ...] | None,
    kind: str,
) -> pa.Array:
    """The null cells' JSON as Python reads them from their rows: `null`, a NaN, or missing
    (None). A row holding no element named like the leaf of a type Arrow reads as null (a
    null-like one; a double for a double column, which may be NaN) is missing the value
    without being decoded; the others are decoded together in one C call."""
    name = (parts[-1] if parts else key).encode("utf-8", "surrogatepass") + b"\x00"
    types = _NULL_LIKE + ((b"\x01",) if kind == "float" else ())
    present = [code + name for code in types]
    if not any(pattern in data for pattern in present):
        return values  # every null is a missing value
    texts: list[str | None] = values.to_pylist()
    suspects = [
        i
        for i, text in enumerate(texts)
        if text is None and any(pattern in batch[i].raw for pattern in present)  # type: ignore[attr-defined]
    ]
    rows = decoded_batch([batch[i] for i in suspects])
    for i, row in zip(suspects, rows, strict=True):
        texts[i] = _json_or_none(value_of(row, key, parts))
    return _texts(texts)


def _json_or_none(value: Any) -> str | None:
    return None if value is MISSING else relaxed_json(value)


def _texts(texts: list[str | None]) -> pa.Array:
    try:
        return pa.array(texts, pa.string())
    except (pa.ArrowException, UnicodeError) as exc:  # lone surrogates, say
        raise BatchRefused from exc
