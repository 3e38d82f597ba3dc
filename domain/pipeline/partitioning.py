"""Range partitioning: cutting one export's key range into P partitions that run at once.

A plan whose rows come in the order of a key it can resume from (`source_keyset`,
`unwind_keyset`, `sort_keyset`) can be read as P consecutive key ranges, each by its own
partition (a child ExportWorkflow), and the partitions' outputs concatenated in order are the
serial export's bytes. Partition i reads the rows strictly after boundary i-1 (the existing
chunk cursor: partition 0 starts from the beginning) up to and including boundary i (the last
partition has no upper boundary). A boundary is a cursor of the plan (`ChunkPlan.keys`).

What stays serial, and why (`serial_reason`):

* `blocking_keyset` (`$group`, `$bucket`, ...): every part re-runs the pipeline up to the
  blocking stage, so P partitions would run it P times for one export's rows;
* a trailing `$skip`/`$limit`: it counts rows across the whole export, which no partition can;
* XLSX and Parquet: their files index everything before them (the ZIP central directory, the
  Parquet footer's offsets), so a partition cannot write its bytes without the ones before it;
* `parallelism` 1, or fewer rows than two partitions need.

How many partitions (`partition_count`): `parallelism` as asked, or `auto`: one per
`EXPORT_PARTITION_ROWS` (2,000,000) rows, both capped by `EXPORT_MAX_PARALLELISM` (8) and by the
number of keys. With the defaults: 1.5 M rows → 1 (serial), 5 M → 3, 10^8 → 8.

Most exports are small, and `auto` is the default: when the keys are source documents
(`keys_are_documents`) the collection's own document count (`$collStats`, else
`estimatedDocumentCount`, read from the collection's metadata, no scan; FerretDB answers only
the first from metadata) bounds them, so a collection of at most one partition's
rows stays serial without counting anything. Counting scans the tenant's documents, which on
FerretDB takes seconds for tens of thousands of large documents, and is one query that a
dropped connection restarts from zero.

Where the boundaries come from (`key_scan_pipeline`, `boundary_positions`): a key-only scan
that works on every engine we support (FerretDB has neither `$sample` nor `$bucketAuto`): the
activity counts the keys (`$count`), then reads only the key fields in key order and keeps the
key at each position `ceil(n·k/P) - 1`, k = 1 … P-1 (the last key of partition k-1). So the
partitions hold equal numbers of keys (±1). Worked numbers: n = 10 keys, P = 3 → positions 3
and 6 → partitions of 4, 3 and 3 keys; n = 2, P = 7 → positions 0 and 1 (duplicates dropped)
→ 3 partitions, the last one empty.

* `source_keyset` and `unwind_keyset` scan the source collection's `_id` after the tenant filter
  (`{$project: {_id: 1}}`, index-only on MongoDB). Partitions are equal in source documents,
  not in exported rows: a `$match` later in the pipeline or a long array makes them uneven.
  An unwind boundary is `(_id, MAX_INDEX, ...)`: every row of that document, whatever its
  array index, sorts at or before it.
* `sort_keyset` runs the plan's pipeline up to its `$sort` and projects the sort keys: the
  scan costs what the sort costs (cheap with an index on the tenant field and the sort keys,
  a full sort without one). Partitions are equal in exported rows.

Both scans are bounded by `maxTimeMS`. On real MongoDB `$bucketAuto` or `$sample` would
avoid reading every key; they are not used, so that one code path serves every engine.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from domain.models import ExportRequest, Parallelism
from domain.pipeline.keyset import after, sort_key
from domain.pipeline.planning import ChunkPlan, _Bound, _FirstPartOnly

SPLITTABLE: Final = frozenset({"source_keyset", "unwind_keyset", "sort_keyset"})
MAX_INDEX: Final = 2**62
"""An array index above any real one: `(_id, MAX_INDEX)` is after every row of that `_id`."""


def serial_reason(plan: ChunkPlan, request: ExportRequest) -> str | None:
    """Why this export runs as one sequence (None: it can be partitioned)."""
    if request.parallelism == 1:
        return "parallelism 1 was asked for"
    if request.format in ("xlsx", "parquet"):
        return (
            f"{request.format} files index everything before each part (trailer offsets), so "
            "partitions cannot write their bytes independently"
        )
    if plan.strategy not in SPLITTABLE:
        return (
            f"a {plan.strategy} plan re-runs the pipeline through its blocking stage for every "
            "part; partitions would run it once each"
        )
    if plan.row_limit is not None or any(isinstance(i, _FirstPartOnly) for i in plan.items):
        return "a trailing $skip/$limit counts rows across the whole export"
    return None


def keys_are_documents(plan: ChunkPlan) -> bool:
    """Whether the plan's keys are source documents (one per `_id`), so the collection's
    document count bounds them; a `sort_keyset` scan may hold more rows than documents (an
    `$unwind` before the `$sort`)."""
    return plan.strategy in ("source_keyset", "unwind_keyset")


def partition_count(
    parallelism: Parallelism, keys: int, *, rows_per_partition: int, max_parallelism: int
) -> int:
    """Partitions for `keys` keys (see the module docstring); at least 1."""
    wanted = math.ceil(keys / max(1, rows_per_partition)) if parallelism == "auto" else parallelism
    return max(1, min(wanted, max_parallelism, keys))


def boundary_positions(keys: int, partitions: int) -> list[int]:
    """Positions (0-based, in key order) of the last key of partitions 0 … P-2."""
    positions = {math.ceil(keys * k / partitions) - 1 for k in range(1, partitions)}
    return sorted(p for p in positions if 0 <= p < keys - 1)


def key_scan_pipeline(plan: ChunkPlan) -> list[dict[str, Any]]:
    """The pipeline whose rows are the plan's keys in order (for `unwind_keyset`, the `_id`s of
    the source documents): the plan up to the `$sort` that fixes its order, then only the keys."""
    stages = plan.pipeline_for(None)
    last_sort = max(i for i, stage in enumerate(stages) if "$sort" in stage)
    if plan.strategy == "sort_keyset":
        fields = [path for path, _ in plan.keys]
    else:
        # The `$sort {_id: 1}` right after the tenant filter; nothing after it.
        last_sort = min(i for i, stage in enumerate(stages) if "$sort" in stage)
        fields = ["_id"]
    projection: dict[str, Any] = {path: 1 for path in fields}
    if "_id" not in projection:
        projection["_id"] = 0
    return [*stages[: last_sort + 1], {"$project": projection}]


def count_pipeline(plan: ChunkPlan, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Counts the rows of `key_scan_pipeline` (FerretDB and mongo-java-server know `$count`),
    without its `$sort` (the order does not change the count), at most `limit` of them: `auto`
    first asks whether there are more than one partition's rows at all, which stops early."""
    stages = [stage for stage in key_scan_pipeline(plan)[:-1] if "$sort" not in stage]
    if limit is not None:
        stages.append({"$limit": limit})
    return [*stages, {"$count": "n"}]


def boundary_cursor(plan: ChunkPlan, scanned: Mapping[str, Any]) -> tuple[Any, ...]:
    """The cursor ending a partition at this scanned key row."""
    if plan.strategy == "unwind_keyset":
        return (scanned.get("_id"), *([MAX_INDEX] * (len(plan.keys) - 1)))
    return plan.cursor_of(scanned)


def at_or_before(keys: Sequence[tuple[str, int]], upper: Sequence[Any]) -> dict[str, Any]:
    """A `$match` body selecting the rows at or before `upper` in the order `keys`: "at or
    after" in the reversed order (`domain.pipeline.keyset.after`, with its type brackets)."""
    reversed_keys = [(path, -direction) for path, direction in keys]
    return after(reversed_keys, upper, inclusive=True)


def bounded_pipeline(
    plan: ChunkPlan, cursor: Sequence[Any] | None, upper: Sequence[Any]
) -> list[dict[str, Any]]:
    """`plan.pipeline_for(cursor)` that also ends at `upper` (a partition's last cursor): at
    each keyset bound of the plan, the rows at or before `upper` on the same keys. The server
    then stops at the partition's end (mongo-java-server, which ignores `batchSize`, would
    otherwise send every row to the end of the collection in one reply)."""
    if len(upper) != len(plan.keys):
        raise ValueError(f"an upper cursor of {len(upper)} values for {len(plan.keys)} keys")
    stages: list[dict[str, Any]] = []
    for item in plan.items:
        if isinstance(item, _Bound):
            keys = plan.keys if item.keys is None else item.keys
            if cursor is not None:
                values = tuple(cursor[: len(keys)])
                stages.append({"$match": after(keys, values, inclusive=item.inclusive)})
            stages.append({"$match": at_or_before(keys, tuple(upper[: len(keys)]))})
        elif isinstance(item, _FirstPartOnly):
            raise ValueError("a plan with a trailing $skip is never partitioned")
        else:
            stages.append(copy.deepcopy(item))
    return stages


def beyond(cursor: Sequence[Any], upper: Sequence[Any], keys: Sequence[tuple[str, int]]) -> bool:
    """Whether a row with `cursor` sorts strictly after `upper` in the order of `keys`
    (MongoDB's order, as `domain.pipeline.keyset.sort_key` mirrors it)."""
    for value, bound, (_, direction) in zip(cursor, upper, keys, strict=True):
        a, b = sort_key(value), sort_key(bound)
        if a == b:
            continue
        return (a > b) if direction == 1 else (a < b)
    return False


def describe(plan: ChunkPlan, request: ExportRequest, *, max_parallelism: int, rows: int) -> str:
    """The partitioning decision in words, for `explain` (before rows are counted)."""
    reason = serial_reason(plan, request)
    if reason is not None:
        return f"serial: {reason}"
    on = "_id of the source documents" if plan.strategy != "sort_keyset" else "the sort keys"
    if request.parallelism == "auto":
        asked = f"auto: one partition per {rows:,} rows, at most {max_parallelism}"
    else:
        asked = f"{min(request.parallelism, max_parallelism)} partitions"
    return (
        f"parallel ({asked}), range-partitioned on {on} from a key-only scan; the partitions' "
        "outputs are composed in order into one object"
    )
