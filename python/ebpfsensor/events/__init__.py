# SPDX-License-Identifier: Apache-2.0
"""Event types: immutable msgspec Structs, one per record in bpf_src/events.h.

Field names are the C member names (nested structs flattened, ``_pad*``,
``type`` and ``size`` left out); a variable-length field described by
``<name>_len`` in C is ``<name>`` here. Every event carries its kind as the
tag ``"kind"`` and encodes to JSON and msgpack as it is::

    msgspec.json.encode(event)  # {"kind": "process_exec", "ts_ns": ..., ...}

Strings that are not valid UTF-8 in the kernel (file names are bytes) are
decoded with the ``surrogateescape`` error handler, so
``os.fsencode(event.exe)`` gives back the kernel's exact bytes; use
:func:`to_json` to encode such an event.

Timestamps (``ts_ns``, ``start_time_ns``) are CLOCK_BOOTTIME nanoseconds;
:func:`boot_to_wall_ns` converts them.
"""

from __future__ import annotations

import json

import msgspec

from ._base import EventType, boot_to_wall_ns
from ._kinds import BPF_KINDS as BPF_KINDS
from ._kinds import EVENT_CLASSES as EVENT_CLASSES
from ._kinds import KINDS as KINDS
from ._kinds import Event, event_class
from ._layout import decode
from .file import (
    DirCreate,
    FileChmod,
    FileChown,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
)
from .login import UserLogin
from .net import NetAccept, NetBind, NetConnect, NetListen
from .priv import BpfCall, CredChange, Kill, MemfdCreate, ModuleLoad, Mount, Ptrace, Setsid, Umount
from .process import ProcessExec, ProcessExit, ProcessFork

__all__ = [
    "BpfCall",
    "CredChange",
    "DirCreate",
    "Event",
    "EventType",
    "FileChmod",
    "FileChown",
    "FileCreate",
    "FileLink",
    "FileOpen",
    "FileRename",
    "FileSymlink",
    "FileUnlink",
    "Kill",
    "MemfdCreate",
    "ModuleLoad",
    "Mount",
    "NetAccept",
    "NetBind",
    "NetConnect",
    "NetListen",
    "ProcessExec",
    "ProcessExit",
    "ProcessFork",
    "Ptrace",
    "Setsid",
    "Umount",
    "UserLogin",
    "boot_to_wall_ns",
    "decode",
    "event_class",
    "to_json",
]


_json = msgspec.json.Encoder()


def to_json(event: Event) -> bytes:
    """One event as JSON. Bytes that are not UTF-8 appear as ``\\udcXX``
    escapes (the surrogateescape convention), so nothing is lost."""
    try:
        return _json.encode(event)
    except UnicodeEncodeError:
        return json.dumps(msgspec.to_builtins(event), ensure_ascii=True, separators=(",", ":")).encode()
