"""Just enough of Thrift's compact protocol to move a Parquet footer's offsets.

A Parquet part is written by pyarrow as a small file of its own, so the offsets in its footer
count from that file's start. In the export's object the part starts further on; `shift_offsets`
adds the distance to every offset the footer holds (row groups, column chunks, pages), decoding
and re-encoding the footer generically: fields it does not know pass through unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

# Compact protocol type ids.
_TRUE: Final = 1
_FALSE: Final = 2
_BYTE: Final = 3
_I16: Final = 4
_I32: Final = 5
_I64: Final = 6
_DOUBLE: Final = 7
_BINARY: Final = 8
_LIST: Final = 9
_SET: Final = 10
_MAP: Final = 11
_STRUCT: Final = 12

# Parquet's footer fields that hold an absolute file offset (parquet.thrift), by struct.
_FILE_META_ROW_GROUPS: Final = 4
_ROW_GROUP_COLUMNS: Final = 1
_ROW_GROUP_FILE_OFFSET: Final = 5
_CHUNK_FILE_OFFSET: Final = 2
_CHUNK_META: Final = 3
_CHUNK_OFFSET_INDEX_OFFSET: Final = 4
_CHUNK_COLUMN_INDEX_OFFSET: Final = 6
_META_OFFSETS: Final = frozenset({9, 10, 11, 14})  # data, index, dictionary page; bloom filter


@dataclass(slots=True)
class Field:
    id: int
    type: int
    value: Any


@dataclass(slots=True)
class Container:
    """A list or set: its element type and elements."""

    element_type: int
    items: list[Any]


@dataclass(slots=True)
class MapValue:
    key_type: int
    value_type: int
    pairs: list[tuple[Any, Any]]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (_TRUE, _FALSE):
            return self.byte() == _TRUE  # inside a container a bool is one byte
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            (number,) = struct.unpack_from("<d", self.data, self.pos)
            self.pos += 8
            return number
        if kind == _BINARY:
            size = self.varint()
            raw = self.data[self.pos : self.pos + size]
            self.pos += size
            return raw
        if kind in (_LIST, _SET):
            header = self.byte()
            size = header >> 4
            if size == 15:
                size = self.varint()
            element = header & 0x0F
            return Container(element, [self.value(element) for _ in range(size)])
        if kind == _MAP:
            size = self.varint()
            if size == 0:
                return MapValue(0, 0, [])
            types = self.byte()
            key, val = types >> 4, types & 0x0F
            return MapValue(key, val, [(self.value(key), self.value(val)) for _ in range(size)])
        if kind == _STRUCT:
            return self.struct()
        raise ValueError(f"unknown compact protocol type {kind}")

    def struct(self) -> list[Field]:
        fields: list[Field] = []
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            kind = header & 0x0F
            delta = header >> 4
            field_id = last + delta if delta else self.zigzag()
            if kind in (_TRUE, _FALSE):
                fields.append(Field(field_id, kind, kind == _TRUE))
            else:
                fields.append(Field(field_id, kind, self.value(kind)))
            last = field_id


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while True:
            if n < 0x80:
                self.out.append(n)
                return
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def value(self, kind: int, value: Any) -> None:
        if kind in (_TRUE, _FALSE):
            self.out.append(_TRUE if value else _FALSE)
        elif kind == _BYTE:
            self.out.append(value & 0xFF)
        elif kind in (_I16, _I32, _I64):
            self.zigzag(value)
        elif kind == _DOUBLE:
            self.out += struct.pack("<d", value)
        elif kind == _BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            size = len(value.items)
            if size < 15:
                self.out.append(size << 4 | value.element_type)
            else:
                self.out.append(0xF0 | value.element_type)
                self.varint(size)
            for item in value.items:
                self.value(value.element_type, item)
        elif kind == _MAP:
            self.varint(len(value.pairs))
            if value.pairs:
                self.out.append(value.key_type << 4 | value.value_type)
                for key, val in value.pairs:
                    self.value(value.key_type, key)
                    self.value(value.value_type, val)
        elif kind == _STRUCT:
            self.struct(value)
        else:
            raise ValueError(f"unknown compact protocol type {kind}")

    def struct(self, fields: list[Field]) -> None:
        last = 0
        for field in fields:
            kind = field.type
            if kind in (_TRUE, _FALSE):
                kind = _TRUE if field.value else _FALSE
            delta = field.id - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | kind)
            else:
                self.out.append(kind)
                self.zigzag(field.id)
            if kind not in (_TRUE, _FALSE):
                self.value(kind, field.value)
            last = field.id
        self.out.append(0)


def decode_struct(data: bytes) -> list[Field]:
    """The fields of one compact-protocol struct (a Parquet FileMetaData, say)."""
    return _Reader(data).struct()


def encode_struct(fields: list[Field]) -> bytes:
    writer = _Writer()
    writer.struct(fields)
    return bytes(writer.out)


def _shift(fields: list[Field], ids: frozenset[int], delta: int) -> None:
    for field in fields:
        if field.id in ids and field.type == _I64:
            field.value += delta


def shift_offsets(footer: bytes, delta: int) -> bytes:
    """A Parquet FileMetaData (thrift bytes) with every file offset moved by `delta`."""
    meta = decode_struct(footer)
    for field in meta:
        if field.id != _FILE_META_ROW_GROUPS:
            continue
        for group in field.value.items:
            _shift(group, frozenset({_ROW_GROUP_FILE_OFFSET}), delta)
            for group_field in group:
                if group_field.id != _ROW_GROUP_COLUMNS:
                    continue
                for chunk in group_field.value.items:
                    _shift(
                        chunk,
                        frozenset(
                            {
                                _CHUNK_FILE_OFFSET,
                                _CHUNK_OFFSET_INDEX_OFFSET,
                                _CHUNK_COLUMN_INDEX_OFFSET,
                            }
                        ),
                        delta,
                    )
                    for chunk_field in chunk:
                        if chunk_field.id == _CHUNK_META:
                            _shift(chunk_field.value, _META_OFFSETS, delta)
    return encode_struct(meta)
