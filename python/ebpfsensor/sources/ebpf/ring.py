# SPDX-License-Identifier: Apache-2.0
"""RingBuffer: drains one or more BPF ring buffers into batches of Events.

No Python code runs per record: libbpf hands each record to a C callback
that transcodes it into msgpack in one batch buffer, and the whole batch is
decoded by one msgspec call. Records whose strings are not UTF-8 come through
raw and are decoded by :func:`ebpfsensor.events.decode`.
"""

from __future__ import annotations

import errno
import logging
import time
import typing
from collections.abc import Sequence
from typing import Any, Union

import msgspec

from ..._ffi import check_ptr, check_ret, ffi, lib
from ...errors import DecodeError
from ...events import EVENT_CLASSES, Event
from ...events._kinds import kind_of
from ...events._layout import MAX_RECORD_LEN, RECORDS, decode
from ...host.containers import CgroupResolver

__all__ = ["BatchDecoder", "RingBuffer"]

log = logging.getLogger("ebpfsensor")

# the most one record can take in a batch: strings are copied once, every
# other field takes a key and at most 9 bytes
_RESERVE = 2 * MAX_RECORD_LEN + 4096


# how long a cgroup id missing from the cgroup tree is looked for again
_UNKNOWN_S = 10.0

# what a batch holds: transcoded events, and raw records (bytes) for the Python decoder
_BATCH_ITEM: Any = Union.__getitem__((*EVENT_CLASSES, bytes))


def _msgpack_str(text: str) -> bytes:
    return msgspec.msgpack.encode(text)


class _Tables:
    """The C field tables for every record type.

    lifetime: the cdata objects here are referenced by the es_consumer and
    must live as long as it; RingBuffer keeps this object.
    """

    def __init__(self) -> None:
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
                fields[i].key = key_c
                fields[i].key_len = len(key)
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
        self.count = n


class BatchDecoder:
    """The C transcoder and the batch decoder, without a ring: decodes raw
    records exactly as a RingBuffer would. Needs no kernel.

    Args:
        batch_bytes: size of the batch buffer (at least 256 KiB).
        max_batch: most records per batch.
    """

    def __init__(self, batch_bytes: int = 4 << 20, max_batch: int = 16384) -> None:
        batch_bytes = max(batch_bytes, 4 * _RESERVE)
        self._tables = _Tables()
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
        self._cgroup_slots = ffi.new("struct es_cgroup_slot[]", lib.ES_CGROUP_SLOTS)
        self._c.cgroups = self._cgroup_slots
        self._containers = CgroupResolver()
        self._known: dict[int, str] = {}
        # cgroup id -> when first seen, for ids not yet in the cgroup tree
        self._unknown: dict[int, float] = {}
        self._decoder = msgspec.msgpack.Decoder(list[_BATCH_ITEM])
        self.undecodable = 0
        # records the Python decoder handled, per type: not in the C counters
        self._raw_delivered: dict[int, int] = {}

    def _finish(self, items: list[Any]) -> list[Event]:
        """Decode raw records and fill in container ids the C side lacked."""
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
            if item.cgroup_id in missed:
                cid = self._learn_container(item.cgroup_id)
                if cid:
                    item = msgspec.structs.replace(item, container_id=cid)
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

    def delivered(self) -> dict[int, int]:
        """Records delivered so far, per record type."""
        return {t: int(self._c.delivered[t]) + self._raw_delivered.get(t, 0) for t in RECORDS}

    def transcode(self, records: Sequence[bytes]) -> list[Event]:
        """Run records through the C transcoder and decoder, as if they came
        from a ring."""
        if self._unknown:
            self._retry_unknown()
        lib.es_batch_begin(self._c)
        for rec in records:
            buf = ffi.from_buffer(rec)
            if lib.es_transcode(self._c, buf, len(rec)) == lib.ES_BATCH_FULL and rec is not records[-1]:
                raise ValueError("records exceed one batch")
        size = lib.es_batch_end(self._c)
        return self._finish(self._decoder.decode(ffi.buffer(self._buf, size)))


class RingBuffer(BatchDecoder):
    """Consumer of BPF ring buffer maps, yielding decoded Events in batches.

    Args:
        map_fds: ring buffer map fds; the first is polled first.
        batch_bytes: size of the batch buffer (at least 256 KiB).
        max_batch: most records per batch.

    Not thread-safe: use one RingBuffer from one thread at a time.
    """

    def __init__(self, map_fds: Sequence[int], batch_bytes: int = 4 << 20, max_batch: int = 16384) -> None:
        if not map_fds:
            raise ValueError("RingBuffer needs at least one ring buffer map fd")
        super().__init__(batch_bytes, max_batch)
        self._c.rb = check_ptr(
            lib.es_ring_new(self._c, map_fds[0]), "create ring buffer consumer", f"map fd {map_fds[0]}"
        )
        for fd in map_fds[1:]:
            check_ret(lib.es_ring_add(self._c, fd), "add ring buffer", f"map fd {fd}")

    @property
    def epoll_fd(self) -> int:
        """An fd that becomes readable when a ring asks to be drained."""
        self._check_open()
        return int(lib.ring_buffer__epoll_fd(self._c.rb))

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Wait up to timeout_ms for a wakeup, then drain what is waiting.

        Returns at most one batch; call again while it returns a full one.
        Raises LibbpfError if polling fails (EINTR is retried as a short poll).
        """
        self._check_open()
        if self._unknown:
            self._retry_unknown()
        lib.es_batch_begin(self._c)
        n = lib.es_poll(self._c, timeout_ms)
        if n == -errno.EINTR:
            n = lib.es_consume(self._c)
        check_ret(n, "poll", "ring buffers")
        size = lib.es_batch_end(self._c)
        if n == 0:
            return []
        items = self._decoder.decode(ffi.buffer(self._buf, size))
        if self._c.raw or self._c.nmisses:
            return self._finish(items)
        return typing.cast(list[Event], items)

    def _check_open(self) -> None:
        if self._c.rb == ffi.NULL:
            raise ValueError("RingBuffer is closed")

    def close(self) -> None:
        """Free the consumer; idempotent."""
        c = getattr(self, "_c", None)
        if c is not None and c.rb != ffi.NULL:
            lib.ring_buffer__free(c.rb)
            c.rb = ffi.NULL

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
