"""How rows are decoded from BSON: nothing the database can store fails an export.

- Dates outside the years 1 to 9999 (which Python's datetime cannot hold) decode as
  `bson.DatetimeMS` (`DatetimeConversion.DATETIME_AUTO`); the encoders write them as Extended
  JSON (`{"$date": {"$numberLong": "…"}}`).
- Invalid UTF-8 in a string is replaced with U+FFFD, and each replacement is counted, so the
  export's status can say how many (`warnings.invalid_utf8_replaced`).
"""

from __future__ import annotations

import codecs
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from bson.codec_options import CodecOptions, DatetimeConversion

INVALID_UTF8_WARNING = "invalid_utf8_replaced"
_ERROR_HANDLER = "durable-export-replace"
_counts = threading.local()


def _replace_and_count(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    _counts.replaced = getattr(_counts, "replaced", 0) + 1
    return "\ufffd", error.end


codecs.register_error(_ERROR_HANDLER, _replace_and_count)

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
    unicode_decode_error_handler=_ERROR_HANDLER,
)


class Replacements:
    """The replacements counted on this thread inside a `counting_replacements` block."""

    def __init__(self) -> None:
        self._start = getattr(_counts, "replaced", 0)

    @property
    def count(self) -> int:
        return int(getattr(_counts, "replaced", 0)) - self._start


@contextlib.contextmanager
def counting_replacements() -> Iterator[Replacements]:
    """Count the invalid UTF-8 sequences replaced by decodes on this thread in the block."""
    yield Replacements()
