"""Composing the partitions' objects into one multipart upload, in partition order.

Each part of the final upload is either one byte range of one partition object, copied by S3
itself (`UploadPartCopy` with `x-amz-copy-source-range`), or, where small objects meet, a few
ranges read back and uploaded as an ordinary part. S3's rules hold by construction: every part
but the last is at least 5 MiB and at most 5 GiB, and the bytes are the partitions' bytes in
order, cut anywhere (a gzip member cut in two is still one member once the parts are joined).

The walk keeps `pending` ranges while they add up to less than 5 MiB. The next object tops
them up to exactly 5 MiB when what it has left after that is itself at least 5 MiB (so no
more than 5 MiB is read back, whatever the object's size), else it joins whole (it is then
under 10 MiB). A remainder of at least 5 MiB is copied in ranges of at most 5 GiB, equal in
size. What is pending at the end is the last part.

Worked numbers (MiB): [3, 4, 40, 0, 1, 7] → the 4 would keep only 2 after topping the 3 up
to 5, so it joins whole: [3 + 4] (7, read back); [40] (one copy); the empty object is skipped;
the 1 waits, the 7 would keep 3 after topping it up, so it joins whole: [1 + 7] (8, read back,
the last part). 3 parts, 15 MiB read back. [2, 12000] → [2 + the first 3 of the 12000] (read
back), then the remaining 11,997 MiB in 3 copies of 3,999 MiB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from domain.part_sizing import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE


@dataclass(frozen=True)
class Segment:
    """Bytes `[start, end)` of partition object `index`."""

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ComposedPart:
    """One part of the final upload: copied when it is one segment, else read back and sent."""

    segments: tuple[Segment, ...]

    @property
    def size(self) -> int:
        return sum(segment.size for segment in self.segments)

    @property
    def copied(self) -> bool:
        return len(self.segments) == 1


class TooManyParts(ValueError):
    """The composition would need more than S3's 10,000 parts."""


def plan_composition(
    sizes: Sequence[int], *, min_part: int = MIN_PART_SIZE, max_part: int = MAX_PART_SIZE
) -> list[ComposedPart]:
    """The final upload's parts for partition objects of these sizes (see the module docstring).
    Empty when every object is empty (the caller uploads one empty part)."""
    parts: list[ComposedPart] = []
    pending: list[Segment] = []
    pending_size = 0
    for index, size in enumerate(sizes):
        position = 0
        if pending and size > 0:
            need = min_part - pending_size
            take = need if size - need >= min_part else size
            pending.append(Segment(index, 0, take))
            pending_size += take
            position = take
            if pending_size >= min_part:
                parts.append(ComposedPart(tuple(pending)))
                pending, pending_size = [], 0
        rest = size - position
        if rest <= 0:
            continue
        if rest < min_part:  # pending is empty here: the top-up above took all or emptied it
            pending.append(Segment(index, position, size))
            pending_size += rest
            continue
        count = math.ceil(rest / max_part)
        step = math.ceil(rest / count)
        for start in range(position, size, step):
            parts.append(ComposedPart((Segment(index, start, min(size, start + step)),)))
    if pending:
        parts.append(ComposedPart(tuple(pending)))
    if len(parts) > MAX_PARTS:
        raise TooManyParts(f"{len(parts)} parts, more than the {MAX_PARTS} S3 allows")
    return parts
