# SPDX-License-Identifier: Apache-2.0
"""The Event union and the kind names: which Struct each kind is."""

from __future__ import annotations

import typing
from typing import Any, Union

from ._base import _Event
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
from .loss import EventLoss
from .net import NetAccept, NetBind, NetConnect, NetListen
from .priv import BpfCall, CredChange, Kill, MemfdCreate, ModuleLoad, Mount, Ptrace, Setsid, Umount
from .process import ProcessExec, ProcessExit, ProcessFork

__all__ = ["BPF_KINDS", "EVENT_CLASSES", "KINDS", "MARKER_KINDS", "Event", "event_class", "kind_of"]

#: every event a Sensor delivers; UserLogin comes from the kernel audit
#: subsystem, EventLoss from the sensor itself
Event = Union[
    UserLogin,
    EventLoss,
    ProcessExec,
    ProcessFork,
    ProcessExit,
    FileOpen,
    FileCreate,
    FileUnlink,
    DirCreate,
    FileRename,
    FileChmod,
    FileChown,
    FileLink,
    FileSymlink,
    NetConnect,
    NetAccept,
    NetBind,
    NetListen,
    CredChange,
    Kill,
    Setsid,
    Ptrace,
    MemfdCreate,
    BpfCall,
    ModuleLoad,
    Mount,
    Umount,
]
#: the records that come from BPF programs (the union without UserLogin and EventLoss)
EVENT_CLASSES: tuple[type[_Event], ...] = tuple(
    c for c in typing.get_args(Event) if c is not UserLogin and c is not EventLoss
)


def kind_of(cls: type[Any]) -> str:
    """The kind name of an event Struct (its tag): ``ProcessExec`` -> ``"process_exec"``."""
    return str(cls.__struct_config__.tag)


_ALL: tuple[type[Any], ...] = (*EVENT_CLASSES, UserLogin)
#: the kinds one can collect (``Config.kinds``): kind name -> Struct
KINDS: dict[str, type[Any]] = {kind_of(cls): cls for cls in _ALL}
BPF_KINDS = frozenset(kind_of(cls) for cls in EVENT_CLASSES)
#: the kinds the sensor produces itself, not collected from a source; they
#: come when Config.kinds is None or names them, and subscribe() takes them
MARKER_KINDS: dict[str, type[Any]] = {kind_of(EventLoss): EventLoss}


def event_class(kind: str) -> type[_Event]:
    """The Struct for a kind name such as ``"process_exec"``.

    Raises:
        ValueError: unknown kind; the message lists the known ones.
    """
    cls = KINDS.get(kind) or MARKER_KINDS.get(kind)
    if cls is None:
        known = ", ".join(sorted({*KINDS, *MARKER_KINDS}))
        raise ValueError(f"unknown event kind {kind!r}; known kinds: {known}")
    return typing.cast(type[_Event], cls)
