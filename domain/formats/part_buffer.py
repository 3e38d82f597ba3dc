"""The bytes of one part: text in, UTF-8 out, optionally as one complete gzip member.

Each part is its own gzip member (zlib with wbits=31 writes mtime 0, so the bytes are the same on
every run), and gzip readers treat concatenated members as one stream: the parts of an upload
form one valid .gz file.
"""

from __future__ import annotations

import io
import zlib
from typing import Final

from domain.models import Compression

FLUSH_CHARS: Final = 256 * 1024
"""Text buffered before it is encoded (and compressed); bounds how far `size` lags behind."""
DEFAULT_GZIP_LEVEL: Final = 6


class PartBuffer:
    """Collects the text of one part and turns it into the part's bytes."""

    __slots__ = ("_compressor", "_finished", "_out", "_out_size", "text")

    def __init__(self, compression: Compression, gzip_level: int = DEFAULT_GZIP_LEVEL) -> None:
        self.text = io.StringIO()
        """Where encoders write; `flush_if_full` moves it on once it is large."""
        self._out = io.BytesIO()  # getvalue() hands over its buffer without a copy
        self._out_size = 0
        self._compressor = (
            zlib.compressobj(gzip_level, zlib.DEFLATED, 31) if compression == "gzip" else None
        )
        self._finished = False

    @property
    def size(self) -> int:
        """Bytes of the part so far, never more than the final length.

        Uncompressed: exact for flushed text, plus one byte per buffered character (UTF-8 needs
        at least one). Gzip: only the compressed bytes zlib has produced so far.
        """
        if self._compressor is None:
            return self._out_size + self.text.tell()
        return self._out_size

    def write(self, text: str) -> None:
        self.text.write(text)
        if self.text.tell() >= FLUSH_CHARS:
            self.flush()

    def flush_if_full(self) -> None:
        if self.text.tell() >= FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        """Encode (and compress) the buffered text."""
        if self.text.tell() == 0:
            return
        data = self.text.getvalue().encode("utf-8")
        self.text.seek(0)
        self.text.truncate()
        if self._compressor is not None:
            data = self._compressor.compress(data)
        self._out_size += self._out.write(data)

    def finish(self) -> bytes:
        """The complete bytes of the part. The buffer cannot be used afterwards."""
        if self._finished:
            raise RuntimeError("this part is already finished")
        self._finished = True
        self.flush()
        if self._compressor is not None:
            self._out_size += self._out.write(self._compressor.flush(zlib.Z_FINISH))
        data = self._out.getvalue()
        self._out = io.BytesIO()
        return data

    @property
    def finished(self) -> bool:
        return self._finished
