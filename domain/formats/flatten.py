"""Dotted paths: freezing the columns of sampled documents and reading the value at a path.

Embedded documents flatten into dotted paths (`address.city`); arrays never do (an array is one
cell). A path segment that is all ASCII digits also indexes into an array (`items.0`), as in
MongoDB. Field names may themselves contain dots (MongoDB 5+ allows it), so `value_at` prefers
the nested reading of a path and falls back to keys that contain dots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from functools import lru_cache
from typing import Any, Final, Literal

from domain.models import Column
from domain.quotas import QuotaExceeded

MAX_PATH_LENGTH: Final = 500
"""The longest path a `Column` accepts (see `Column.path`)."""


class Missing(Enum):
    """The type of `MISSING`: a path that leads nowhere (not the same as a null value)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING

Path = tuple[str, ...]
"""A dotted path split into its segments."""


def is_document(value: Any) -> bool:
    """True for embedded documents (dict, SON, RawBSONDocument, any Mapping)."""
    return type(value) is dict or isinstance(value, Mapping)


@lru_cache(maxsize=4096)
def split_path(path: str) -> Path:
    """The segments of a dotted path, cached: the same few paths are read for every row."""
    return tuple(path.split("."))


def value_at(row: Mapping[str, Any], path: str) -> Any | Literal[Missing.MISSING]:
    """The value at a dotted path in `row`, or `MISSING` when there is none.

    A null value is returned as `None`; both encode as an empty CSV cell.
    """
    return value_at_parts(row, split_path(path))


def value_at_parts(row: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    """`value_at` for a path already split into segments (the encoders precompute them)."""
    node: Any = row
    for part in parts:
        node = _child(node, part)
        if node is MISSING:
            # Rare: a missing field, or a field name that contains dots. Search properly.
            return _search(row, parts, 0)
    return node


def _child(node: Any, key: str) -> Any:
    if type(node) is dict or isinstance(node, Mapping):
        return node.get(key, MISSING)
    if type(node) in (list, tuple) and key.isascii() and key.isdigit():
        index = int(key)
        return node[index] if index < len(node) else MISSING
    return MISSING


def _search(node: Any, parts: tuple[str, ...], start: int) -> Any:
    """The value at parts[start:] below node, letting one key span several dotted segments.

    The nested reading (one segment per key) is tried first, as MongoDB would read the path.
    """
    for end in range(start + 1, len(parts) + 1):
        key = parts[start] if end == start + 1 else ".".join(parts[start:end])
        child = _child(node, key)
        if child is MISSING:
            continue
        if end == len(parts):
            return child
        found = _search(child, parts, end)
        if found is not MISSING:
            return found
    return MISSING


def _is_segment(key: Any) -> bool:
    """Whether a field name can be a segment of a `Column.path`."""
    return isinstance(key, str) and key != "" and not key.startswith("$")


def freeze_columns(
    sample_rows: Iterable[Mapping[str, Any]],
    hidden_fields: Iterable[str] = frozenset(),
    *,
    max_columns: int | None = None,
) -> list[Column]:
    """The columns of an export without requested columns: the leaf paths of the sampled rows.

    Paths come in first-seen order. An embedded document is flattened into dotted paths unless
    it is empty or one of its field names cannot be part of a path (empty, `$`-prefixed, or the
    path would be too long); then it stays one cell, written as Extended JSON. `hidden_fields`
    (top-level names or dotted paths the chunk planner kept, not asked for by the user) and
    top-level names that cannot be a path never become columns.

    With `max_columns`, more distinct paths than that raise `QuotaExceeded` as soon as the
    sample shows them (a pipeline can give each row a million fields).
    """
    hidden = sorted(split_path(field) for field in hidden_fields)
    seen: dict[str, None] = {}
    for row in sample_rows:
        for key, value in strip_paths(row, hidden).items():
            if not _is_segment(key) or len(key) > MAX_PATH_LENGTH:
                continue
            _collect(key, value, seen, max_columns)
    return [Column(path=path) for path in seen]


def _collect(path: str, value: Any, seen: dict[str, None], max_columns: int | None) -> None:
    if is_document(value) and value and _can_flatten(path, value):
        for key, child in value.items():
            _collect(f"{path}.{key}", child, seen, max_columns)
    elif path not in seen:
        seen[path] = None
        if max_columns is not None and len(seen) > max_columns:
            raise QuotaExceeded(
                f"the first rows have more than {max_columns} distinct fields, the most columns "
                "an export may have (EXPORT_MAX_COLUMNS); name the columns you want in `columns`"
            )


def _can_flatten(path: str, document: Mapping[str, Any]) -> bool:
    room = MAX_PATH_LENGTH - len(path) - 1
    return all(_is_segment(key) and len(key) <= room for key in document)


def strip_paths(row: Mapping[str, Any], paths: Iterable[Path]) -> Mapping[str, Any]:
    """`row` without the values at `paths` (the same object when none of them is there).

    Only the documents on the way to a removed value are copied; `row` itself never changes.
    Like the chunk planner's removal, it goes through embedded documents, never into arrays.
    """
    result: dict[str, Any] | None = None
    for path in paths:
        if not _has_path(row if result is None else result, path):
            continue
        if result is None:
            result = dict(row)
        _remove(result, path)
    return row if result is None else result


def _has_path(document: Mapping[str, Any], path: Path) -> bool:
    node: Any = document
    for part in path:
        if not is_document(node) or part not in node:
            return False
        node = node[part]
    return True


def _remove(document: dict[str, Any], path: Path) -> None:
    head = path[0]
    if len(path) == 1:
        del document[head]
        return
    child = dict(document[head])  # a copy: the caller's row is never changed
    document[head] = child
    _remove(child, path[1:])
