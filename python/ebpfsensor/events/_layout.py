# SPDX-License-Identifier: Apache-2.0
"""Record layouts matched to the event Structs, and the reference decoder.

One table per record, derived from cffi's view of bpf_src/events.h and the
Struct annotations; it drives the C transcoder and the Python decoder alike.
"""

from __future__ import annotations

import struct
import typing
from dataclasses import dataclass
from typing import Any

from .._ffi import ffi, lib
from .._text import fsdecode
from ..errors import DecodeError
from ._base import _Event
from ._kinds import EVENT_CLASSES, Event
from .net import ip_text

__all__ = ["HEADER_SIZE", "MAX_RECORD_LEN", "RECORDS", "FieldSpec", "RecordSpec", "c_members", "decode"]

# how each field is transcoded (csrc/consumer.h's ES_* kinds)
ES_U: int = lib.ES_U
ES_S: int = lib.ES_S
ES_BOOL: int = lib.ES_BOOL
ES_CSTR: int = lib.ES_CSTR
ES_TAIL_STR: int = lib.ES_TAIL_STR
ES_TAIL_STRLIST: int = lib.ES_TAIL_STRLIST
ES_BYTES: int = lib.ES_BYTES
ES_OPTBOOL: int = lib.ES_OPTBOOL
ES_INADDR: int = lib.ES_INADDR
_HIDDEN = {"type", "size"}  # event_header members carried by the tag instead
# filled in by the consumer, not in the record: the container id from the
# cgroup cache, the process context from the process table
_USER_SPACE = {"container_id", "process", "parent"}


@dataclass(frozen=True)
class FieldSpec:
    """Where one Struct field lives in its C record (ES_INADDR: ``aux`` is
    the offset of the record's ``family``)."""

    name: str
    kind: int
    offset: int
    size: int
    aux: int = 0


@dataclass(frozen=True)
class RecordSpec:
    """A record's C layout matched to its Struct."""

    cls: type[_Event]
    type: int
    fixed_size: int
    fields: tuple[FieldSpec, ...]

    @property
    def cgroup_offset(self) -> int:
        return next(f.offset for f in self.fields if f.name == "cgroup_id")


def c_members(ctype: Any, base: int = 0) -> list[tuple[str, int, Any]]:
    """Flattened (name, offset, ctype) of a C struct, nested structs inlined."""
    out: list[tuple[str, int, Any]] = []
    for name, field in ctype.fields:
        if field.type.kind == "struct":
            out.extend(c_members(field.type, base + field.offset))
        else:
            out.append((name, base + field.offset, field.type))
    return out


def _field_kind(name: str, annotation: Any, ctype: Any) -> int:
    if ctype.kind == "array" and ctype.item.cname == "char":
        if annotation is not str:
            raise TypeError(f"{name}: a char array decodes to str")
        return ES_CSTR
    if ctype.kind == "array" and ctype.item.cname == "uint8_t" and ctype.length is not None:
        # an IP address (network order, IPv4 in the first 4 bytes) as text
        if annotation is str and ctype.length == 16:
            return ES_INADDR
        if annotation is not bytes:
            raise TypeError(f"{name}: a __u8 array decodes to bytes, or a __u8[16] address to str")
        return ES_BYTES
    if ctype.kind != "primitive":
        raise TypeError(f"{name}: unsupported C type {ctype.cname}")
    if annotation is bool:
        return ES_BOOL
    if annotation == bool | None:
        if ctype.cname != "uint8_t":
            raise TypeError(f"{name}: an optional bool is a __u8 (0 false, 1 true, else unknown)")
        return ES_OPTBOOL
    if annotation is not int:
        raise TypeError(f"{name}: an integer member decodes to int or bool, not {annotation}")
    return ES_S if ctype.cname.startswith("int") else ES_U


def _record_spec(cls: type[_Event]) -> RecordSpec:
    ctype = ffi.typeof(f"struct {cls.record}")
    hints = typing.get_type_hints(cls)
    wanted = [f for f in cls.__struct_fields__ if f not in _USER_SPACE]
    fields: list[FieldSpec] = []
    members = c_members(ctype)
    family = next((o for n, o, t in members if n == "family" and t.cname == "uint16_t"), None)
    for name, offset, ft in members:
        if name.startswith("_pad") or name in _HIDDEN:
            continue
        if name.endswith("_len") and name[:-4] in hints:
            base = name[:-4]
            kind = ES_TAIL_STRLIST if hints[base] == list[str] else ES_TAIL_STR
            fields.append(FieldSpec(base, kind, offset, ffi.sizeof(ft)))
            continue
        if name not in hints:
            raise TypeError(f"{cls.__name__} lacks a field for {cls.record}.{name}")
        kind = _field_kind(name, hints[name], ft)
        if kind == ES_INADDR and family is None:
            raise TypeError(f"{cls.__name__}.{name}: an address read as text needs a __u16 family in {cls.record}")
        aux = family if kind == ES_INADDR and family is not None else 0
        fields.append(FieldSpec(name, kind, offset, ffi.sizeof(ft), aux))
    got = [f.name for f in fields]
    if sorted(got) != sorted(wanted):
        raise TypeError(f"{cls.__name__} fields {wanted} do not match struct {cls.record} {got}")
    return RecordSpec(cls, int(cls.event_type), ffi.sizeof(ctype), tuple(fields))


RECORDS: dict[int, RecordSpec] = {int(cls.event_type): _record_spec(cls) for cls in EVENT_CLASSES}
HEADER_SIZE = ffi.sizeof("struct event_header")
MAX_RECORD_LEN = lib.MAX_RECORD_LEN

_UNPACK = {
    (ES_U, 1): struct.Struct("<B"),
    (ES_U, 2): struct.Struct("<H"),
    (ES_U, 4): struct.Struct("<I"),
    (ES_U, 8): struct.Struct("<Q"),
    (ES_S, 4): struct.Struct("<i"),
    (ES_S, 8): struct.Struct("<q"),
    (ES_BOOL, 1): struct.Struct("<B"),
    (ES_OPTBOOL, 1): struct.Struct("<B"),
}
_HDR = struct.Struct("<QII")
_LEN = struct.Struct("<I")


def decode(record: bytes | bytearray | memoryview) -> Event:
    """Decode one raw record as it comes from a ring buffer.

    This is the reference decoder; the consumer transcodes records in C and
    uses it only for records whose strings are not valid UTF-8.

    Raises:
        DecodeError: the bytes are not a well-formed record.
    """
    buf = bytes(record)
    if len(buf) < HEADER_SIZE:
        raise DecodeError(f"record of {len(buf)} bytes is shorter than its header ({HEADER_SIZE})", None, 0)
    _ts, rtype, size = _HDR.unpack_from(buf, 0)
    spec = RECORDS.get(rtype)
    if spec is None:
        raise DecodeError(f"unknown record type {rtype}", rtype, 8)
    if size > len(buf):
        raise DecodeError(f"record claims {size} bytes but {len(buf)} arrived", rtype, 12)
    if size < spec.fixed_size:
        raise DecodeError(f"{spec.cls.__name__} record of {size} bytes, at least {spec.fixed_size} expected", rtype, 12)
    values: dict[str, Any] = {}
    tail = spec.fixed_size
    for f in spec.fields:
        if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST):
            (n,) = _LEN.unpack_from(buf, f.offset)
            if n > size - tail:
                raise DecodeError(
                    f"{spec.cls.__name__}.{f.name}: {n} bytes run past the record's {size}", rtype, f.offset
                )
            raw = buf[tail : tail + n]
            tail += n
            if f.kind == ES_TAIL_STR:
                values[f.name] = fsdecode(raw.rstrip(b"\0"))
            else:
                # NUL-separated, the last item NUL-terminated unless truncated
                items = raw[:-1] if raw.endswith(b"\0") else raw
                values[f.name] = [fsdecode(a) for a in items.split(b"\0")] if n else []
        elif f.kind == ES_CSTR:
            values[f.name] = fsdecode(buf[f.offset : f.offset + f.size].split(b"\0", 1)[0])
        elif f.kind == ES_BYTES:
            values[f.name] = buf[f.offset : f.offset + f.size]
        elif f.kind == ES_INADDR:
            (family,) = _UNPACK[(ES_U, 2)].unpack_from(buf, f.aux)
            values[f.name] = ip_text(family, buf[f.offset : f.offset + f.size])
        else:
            (v,) = _UNPACK[(f.kind, f.size)].unpack_from(buf, f.offset)
            if f.kind == ES_BOOL:
                v = bool(v)
            elif f.kind == ES_OPTBOOL:
                v = None if v > 1 else bool(v)
            values[f.name] = v
    return typing.cast(Event, spec.cls(**values))
