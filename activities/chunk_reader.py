"""Read the rows of one part: ONE streamed aggregate cursor from a known chunk cursor."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from pymongo.collection import Collection

from domain.chunk_planning import ChunkPlan


def read_rows(
    collection: Collection[Any],
    plan: ChunkPlan,
    cursor: Sequence[Any] | None,
    *,
    max_time_ms: int,
    batch_size: int,
    rows_before: int = 0,
) -> Generator[tuple[dict[str, Any], tuple[Any, ...]], None, None]:
    """Yield `(row, cursor_of(row))` for every row after `cursor`, in the plan's order.

    Rows come as the pipeline returns them, the plan's hidden fields included: the encoders
    leave those out (`EncodingSpec.hidden_fields`), nothing else strips them.
    The server cursor is closed as soon as the caller stops (close the generator, or let it be
    collected): use `contextlib.closing(read_rows(...))` when stopping early. `rows_before` is
    the number of rows earlier parts exported, so a trailing user `$limit` (`plan.row_limit`)
    holds across parts. The collection's read preference is the caller's choice. A row whose
    sort key cannot be a cursor (an array, ...) raises `domain.keyset.CursorError`.
    """
    remaining = None if plan.row_limit is None else plan.row_limit - rows_before
    if remaining is not None and remaining <= 0:
        return
    pipeline = plan.pipeline_for(cursor)
    with collection.aggregate(pipeline, maxTimeMS=max_time_ms, batchSize=batch_size) as rows:
        for row in rows:
            yield row, plan.cursor_of(row)
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    return
