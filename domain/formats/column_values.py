"""The values of several columns of a batch of rows, read level by level.

`domain.formats.flatten.value_at_parts` reads one path of one row with a Python call per segment. For a
batch of decoded rows (dicts) the columns' paths are walked one level at a time for the whole
batch, each shared prefix once (`business` for `business.name` and `business.address.city`),
in list comprehensions. Where the walk finds no dict to go on with (a missing field, an array
index, a key containing dots, a `Mapping` that is not a dict), that row's value is read again
with `value_at_parts`, so the result is always exactly its.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from domain.formats.column_access import ColumnAccess
from domain.formats.flatten import MISSING, value_at_parts


def column_values(
    rows: Sequence[Mapping[str, Any]], plan: Sequence[ColumnAccess]
) -> list[list[Any]]:
    """Per column of `plan`, the value of each row (None where the path leads nowhere)."""
    levels: dict[tuple[str, ...], list[Any]] = {}
    out: list[list[Any]] = []
    plain = all(type(row) is dict for row in rows)
    for key, parts in plan:
        if parts is None:
            out.append(
                list(map(dict.get, rows, repeat(key)))  # type: ignore[arg-type]
                if plain
                else [row.get(key) for row in rows]
            )
            continue
        if not plain:
            values = [value_at_parts(row, parts) for row in rows]
            out.append([None if v is MISSING else v for v in values])
            continue
        values = _walk(rows, parts, levels)
        if MISSING in values:
            values = [
                value_at_parts(row, parts) if v is MISSING else v
                for v, row in zip(values, rows, strict=True)
            ]
            values = [None if v is MISSING else v for v in values]
        out.append(values)
    return out


def _walk(
    rows: Sequence[Mapping[str, Any]],
    parts: tuple[str, ...],
    levels: dict[tuple[str, ...], list[Any]],
) -> list[Any]:
    """The nodes at `parts` (MISSING where the walk stopped), reusing shared prefixes."""
    depth = len(parts)
    while depth > 0 and parts[:depth] not in levels:
        depth -= 1
    nodes: list[Any] = list(rows) if depth == 0 else levels[parts[:depth]]
    for end in range(depth + 1, len(parts) + 1):
        part = parts[end - 1]
        try:  # the common case: every node a dict (`dict.get` refuses anything else)
            nodes = list(map(dict.get, nodes, repeat(part), repeat(MISSING)))
        except TypeError:
            nodes = [n.get(part, MISSING) if type(n) is dict else MISSING for n in nodes]
        levels[parts[:end]] = nodes
    return nodes
