"""Whether a batch's BSON bytes hold any of a set of short patterns, faster than a regular
expression: the Arrow paths ask this of every batch (`domain.formats.arrow_batches`).

The patterns are mostly a BSON type byte followed by a field name (`\\x01score`: a double named
`score`). A regular expression tries every alternative at every byte; here numpy finds the
positions of each type byte in one pass, and each name is compared at those positions only, a
byte at a time over all of them (candidates drop out after a byte or two). Other patterns
(`business.`) are plain substring searches. On scenario 5's demo report in batches of 256 rows:
2.9× faster than the one regular expression it replaces, which was a sixth of the Arrow CSV
engine's time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class PatternSearch:
    """`found(data)`: whether any pattern occurs anywhere in `data` (exactly as
    `re.search(b"|".join(map(re.escape, patterns)), data)` would say)."""

    def __init__(self, typed: Iterable[bytes], plain: Iterable[bytes] = ()) -> None:
        """`typed`: patterns whose first byte is rare enough to look up (a BSON type byte);
        `plain`: substrings searched for as they are."""
        self._by_first: dict[int, list[bytes]] = {}
        for pattern in typed:
            if len(pattern) < 2:
                raise ValueError(f"a typed pattern needs a byte after its first: {pattern!r}")
            self._by_first.setdefault(pattern[0], []).append(pattern[1:])
        self._plain = [p for p in plain if p]

    def __bool__(self) -> bool:
        return bool(self._by_first or self._plain)

    def found(self, data: bytes) -> bool:
        if any(pattern in data for pattern in self._plain):
            return True
        if not self._by_first:
            return False
        array = np.frombuffer(data, np.uint8)
        size = len(array)
        for first, rests in self._by_first.items():
            starts = np.flatnonzero(array == first) + 1  # where the rest must begin
            if not starts.size:
                continue
            for rest in rests:
                candidates = starts[starts <= size - len(rest)]
                for offset, byte in enumerate(rest):
                    candidates = candidates[array[candidates + offset] == byte]
                    if not candidates.size:
                        break
                else:
                    return True
        return False
