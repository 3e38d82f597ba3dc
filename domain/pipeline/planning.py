"""Chunk planning: where a part's keyset bound goes in a validated pipeline, and on which key.

Each S3 part is read from ONE aggregate cursor that starts after a known cursor (the sort key of
the previous part's last row); a retried part re-runs `pipeline_for(cursor)` and gets the same
rows. So the planner gives every pipeline a deterministic total order and a keyset bound that is
cheap to apply, never `$skip`:

* ``source_keyset``: every stage keeps one output row per source document (or drops it), so the
  bound is `_id` right after the tenant filter, with `$sort {_id: 1}`: one indexed range scan.
* ``unwind_keyset``: as above, plus `$unwind` with an array index; the order is (`_id`, index...).
  Stage 0 bounds `_id >= last _id`, the full bound follows the last `$unwind`.
* ``sort_keyset``: the user's last `$sort` (with an `_id` tie-break) defines the order; the bound
  goes directly before it, where an index on the sort keys can serve both.
* ``blocking_keyset``: after the last blocking stage (`$group`, `$bucket`, ...), whose output has
  a unique `_id` (or is a single row), the rest is planned as above on that output. Each part
  re-runs the pipeline once, up to the blocking stage, and streams from one cursor.

A trailing `$skip`/`$limit` (only one-to-one stages after it) is applied globally: `$skip` in the
first part only, `$limit` as `row_limit`, which the reader enforces across parts. Fields the plan
keeps for the cursor that the user's stages removed (`_id` after `{_id: 0}`, sort keys, array
indexes) are listed in `hidden_fields` and stripped from every row.

The plan only adds `$match`, `$sort`, `$unwind` options and plain inclusions/removals in the
user's own `$project`/`$unset`; it never emits `$set` or `"$path"` expressions of its own, so it
runs wherever the user's pipeline runs (FerretDB evaluates no expressions, mongo-java-server has
no `$set`). Messages name stages by their index in the user's pipeline (tenant stage excluded).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from domain.pipeline.keyset import after, key_values
from domain.pipeline.validation import PipelineRejected

INTERNAL_PREFIX: Final = "__dx_"
"""Field names the plan adds; user pipelines may not use them."""

BLOCKING_STAGES: Final = frozenset(
    {"$group", "$bucket", "$bucketAuto", "$sortByCount", "$count", "$facet"}
)
ONE_TO_ONE_STAGES: Final = frozenset(
    {"$project", "$addFields", "$set", "$unset", "$lookup", "$graphLookup"}
)
"""Stages that neither drop, reorder nor multiply rows (so `$skip`/`$limit` commute with them)."""
_SKIP_LIMIT: Final = frozenset({"$skip", "$limit"})

_ALL: Final = "$$ROOT"
"""Marker for 'reads the whole document'."""

_SEGMENT_REFUSALS: Final[dict[str, str]] = {
    "$replaceRoot": "replaces the whole document, so the fields the chunk cursor resumes from "
    "(_id, sort keys) are lost; move it before a $group, or use $project",
    "$replaceWith": "replaces the whole document, so the fields the chunk cursor resumes from "
    "(_id, sort keys) are lost; move it before a $group, or use $project",
    "$redact": "can prune the fields the chunk cursor resumes from; move it before a $group",
    "$unionWith": "appends rows of another collection, and the combined rows have no unique key "
    "to resume a part from; export the collections separately or add a $group after it",
}


class PlanRefused(PipelineRejected):
    """No chunk plan can export this pipeline correctly; the message says where and why."""


@dataclass(frozen=True)
class _Bound:
    """Where `pipeline_for` puts a keyset `$match`: on the plan's keys (None), or on a prefix
    of them (the first `len(keys)` cursor values)."""

    keys: tuple[tuple[str, int], ...] | None
    inclusive: bool = False


@dataclass(frozen=True)
class _FirstPartOnly:
    """A stage that runs only in the first part (a trailing `$skip`)."""

    stage: dict[str, Any]


_Item = dict[str, Any] | _Bound | _FirstPartOnly


@dataclass(frozen=True)
class ChunkPlan:
    """How to read an export part by part. Pure and deterministic: rebuild it anywhere."""

    strategy: str
    """source_keyset, unwind_keyset, sort_keyset or blocking_keyset."""
    explanation: str
    """One line for humans (shown by the API)."""
    keys: tuple[tuple[str, int], ...]
    """The total order of the rows: (field, direction) pairs; a cursor holds their values."""
    hidden_fields: frozenset[str]
    """Fields kept for the cursor that must not reach the file. The encoders leave them out
    (`EncodingSpec.hidden_fields`, `domain.formats.column_access`): rows are read with them."""
    row_limit: int | None
    """A trailing user `$limit`: the export ends after this many rows in all."""
    items: tuple[_Item, ...] = field(repr=False)

    def pipeline_for(self, cursor: Sequence[Any] | None) -> list[dict[str, Any]]:
        """The pipeline reading every row after `cursor` (from the start when None), in order."""
        if cursor is not None and len(cursor) != len(self.keys):
            raise ValueError(
                f"a cursor of {len(cursor)} values for a plan keyed on {len(self.keys)} fields"
            )
        stages: list[dict[str, Any]] = []
        for item in self.items:
            if isinstance(item, _Bound):
                if cursor is not None:
                    keys = self.keys if item.keys is None else item.keys
                    values = tuple(cursor[: len(keys)])
                    stages.append({"$match": after(keys, values, inclusive=item.inclusive)})
            elif isinstance(item, _FirstPartOnly):
                if cursor is None:
                    stages.append(copy.deepcopy(item.stage))
            else:
                stages.append(copy.deepcopy(item))
        return stages

    def cursor_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The cursor after `row` (a row as the pipeline returns it, hidden fields included)."""
        return key_values(row, self.keys)


# ---------------------------------------------------------------------------------------------
# Field path helpers


def _overlaps(a: str, b: str) -> bool:
    """True when one path is the other or inside it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _within(path: str, outer: str) -> bool:
    """True when `path` is `outer` or inside it."""
    return path == outer or path.startswith(outer + ".")


def _string_refs(value: Any) -> Iterator[str]:
    """Field paths an expression reads ("$a.b" -> "a.b"; "$$ROOT" -> _ALL)."""
    if isinstance(value, str):
        if value.startswith("$$"):
            variable, _, rest = value[2:].partition(".")
            if variable in ("ROOT", "CURRENT"):
                yield rest if rest else _ALL
        elif value.startswith("$") and len(value) > 1:
            yield value[1:]
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _string_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_refs(item)


def _query_refs(query: Any) -> Iterator[str]:
    """Field paths a `$match` body reads."""
    if not isinstance(query, Mapping):
        return
    for key, value in query.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            for sub in value:
                yield from _query_refs(sub)
        elif key == "$expr":
            yield from _string_refs(value)
        elif key in ("$comment",):
            continue
        elif key.startswith("$"):
            yield _ALL  # $text, $jsonSchema, ...: reads fields we cannot name
        else:
            yield key


@dataclass(frozen=True)
class _ProjectionEntry:
    path: str
    kind: str  # "include", "exclude" or "compute"
    keys: tuple[str, ...]  # the chain of keys in the user's (possibly nested) spec
    value: Any


def _projection_entries(
    spec: Mapping[str, Any], prefix: str = "", keys: tuple[str, ...] = ()
) -> list[_ProjectionEntry]:
    entries = []
    for key, value in spec.items():
        path = f"{prefix}{key}"
        chain = (*keys, key)
        if isinstance(value, Mapping) and value and not any(k.startswith("$") for k in value):
            entries.extend(_projection_entries(value, f"{path}.", chain))
        elif isinstance(value, bool) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            kind = "include" if value else "exclude"
            entries.append(_ProjectionEntry(path, kind, chain, value))
        else:
            entries.append(_ProjectionEntry(path, "compute", chain, value))
    return entries


def _delete_chain(spec: dict[str, Any], chain: tuple[str, ...]) -> None:
    """Delete a nested key, pruning objects it leaves empty."""
    if len(chain) == 1:
        spec.pop(chain[0], None)
        return
    child = spec.get(chain[0])
    if isinstance(child, dict):
        _delete_chain(child, chain[1:])
        if not child:
            del spec[chain[0]]


def _hidden_path(path: str, user_paths: Sequence[str]) -> str:
    """The shortest prefix of `path` under which the user's projection puts nothing."""
    parts = path.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if not any(_overlaps(prefix, other) for other in user_paths):
            return prefix
    return path


# ---------------------------------------------------------------------------------------------
# The planner


@dataclass
class _Walk:
    """What the rewrite of a segment knows at each stage."""

    protected: list[str]
    hidden: set[str]
    label: str  # what the protected fields are, for messages

    def check_reads(self, where: str, refs: Sequence[str]) -> None:
        for hidden in sorted(self.hidden):
            for ref in refs:
                if ref == _ALL or _overlaps(ref, hidden):
                    shown = "the whole document" if ref == _ALL else repr(ref)
                    raise PlanRefused(
                        where,
                        f"reads {shown}, but {hidden!r} was removed by an earlier stage and the "
                        "export keeps it (hidden) to resume parts; reorder the stages so that "
                        f"{hidden!r} is removed last",
                    )

    def check_writes(self, where: str, paths: Sequence[str]) -> None:
        for path in paths:
            for protected in self.protected:
                if _overlaps(path, protected):
                    raise PlanRefused(
                        where,
                        f"changes {path!r}, but {protected!r} is {self.label} that each part "
                        "resumes from, so it must reach the output unchanged",
                    )
            for hidden in self.hidden:
                if _overlaps(path, hidden):
                    raise PlanRefused(
                        where,
                        f"writes {path!r}, but {hidden!r} was removed by an earlier stage and the "
                        "export keeps it (hidden) to resume parts",
                    )


def plan_chunks(pipeline: Sequence[Mapping[str, Any]], *, tenant_stage_count: int = 1) -> ChunkPlan:
    """Plan a validated pipeline (from `validate_pipeline`), or raise `PlanRefused`.

    `tenant_stage_count` leading stages are the injected tenant filter: they stay first, and the
    source keyset goes right after them.
    """
    stages = [_split(stage) for stage in pipeline]
    head = [{name: copy.deepcopy(body)} for name, body in stages[:tenant_stage_count]]
    user = [(name, copy.deepcopy(body)) for name, body in stages[tenant_stage_count:]]
    for index, (name, body) in enumerate(user):
        _refuse_internal_names(body, f"pipeline[{index}].{name}")

    blocking = [index for index, (name, _) in enumerate(user) if name in BLOCKING_STAGES]
    if blocking:
        last = blocking[-1]
        prefix = _deterministic_prefix(user[: last + 1])
        head.extend({name: body} for name, body in prefix)
        source_name = user[last][0]
        source_keys: list[tuple[str, int]] = (
            [("count", -1), ("_id", 1)] if source_name == "$sortByCount" else [("_id", 1)]
        )
        return _plan_segment(
            head, user[last + 1 :], last + 1, source_keys, source=(source_name, last)
        )
    return _plan_segment(head, user, 0, [("_id", 1)], source=None)


def _split(stage: Mapping[str, Any]) -> tuple[str, Any]:
    if not isinstance(stage, Mapping) or len(stage) != 1:
        raise ValueError("plan_chunks needs a validated pipeline (one-key stage objects)")
    ((name, body),) = stage.items()
    return str(name), body


def _refuse_internal_names(value: Any, where: str) -> None:
    if isinstance(value, str) and INTERNAL_PREFIX in value:
        raise PlanRefused(
            where, f"names starting with {INTERNAL_PREFIX} are reserved for the export"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_internal_names(key, where)
            _refuse_internal_names(item, where)
    elif isinstance(value, list):
        for item in value:
            _refuse_internal_names(item, where)


def _deterministic_prefix(prefix: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The stages up to the last blocking one, re-run by every part: they must select the same
    documents every time. A `$skip`/`$limit` there needs a `$sort` right before it (it gets an
    `_id` tie-break) or it would pick arbitrary documents, possibly different ones per part."""
    result = list(prefix)
    for index, (name, _body) in enumerate(result):
        if name not in _SKIP_LIMIT:
            continue
        before = index - 1
        while before >= 0 and result[before][0] in _SKIP_LIMIT:
            before -= 1
        if before < 0 or result[before][0] != "$sort":
            raise PlanRefused(
                f"pipeline[{index}].{name}",
                f"{name} before a {prefix[-1][0]} picks documents in no defined order, and every "
                "part re-runs it; put a $sort right before it",
            )
        sort_body = result[before][1]
        if "_id" not in sort_body:
            result[before] = ("$sort", {**sort_body, "_id": 1})
    return result


def _tail(
    segment: list[tuple[str, Any]], offset: int
) -> tuple[list[tuple[int, str, Any]], int, int | None]:
    """Split off a trailing `$skip`/`$limit` run; return the remaining stages (with their user
    index), the total skip and the limit."""
    first = len(segment)
    index = len(segment) - 1
    while index >= 0 and segment[index][0] in _SKIP_LIMIT | ONE_TO_ONE_STAGES:
        if segment[index][0] in _SKIP_LIMIT:
            first = index
        index -= 1
    skip, limit = 0, None
    rest: list[tuple[int, str, Any]] = []
    for position, (name, body) in enumerate(segment):
        where = f"pipeline[{offset + position}].{name}"
        if name in _SKIP_LIMIT and position >= first:
            if name == "$skip":
                skip += int(body)
                limit = None if limit is None else max(0, limit - int(body))
            else:
                limit = int(body) if limit is None else min(limit, int(body))
        elif name in _SKIP_LIMIT:
            raise PlanRefused(
                where,
                f"{name} in the middle of the pipeline counts rows that a part resuming from a "
                "cursor cannot count again; move it to the end (only $project/$addFields/$set/"
                "$unset/$lookup/$graphLookup after it) or after a $group",
            )
        else:
            rest.append((offset + position, name, body))
    return rest, skip, limit


def _plan_segment(
    head: list[dict[str, Any]],
    segment: list[tuple[str, Any]],
    offset: int,
    source_keys: list[tuple[str, int]],
    *,
    source: tuple[str, int] | None,
) -> ChunkPlan:
    stages, skip, limit = _tail(segment, offset)
    for index, name, _body in stages:
        if name in _SEGMENT_REFUSALS:
            raise PlanRefused(f"pipeline[{index}].{name}", _SEGMENT_REFUSALS[name])
    sorts = [position for position, (_, name, _) in enumerate(stages) if name == "$sort"]
    identity = ["_id"]
    protected = list(identity) if sorts else [key for key, _ in source_keys]
    walk = _Walk(protected=protected, hidden=set(), label="the row identity")
    items: list[_Item] = list(head)
    sort_index: int | None = None
    if sorts:
        at = sorts[-1]
        _rewrite_stages(stages[:at], walk, items, identity, allow_unwind=True, bound_after=False)
        sort_index, _, sort_body = stages[at]
        keys = [(str(key), int(direction)) for key, direction in sort_body.items()]
        keys += [(name, 1) for name in identity if name not in sort_body]
        items.extend([_Bound(None), {"$sort": dict(keys)}])
        walk.protected, walk.label = [key for key, _ in keys], "a sort key"
        _rewrite_stages(stages[at + 1 :], walk, items, identity, allow_unwind=False)
        strategy = "sort_keyset"
    else:
        unwinds = any(name == "$unwind" for _, name, _ in stages)
        items.append(_Bound(tuple(source_keys), inclusive=True) if unwinds else _Bound(None))
        items.append({"$sort": dict(source_keys)})
        _rewrite_stages(stages, walk, items, identity, allow_unwind=True)
        keys = [*source_keys, *((name, 1) for name in identity[1:])]
        strategy = "unwind_keyset" if unwinds else "source_keyset"
    explanation = _explain(strategy, keys, source, sort_index)
    if source is not None and source[0] in ("$count", "$facet") and len(keys) == 1:
        explanation = (
            f"each part re-runs the pipeline through {source[0]} at pipeline[{source[1]}], "
            "which returns a single row: the export is one part"
        )
    if source is not None:
        strategy = "blocking_keyset"
    if skip:
        items.append(_FirstPartOnly({"$skip": skip}))
    if limit:
        items.append({"$limit": limit})
    if limit is not None:
        explanation += f"; the export stops after {limit} rows"
    return ChunkPlan(
        strategy=strategy,
        explanation=explanation,
        keys=tuple(keys),
        hidden_fields=frozenset(walk.hidden),
        row_limit=limit,
        items=tuple(items),
    )


def _explain(
    strategy: str,
    keys: Sequence[tuple[str, int]],
    source: tuple[str, int] | None,
    sort_index: int | None,
) -> str:
    """One line for the API: where the bound is and what a part costs."""
    shown = _show(keys)
    if source is not None:
        name, index = source
        where = (
            f"on ({shown}) before the $sort at pipeline[{sort_index}]"
            if sort_index is not None
            else (f"on ({shown})")
        )
        return (
            f"each part re-runs the pipeline through {name} at pipeline[{index}] once and "
            f"streams its output from one cursor, with a keyset {where} after it"
        )
    if strategy == "sort_keyset":
        return (
            f"keyset on ({shown}) right before the $sort at pipeline[{sort_index}]: each part "
            "sorts only the rows after the cursor (an indexed range scan with an index on the "
            "tenant field and the sort keys)"
        )
    if strategy == "unwind_keyset":
        return (
            f"keyset on ({shown}): _id bounds the scan right after the tenant filter, the array "
            "index resumes inside a document after $unwind: each part is one indexed range scan"
        )
    return "keyset on _id right after the tenant filter: each part is one indexed range scan"


def _show(keys: Sequence[tuple[str, int]]) -> str:
    return ", ".join(key if direction == 1 else f"{key} desc" for key, direction in keys)


def _rewrite_stages(
    stages: Sequence[tuple[int, str, Any]],
    walk: _Walk,
    items: list[_Item],
    identity: list[str],
    *,
    allow_unwind: bool,
    bound_after: bool = True,
) -> None:
    """Append the rewritten stages to `items`. Each `$unwind` adds its array index field to
    `identity` (and protects it); with `bound_after`, the full keyset bound follows the last."""
    last_unwind = max(
        (position for position, (_, name, _) in enumerate(stages) if name == "$unwind"), default=-1
    )
    for position, (index, name, body) in enumerate(stages):
        where = f"pipeline[{index}].{name}"
        if name != "$unwind":
            rewritten = _rewrite_stage(name, body, where, walk)
            if rewritten is not None:
                items.append({name: rewritten})
            continue
        if not allow_unwind:
            raise PlanRefused(
                where,
                "$unwind after the $sort repeats the sort key of a row for each element, "
                "so no keyset can resume inside it; $unwind before the $sort",
            )
        spec, index_name, internal = _unwind(body, where, walk, len(identity) - 1)
        items.append({"$unwind": spec})
        identity.append(index_name)
        walk.protected.append(index_name)
        if internal:
            walk.hidden.add(index_name)
        if bound_after and position == last_unwind:
            items.append(_Bound(None))


def _unwind(body: Any, where: str, walk: _Walk, ordinal: int) -> tuple[dict[str, Any], str, bool]:
    spec = {"path": body} if isinstance(body, str) else dict(body)
    path = str(spec["path"])[1:]
    walk.check_reads(where, [path])
    walk.check_writes(where, [path])
    user_name = spec.get("includeArrayIndex")
    if user_name is not None:
        walk.check_writes(where, [str(user_name)])
        return spec, str(user_name), False
    name = f"{INTERNAL_PREFIX}idx" if ordinal == 0 else f"{INTERNAL_PREFIX}idx{ordinal}"
    spec["includeArrayIndex"] = name
    return spec, name, True


def _rewrite_stage(name: str, body: Any, where: str, walk: _Walk) -> Any:
    """The stage body to run (None: drop the stage), keeping protected fields."""
    if name == "$match":
        walk.check_reads(where, list(_query_refs(body)))
        return body
    if name == "$sort":
        walk.check_reads(where, list(body))
        return body
    if name in ("$addFields", "$set"):
        entries = _projection_entries(body)
        walk.check_reads(where, [ref for e in entries for ref in _string_refs(e.value)])
        walk.check_writes(where, [entry.path for entry in entries])
        return body
    if name == "$unset":
        return _rewrite_unset(body, where, walk)
    if name == "$project":
        return _rewrite_project(body, where, walk)
    if name == "$lookup":
        reads = [body["localField"]] if "localField" in body else []
        walk.check_reads(where, reads + list(_string_refs(body.get("let", {}))))
        walk.check_writes(where, [body["as"]])
        return body
    if name == "$graphLookup":
        walk.check_reads(where, list(_string_refs(body.get("startWith"))))
        walk.check_writes(where, [body["as"]])
        return body
    raise PlanRefused(where, f"{name} cannot be exported in chunks here")  # pragma: no cover


def _rewrite_unset(body: Any, where: str, walk: _Walk) -> Any:
    fields = [body] if isinstance(body, str) else list(body)
    kept = []
    for path in fields:
        keep = _kept_instead_of_removed(path, where, walk)
        if not keep:
            kept.append(path)
    if not kept:
        return None
    return kept[0] if isinstance(body, str) else kept


def _kept_instead_of_removed(path: str, where: str, walk: _Walk) -> bool:
    """For a removal of `path`: True when the plan keeps it (hidden) for a protected field."""
    if any(_within(path, hidden) for hidden in walk.hidden):
        return True  # already hidden: removing it again is a no-op
    for protected in walk.protected:
        if _within(protected, path):
            walk.hidden.add(path)
            return True
        if _within(path, protected):
            raise PlanRefused(
                where,
                f"removes {path!r} from {protected!r}, which is {walk.label} that each part "
                "resumes from, so it must reach the output unchanged",
            )
    return False


def _rewrite_project(body: Mapping[str, Any], where: str, walk: _Walk) -> Any:
    spec = copy.deepcopy(dict(body))
    entries = _projection_entries(spec)
    walk.check_reads(where, [ref for e in entries for ref in _string_refs(e.value)])
    excluding = any(e.kind == "exclude" and e.path != "_id" for e in entries) or all(
        e.kind == "exclude" for e in entries
    )
    if excluding:
        for entry in entries:
            if entry.kind == "exclude" and _kept_instead_of_removed(entry.path, where, walk):
                _delete_chain(spec, entry.keys)
        return spec or None
    for entry in entries:
        if entry.kind == "exclude":  # only _id may be excluded in an inclusion projection
            if _kept_instead_of_removed(entry.path, where, walk):
                _delete_chain(spec, entry.keys)
        elif entry.kind == "compute":
            walk.check_writes(where, [entry.path])
    user_paths = [entry.path for entry in entries]
    for protected in walk.protected:
        if protected == "_id":
            _check_id_kept(entries, where, walk)
            continue
        if any(e.kind == "include" and _within(protected, e.path) for e in entries):
            continue
        inner = [e.path for e in entries if e.path.startswith(protected + ".")]
        if inner:
            raise PlanRefused(
                where,
                f"keeps only {inner[0]!r} of {protected!r}, which is {walk.label} that each "
                "part resumes from, so it must reach the output unchanged",
            )
        spec[protected] = 1
        walk.hidden.add(_hidden_path(protected, user_paths))
    return spec


def _check_id_kept(entries: Sequence[_ProjectionEntry], where: str, walk: _Walk) -> None:
    for entry in entries:
        if entry.path != "_id" and entry.path.startswith("_id."):
            raise PlanRefused(
                where,
                f"changes {entry.path!r}, but '_id' is {walk.label} that each part resumes "
                "from, so it must reach the output unchanged",
            )
