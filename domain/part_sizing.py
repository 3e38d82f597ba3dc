"""How large each S3 part should be, so that even a 40 TiB export fits in 10,000 parts.

The schedule: parts of `base` bytes (8 MiB) until GROWTH_DIVISOR parts are written, then each
part is 1/GROWTH_DIVISOR of the bytes written so far, so the data grows geometrically (by
1/64 = 1.6 % per part) until parts reach MAX_TARGET_SIZE. With the default base:

* up to 512 MiB: 8 MiB parts (at most 64 of them);
* 1 GiB in 109 parts, 10 GiB in 258, 100 GiB in 406, 1 TiB in 630, 10 TiB in 2,570;
* 40 TiB (MAX_EXPORT_BYTES) in 9,037 parts (9,067 with the 5 MiB minimum as base).

The target depends only on the bytes written, and `W + target(W)` grows with `W`. A caller cuts a
part once its size reaches the target, so real parts are a little larger than the target (the last
row, a CSV batch, gzip's lag) and real exports reach any total in no more parts than the exact
schedule, which the tests check up to 40 TiB. MAX_TARGET_SIZE stays PART_HEADROOM below S3's
5 GiB so that overshoot never makes a part too large.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB
TIB: Final = 1024 * GIB

MIN_PART_SIZE: Final = 5 * MIB
"""S3's minimum for every part but the last."""
MAX_PART_SIZE: Final = 5 * GIB
"""S3's maximum for any part."""
MAX_PARTS: Final = 10_000
"""S3's maximum number of parts in one upload; part numbers run 1 to MAX_PARTS."""

DEFAULT_BASE_PART_SIZE: Final = 8 * MIB
GROWTH_DIVISOR: Final = 64
PART_HEADROOM: Final = 256 * MIB
"""Room above the target for the overshoot of a real cut (the last row, buffered rows)."""
MAX_TARGET_SIZE: Final = MAX_PART_SIZE - PART_HEADROOM
MAX_EXPORT_BYTES: Final = 40 * TIB
"""The largest export the schedule is proven to fit into MAX_PARTS parts."""


def target_part_size(
    bytes_written_so_far: int,
    parts_written_so_far: int,
    base: int = DEFAULT_BASE_PART_SIZE,
) -> int:
    """The size at which to cut the next part.

    Never under MIN_PART_SIZE, never over MAX_TARGET_SIZE (5 GiB minus headroom); `base` is
    clamped to that range. `parts_written_so_far` only guards against asking for a part number
    beyond MAX_PARTS: the schedule itself follows the bytes, which is what makes it monotone.
    """
    if bytes_written_so_far < 0 or parts_written_so_far < 0:
        raise ValueError("bytes and parts written so far cannot be negative")
    if parts_written_so_far >= MAX_PARTS:
        raise ValueError(f"an S3 upload has at most {MAX_PARTS} parts")
    grown = max(base, bytes_written_so_far // GROWTH_DIVISOR)
    return min(MAX_TARGET_SIZE, max(MIN_PART_SIZE, grown))


def part_size_violations(sizes: Sequence[int]) -> list[str]:
    """What breaks S3's multipart rules in a list of part sizes (empty when they are valid).

    At least one and at most MAX_PARTS parts; every part at most MAX_PART_SIZE; every part but
    the last at least MIN_PART_SIZE (the last may be smaller, even empty).
    """
    problems: list[str] = []
    if not sizes:
        problems.append("an upload needs at least one part")
    if len(sizes) > MAX_PARTS:
        problems.append(f"{len(sizes)} parts, more than the {MAX_PARTS} S3 allows")
    last = len(sizes) - 1
    for index, size in enumerate(sizes):
        number = index + 1
        if size < 0:
            problems.append(f"part {number} has a negative size {size}")
        elif size > MAX_PART_SIZE:
            problems.append(f"part {number} is {size} bytes, over the {MAX_PART_SIZE} maximum")
        elif index < last and size < MIN_PART_SIZE:
            problems.append(f"part {number} is {size} bytes, under the {MIN_PART_SIZE} minimum")
    return problems
