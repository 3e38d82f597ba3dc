"""Small, pure statistics for side-by-side measurements (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Pairwise ratios of measurements taken side by side (same repetition)."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios need pairs: as many numerators as denominators")
    if any(d <= 0 for d in denominators):
        raise ValueError("ratios need positive denominators")
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, median, min and max (JSON-ready)."""
    return {
        "n": len(values),
        "median": median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    return {
        "n": float(len(seconds)),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p90_ms": percentile(seconds, 90) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000,
    }
