"""Read the rows of one part: one streamed aggregate cursor from a known chunk cursor, reopened
after its last row when the connection drops."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, overload

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, CursorNotFound

from activities import errors
from domain.pipeline.keyset import CursorError
from domain.pipeline.partitioning import bounded_pipeline
from domain.pipeline.planning import ChunkPlan

log = logging.getLogger(__name__)

REOPENINGS_WITHOUT_ROWS = 3
"""Reopenings of a part's query in a row that may fail before reading a row."""
REOPEN_PAUSE_SECONDS = 0.5
"""Pause before the n-th reopening in a row without a row: n times this."""


def read_rows(
    collection: Collection[Any],
    plan: ChunkPlan,
    cursor: Sequence[Any] | None,
    *,
    max_time_ms: int,
    batch_size: int,
    rows_before: int = 0,
    raw: bool = False,
    upper: Sequence[Any] | None = None,
) -> Generator[tuple[Mapping[str, Any], Sequence[Any]], None, None]:
    """Yield `(row, cursor_of(row))` for every row after `cursor`, in the plan's order.

    Rows come as the pipeline returns them, the plan's hidden fields included: the encoders
    leave those out (`EncodingSpec.hidden_fields`), nothing else strips them.
    The server cursor is closed as soon as the caller stops (close the generator, or let it be
    collected): use `contextlib.closing(read_rows(...))` when stopping early. `rows_before` is
    the number of rows earlier parts exported, so a trailing user `$limit` (`plan.row_limit`)
    holds across parts. The collection's read preference is the caller's choice. A row whose
    sort key cannot be a cursor (an array, ...) raises `domain.pipeline.keyset.CursorError`.

    `raw`: rows come as `RawBSONDocument` (the collection's codec options otherwise), for the
    Arrow CSV engine, and each cursor is taken only when it is read (`LazyCursor`): decoding
    every row's keys in Python would cost what the engine saves.

    `upper`: the last cursor of a parallel export's partition; the query ends there
    (`domain.pipeline.partitioning.bounded_pipeline`).

    A connection that drops mid-cursor (`AutoReconnect`, or `CursorNotFound` from a server that
    drops a cursor with its connection) costs one reopening of the query after the last row
    read, not the part: rows already read stay read, none is read twice. Reopenings are bounded
    by progress: each must yield a row, or `REOPENINGS_WITHOUT_ROWS` in a row fail and the error
    goes to the activity's retry policy.
    """
    remaining = None if plan.row_limit is None else plan.row_limit - rows_before
    if remaining is not None and remaining <= 0:
        return
    source: Collection[Any] = collection
    if raw:
        options = collection.codec_options.with_options(document_class=RawBSONDocument)
        source = collection.with_options(codec_options=options)
    after = cursor
    stalled = 0
    while True:
        last: Mapping[str, Any] | None = None
        if upper is None:
            pipeline = plan.pipeline_for(after)
        else:
            pipeline = bounded_pipeline(plan, after, upper)
        try:
            with source.aggregate(pipeline, maxTimeMS=max_time_ms, batchSize=batch_size) as rows:
                for row in rows:
                    yield row, LazyCursor(plan, row) if raw else plan.cursor_of(row)
                    last = row
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
            return
        except (AutoReconnect, CursorNotFound) as exc:
            # The connection (and with it the server cursor) is gone. Rows up to `last` are
            # the caller's already: the query after `last` holds exactly the rest, as the next
            # part's would. Without a row since the last reopening, give up after a few.
            stalled = 0 if last is not None else stalled + 1
            if stalled > REOPENINGS_WITHOUT_ROWS:
                raise
            log.warning(
                "the database connection dropped mid-part (%s: %s); reopening the query after "
                "the last row read (%d reopenings in a row without a row)",
                type(exc).__name__,
                exc,
                stalled,
            )
            if last is not None:
                after = plan.cursor_of(last)
            else:
                time.sleep(REOPEN_PAUSE_SECONDS * stalled)


class LazyCursor(Sequence[Any]):
    """The cursor after a row, computed when first read (`cursor_to_json` reads it)."""

    def __init__(self, plan: ChunkPlan, row: Mapping[str, Any]) -> None:
        self._plan = plan
        self._row = row

    @cached_property
    def _values(self) -> tuple[Any, ...]:
        try:
            return self._plan.cursor_of(self._row)
        except CursorError as exc:  # read late, outside the reader's own error handling
            raise errors.invalid_pipeline(f"the export cannot resume from its rows: {exc}") from exc

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self._values[index]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)
