# SPDX-License-Identifier: Apache-2.0
"""Recorder: writes what a sensor delivers, its losses and its process table to a recording."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import IO, Any

import msgspec

from ..events import KINDS, Event, ProcessExec, ProcessExit, ProcessFork
from ._format import (
    EndFrame,
    LossFrame,
    ProcessesFrame,
    RecordingWriter,
    SensorInfo,
    all_kinds,
    current_schema,
    encode_portable,
    new_header,
)

__all__ = ["Recorder", "table_entries"]

log = logging.getLogger("ebpfsensor")

_LIFECYCLE = (ProcessExec, ProcessFork, ProcessExit)
# the longest a process table may go without a snapshot while it changes in
# ways the recorded events do not show (fields filled in later)
_SNAPSHOT_MAX_INTERVAL_NS = 1_000_000_000


def table_entries(table: Any) -> list[Any]:
    """The entries of a process table, whatever it offers: ``snapshot()``,
    ``values()``, or iteration (over entries, or over pids to look up).

    Raises:
        TypeError: the table offers none of them.
    """
    for name in ("snapshot", "values"):
        method = getattr(table, name, None)
        if callable(method):
            return list(method())
    if not hasattr(table, "__iter__"):
        raise TypeError(f"{type(table).__name__} has no snapshot(), values() or iteration")
    items = list(table)
    if items and all(isinstance(i, int) for i in items):
        get = getattr(table, "get", None) or table.__getitem__
        items = [get(i) for i in items]
    return [i for i in items if i is not None]


def entry_fields(entry: Any) -> dict[str, Any]:
    """A table entry as a map of its fields (a Struct, dataclass, mapping or object)."""
    try:
        out = msgspec.to_builtins(entry, builtin_types=(bytes, bytearray), enc_hook=repr)
    except TypeError:
        out = None
    if not isinstance(out, dict):
        attrs = getattr(entry, "__dict__", None) or {
            name: getattr(entry, name) for name in getattr(type(entry), "__slots__", ()) if hasattr(entry, name)
        }
        out = msgspec.to_builtins(
            {k: v for k, v in attrs.items() if not k.startswith("_")},
            builtin_types=(bytes, bytearray),
            enc_hook=repr,
        )
    return out  # type: ignore[no-any-return]


def _field(entry: Any, name: str) -> Any:
    if isinstance(entry, dict):
        return entry.get(name)
    return getattr(entry, name, None)


def key_fields(fields: dict[str, Any]) -> list[str]:
    """Which fields identify an entry: an entity id, else pid and start time, else pid."""
    if "entity_id" in fields:
        return ["entity_id"]
    if "pid" in fields and "start_time_ns" in fields:
        return ["pid", "start_time_ns"]
    return ["pid"]


def type_name(entry: Any) -> str:
    """``module:QualifiedName`` of an entry's type when replay may rebuild it (a
    Struct of ebpfsensor's), else ""."""
    cls = type(entry)
    if isinstance(entry, msgspec.Struct) and cls.__module__.split(".")[0] == "ebpfsensor":
        return f"{cls.__module__}:{cls.__qualname__}"
    return ""


class Recorder:
    """Writes a sensor's events to a recording as they are delivered.

    Created by :meth:`ebpfsensor.Sensor.record`; works with any object that
    has the Sensor's ``subscribe()`` and ``stats()`` (a ``ReplaySensor``
    too). It subscribes to the sensor, so it records whatever drains it:
    ``events()``, ``poll()``, ``run()``, ``async for``. Each batch is written
    as one frame, flushed as soon as the sensor has handed it out, so a
    recording cut off by SIGKILL keeps every batch delivered before it.

    Loss markers carry the increase of the sensor's ``dropped``,
    ``undecodable`` and ``unmatched`` counters, read at most every
    ``stats_interval`` seconds and at close. When the sensor has a process
    table (``sensor.processes``), a full snapshot is written at the start
    and at close, and in between the entries that changed, at the end of a
    batch that started, forked or ended a process (at most every
    ``snapshot_interval`` seconds), and at least every second while any
    change.

    Args:
        sensor: the sensor to record (started or not).
        target: a file name (created or truncated) or a binary file.
        kinds: the kinds to record; None for all the sensor delivers.
        stats_interval: seconds between reads of the sensor's counters.
        snapshot_interval: the least seconds between two process snapshots.
        level: DEFLATE compression level (zlib's 1 to 9), 0 for none.

    Raises:
        OSError: the file cannot be created.
        ValueError: an unknown kind.
    """

    def __init__(
        self,
        sensor: Any,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        kinds: Iterable[str] | None = None,
        stats_interval: float = 1.0,
        snapshot_interval: float = 0.1,
        level: int = 6,
    ) -> None:
        self._sensor = sensor
        known = all_kinds()
        # markers (a loss) come whatever kinds are collected: recorded likewise
        markers = frozenset(known) - frozenset(KINDS)
        wanted = None if kinds is None else frozenset(kinds)
        if wanted is not None:
            unknown = sorted(wanted - set(known))
            if unknown:
                raise ValueError(f"unknown event kind(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
            wanted |= markers
        config = getattr(sensor, "config", None)
        enabled = frozenset(getattr(config, "enabled_kinds", KINDS)) | markers
        recorded = enabled if wanted is None else enabled & wanted
        self._table, unavailable = _process_table(sensor)
        # a sensor not started has its table (Config.process_context) only once started
        later = unavailable and bool(getattr(config, "process_context", False))
        self._stats_interval_ns = int(stats_interval * 1e9)
        self._snapshot_interval_ns = int(snapshot_interval * 1e9)
        self._writer = RecordingWriter(
            target,
            new_header(
                provider=_provider(sensor),
                kinds=recorded,
                processes=self._table is not None or later,
            ),
            info=SensorInfo(schema=current_schema(), kind_health=_kind_health(sensor, recorded)),
            level=level,
        )
        self.path = self._writer.path
        self._t0 = time.monotonic_ns()
        self._pending: list[Event] = []
        self._last_stats = _counters(sensor)
        self._stats_at = 0
        # key -> (entry, exit time, encoded fields) as of the last snapshot
        self._table_state: dict[Any, tuple[Any, Any, bytes]] = {}
        self._key: list[str] | None = None
        self._snapshot_at = 0
        self._lifecycle_since_snapshot = False
        self._closed = False
        # look again at the first batch, when the sensor runs
        self._look_for_table = later
        if self._table is not None:
            self._snapshot(full=True)
        # the events are gathered by the first subscription; the second runs
        # after the first has been handed the whole batch, and writes it
        self._subs = _subscribe(sensor, [self._pending.append, self._batch_end], wanted, markers)

    # --- feeding ------------------------------------------------------------------

    def _now(self) -> int:
        return time.monotonic_ns() - self._t0

    def _batch_end(self, event: Event) -> None:
        if self._pending:
            self.flush()

    def flush(self) -> None:
        """Write the events gathered so far (a batch is written when the
        sensor has handed it out; this is for a caller that stops midway)."""
        if self._closed:
            return
        now = self._now()
        batch, self._pending[:] = list(self._pending), []
        if self._look_for_table:
            self._look_for_table = False
            self._table = _process_table(self._sensor)[0]
            if self._table is not None:
                self._snapshot(full=True, now=now)
        if self._table is not None:
            self._lifecycle_since_snapshot = self._lifecycle_since_snapshot or any(
                isinstance(e, _LIFECYCLE) for e in batch
            )
            since = now - self._snapshot_at
            if (self._lifecycle_since_snapshot and since >= self._snapshot_interval_ns) or (
                since >= _SNAPSHOT_MAX_INTERVAL_NS
            ):
                # before the batch: replay applies it before handing the batch out,
                # as the live table already knew the batch's processes
                self._snapshot(full=False, now=now)
        if batch:
            self._writer.write_events(now, batch)
        if now - self._stats_at >= self._stats_interval_ns:
            self._write_loss(now)

    # --- losses ---------------------------------------------------------------------

    def _write_loss(self, now: int) -> None:
        self._stats_at = now
        current = _counters(self._sensor)
        last = self._last_stats
        frame = _loss(now, last, current)
        # a closed sensor reads all zero: keep the last counters it had
        if current["delivered"] >= last["delivered"]:
            self._last_stats = current
        if frame is not None:
            self._writer.write_loss(frame)

    # --- process table -----------------------------------------------------------------

    def _snapshot(self, full: bool, now: int | None = None) -> None:
        table = self._table
        now = self._now() if now is None else now
        self._snapshot_at = now
        self._lifecycle_since_snapshot = False
        try:
            frame = self._changes(table, full, now)
        except Exception as exc:  # the table is another module's: it must not stop the recording
            log.warning("recording %s: process table snapshots stop: %s", self.path, exc)
            self._table = None
            return
        if frame is not None:
            self._writer.write_processes(frame)

    def _changes(self, table: Any, full: bool, now: int) -> ProcessesFrame | None:
        """The table, or what changed in it since the last snapshot (None: nothing).

        Entries are compared by identity first: a table whose entries are
        immutable (ProcessInfo) makes a new one for each change, so only
        those are encoded again."""
        entries = table_entries(table)
        exit_time = getattr(table, "exit_time_ns", None)
        key: list[str] | None = self._key
        prev = self._table_state
        state: dict[Any, tuple[Any, Any, bytes]] = {}
        upsert: list[dict[str, Any]] = []
        exited: list[int | None] = []
        for entry in entries:
            gone = exit_time(entry) if callable(exit_time) else None
            fields: dict[str, Any] | None = None
            if key is None:
                fields = entry_fields(entry)
                key = self._key = key_fields(fields)
            k = tuple(_field(entry, name) for name in key)
            old = prev.get(k)
            if old is not None and old[0] is entry and old[1] == gone and not full:
                state[k] = old
                continue
            fields = fields if fields is not None else entry_fields(entry)
            encoded = encode_portable(fields)
            state[k] = (entry, gone, encoded)
            if full or old is None or old[2] != encoded or old[1] != gone:
                upsert.append(fields)
                exited.append(gone)
        remove = [] if full else [list(k) for k in prev if k not in state]
        self._table_state = state
        if not (full or upsert or remove):
            return None
        return ProcessesFrame(
            t_ns=now,
            full=full,
            type=type_name(entries[0]) if entries else "",
            key=key or ["pid", "start_time_ns"],
            upsert=upsert,
            exited=exited if any(t is not None for t in exited) else [],
            remove=remove,
        )

    # --- state and closing ---------------------------------------------------------------

    @property
    def events_written(self) -> int:
        """Events written so far."""
        return self._writer.events_written

    @property
    def bytes_written(self) -> int:
        """Bytes written so far, the file header included."""
        return self._writer.bytes_written

    @property
    def closed(self) -> bool:
        """close() was called."""
        return self._closed

    def close(self) -> None:
        """Stop recording: write what is pending, the last losses, a last full
        process snapshot and the end frame, and close the file; idempotent.
        Close it before the sensor, or the last counters read as the
        closed sensor's."""
        if self._closed:
            return
        try:
            for sub in self._subs:
                sub.cancel()
            self.flush()
            now = self._now()
            self._write_loss(now)
            if self._table is not None:
                self._snapshot(full=True, now=now)
            stats = _stats_map(self._sensor)
            self._writer.close(EndFrame(t_ns=now, events=self._writer.events_written, stats=stats))
        finally:
            self._closed = True
            self._writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- what is read from the sensor ------------------------------------------------------------


def _subscribe(sensor: Any, callbacks: list[Any], kinds: frozenset[str] | None, markers: frozenset[str]) -> list[Any]:
    """Subscribe each callback, in order, to kinds (a sensor whose subscribe()
    does not take the marker kinds gets the kinds without them)."""
    subs: list[Any] = []
    try:
        for callback in callbacks:
            subs.append(sensor.subscribe(callback, kinds))
    except ValueError:
        if kinds is None or not kinds & markers:
            raise
        for sub in subs:
            sub.cancel()
        return [sensor.subscribe(callback, kinds - markers) for callback in callbacks]
    return subs


def _process_table(sensor: Any) -> tuple[Any, bool]:
    """The sensor's process table, or None; and whether asking for it failed
    (a sensor not started, or with its table off, raises)."""
    try:
        return getattr(sensor, "processes", None), False
    except Exception as exc:  # another module's property: a failure means no table now
        log.info("no process table to record: %s", exc)
        return None, True


def _provider(sensor: Any) -> str:
    try:
        return str(sensor.stats().provider)
    except Exception:
        return ""


def _kind_health(sensor: Any, kinds: frozenset[str]) -> dict[str, Any]:
    health = getattr(sensor, "health", None)
    if health is None or not getattr(sensor, "_started", True):
        return {}
    try:
        report = health()
    except Exception as exc:  # a health report is context, not a reason not to record
        log.warning("recording without the sensor's health: %s", exc)
        return {}
    return {kind: value for kind, value in report.kinds.items() if kind in kinds}


def _counters(sensor: Any) -> dict[str, Any]:
    """delivered, dropped, undecodable, unmatched, and per kind dropped and unmatched."""
    try:
        st = sensor.stats()
    except Exception:
        return {"delivered": 0, "dropped": 0, "undecodable": 0, "unmatched": 0, "kinds": {}}
    kinds = {
        kind: {"dropped": int(getattr(ks, "dropped", 0)), "unmatched": int(getattr(ks, "unmatched", 0))}
        for kind, ks in (getattr(st, "kinds", None) or {}).items()
    }
    return {
        "delivered": int(st.delivered),
        "dropped": int(st.dropped),
        "undecodable": int(st.undecodable),
        "unmatched": sum(k["unmatched"] for k in kinds.values()),
        "kinds": kinds,
    }


def _loss(now: int, last: dict[str, Any], current: dict[str, Any]) -> LossFrame | None:
    """The counters' increase, or None when nothing more was lost."""
    total = {name: max(0, current[name] - last[name]) for name in ("dropped", "undecodable", "unmatched")}
    kinds: dict[str, dict[str, int]] = {}
    for kind, counts in current["kinds"].items():
        before = last["kinds"].get(kind, {})
        delta = {name: n - before.get(name, 0) for name, n in counts.items() if n > before.get(name, 0)}
        if delta:
            kinds[kind] = delta
    if not any(total.values()) and not kinds:
        return None
    return LossFrame(t_ns=now, kinds=kinds, **total)


def _stats_map(sensor: Any) -> dict[str, Any]:
    try:
        out = msgspec.to_builtins(sensor.stats())
    except Exception:
        return {}
    return out if isinstance(out, dict) else {}
