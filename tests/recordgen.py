# SPDX-License-Identifier: Apache-2.0
"""Build raw records as the BPF programs write them, for decoder tests."""

from __future__ import annotations

from typing import Any

from ebpfsensor._ffi import ffi
from ebpfsensor.events import EventType
from ebpfsensor.events._layout import RECORDS


def make_record(event_type: EventType, tails: dict[str, bytes] | None = None, **fields: Any) -> bytes:
    """A record of the given type: fields set by (flattened) C member name,
    tails (name -> bytes) appended in the order of their _len members."""
    spec = RECORDS[int(event_type)]
    rec = ffi.new(f"struct {spec.cls.record} *")
    rec.hdr.type = int(event_type)
    tails = tails or {}
    tail = b""
    for f in spec.fields:
        if f.name in tails:
            data = tails[f.name]
            _set(rec, f"{f.name}_len", len(data))
            tail += data
    for name, value in fields.items():
        _set(rec, name, value)
    rec.hdr.size = spec.fixed_size + len(tail)
    return bytes(ffi.buffer(rec)) + tail


def _set(rec: Any, name: str, value: Any) -> None:
    for target in (rec, rec.hdr, getattr(rec, "task", None), getattr(rec, "sys", None)):
        if target is None:
            continue
        try:
            if isinstance(value, (bytes, str)):
                data = value.encode() if isinstance(value, str) else value
                setattr(target, name, data)
            else:
                setattr(target, name, value)
            return
        except AttributeError:
            continue
    raise AttributeError(name)
