# SPDX-License-Identifier: Apache-2.0
"""Sensor: loads the probes, drains the rings, hands out Events."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import msgspec

from ._ffi import check_ret, ffi, lib
from ._mounts import ensure_tracefs
from .config import Config
from .errors import EbpfSensorError, NotSupportedError
from .events import EVENT_CLASSES, KINDS, Event
from .objects import BpfObject, HookStatus, LoadedObject
from .ringbuf import RingBuffer

__all__ = ["HookInfo", "KindStats", "Sensor", "SensorStats", "Subscription"]

log = logging.getLogger("ebpfsensor")


def _file_hooks(*syscalls: str) -> tuple[str, ...]:
    """The hooks of file.bpf.o for these syscalls: an enter/exit pair each.
    Calls an architecture lacks (arm64 has no open, unlink, ...) have no
    program in its object and are left out when loading."""
    return tuple(f"file_{name}_{side}" for name in syscalls for side in ("enter", "exit"))


_OPEN_HOOKS = _file_hooks("open", "creat", "openat", "openat2")
# which object and hooks produce each kind; a hook that serves several kinds
# is loaded when any of them is enabled (the program checks kind_enabled)
_KIND_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "process_exec": ("process", ("exec",)),
    "process_fork": ("process", ("fork",)),
    "process_exit": ("process", ("exit",)),
    "file_open": ("file", _OPEN_HOOKS),
    "file_create": ("file", (*_OPEN_HOOKS, *_file_hooks("mknod", "mknodat"))),
    "file_unlink": ("file", _file_hooks("unlink", "unlinkat", "rmdir")),
    "dir_create": ("file", _file_hooks("mkdir", "mkdirat")),
    "file_rename": ("file", _file_hooks("rename", "renameat", "renameat2")),
    "file_chmod": ("file", _file_hooks("chmod", "fchmod", "fchmodat", "fchmodat2")),
    "file_chown": ("file", _file_hooks("chown", "lchown", "fchown", "fchownat")),
    "file_link": ("file", _file_hooks("link", "linkat")),
    "file_symlink": ("file", _file_hooks("symlink", "symlinkat")),
}
# maps every object shares: the first object loaded creates them
_SHARED_MAPS = ("lifecycle_events", "activity_events", "kind_stats", "kind_enabled")
_BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
_STAT_FIELDS = ("produced", "dropped", "truncated", "filtered", "deduplicated")


class KindStats(msgspec.Struct, frozen=True):
    """Counters of one event kind since the sensor started.

    ``produced`` records were submitted by the kernel; ``delivered`` reached
    the caller; ``pending`` are in a ring, not yet drained. ``dropped`` were
    lost because a ring was full, ``truncated`` were delivered with a
    truncated field, ``filtered`` were suppressed on purpose (threads when
    not reported), ``deduplicated`` were suppressed as repeats within the
    dedup window (file opens, ``Config.file_dedup_ms``).
    """

    produced: int
    delivered: int
    pending: int
    dropped: int
    truncated: int
    filtered: int
    deduplicated: int = 0


class SensorStats(msgspec.Struct, frozen=True):
    """Counters of a running sensor; ``lost`` = dropped + undecodable."""

    kinds: dict[str, KindStats]
    delivered: int
    dropped: int
    undecodable: int
    lost: int


class HookInfo(msgspec.Struct, frozen=True):
    """Which variant of a hook runs, or why none does."""

    hook: str
    variant: str | None
    failures: list[str]


class Subscription:
    """A callback registered with :meth:`Sensor.subscribe`."""

    def __init__(self, sensor: Sensor, callback: Callable[[Event], Any], kinds: frozenset[type] | None) -> None:
        self._sensor = sensor
        self.callback = callback
        self.classes = kinds

    def cancel(self) -> None:
        """Stop receiving events; idempotent."""
        if self in self._sensor._subs:
            self._sensor._subs.remove(self)


class Sensor:
    """The eBPF event sensor.

    Args:
        config: settings; defaults when omitted.
        **overrides: Config fields to override, e.g. ``kinds={"process_exec"}``.

    Use as a context manager (or call :meth:`start` and :meth:`close`). Events
    come from :meth:`events`, ``async for``, :meth:`poll`, or callbacks
    registered with :meth:`subscribe` and driven by any of those or by
    :meth:`run`. A Sensor is used from one thread at a time.

    Raises (from start):
        PrivilegeError: not allowed to load BPF programs.
        NotSupportedError: the kernel lacks BPF ring buffers or BTF.
        LibbpfError: the programs could not be loaded.
    """

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        if overrides:
            if "kinds" in overrides and overrides["kinds"] is not None:
                overrides["kinds"] = frozenset(overrides["kinds"])
            config = msgspec.structs.replace(config or Config(), **overrides)
        self.config = config or Config()
        self._objects: list[LoadedObject] = []
        self._ring: RingBuffer | None = None
        self._subs: list[Subscription] = []
        self._stats_fd = -1
        self._hooks: dict[str, HookStatus] = {}
        self._raw_delivered: dict[int, int] = {}
        self._started = False

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> Sensor:
        """Load, attach and start consuming; idempotent."""
        if self._started:
            return self
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        cfg = self.config
        btf = cfg.btf_path
        if btf is None and not os.path.exists(_BTF_VMLINUX):
            raise NotSupportedError("kernel BTF (/sys/kernel/btf/vmlinux)", "5.4", "set Config.btf_path to a BTF file for this kernel")
        if lib.libbpf_probe_bpf_map_type(lib.BPF_MAP_TYPE_RINGBUF, ffi.NULL) == 0:
            raise NotSupportedError("BPF ring buffer", "5.8")
        ensure_tracefs()
        wanted: dict[str, set[str]] = {}
        for kind in sorted(cfg.enabled_kinds):
            obj_name, hooks = _KIND_SOURCES[kind]
            wanted.setdefault(obj_name, set()).update(hooks)
        shared: dict[str, int] = {}
        for obj_name, hooks in wanted.items():
            obj = BpfObject.packaged(obj_name)
            settings = {
                "cfg_wakeup_bytes": cfg.wakeup_bytes,
                "cfg_report_threads": int(cfg.report_threads),
                "cfg_file_dedup_ns": cfg.file_dedup_ms * 1_000_000,
            }
            loaded = obj.load(
                config={k: v for k, v in settings.items() if k in obj.rodata},
                shared_maps=shared,
                map_sizes={"lifecycle_events": cfg.lifecycle_ring_bytes, "activity_events": cfg.activity_ring_bytes},
                hooks=hooks,
                btf_path=btf,
            )
            self._objects.append(loaded)
            self._hooks.update(loaded.hooks)
            for name in _SHARED_MAPS:
                if name not in shared:
                    shared[name] = loaded.map_fd(name)
        if not any(h.attached for h in self._hooks.values()):
            reasons = "; ".join(f"{h.hook}: {' / '.join(h.failures)}" for h in self._hooks.values())
            raise EbpfSensorError(f"no hook could be attached on this kernel: {reasons}")
        self._stats_fd = shared["kind_stats"]
        self._enable_kinds(shared["kind_enabled"], cfg.enabled_kinds)
        # lifecycle first: a batch drains it before the activity ring
        self._ring = RingBuffer([shared["lifecycle_events"], shared["activity_events"]], batch_bytes=cfg.batch_bytes)

    @staticmethod
    def _enable_kinds(fd: int, kinds: frozenset[str]) -> None:
        key = ffi.new("uint32_t *")
        on = ffi.new("uint32_t *", 1)
        for kind in kinds:
            key[0] = int(KINDS[kind].event_type)
            check_ret(lib.bpf_map_update_elem(fd, key, on, 0), "enable", kind)

    def close(self) -> None:
        """Detach every program and free every map; idempotent."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        for obj in reversed(self._objects):
            obj.close()
        self._objects = []
        self._started = False

    def __enter__(self) -> Sensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # --- events ------------------------------------------------------------------

    def _require_ring(self) -> RingBuffer:
        if self._ring is None:
            raise EbpfSensorError("the sensor is not started: use `with Sensor() as s:` or call start()")
        return self._ring

    def poll(self, timeout: float | None = 0.0) -> list[Event]:
        """Wait up to timeout seconds for events and return one batch.

        The batch is also passed to subscribers. None waits for at most the
        configured max_latency_ms.
        """
        ring = self._require_ring()
        ms = self.config.max_latency_ms if timeout is None else max(0, int(timeout * 1000))
        batch = ring.poll(ms)
        if ring.raw_records:
            self._count_raw(batch)
        if batch and self._subs:
            self._dispatch(batch)
        return batch

    def _count_raw(self, batch: list[Event]) -> None:
        # records decoded in Python are not in the C consumer's counters
        ring = self._require_ring()
        n, ring.raw_records = ring.raw_records, 0
        for event in batch[-n:] if n <= len(batch) else batch:
            t = int(event.event_type)
            self._raw_delivered[t] = self._raw_delivered.get(t, 0) + 1

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Iterate over events as they arrive.

        Args:
            timeout: stop after this many seconds without an event; None
                never stops (until the sensor is closed).
        """
        interval = self.config.max_latency_ms / 1000
        last = time.monotonic()
        while self._ring is not None:
            wait = interval if timeout is None else max(0.0, min(interval, last + timeout - time.monotonic()))
            batch = self.poll(wait)
            if batch:
                last = time.monotonic()
                yield from batch
            elif timeout is not None and time.monotonic() - last >= timeout:
                return

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    async def __aiter__(self) -> AsyncIterator[Event]:
        """``async for event in sensor``: woken by the rings' epoll fd, and at
        least every max_latency_ms; no thread, no busy loop."""
        ring = self._require_ring()
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = ring.epoll_fd
        loop.add_reader(fd, ready.set)
        interval = self.config.max_latency_ms / 1000
        try:
            while self._ring is not None:
                batch = self.poll(0)
                if batch:
                    for event in batch:
                        yield event
                    continue
                ready.clear()
                try:
                    await asyncio.wait_for(ready.wait(), interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            loop.remove_reader(fd)

    def subscribe(self, callback: Callable[[Event], Any], kinds: Iterable[str] | None = None) -> Subscription:
        """Call callback(event) for every event (of the given kinds).

        Callbacks run in whichever call drains the rings (events(), poll(),
        run(), async iteration). An exception in a callback propagates to
        that call.

        Raises:
            ValueError: an unknown kind.
        """
        classes = None
        if kinds is not None:
            classes = frozenset(KINDS[k] if k in KINDS else _unknown_kind(k) for k in kinds)
        sub = Subscription(self, callback, classes)
        self._subs.append(sub)
        return sub

    def _dispatch(self, batch: list[Event]) -> None:
        for sub in list(self._subs):
            if sub.classes is None:
                for event in batch:
                    sub.callback(event)
            else:
                for event in batch:
                    if type(event) in sub.classes:
                        sub.callback(event)

    def run(self, duration: float | None = None) -> None:
        """Drain the rings into subscribers for duration seconds (None: until closed)."""
        end = None if duration is None else time.monotonic() + duration
        while self._ring is not None and (end is None or time.monotonic() < end):
            wait = None if end is None else max(0.0, min(self.config.max_latency_ms / 1000, end - time.monotonic()))
            self.poll(wait)

    # --- state -------------------------------------------------------------------

    def hooks(self) -> dict[str, HookInfo]:
        """For each hook, the variant attached or why none is."""
        return {h: HookInfo(s.hook, s.variant, list(s.failures)) for h, s in self._hooks.items()}

    def kernel_stats(self) -> dict[int, tuple[int, int, int, int, int]]:
        """Per record type, (produced, dropped, truncated, filtered, deduplicated) summed over CPUs."""
        if self._stats_fd < 0:
            return {}
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        values = ffi.new("struct kind_stats[]", ncpu)
        key = ffi.new("uint32_t *")
        out = {}
        for cls in EVENT_CLASSES:
            key[0] = int(cls.event_type)
            check_ret(lib.bpf_map_lookup_elem(self._stats_fd, key, values), "read", "kind_stats")
            out[key[0]] = tuple(sum(getattr(values[i], f) for i in range(ncpu)) for f in _STAT_FIELDS)
        return out  # type: ignore[return-value]

    def stats(self) -> SensorStats:
        """Counters that reconcile: produced = delivered + pending (+ undecodable)."""
        kernel = self.kernel_stats()
        delivered_c = self._ring.delivered() if self._ring else {}
        kinds = {}
        for cls in EVENT_CLASSES:
            t = int(cls.event_type)
            produced, dropped, truncated, filtered, deduplicated = kernel.get(t, (0, 0, 0, 0, 0))
            delivered = delivered_c.get(t, 0) + self._raw_delivered.get(t, 0)
            kinds[cls.__struct_config__.tag] = KindStats(  # type: ignore[index]
                produced, delivered, max(0, produced - delivered), dropped, truncated, filtered, deduplicated
            )
        undecodable = self._ring.undecodable if self._ring else 0
        delivered_all = sum(k.delivered for k in kinds.values())
        dropped_all = sum(k.dropped for k in kinds.values())
        return SensorStats(kinds, delivered_all, dropped_all, undecodable, dropped_all + undecodable)


def _unknown_kind(kind: str) -> type:
    raise ValueError(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")

