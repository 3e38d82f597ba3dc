"""Part sizes: within S3's limits for every export from 1 byte to 40 TiB."""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.part_sizing import (
    DEFAULT_BASE_PART_SIZE,
    GIB,
    MAX_EXPORT_BYTES,
    MAX_PART_SIZE,
    MAX_PARTS,
    MAX_TARGET_SIZE,
    MIB,
    MIN_PART_SIZE,
    PART_HEADROOM,
    TIB,
    part_size_violations,
    target_part_size,
)


def cut_parts(total: int, base: int = DEFAULT_BASE_PART_SIZE, overshoot: int = 0) -> list[int]:
    """The part sizes of an export of `total` bytes, cut at the target (plus an overshoot, as
    a real cut is a little late); the last part takes what is left."""
    sizes: list[int] = []
    written = 0
    while written < total:
        size = min(target_part_size(written, len(sizes), base) + overshoot, total - written)
        sizes.append(size)
        written += size
    return sizes


@cache
def schedule_ends(base: int) -> list[int]:
    """Where the exact schedule cuts parts, up to 40 TiB: the same for every export, since the
    target depends only on the bytes written so far."""
    ends: list[int] = []
    written = 0
    while written < MAX_EXPORT_BYTES:
        written += target_part_size(written, len(ends), base)
        ends.append(written)
    return ends


@pytest.mark.parametrize("base", [MIN_PART_SIZE, DEFAULT_BASE_PART_SIZE, 64 * MIB, 4 * GIB])
def test_forty_tib_fits_in_ten_thousand_parts(base: int) -> None:
    ends = schedule_ends(base)
    # Any export up to 40 TiB ends within the first len(ends) cuts of this schedule.
    assert len(ends) <= MAX_PARTS
    assert ends[-1] >= MAX_EXPORT_BYTES
    sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    assert min(sizes) >= MIN_PART_SIZE
    assert max(sizes) <= MAX_TARGET_SIZE


def test_the_default_schedule() -> None:
    assert len(schedule_ends(DEFAULT_BASE_PART_SIZE)) == 9037
    assert len(cut_parts(512 * MIB)) == 64
    assert set(cut_parts(512 * MIB)) == {8 * MIB}
    assert len(cut_parts(GIB)) == 109
    assert len(cut_parts(TIB)) == 630


_totals = st.one_of(
    st.integers(1, MAX_EXPORT_BYTES),
    # Log-uniform, so every scale from bytes to tebibytes is drawn as often.
    st.builds(
        lambda exponent, fraction: max(1, min(MAX_EXPORT_BYTES, int(2**exponent * fraction))),
        st.integers(0, 46),
        st.floats(0.5, 1.0),
    ),
    st.integers(1, 2 * GIB),
    st.sampled_from([1, MIN_PART_SIZE, DEFAULT_BASE_PART_SIZE + 1, MAX_EXPORT_BYTES]),
)


@settings(max_examples=60, deadline=None)
@given(_totals, st.sampled_from([MIN_PART_SIZE, DEFAULT_BASE_PART_SIZE, 100 * MIB]))
def test_exports_from_one_byte_to_forty_tib_stay_within_s3_limits(total: int, base: int) -> None:
    sizes = cut_parts(total, base)
    assert sum(sizes) == total
    assert part_size_violations(sizes) == []
    assert len(sizes) <= MAX_PARTS


@settings(max_examples=30, deadline=None)
@given(_totals, st.integers(0, PART_HEADROOM))
def test_late_cuts_never_need_more_parts_nor_break_the_limits(total: int, late: int) -> None:
    exact = cut_parts(total)
    real = cut_parts(total, overshoot=late)
    assert len(real) <= len(exact)
    assert part_size_violations(real) == []


@settings(max_examples=300)
@given(
    st.integers(0, 2 * MAX_EXPORT_BYTES),
    st.integers(0, MAX_PARTS - 1),
    st.integers(0, 2 * MAX_PART_SIZE),
)
def test_target_is_always_a_valid_size(written: int, parts: int, base: int) -> None:
    target = target_part_size(written, parts, base)
    assert MIN_PART_SIZE <= target <= MAX_TARGET_SIZE < MAX_PART_SIZE


@given(st.integers(0, 2 * MAX_EXPORT_BYTES), st.integers(0, 2 * MAX_EXPORT_BYTES))
def test_target_and_end_of_next_part_grow_with_the_bytes_written(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert target_part_size(low, 0) <= target_part_size(high, 0)
    assert low + target_part_size(low, 0) <= high + target_part_size(high, 0)


def test_no_target_past_the_last_part_number() -> None:
    assert target_part_size(0, MAX_PARTS - 1) == DEFAULT_BASE_PART_SIZE
    with pytest.raises(ValueError, match="10000"):
        target_part_size(0, MAX_PARTS)
    with pytest.raises(ValueError, match="negative"):
        target_part_size(-1, 0)


def test_part_size_violations() -> None:
    assert part_size_violations([1]) == []
    assert part_size_violations([0]) == []
    assert part_size_violations([MIN_PART_SIZE, MAX_PART_SIZE, 3]) == []
    assert part_size_violations([]) == ["an upload needs at least one part"]
    assert part_size_violations([MIN_PART_SIZE - 1, 1]) == [
        f"part 1 is {MIN_PART_SIZE - 1} bytes, under the {MIN_PART_SIZE} minimum"
    ]
    assert part_size_violations([MAX_PART_SIZE + 1]) == [
        f"part 1 is {MAX_PART_SIZE + 1} bytes, over the {MAX_PART_SIZE} maximum"
    ]
    assert part_size_violations([-1]) == ["part 1 has a negative size -1"]
    assert part_size_violations([MIN_PART_SIZE] * (MAX_PARTS + 1)) == [
        f"{MAX_PARTS + 1} parts, more than the {MAX_PARTS} S3 allows"
    ]


def test_random_real_cuts_up_to_forty_tib() -> None:
    """A seeded walk with uneven overshoot per part, as rows of different sizes give."""
    rng = random.Random(7)
    sizes: list[int] = []
    written = 0
    while written < MAX_EXPORT_BYTES:
        size = target_part_size(written, len(sizes)) + rng.randrange(PART_HEADROOM)
        size = min(size, MAX_EXPORT_BYTES - written)
        sizes.append(size)
        written += size
    assert part_size_violations(sizes) == []
