# SPDX-License-Identifier: Apache-2.0
"""A minimal reader of the .BTF section of a compiled object: enough to list
struct layouts, so tests and `ebpfsensor check` can compare them with cffi."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from elftools.elf.elffile import ELFFile

__all__ = ["Btf", "Member", "read_object_btf"]

_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
# kinds, as in include/uapi/linux/btf.h
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
# bytes following struct btf_type, fixed or per vlen item
_EXTRA_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_EXTRA_PER_ITEM = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}


@dataclass(frozen=True)
class Member:
    """A struct member, flattened: nested struct members carry their own offsets."""

    name: str
    offset: int
    size: int


class Btf:
    """Parsed BTF types."""

    def __init__(self, data: bytes) -> None:
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data, 0)
        if magic != 0xEB9F or version != 1:
            raise ValueError(f"not BTF (magic {magic:#x}, version {version})")
        self._strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        types = data[hdr_len + type_off : hdr_len + type_off + type_len]
        self.types: list[tuple[int, str, int, int, bytes]] = [(0, "", 0, 0, b"")]  # kind, name, vlen, size/type, extra
        pos = 0
        while pos < len(types):
            name_off, info, size_or_type = _TYPE.unpack_from(types, pos)
            pos += _TYPE.size
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            extra_len = _EXTRA_FIXED.get(kind, 0) + _EXTRA_PER_ITEM.get(kind, 0) * vlen
            self.types.append((kind, self._str(name_off), vlen, size_or_type, types[pos : pos + extra_len]))
            pos += extra_len
        self._by_name = {(t[0], t[1]): i for i, t in enumerate(self.types) if t[1]}

    def _str(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode()

    def size_of(self, type_id: int) -> int:
        """Size in bytes of a type, through typedefs and qualifiers."""
        kind, _name, _vlen, size_or_type, extra = self.types[type_id]
        if kind in (INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT):
            return size_or_type
        if kind == PTR:
            return 8
        if kind == ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", extra)
            return self.size_of(elem) * int(nelems)
        if kind in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, VAR):
            return self.size_of(size_or_type)
        raise ValueError(f"type {type_id} (kind {kind}) has no size")

    def _resolve(self, type_id: int) -> int:
        while self.types[type_id][0] in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG):
            type_id = self.types[type_id][3]
        return type_id

    def struct(self, name: str) -> tuple[int, list[Member]] | None:
        """(size, flattened members) of ``struct name``, or None if absent."""
        type_id = self._by_name.get((STRUCT, name))
        if type_id is None:
            return None
        return self.types[type_id][3], self._members(type_id, 0)

    def _members(self, type_id: int, base: int) -> list[Member]:
        _kind, _name, vlen, _size, extra = self.types[type_id]
        out: list[Member] = []
        for i in range(vlen):
            name_off, mtype, moff = struct.unpack_from("<III", extra, 12 * i)
            offset = base + (moff & 0xFFFFFF) // 8  # kind_flag structs keep bitfield size in the top byte
            resolved = self._resolve(mtype)
            if self.types[resolved][0] == STRUCT:
                out.extend(self._members(resolved, offset))
            else:
                out.append(Member(self._str(name_off), offset, self.size_of(mtype)))
        return out


def read_object_btf(path_or_bytes: str | bytes) -> Btf:
    """The BTF of a compiled BPF object file (or its bytes)."""
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    elf = ELFFile(io.BytesIO(data))
    sec = elf.get_section_by_name(".BTF")
    if sec is None:
        raise ValueError("object has no .BTF section (built without -g?)")
    return Btf(sec.data())
