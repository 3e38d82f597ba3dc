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

REOPEN_WITHOUT_ROWS_SECONDS = 30.0
"""How long a part keeps reopening its query while no reopening yields a row: long enough to
ride out a burst of dropped connections, short next to an activity's timeout."""
REOPEN_PAUSES_SECONDS = (0.5, 1.0, 2.0, 4.0)
"""Pauses before the 1st, 2nd, 3rd… reopening in a row without a row (the last one repeats)."""


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
    reopen_without_rows_seconds: float = REOPEN_WITHOUT_ROWS_SECONDS,
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
    by progress: once they have failed without a row for `reopen_without_rows_seconds`, the
    error goes to the activity's retry policy. A server that cannot be selected at all
    (`ServerSelectionTimeoutError`) goes there at once.
    """
    remaining = None if plan.row_limit is None else plan.row_limit - rows_before
    if remaining is not None and remaining <= 0:
        return
    source: Collection[Any] = collection
    if raw:
        options = collection.codec_options.with_options(document_class=RawBSONDocument)
        source = collection.with_options(codec_options=options)
    after = cursor
    stalled: list[float] = []  # when each reopening in a row without a row failed
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
            # part's would.
            if last is not None:
                stalled.clear()
                after = plan.cursor_of(last)
            else:
                stalled.append(time.monotonic())
                if stalled[-1] - stalled[0] >= reopen_without_rows_seconds:
                    raise
            log.warning(
                "the database connection dropped mid-part (%s: %s); reopening the query after "
                "the last row read (%d failed reopenings in a row without a row)",
                type(exc).__name__,
                exc,
                len(stalled),
            )
            if stalled:
                time.sleep(REOPEN_PAUSES_SECONDS[min(len(stalled), len(REOPEN_PAUSES_SECONDS)) - 1])


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
