"""Text parts written a batch of rows at a time: what the CSV and JSON Lines encoders share.

Rows are collected into small batches and each batch is written in one go, so a faster engine can
replace one step (writing a batch's rows) and still cut the parts at the same rows: the batch
limits, the text buffer and so `size` are the same whichever engine writes the text (the gzip
members too, since each part is one). A batch is sized from the rows seen so far to about
BATCH_CHARS of text (at most MAX_BATCH_ROWS rows), which bounds how far `size` lags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from domain.formats.column_access import paths_to_strip, strip_paths
from domain.formats.part_buffer import PartBuffer
from domain.models import Column

if TYPE_CHECKING:
    from domain.formats.encoding import EncodingSpec

FIRST_BATCH_ROWS: Final = 16
MAX_BATCH_ROWS: Final = 256
BATCH_CHARS: Final = 64 * 1024

Row = Mapping[str, Any]


class BatchedTextEncoder:
    """The batching half of a text part encoder (see `domain.formats.encoding.PartEncoder`);
    subclasses write a batch's text in `_write_rows`."""

    def __init__(self, spec: EncodingSpec, columns: Sequence[Column] | None) -> None:
        self._out = PartBuffer(spec.compression, spec.gzip_level)
        self._strip = paths_to_strip(columns, spec.hidden_fields)
        self._batch: list[Row] = []
        self._batch_limit = FIRST_BATCH_ROWS
        self._encoded_rows = 0

    @property
    def size(self) -> int:
        return self._out.size

    @property
    def rows(self) -> int:
        return self._encoded_rows + len(self._batch)

    def write(self, row: Row) -> None:
        if self._out.finished:
            raise RuntimeError("this part is already finished")
        self._batch.append(row)
        if len(self._batch) >= self._batch_limit:
            self._encode_batch()

    @property
    def carry(self) -> str | None:
        return None

    @property
    def warnings(self) -> Mapping[str, int]:
        return {}

    def finish(self, *, last: bool = False) -> bytes:
        self._encode_batch()
        return self._out.finish()

    def _encode_batch(self) -> None:
        batch = self._batch
        if not batch:
            return
        self._batch = []
        if self._strip:
            batch = [strip_paths(row, self._strip) for row in batch]
        text = self._out.text
        start = text.tell()
        self._write_rows(batch)
        self._encoded_rows += len(batch)
        chars_per_row = max(1, (text.tell() - start) // len(batch))
        self._batch_limit = max(1, min(MAX_BATCH_ROWS, BATCH_CHARS // chars_per_row))
        self._out.flush_if_full()

    def _write_rows(self, batch: list[Row]) -> None:
        """Write the batch's rows to `self._out.text`."""
        raise NotImplementedError
