# SPDX-License-Identifier: Apache-2.0
"""Putting the shared ProcessInfo objects on decoded events, in C.

Decoding a ProcessInfo into every event would make every event pay for some
twenty fields and an argv list, twice: several times the cost of the event
itself. Instead one ProcessInfo object per process state is shared by all
its events, and csrc/context.c's ``es_attach`` stores the pointers the
transcoder looked up into the events' ``process`` and ``parent`` slots, with
the GIL held, before anyone sees the events: a frozen Struct is filled the
way msgspec's own decoder fills it.

Where msgspec keeps those slots is found on real instances of every event
class (a sentinel object's address in the instance's memory), and the whole
path is tried once on a probe batch. If either fails (another msgspec
layout, another Python), the same objects are set from Python instead
(``msgspec.structs.force_setattr``): slower, but the same events.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
import typing
from typing import Any

import msgspec

from .._ffi import ffi, lib
from ..events._base import ProcessInfo, _Event
from ..events._kinds import EVENT_CLASSES

__all__ = ["Attacher", "attacher", "blank_info", "sample_event"]

log = logging.getLogger("ebpfsensor")

_ZERO: dict[Any, Any] = {int: 0, str: "", bool: False, bytes: b"", float: 0.0}


@functools.cache
def _zeros(cls: type[_Event]) -> dict[str, Any]:
    # msgspec resolved the annotations already (typing.get_type_hints would
    # evaluate every one again: milliseconds per class at each start)
    return {
        f.name: _ZERO.get(f.type, None)
        for f in msgspec.structs.fields(cls)
        if f.required and typing.get_origin(f.type) is not list
    }


def sample_event(cls: type[_Event], **fields: Any) -> Any:
    """An instance of an event class with every required field zero (a
    list field empty)."""
    values: dict[str, Any] = {name: [] for name in _list_fields(cls)}
    values.update(_zeros(cls))
    values.update(fields)
    return cls(**values)


@functools.cache
def _list_fields(cls: type[_Event]) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(cls) if f.required and typing.get_origin(f.type) is list)


def blank_info(pid: int = 1) -> ProcessInfo:
    """A ProcessInfo with nothing known: a probe's sentinel, a test's filler."""
    return ProcessInfo(
        entity_id="",
        pid=pid,
        start_time_ns=0,
        ppid=0,
        parent_entity_id="",
        exe="",
        argv=[],
        cwd="",
        comm="",
        uid=0,
        euid=0,
        gid=0,
        egid=0,
        loginuid=0,
        sessionid=0,
        sid=0,
        tty="",
        cgroup_id=0,
        container_id="",
    )


def _offset_of(obj: Any, value: Any) -> int | None:
    """Where obj's memory holds a pointer to value: the only such word, or None."""
    size = type(obj).__basicsize__
    # CPython: id() is the object's address
    raw = ctypes.string_at(id(obj), size)
    want = id(value)
    hits = [i for i in range(0, size - 7, 8) if int.from_bytes(raw[i : i + 8], sys.byteorder) == want]
    return hits[0] if len(hits) == 1 else None


class Attacher:
    """Puts ProcessInfo objects on events: through ``es_attach`` when the
    probe passed (:attr:`native`), else from Python."""

    def __init__(self) -> None:
        self.native = False
        self.why_not = ""
        self._process = self._parent = 0
        self._fn: Any = None
        try:
            self._probe()
        except (OSError, AttributeError, ValueError) as exc:
            self.why_not = f"es_attach unusable: {exc}"
        if not self.native:
            log.info("process context set from Python: %s", self.why_not)

    def _probe(self) -> None:
        a, b = blank_info(1), blank_info(2)
        offsets = set()
        for cls in EVENT_CLASSES:
            ev = sample_event(cls, process=a, parent=b)
            offsets.add((_offset_of(ev, a), _offset_of(ev, b)))
        if len(offsets) != 1 or None in next(iter(offsets)):
            self.why_not = f"the events keep process and parent at different places: {sorted(map(str, offsets))}"
            return
        self._process, self._parent = next(iter(offsets))  # type: ignore[assignment]
        so = sys.modules[lib.__name__.rpartition(".")[0]].__file__
        # PyDLL: the GIL stays held, and a py_object crosses as a PyObject *
        fn = ctypes.PyDLL(so).es_attach
        fn.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object, ctypes.c_ssize_t, ctypes.c_ssize_t]
        fn.restype = ctypes.c_int
        self._fn = fn
        # the whole path once, on a batch of one
        c = ffi.new("struct es_consumer *")
        refs = ffi.new("struct es_ctx_ref[]", 1)
        c.refs, c.count = refs, 1
        refs[0].process, refs[0].parent = id(a), id(b)
        ev = sample_event(EVENT_CLASSES[0])
        self.native = True
        self.attach(c, [ev])
        if ev.process is not a or ev.parent is not b:
            self.native = False
            self.why_not = "a probe event did not read back what es_attach stored"

    def attach(self, consumer: Any, batch: list[Any]) -> None:
        """Put on batch's events what the transcoder found for them
        (``consumer.refs``). batch is the decode of consumer's batch, as it is.
        """
        if self.native:
            ptr = int(ffi.cast("uintptr_t", consumer))
            if self._fn(ptr, batch, _Event, self._process, self._parent) < 0:
                raise RuntimeError("es_attach failed")
            return
        refs = consumer.refs
        for i in range(min(len(batch), int(consumer.count))):
            process, parent = int(refs[i].process), int(refs[i].parent)
            ev = batch[i]
            if (process or parent) and isinstance(ev, _Event):
                if process:
                    msgspec.structs.force_setattr(ev, "process", ctypes.cast(process, ctypes.py_object).value)
                if parent:
                    msgspec.structs.force_setattr(ev, "parent", ctypes.cast(parent, ctypes.py_object).value)


_attacher: list[Attacher] = []


def attacher() -> Attacher:
    """The process's one Attacher (probed on first use)."""
    if not _attacher:
        _attacher.append(Attacher())
    return _attacher[0]
