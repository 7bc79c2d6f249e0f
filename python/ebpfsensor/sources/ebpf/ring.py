# SPDX-License-Identifier: Apache-2.0
"""RingBuffer: drains one or more BPF ring buffers into batches of Events.

No Python code runs per record: libbpf hands each record to a C callback
that checks it and copies it into one batch buffer, and one C call
(csrc/build.c) makes the whole batch's events, msgspec Structs filled as
msgspec's own decoder fills them. Where that path does not pass its check
(another msgspec layout, another Python), the C callback transcodes each
record into msgpack instead and the batch is decoded by one msgspec call.
Records whose strings are not UTF-8 come through raw and are decoded by
:func:`ebpfsensor.events.decode`.

With a process context (:meth:`RingBuffer.set_context`), a poll drains the
lifecycle ring first and hands its events to the process table, which puts
what it learns in the C cache (:class:`ProcessCache`); the activity ring's
records are then looked up there as they are transcoded, and the shared
ProcessInfo objects put on their events in C. Only the events of processes
the cache does not know go to Python.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
import sys
import time
import typing
from collections.abc import Sequence
from typing import Any, Protocol, Union

import msgspec

from ..._ffi import check_ptr, check_ret, ffi, lib
from ...errors import DecodeError
from ...events import EVENT_CLASSES, Event, EventType, ProcessExit
from ...events._base import ProcessInfo
from ...events._kinds import kind_of
from ...events._layout import MAX_RECORD_LEN, RECORDS, decode
from ...host.containers import CgroupResolver
from ...process._attach import attacher

__all__ = ["BatchDecoder", "ContextHooks", "ProcessCache", "RingBuffer"]

log = logging.getLogger("ebpfsensor")

# the most one record can take in a batch: strings are copied once, every
# other field takes a key and at most 9 bytes
_RESERVE = 2 * MAX_RECORD_LEN + 4096


# how long a cgroup id missing from the cgroup tree is looked for again
_UNKNOWN_S = 10.0

# what a batch holds: transcoded events, and raw records (bytes) for the Python decoder
_BATCH_ITEM: Any = Union.__getitem__((*EVENT_CLASSES, bytes))


# exits held back while the activity ring is not drained to its end: at most
# this many, for at most this many polls
_HOLD_EXITS = 4096
_HOLD_POLLS = 8


def _msgpack_str(text: str) -> bytes:
    return msgspec.msgpack.encode(text)


class _Builder:
    """Where the event classes keep their fields, for ``es_build``
    (csrc/build.c) to make events in C: found on real instances (a
    sentinel object's address in the instance's memory), then the whole
    path checked once against the msgspec decode of a record of every type.

    Attributes:
        native: es_build is usable; when not, ``why_not`` says why.
        slots: per event class, each field's offset in its instances.
    """

    def __init__(self) -> None:
        self.native = False
        self.why_not = ""
        self.slots: dict[type, dict[str, int]] = {}
        self.fn: Any = None
        try:
            self._probe()
        except (OSError, AttributeError, ValueError, TypeError) as exc:
            self.why_not = f"es_build unusable: {exc}"

    def _probe(self) -> None:
        for spec in RECORDS.values():
            cls = spec.cls
            # Py_TPFLAGS_HAVE_GC: es_build makes untracked objects
            if typing.cast(Any, cls).__flags__ & (1 << 14):
                self.why_not = f"{cls.__name__} is tracked by the garbage collector"
                return
            sentinels: dict[str, Any] = {name: object() for name in cls.__struct_fields__}
            slots = _slots_of(cls(**sentinels), sentinels)
            if slots is None:
                self.why_not = f"the fields of {cls.__name__} are not each in a slot of their own"
                return
            self.slots[cls] = slots
        so = sys.modules[lib.__name__.rpartition(".")[0]].__file__
        # PyDLL: the GIL stays held, and a py_object crosses as a PyObject *
        fn = ctypes.PyDLL(so).es_build
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = ctypes.py_object
        self.fn = fn
        self.native = True

    def check(self) -> None:
        """Build a record of every type, with strings and an argv, both
        ways; build mode stays off unless the events are the same."""
        records = [_sample_record(spec) for spec in RECORDS.values()]
        # the smallest batch buffer: this runs at the first consumer's start
        built = BatchDecoder(0, len(records), build=True).transcode(records)
        decoded = BatchDecoder(0, len(records), build=False).transcode(records)
        same = len(built) == len(decoded) and all(
            type(a) is type(b) and a == b and msgspec.json.encode(a) == msgspec.json.encode(b)
            for a, b in zip(built, decoded, strict=True)
        )
        if not same:
            self.native = False
            self.why_not = "events built in C differ from msgspec's"


def _slots_of(obj: Any, values: dict[str, Any]) -> dict[str, int] | None:
    """Where obj's memory holds a pointer to each of values (by name): each
    in one word of its own, or None."""
    size = type(obj).__basicsize__ // 8 * 8
    # CPython: id() is the object's address
    words = struct.unpack(f"{size // 8}P", ctypes.string_at(id(obj), size))
    where: dict[int, list[int]] = {}
    for i, word in enumerate(words):
        where.setdefault(word, []).append(8 * i)
    found = {name: where.get(id(v), []) for name, v in values.items()}
    if any(len(hits) != 1 for hits in found.values()):
        return None
    return {name: hits[0] for name, hits in found.items()}


def _sample_record(spec: Any) -> bytes:
    """A record of spec's type with every member set (small numbers, a
    short string in every char array, "a" "b" in every list tail)."""
    rec = ffi.new(f"struct {spec.cls.record} *")
    raw = bytearray(ffi.buffer(rec))
    tail = b""
    for i, f in enumerate(spec.fields):
        if f.kind in (lib.ES_TAIL_STR, lib.ES_TAIL_STRLIST):
            text = b"a\0b\0" if f.kind == lib.ES_TAIL_STRLIST else b"/x/" + f.name.encode()
            raw[f.offset : f.offset + 4] = len(text).to_bytes(4, sys.byteorder)
            tail += text
        elif f.kind == lib.ES_CSTR:
            text = f.name.encode()[: f.size - 1]
            raw[f.offset : f.offset + len(text)] = text
        elif f.kind != lib.ES_INADDR and f.name != "cgroup_id":
            raw[f.offset] = (i % 3) + 1
    raw[8:12] = spec.type.to_bytes(4, sys.byteorder)
    raw[12:16] = (len(raw) + len(tail)).to_bytes(4, sys.byteorder)
    return bytes(raw) + tail


_builders: list[_Builder] = []


def builder() -> _Builder:
    """The process's one _Builder (probed and checked on first use)."""
    if not _builders:
        b = _Builder()
        _builders.append(b)
        if b.native:
            try:
                b.check()
            except Exception as exc:  # any failure of the check: the msgpack path
                b.native = False
                b.why_not = f"es_build failed its check: {exc!r}"
        if not b.native:
            log.info("events decoded by msgspec: %s", b.why_not)
    return _builders[0]


class _Tables:
    """The C field tables for every record type; with slots (see
    :class:`_Builder`), what es_build needs too.

    lifetime: the cdata objects here are referenced by the es_consumer and
    must live as long as it; RingBuffer keeps this object.
    """

    def __init__(self, slots: dict[type, dict[str, int]] | None = None) -> None:
        self._keep: list[Any] = []
        n = max(RECORDS) + 1
        self.records = ffi.new("struct es_record[]", n)
        for rtype, spec in RECORDS.items():
            fields = ffi.new("struct es_field[]", len(spec.fields))
            for i, f in enumerate(spec.fields):
                key = _msgpack_str(f.name)
                key_c = ffi.new("char[]", key)
                self._keep.append(key_c)
                fields[i].kind = f.kind
                fields[i].offset = f.offset
                fields[i].size = f.size
                fields[i].aux = f.aux
                fields[i].key = key_c
                fields[i].key_len = len(key)
                if slots is not None:
                    fields[i].slot = slots[spec.cls][f.name]
            # the C side writes container_id's value right after this head
            head = _msgpack_str("kind") + _msgpack_str(kind_of(spec.cls)) + _msgpack_str("container_id")
            head_c = ffi.new("char[]", head)
            self._keep += [fields, head_c]
            r = self.records[rtype]
            r.fixed_size = spec.fixed_size
            r.nfields = len(spec.fields)
            r.head = head_c
            r.head_len = len(head)
            r.fields = fields
            r.cgroup_off = spec.cgroup_offset
            if slots is not None:
                # lifetime: the classes are module-level, alive as long as the process
                r.cls = id(spec.cls)
                r.slot_container = slots[spec.cls]["container_id"]
                r.slot_process = slots[spec.cls]["process"]
                r.slot_parent = slots[spec.cls]["parent"]
        self.count = n


class ProcessCache:
    """The consumer's C cache of process context: (pid, start time) ->
    the ProcessInfo objects its events get (see csrc/consumer.h).

    lifetime: the cache holds the objects' addresses, not references: the
    caller (the process table) keeps every object it sets alive until it
    sets or deletes that key again, and changes nothing between a poll's
    transcoding and the events' attach (it runs only from the ring's hooks
    and between polls).
    """

    _MIN_SLOTS = 1024

    def __init__(self, consumer: Any) -> None:
        self._c = consumer
        self.live = 0
        self._slots: Any = None
        self._move(self._MIN_SLOTS)

    def _move(self, nslots: int) -> None:
        # lifetime: the slot array is the consumer's until the next move;
        # kept here, and the old one freed only after es_proc_move copied it
        slots = ffi.new("struct es_proc_slot[]", nslots)
        lib.es_proc_move(self._c, slots, nslots)
        self._slots = slots

    def set(
        self,
        pid: int,
        start_ns: int,
        info: ProcessInfo | None,
        ppid: int = 0,
        pstart_ns: int = 0,
        since_ns: int = 0,
        prev: ProcessInfo | None = None,
    ) -> None:
        """What the events of a process get: info, or prev for those before
        since_ns; its parent is (ppid, pstart_ns), 0 when it has none the
        table can name. info None: known, and nothing to give."""
        if not start_ns:
            # no start time, no key (a record from a hook that cannot read
            # it): the events of this process go through the table's lookup
            return
        args = (pid, start_ns, ppid, pstart_ns, since_ns, id(info) if info else 0, id(prev) if prev else 0)
        rc = lib.es_proc_set(self._c, *args)
        if rc < 0:
            # seven eighths used, deleted slots included: half full after the move
            size = self._MIN_SLOTS
            while size < 2 * (self.live + 1):
                size *= 2
            self._move(size)
            rc = lib.es_proc_set(self._c, *args)
        if rc < 0:
            raise RuntimeError(f"process cache: no slot for pid {pid}")
        self.live += rc

    def delete(self, pid: int, start_ns: int) -> None:
        """Forget a process (its objects may then be dropped)."""
        if lib.es_proc_del(self._c, pid, start_ns) == 0:
            self.live -= 1

    def last_active(self, pid: int, start_ns: int) -> int:
        """ts_ns of the newest record that found the process, 0 for none."""
        return int(lib.es_proc_last(self._c, pid, start_ns))

    @property
    def nbytes(self) -> int:
        """Memory the slots take."""
        return int(self._c.proc_slots) * int(ffi.sizeof("struct es_proc_slot"))


class ContextHooks(Protocol):
    """What a RingBuffer calls while it drains, for the process context."""

    def lifecycle(self, events: list[Event]) -> None:
        """Learn from the lifecycle ring's events (in ring order), set the
        cache, and put their context on them."""
        ...

    def resolve(self, events: list[Event]) -> None:
        """Find the context the cache had none for (an unknown process, a
        changed parent) and put it on these events."""
        ...


class BatchDecoder:
    """The C transcoder and the batch decoder, without a ring: decodes raw
    records exactly as a RingBuffer would. Needs no kernel.

    Args:
        batch_bytes: size of the batch buffer (at least 256 KiB).
        max_batch: most records per batch.
        build: make the events in C (csrc/build.c); False: transcode to
            msgpack and decode with msgspec; None: in C where that passed
            its check.
    """

    def __init__(self, batch_bytes: int = 4 << 20, max_batch: int = 16384, *, build: bool | None = None) -> None:
        batch_bytes = max(batch_bytes, 4 * _RESERVE)
        b = builder() if build is not False else None
        if build and not (b is not None and b.native):
            raise ValueError(f"events cannot be built in C here: {b.why_not if b else ''}")
        native = b if b is not None and b.native else None
        self._build: Any = native.fn if native is not None else None
        self._tables = _Tables(native.slots if native is not None else None)
        # lifetime: the consumer, its batch buffer and the tables stay alive
        # until close(), after the libbpf ring_buffer that points at them is freed
        self._c = ffi.new("struct es_consumer *")
        self._buf = ffi.new("uint8_t[]", batch_bytes)
        self._c.buf = self._buf
        self._c.cap = batch_bytes
        self._c.reserve = _RESERVE
        self._c.max_count = max_batch
        self._c.records = self._tables.records
        self._c.nrecords = self._tables.count
        self._c.build = int(self._build is not None)
        self._cptr = int(ffi.cast("uintptr_t", self._c))
        self._cgroup_slots = ffi.new("struct es_cgroup_slot[]", lib.ES_CGROUP_SLOTS)
        self._c.cgroups = self._cgroup_slots
        self._containers = CgroupResolver()
        self._known: dict[int, str] = {}
        # cgroup id -> when first seen, for ids not yet in the cgroup tree
        self._unknown: dict[int, float] = {}
        self._decoder = msgspec.msgpack.Decoder(list[_BATCH_ITEM])
        self._context: ContextHooks | None = None
        self.undecodable = 0
        # records the Python decoder handled, per type: not in the C counters
        self._raw_delivered: dict[int, int] = {}

    def _decode(self, size: int) -> list[Any]:
        """The batch just drained (size bytes of the buffer) as events, raw
        records as bytes."""
        if self._build is not None:
            return typing.cast(list[Any], self._build(self._cptr))
        return self._decoder.decode(ffi.buffer(self._buf, size))

    def _finish(self, items: list[Any], decoded: list[Event] | None = None) -> list[Event]:
        """Decode raw records and fill in container ids the C side lacked.

        Events keep their identity (the container id is set in place: nobody
        has seen them yet); the raw records decoded here are also appended
        to decoded, when given.
        """
        missed: set[int] = set()
        if self._c.nmisses:
            missed = {int(self._c.misses[i]) for i in range(self._c.nmisses)}
            self._c.nmisses = 0
            for cgroup_id in missed:
                self._learn_container(cgroup_id)
        if not self._c.raw and not missed:
            return items
        self._c.raw = 0
        out: list[Event] = []
        for item in items:
            if isinstance(item, bytes):
                try:
                    # the reference decoder knows only the BPF records: every one has a type and cgroup
                    item = typing.cast(Any, decode(item))
                except DecodeError as exc:
                    self.undecodable += 1
                    log.warning("undecodable record skipped (counted in stats): %s", exc)
                    continue
                t = int(item.event_type)
                self._raw_delivered[t] = self._raw_delivered.get(t, 0) + 1
                missed.add(item.cgroup_id)
                if decoded is not None:
                    decoded.append(item)
            if item.cgroup_id in missed:
                cid = self._learn_container(item.cgroup_id)
                if cid:
                    msgspec.structs.force_setattr(item, "container_id", cid)
            out.append(item)
        return out

    def _learn_container(self, cgroup_id: int) -> str:
        cid = self._known.get(cgroup_id)
        if cid is not None:
            return cid
        found = self._containers.container_id(cgroup_id)
        if found is None:
            # a cgroup made since the tree was last walked: "" for now (the
            # C side then stops asking), asked again until _UNKNOWN_S passes
            self._unknown.setdefault(cgroup_id, time.monotonic())
            cid = ""
        else:
            self._unknown.pop(cgroup_id, None)
            cid = found
        self._known[cgroup_id] = cid
        enc = msgspec.msgpack.encode(cid)
        if lib.es_cgroup_set(self._c, cgroup_id, enc, len(enc)) < 0:
            # table full: start over, the ids in use come back (and are
            # looked up anew then, unknown ones included)
            lib.es_cgroup_clear(self._c)
            self._known = {cgroup_id: cid}
            self._unknown = {cgroup_id: self._unknown[cgroup_id]} if cgroup_id in self._unknown else {}
            lib.es_cgroup_set(self._c, cgroup_id, enc, len(enc))
        return cid

    def _retry_unknown(self) -> None:
        """Ask again for the cgroups not known when first seen: their
        records carry "" meanwhile, and their container id once known."""
        now = time.monotonic()
        for cgroup_id, first in list(self._unknown.items()):
            self._known.pop(cgroup_id, None)
            if now - first > _UNKNOWN_S:
                self._unknown.pop(cgroup_id)  # gone: "" stays
                self._known[cgroup_id] = ""
            else:
                self._learn_container(cgroup_id)

    def enable_context(self, hooks: ContextHooks, learn: Sequence[type] = ()) -> ProcessCache:
        """Look records up in a process cache as they are transcoded (see
        :meth:`RingBuffer.set_context`); returns the cache, for the hooks'
        owner to fill."""
        # lifetime: refs is the consumer's until it is freed; kept here
        self._refs = ffi.new("struct es_ctx_ref[]", int(self._c.max_count))
        self._c.refs = self._refs
        base = ffi.offsetof("struct task_ctx", "cgroup_id")
        self._c.ctx_start_off = ffi.offsetof("struct task_ctx", "start_time_ns") - base
        self._c.ctx_pid_off = ffi.offsetof("struct task_ctx", "pid") - base
        self._c.ctx_ppid_off = ffi.offsetof("struct task_ctx", "ppid") - base
        self._c.ctx_learn = sum(1 << int(typing.cast(Any, cls).event_type) for cls in learn)
        self._attacher = attacher()
        self._context = hooks
        self.cache = ProcessCache(self._c)
        return self.cache

    def delivered(self) -> dict[int, int]:
        """Records delivered so far, per record type."""
        return {t: int(self._c.delivered[t]) + self._raw_delivered.get(t, 0) for t in RECORDS}

    def transcode(self, records: Sequence[bytes], *, lookups: bool = False) -> list[Event]:
        """Run records through the C transcoder and decoder, as if they came
        from a ring; with lookups (after :meth:`enable_context`), as the
        activity ring's records are: looked up in the process cache, the
        misses handed to the hooks."""
        if self._unknown:
            self._retry_unknown()
        c = self._c
        lib.es_batch_begin(c)
        c.ctx_on = int(lookups)
        try:
            for rec in records:
                buf = ffi.from_buffer(rec)
                if lib.es_transcode(c, buf, len(rec)) == lib.ES_BATCH_FULL and rec is not records[-1]:
                    raise ValueError("records exceed one batch")
        finally:
            c.ctx_on = 0
        size = lib.es_batch_end(c)
        items, missing = self._decoded(self._decode(size), lookups)
        if missing and self._context is not None:
            self._context.resolve(missing)
        return items

    def _decoded(self, items: list[Any], lookups: bool) -> tuple[list[Event], list[Event]]:
        """A batch's decode finished: the context the transcoder found put on
        the events (with lookups), raw records decoded, container ids
        filled; and the events the context is missing for."""
        c = self._c
        missing: list[Event] = []
        if lookups:
            self._attacher.attach(c, items)
            if not c.ctx_overflow:
                found = (items[int(c.ctx_misses[i])] for i in range(c.nctx_misses))
                # raw records are skipped in C: they are decoded below
                missing = [e for e in found if not isinstance(e, bytes)]
        if c.raw or c.nmisses:
            items = self._finish(items, missing if lookups else None)
        if lookups and c.ctx_overflow:
            missing = [e for e in items if e.process is None]
        return typing.cast(list[Event], items), missing


class RingBuffer(BatchDecoder):
    """Consumer of the event maps, BPF ring buffers or perf event arrays,
    yielding decoded Events in batches.

    Args:
        map_fds: the event maps' fds; the first is drained first.
        batch_bytes: size of the batch buffer (at least 256 KiB).
        max_batch: most records per batch.
        perf_pages: for perf event arrays (the maps of the objects built for
            kernels without ring buffers), the pages of each CPU buffer, one
            count (a power of two) per map; None for ring buffers.
        wakeup_bytes: perf event arrays: a CPU buffer wakes the consumer
            once this much waits in it.

    Not thread-safe: use one RingBuffer from one thread at a time.
    """

    def __init__(
        self,
        map_fds: Sequence[int],
        batch_bytes: int = 4 << 20,
        max_batch: int = 16384,
        *,
        perf_pages: Sequence[int] | None = None,
        wakeup_bytes: int = 256 << 10,
    ) -> None:
        if not map_fds:
            raise ValueError("RingBuffer needs at least one event map fd")
        if perf_pages is not None and len(perf_pages) != len(map_fds):
            raise ValueError("perf_pages needs one page count per map")
        super().__init__(batch_bytes, max_batch)
        self.transport = "ring" if perf_pages is None else "perf"
        if perf_pages is None:
            self._c.rb = check_ptr(
                lib.es_ring_new(self._c, map_fds[0]), "create ring buffer consumer", f"map fd {map_fds[0]}"
            )
            for fd in map_fds[1:]:
                check_ret(lib.es_ring_add(self._c, fd), "add ring buffer", f"map fd {fd}")
        else:
            self._perf_rec = ffi.new("uint8_t[]", lib.ES_PERF_REC)
            self._c.perf_rec = self._perf_rec
            page = os.sysconf("SC_PAGE_SIZE")
            for fd, pages in zip(map_fds, perf_pages, strict=True):
                if pages < 1 or pages & (pages - 1):
                    raise ValueError(f"perf buffer pages must be a power of two, not {pages}")
                # the watermark must leave room in the buffer, or it never wakes
                wakeup = max(1, min(wakeup_bytes, pages * page // 2))
                try:
                    check_ret(lib.es_perf_add(self._c, fd, pages, wakeup), "open perf buffer", f"map fd {fd}")
                except BaseException:
                    lib.es_transport_free(self._c)
                    raise
        self._nrings = len(map_fds)
        self.context_errors = 0
        self._held: list[Event] = []
        self._held_polls = 0

    def delivered(self) -> dict[int, int]:
        """Records handed out so far, per record type: exits held back for
        the next batch are still pending (a sensor closed now loses them,
        and the counters say so)."""
        out = super().delivered()
        if self._held:
            out[int(EventType.EXIT)] -= len(self._held)
        return out

    def set_context(self, hooks: ContextHooks, learn: Sequence[type] = ()) -> ProcessCache:
        """Drain in two phases from now on, the first ring (lifecycle) first,
        and give events their process context through hooks and the cache
        returned, which the hooks' owner fills; the events of the classes in
        learn go to ``hooks.resolve`` too, found or not (the table learns
        from them).

        Exits are delivered after the other events of their batch, and held
        back while the activity ring could not be drained to its end (at
        most a few polls), so that a process's last events come before its
        exit.
        """
        if self._nrings != 2:
            raise ValueError("a process context needs the lifecycle ring and the activity ring, in that order")
        return self.enable_context(hooks, learn)

    @property
    def epoll_fd(self) -> int:
        """An fd that becomes readable when a ring asks to be drained."""
        self._check_open()
        return int(check_ret(lib.es_epoll_fd(self._c), "epoll fd", "event maps"))

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Wait up to timeout_ms for a wakeup, then drain what is waiting.

        Returns at most one batch; call again while it returns a full one.
        Raises LibbpfError if polling fails (EINTR is retried as a short poll).
        """
        self._check_open()
        if self._unknown:
            self._retry_unknown()
        if self._context is not None:
            return self._poll_context(self._context, timeout_ms)
        lib.es_batch_begin(self._c)
        n = lib.es_poll(self._c, timeout_ms)
        if n == -errno.EINTR:
            n = lib.es_consume(self._c)
        check_ret(n, "poll", "ring buffers")
        size = lib.es_batch_end(self._c)
        if n == 0:
            return []
        items = self._decode(size)
        if self._c.raw or self._c.nmisses:
            return self._finish(items)
        return typing.cast(list[Event], items)

    def _poll_context(self, hooks: ContextHooks, timeout_ms: int) -> list[Event]:
        n = lib.es_wait(self._c, timeout_ms)
        if n != -errno.EINTR:
            check_ret(n, "poll", "ring buffers")
        life, _ = self._drain(0, False)
        if life:
            self._hook(hooks.lifecycle, life)
        activity, missing = self._drain(1, True)
        drained = not self._full()
        if missing:
            # a process the table does not know may have started after the
            # lifecycle ring was drained: its fork and exec come first
            more, _ = self._drain(0, False)
            if more:
                self._hook(hooks.lifecycle, more)
                life += more
            self._hook(hooks.resolve, missing)
        return self._order(life, activity, drained)

    def _hook(self, hook: Any, events: list[Event]) -> None:
        """Run a context hook; the events are out of the ring already, so a
        failure costs them their context, never the events themselves."""
        try:
            hook(events)
        except Exception:
            self.context_errors += 1
            log.exception("process context failed for %d events (counted; they are delivered)", len(events))

    def _full(self) -> bool:
        c = self._c
        return bool(c.count >= c.max_count or c.len + c.reserve > c.cap)

    def _drain(self, ring: int, lookups: bool) -> tuple[list[Event], list[Event]]:
        """One ring into a batch; with lookups, the context the transcoder
        found put on the events, and the events it found none for."""
        c = self._c
        lib.es_batch_begin(c)
        c.ctx_on = int(lookups)
        try:
            n = lib.es_consume_ring(c, ring)
        finally:
            c.ctx_on = 0
        check_ret(n, "consume", f"ring buffer {ring}")
        size = lib.es_batch_end(c)
        if n == 0:
            return [], []
        return self._decoded(self._decode(size), lookups)

    def _order(self, life: list[Event], activity: list[Event], drained: bool) -> list[Event]:
        """Lifecycle first, then activity, then exits (see set_context)."""
        exits = [e for e in life if type(e) is ProcessExit]
        if exits:
            life = [e for e in life if type(e) is not ProcessExit]
        self._held += exits
        if not self._held:
            return life + activity
        self._held_polls += 1
        if not drained and len(self._held) < _HOLD_EXITS and self._held_polls < _HOLD_POLLS:
            return life + activity
        held, self._held, self._held_polls = self._held, [], 0
        return life + activity + held

    def perf_lost(self) -> list[int]:
        """Per perf event array, the records the kernel could not write
        (its PERF_RECORD_LOST counts); [] for ring buffers. The programs
        count each such record as dropped under its kind too."""
        c = self._c
        return [int(c.perf[i].lost) for i in range(c.nperf)]

    def _check_open(self) -> None:
        if self._c.rb == ffi.NULL and not self._c.nperf:
            raise ValueError("RingBuffer is closed")

    def close(self) -> None:
        """Free the consumer; idempotent."""
        c = getattr(self, "_c", None)
        if c is not None:
            lib.es_transport_free(c)

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
