"""PatternSearch says what one regular expression over all the patterns would say."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.formats.byte_search import PatternSearch

_alphabet = st.sampled_from(b"\x00\x01\x08\x10ab.")
_bytes = st.lists(_alphabet, max_size=200).map(bytes)
_typed = st.tuples(st.sampled_from(b"\x01\x08\x10"), st.lists(_alphabet, min_size=1, max_size=4))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_typed.map(lambda t: bytes([t[0], *t[1]])), max_size=5),
    st.lists(st.lists(_alphabet, min_size=1, max_size=3).map(bytes), max_size=3),
    _bytes,
)
def test_the_search_agrees_with_a_regular_expression(
    typed: list[bytes], plain: list[bytes], data: bytes
) -> None:
    patterns = typed + plain
    expected = bool(patterns) and re.search(b"|".join(map(re.escape, patterns)), data) is not None
    assert PatternSearch(typed, plain).found(data) == expected


def test_a_pattern_at_the_very_end_and_cut_short() -> None:
    search = PatternSearch([b"\x01score\x00"])
    assert search.found(b"xx\x01score\x00")
    assert not search.found(b"xx\x01score")
    assert not search.found(b"\x01scores\x00")
    assert not PatternSearch([]).found(b"\x01score\x00")


def test_a_typed_pattern_of_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a byte after its first"):
        PatternSearch([b"\x01"])
