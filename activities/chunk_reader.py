"""Read the rows of one part: ONE streamed aggregate cursor from a known chunk cursor."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, overload

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection

from activities import errors
from domain.pipeline.keyset import CursorError
from domain.pipeline.partitioning import bounded_pipeline
from domain.pipeline.planning import ChunkPlan


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
    """
    remaining = None if plan.row_limit is None else plan.row_limit - rows_before
    if remaining is not None and remaining <= 0:
        return
    pipeline = plan.pipeline_for(cursor) if upper is None else bounded_pipeline(plan, cursor, upper)
    source: Collection[Any] = collection
    if raw:
        options = collection.codec_options.with_options(document_class=RawBSONDocument)
        source = collection.with_options(codec_options=options)
    with source.aggregate(pipeline, maxTimeMS=max_time_ms, batchSize=batch_size) as rows:
        for row in rows:
            yield row, LazyCursor(plan, row) if raw else plan.cursor_of(row)
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    return


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
