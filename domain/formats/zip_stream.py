"""A ZIP container written front to back across parts, whose running state fits in JSON.

Why not a streaming-zip library: `stream-zip` (and zipfile in write mode) keep the CRC-32, the
sizes and the offsets of every entry inside a Python generator, which a killed worker loses. A
part written by another process must be able to continue an entry and, at the end, write the
central directory, so those numbers live in `ZipEntry`/`OpenEntry` (plain pydantic models the
encoder's `carry` serialises) and this module only turns them into bytes.

What it writes (APPNOTE 6.3.x): entries whose size is known when they start (small fixed files)
get a complete local header; a streamed entry gets a local header with bit 3 set (CRC and sizes
in a data descriptor after its data, 4-byte sizes: callers keep a streamed entry under 4 GiB).
The central directory uses ZIP64 only where an offset, the entry count or the directory itself
goes past the 32-bit fields; every timestamp is 1980-01-01 00:00 so the bytes never depend on
the clock.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict

DEFLATED: Final = 8
DESCRIPTOR_FLAG: Final = 0x08
MAX_32: Final = 0xFFFFFFFF
MAX_16: Final = 0xFFFF
MAX_ENTRY_BYTES: Final = MAX_32 - 1
"""The largest size a streamed entry may reach: its data descriptor holds 32-bit sizes."""

_DOS_TIME: Final = 0
_DOS_DATE: Final = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_VERSION: Final = 20
_VERSION_ZIP64: Final = 45

_LOCAL: Final = struct.Struct("<IHHHHHIIIHH")
_DESCRIPTOR: Final = struct.Struct("<IIII")
_CENTRAL: Final = struct.Struct("<IHHHHHHIIIHHHHHII")
_END: Final = struct.Struct("<IHHHHIIH")
_END64: Final = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64: Final = struct.Struct("<IIQI")


class ZipEntry(BaseModel):
    """A finished entry, as the central directory lists it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    offset: int
    crc: int
    compressed: int
    size: int
    descriptor: bool


class OpenEntry(BaseModel):
    """A streamed entry still being written: its running CRC-32 and sizes."""

    model_config = ConfigDict(extra="forbid")

    name: str
    offset: int
    crc: int = 0
    compressed: int = 0
    size: int = 0

    def closed(self) -> ZipEntry:
        return ZipEntry(
            name=self.name,
            offset=self.offset,
            crc=self.crc,
            compressed=self.compressed,
            size=self.size,
            descriptor=True,
        )


def new_deflater(level: int) -> zlib._Compress:
    """Raw deflate (no zlib header), as ZIP stores it."""
    return zlib.compressobj(level, zlib.DEFLATED, -15)


def local_header(name: str, *, crc: int = 0, compressed: int = 0, size: int = 0) -> bytes:
    """A local file header; without CRC and sizes (all 0), one for a streamed entry (bit 3:
    they follow its data in a data descriptor)."""
    encoded = name.encode("ascii")
    streamed = (crc, compressed, size) == (0, 0, 0)
    return (
        _LOCAL.pack(
            0x04034B50,
            _VERSION,
            DESCRIPTOR_FLAG if streamed else 0,
            DEFLATED,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            compressed,
            size,
            len(encoded),
            0,
        )
        + encoded
    )


def data_descriptor(entry: OpenEntry) -> bytes:
    if entry.compressed > MAX_32 or entry.size > MAX_32:
        raise ValueError(f"{entry.name} is over 4 GiB: a streamed entry must stay under it")
    return _DESCRIPTOR.pack(0x08074B50, entry.crc, entry.compressed, entry.size)


def whole_entry(name: str, data: bytes, offset: int, level: int) -> tuple[bytes, ZipEntry]:
    """A small entry written at once (known CRC and sizes): its bytes and its directory entry."""
    deflater = new_deflater(level)
    packed = deflater.compress(data) + deflater.flush(zlib.Z_FINISH)
    crc = zlib.crc32(data)
    entry = ZipEntry(
        name=name,
        offset=offset,
        crc=crc,
        compressed=len(packed),
        size=len(data),
        descriptor=False,
    )
    return local_header(name, crc=crc, compressed=len(packed), size=len(data)) + packed, entry


def central_directory(entries: Sequence[ZipEntry], offset: int) -> bytes:
    """The central directory and end records, for a directory starting at `offset`."""
    records = []
    for entry in entries:
        encoded = entry.name.encode("ascii")
        extra = b""
        header_offset = entry.offset
        if entry.offset >= MAX_32:
            extra = struct.pack("<HHQ", 0x0001, 8, entry.offset)
            header_offset = MAX_32
        records.append(
            _CENTRAL.pack(
                0x02014B50,
                _VERSION_ZIP64 if extra else _VERSION,
                _VERSION_ZIP64 if extra else _VERSION,
                DESCRIPTOR_FLAG if entry.descriptor else 0,
                DEFLATED,
                _DOS_TIME,
                _DOS_DATE,
                entry.crc,
                entry.compressed,
                entry.size,
                len(encoded),
                len(extra),
                0,
                0,
                0,
                0,
                header_offset,
            )
            + encoded
            + extra
        )
    directory = b"".join(records)
    count = len(entries)
    end = b""
    zip64 = offset >= MAX_32 or len(directory) >= MAX_32 or count >= MAX_16
    if zip64:
        end64_offset = offset + len(directory)
        end += _END64.pack(
            0x06064B50,
            _END64.size - 12,
            _VERSION_ZIP64,
            _VERSION_ZIP64,
            0,
            0,
            count,
            count,
            len(directory),
            offset,
        )
        end += _LOCATOR64.pack(0x07064B50, 0, end64_offset, 1)
    end += _END.pack(
        0x06054B50,
        0,
        0,
        min(count, MAX_16),
        min(count, MAX_16),
        min(len(directory), MAX_32),
        min(offset, MAX_32),
        0,
    )
    return directory + end
