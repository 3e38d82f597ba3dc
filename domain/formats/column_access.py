"""How encoders read columns, and how hidden fields are kept out of every part.

Hidden fields are what the chunk planner keeps for the cursor although the user's stages removed
them (`_id` after `{_id: 0}`, sort keys, array indexes): top-level names or dotted paths into
embedded documents. They never reach the output:

* a column at or under a hidden path reads a key no document has, so it is always empty, even
  when a requested column names it;
* a column above a hidden path (`address` when `address.zip` is hidden) reads the row with the
  hidden path removed, and so does a JSONL line of the whole document.

Removal (`domain.formats.flatten.strip_paths`) copies only the documents on the way to a hidden value;
the row itself is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from domain.formats.flatten import MISSING, Path, split_path, strip_paths, value_at_parts
from domain.models import Column

__all__ = [
    "NEVER_A_KEY",
    "ColumnAccess",
    "paths_to_strip",
    "plan_columns",
    "strip_paths",
    "value_of",
]

NEVER_A_KEY: Final = "\x00hidden"
"""A key no document has: BSON field names cannot contain NUL."""

ColumnAccess = tuple[str, tuple[str, ...] | None]
"""How an encoder reads a column: its top-level key, and all its segments when it is nested."""


def _within(path: Path, outer: Path) -> bool:
    """Whether path is outer or lies inside it."""
    return path[: len(outer)] == outer


def plan_columns(columns: Iterable[Column], hidden_fields: Iterable[str]) -> list[ColumnAccess]:
    """How to read each column; a column at or under a hidden path reads nothing."""
    hidden = [split_path(field) for field in hidden_fields]
    plan: list[ColumnAccess] = []
    for column in columns:
        parts = split_path(column.path)
        if any(_within(parts, outer) for outer in hidden):
            plan.append((NEVER_A_KEY, None))
        else:
            plan.append((parts[0], parts if len(parts) > 1 else None))
    return plan


def value_of(row: Mapping[str, Any], key: str, parts: tuple[str, ...] | None) -> Any:
    """The value a column read as `(key, parts)` finds in a row, MISSING when absent."""
    return row.get(key, MISSING) if parts is None else value_at_parts(row, parts)


def paths_to_strip(columns: Iterable[Column] | None, hidden_fields: Iterable[str]) -> list[Path]:
    """The hidden paths to remove from each row before it is read: for whole documents
    (`columns` None) all of them, otherwise those lying strictly inside some column."""
    hidden = sorted(split_path(field) for field in hidden_fields)
    if columns is None:
        return hidden
    column_paths = [split_path(column.path) for column in columns]
    return [
        path
        for path in hidden
        if any(len(path) > len(column) and _within(path, column) for column in column_paths)
    ]
