"""The Arrow JSON Lines engine: the lines of a JSONL export with `columns` made from raw BSON
batches by PyMongoArrow and Arrow compute, byte for byte what `domain.formats.jsonl_encoder` (the
reference) writes.

It is the Python encoder with one step replaced, writing a batch's rows; when Arrow takes a batch
and when Python does is `domain.formats.arrow_engine`'s (the CSV engine's rules). A line is
`{"title":value,…}`; each column's value text comes from `domain.formats.arrow_json`, its piece is
`,"title":value`, and the pieces joined, less the first comma, are the line. What is JSONL's own:

* a missing field leaves its key out and a null writes `null`, but PyMongoArrow reads both (and
  a NaN) as null. A null is taken as missing unless the batch's bytes hold a null-like element
  (null, undefined, MinKey, MaxKey) named like the column's leaf, or the column is a double one;
  then Python reads the null cells' values from their rows;
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
from domain.formats.arrow_engine import ArrowTextEngine, value_of
from domain.formats.arrow_json import json_values
from domain.formats.arrow_text import text_of
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
        pieces: list[pa.Array] = []
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
                if values.null_count and (kind == "float" or _null_like(data, path[-1])):
                    values = _python_nulls(values, batch, key, parts)
            pieces.append(pc.binary_join_element_wise("," + name, values, ""))
        if not pieces:
            return "{}\n" * len(batch)
        joined = pc.binary_join_element_wise(
            *pieces, "", null_handling="replace", null_replacement=""
        )
        body = pc.utf8_slice_codeunits(joined, 1)  # the first piece's comma
        return text_of(pc.binary_join_element_wise("{", body, "}\n", ""))


def _null_like(data: bytes, leaf: str) -> bool:
    """Whether the batch may hold a null-like element named `leaf` (false alarms possible)."""
    name = leaf.encode("utf-8", "surrogatepass") + b"\x00"
    return any(code + name in data for code in _NULL_LIKE)


def _python_nulls(
    values: pa.Array, batch: list[Row], key: str, parts: tuple[str, ...] | None
) -> pa.Array:
    """The null cells' JSON read by Python from their rows: null, NaN, or missing (None)."""
    texts = values.to_pylist()
    return _texts(
        [
            _json_or_none(value_of(row, key, parts)) if text is None else text
            for text, row in zip(texts, batch, strict=True)
        ]
    )


def _json_or_none(value: Any) -> str | None:
    return None if value is MISSING else relaxed_json(value)


def _texts(texts: list[str | None]) -> pa.Array:
    try:
        return pa.array(texts, pa.string())
    except (pa.ArrowException, UnicodeError) as exc:  # lone surrogates, say
        raise BatchRefused from exc
