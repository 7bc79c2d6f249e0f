# SPDX-License-Identifier: Apache-2.0
"""ReplaySensor: the Sensor's API fed from a recording, with no privileges and no kernel."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from functools import cache
from typing import IO, TYPE_CHECKING, Any

import msgspec

from ..config import Config
from ..errors import EbpfSensorError
from ..events import KINDS, Event
from ..events._kinds import kind_of
from ..status import KindHealth, KindStats, SensorStats
from ._format import (
    EndFrame,
    EventsFrame,
    Frame,
    LossFrame,
    ProcessesFrame,
    RecordingHeader,
    RecordingReader,
    all_kinds,
)

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["RecordedProcess", "ReplayHealth", "ReplayProcessTable", "ReplaySensor", "ReplaySubscription"]

# ancestry stops here: a recorded table may hold a loop (pid reuse)
_MAX_DEPTH = 4096


def _check_kinds(kinds: frozenset[str]) -> None:
    known = all_kinds()
    unknown = sorted(kinds - set(known))
    if unknown:
        raise ValueError(f"unknown event kind(s) {', '.join(unknown)}; known kinds: {', '.join(sorted(known))}")


class ReplaySubscription:
    """A callback registered with :meth:`ReplaySensor.subscribe`."""

    def __init__(self, owner: ReplaySensor, callback: Callable[[Event], Any], kinds: frozenset[type] | None) -> None:
        self._owner = owner
        self.callback = callback
        self.classes = kinds

    def cancel(self) -> None:
        """Stop receiving events; idempotent."""
        if self in self._owner._subs:
            self._owner._subs.remove(self)


class RecordedProcess(Mapping[str, Any]):
    """A process table entry as recorded, when its type cannot be rebuilt
    (it is not a Struct of ebpfsensor's): its fields read as attributes
    (``entry.pid``) and as a mapping (``entry["pid"]``)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"recorded process has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a recorded process is read-only")

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"RecordedProcess({self._fields!r})"


def _field(entry: Any, name: str) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name)
    return getattr(entry, name, None)


@cache
def _entry_type(name: str) -> type | None:
    """The Struct an entry was, when it is ebpfsensor's and still exists."""
    module, _, qualname = name.partition(":")
    if not qualname or module.split(".")[0] != "ebpfsensor":
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, msgspec.Struct) else None


class ReplayProcessTable:
    """The recorded process table, as it was at the point the replay has reached.

    The lookups are the sensor's table's (``sensor.processes``): by pid or
    entity id, parent, ancestors, children, session, whether a process has
    exited. Empty until the recording's first snapshot is replayed; each
    snapshot replaces or updates it. Entries are rebuilt as the Struct the
    sensor's table held (``ProcessInfo``) when this version has it, else
    they are :class:`RecordedProcess` mappings.

    Args:
        max_depth: the longest ancestor chain :meth:`ancestors` walks.
    """

    def __init__(self, *, max_depth: int = 64) -> None:
        self.max_depth = max_depth
        self._entries: dict[tuple[Any, ...], Any] = {}
        self._exited: dict[tuple[Any, ...], int] = {}
        self._key: list[str] = []
        self._index: tuple[dict[int, list[Any]], dict[Any, Any], dict[Any, list[Any]]] | None = None
        #: snapshots applied so far
        self.snapshots = 0

    def _apply(self, frame: ProcessesFrame) -> None:
        cls = _entry_type(frame.type) if frame.type else None
        if frame.full:
            self._entries.clear()
            self._exited.clear()
        key = frame.key or self._key
        self._key = key
        for k in frame.remove:
            k = tuple(k) if isinstance(k, list) else (k,)
            self._entries.pop(k, None)
            self._exited.pop(k, None)
        for i, item in enumerate(frame.upsert):
            entry: Any = RecordedProcess(item)
            if cls is not None:
                try:
                    entry = msgspec.convert(item, cls)
                except msgspec.ValidationError:
                    pass
            k = tuple(item.get(name) for name in key)
            self._entries[k] = entry
            gone = frame.exited[i] if i < len(frame.exited) else None
            if gone is None:
                self._exited.pop(k, None)
            else:
                self._exited[k] = gone
        self._index = None
        self.snapshots += 1

    def _indexes(self) -> tuple[dict[int, list[Any]], dict[Any, Any], dict[Any, list[Any]]]:
        """pid -> entries oldest first; entity id -> entry; parent entity id -> children."""
        if self._index is None:
            by_pid: dict[int, list[Any]] = {}
            by_entity: dict[Any, Any] = {}
            children: dict[Any, list[Any]] = {}
            for entry in self._entries.values():
                by_pid.setdefault(_field(entry, "pid"), []).append(entry)
                entity = _field(entry, "entity_id")
                if entity is not None:
                    by_entity[entity] = entry
                parent = _field(entry, "parent_entity_id")
                if parent:
                    children.setdefault(parent, []).append(entry)
            for gens in by_pid.values():
                gens.sort(key=lambda e: _field(e, "start_time_ns") or 0)
            self._index = (by_pid, by_entity, children)
        return self._index

    def _key_of(self, entry: Any) -> tuple[Any, ...]:
        return tuple(_field(entry, name) for name in self._key)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Any]:
        """Every process held, live and exited."""
        return iter(list(self._entries.values()))

    def get(self, pid: int, start_time_ns: int | None = None) -> Any:
        """A process by pid and start time; without a start time, the live
        process with that pid (None when there is none)."""
        gens = self._indexes()[0].get(pid, [])
        if start_time_ns is not None:
            return next((e for e in gens if _field(e, "start_time_ns") == start_time_ns), None)
        return next((e for e in reversed(gens) if self.is_alive(e)), None)

    def find(self, entity: Any) -> Any:
        """A process by entity id."""
        return self._indexes()[1].get(entity)

    def is_alive(self, process: Any) -> bool:
        """Whether the recorded table had seen no exit of the process."""
        return self._key_of(process) not in self._exited

    def exit_time_ns(self, process: Any) -> int | None:
        """When the process exited (CLOCK_BOOTTIME ns), or None if it lived."""
        return self._exited.get(self._key_of(process))

    def _resolve(self, process: Any) -> Any:
        if isinstance(process, int):
            return self.get(process)
        if isinstance(process, str):
            return self.find(process)
        if process is None:
            return None
        return self.find(_field(process, "entity_id")) or process

    def parent(self, process: Any) -> Any:
        """The parent of a process (an entry, a live pid or an entity id)."""
        entry = self._resolve(process)
        if entry is None:
            return None
        parent = _field(entry, "parent_entity_id")
        if parent:
            return self.find(parent)
        if parent is None and "parent_entity_id" not in self._key:
            # a table without entity ids: by the parent's pid
            ppid = _field(entry, "ppid")
            return None if ppid in (None, _field(entry, "pid")) else self.get(ppid)
        return None

    def ancestors(self, process: Any, max_depth: int | None = None) -> list[Any]:
        """The chain of parents, nearest first, as far as the table knows it,
        at most max_depth long."""
        depth = self.max_depth if max_depth is None else max_depth
        out: list[Any] = []
        seen: set[int] = set()
        entry = self._resolve(process)
        while entry is not None and len(out) < depth:
            parent = self.parent(entry)
            if parent is None or id(parent) in seen:
                break
            seen.add(id(parent))
            out.append(parent)
            entry = parent
        return out

    def children(self, process: Any) -> list[Any]:
        """The children of a process the table holds, live and exited."""
        entry = self._resolve(process)
        if entry is None:
            return []
        return list(self._indexes()[2].get(_field(entry, "entity_id"), []))

    def session(self, process: Any) -> Any:
        """The session and login of a process (a ``SessionInfo``), or None."""
        entry = self._resolve(process)
        if entry is None:
            return None
        try:
            from ..process import SessionInfo
        except ImportError:
            return None
        sid = _field(entry, "sid") or 0
        leader = None
        if sid:
            leader = self.get(sid)
            if leader is None or _field(leader, "sid") != sid:
                leader = next((a for a in self.ancestors(entry) if _field(a, "pid") == sid), None)
        return SessionInfo(sid, leader, _field(entry, "loginuid"), _field(entry, "sessionid"), _field(entry, "tty"))


class ReplayHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A replay's health report: the recording's, in the shape of ``Health``.

    Attributes:
        supplementary_events_subsystem: always ``"replay"``.
        ebpf: the recording was made with the eBPF provider.
        reason: what is replayed, from which version and provider.
        kinds: each kind's health when the recording started; kinds not
            recorded are off.
        counters: the replay's counters (see ``ReplaySensor.stats``).
        log_file: always None.
        exclusions_skipped: always empty.
        recording: the recording's file name.
        format_version: the recording's format version.
        sensor_version: the ebpfsensor version that recorded it.
        recorded_provider: the provider of the sensor recorded.
        complete: the recording's end frame has been replayed (it was
            closed in order); False while replaying and for a recording cut
            off.
        truncated_at: where an incomplete last frame starts (replayed with
            ``allow_truncated``), else None.
    """

    supplementary_events_subsystem: str
    ebpf: bool
    reason: str
    kinds: dict[str, KindHealth]
    counters: SensorStats
    log_file: str | None = None
    exclusions_skipped: list[Any] = msgspec.field(default_factory=list)
    recording: str = ""
    format_version: int = 0
    sensor_version: str = ""
    recorded_provider: str = ""
    complete: bool = False
    truncated_at: int | None = None


class ReplaySensor:
    """The Sensor's API, fed from a recording: no privileges, no kernel.

    Events come back as the Structs the sensor delivered, equal field by
    field, in the batches it delivered them, at the recorded pace
    (``speed=1.0``; 2.0 twice as fast) or as fast as they can be read
    (``speed=None`` or 0, the default). ``events()``, ``run()`` and
    ``async for`` end with the recording; ``poll()`` then returns ``[]`` at
    once (``finished`` says so). ``processes`` holds the recorded process
    table as of the replay's position when the recording has one, else
    None. ``stats()`` counts the events replayed and the losses recorded so
    far.

    Args:
        source: a recording's file name, or a binary file open on one.
        speed: 1.0 for the recorded pace, None or 0 for no waiting.
        kinds: replay only these kinds; None for all recorded.
        allow_truncated: replay a recording whose last frame was cut off
            up to that frame, instead of raising when reaching it.

    Raises:
        RecordingError: not a recording, or a format version newer than
            this library reads (on opening); a truncated or corrupted frame
            (when the replay reaches it), naming its offset.
        OSError: the file cannot be opened.
        ValueError: a negative speed or an unknown kind.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        speed: float | None = None,
        kinds: Iterable[str] | None = None,
        allow_truncated: bool = False,
    ) -> None:
        self._reader: RecordingReader | None = None
        self._is_open = self._started = False
        if speed is not None and speed < 0:
            raise ValueError(f"speed must be positive (or None/0 for no waiting), not {speed}")
        self.speed = speed or None
        self._wanted = None if kinds is None else frozenset(kinds)
        if self._wanted is not None:
            _check_kinds(self._wanted)
        self._source = source
        self._allow_truncated = allow_truncated
        self._subs: list[ReplaySubscription] = []
        self._open()

    # --- the source --------------------------------------------------------------------

    def _new_reader(self) -> RecordingReader:
        return RecordingReader(self._source, allow_truncated=self._allow_truncated)

    def _open(self) -> None:
        self._reader = self._new_reader()
        #: the recording's file name ("" for a file object without one)
        self.path = self._reader.path
        self._frames: Iterator[Frame] = iter(self._reader)
        self._kind_health = self._reader.info.kind_health
        self._setup(self._reader.header)
        self._is_open = True

    def _setup(self, header: RecordingHeader) -> None:
        self.header = header
        known = all_kinds()
        recorded = {k for k in header.kinds if k in known} or set(known)
        kinds = frozenset(recorded if self._wanted is None else recorded & self._wanted)
        # Config knows the kinds one collects, not the markers
        self.config = Config(kinds=frozenset(k for k in kinds if k in KINDS), log_file=None)
        self._kinds = kinds
        self._classes = None if self._wanted is None else frozenset(known[k] for k in kinds)
        self.processes: ReplayProcessTable | None = ReplayProcessTable() if header.processes else None
        self._next: Frame | None = None
        self._end: EndFrame | None = None
        self._delivered: Counter[type] = Counter()
        self._lost = {"dropped": 0, "undecodable": 0, "unmatched": 0}
        self._lost_kinds: dict[str, dict[str, int]] = {}
        self._t0 = time.monotonic()

    def _pull(self) -> Frame | None:
        return next(self._frames, None)

    def _peek(self) -> Frame | None:
        if self._next is None:
            self._next = self._pull()
        return self._next

    def _due(self, frame: Frame) -> float:
        return 0.0 if self.speed is None else self._t0 + frame.t_ns / 1e9 / self.speed

    def _take(self) -> list[Event]:
        """Consume the next frame; the events it brings (filtered), if any."""
        frame, self._next = self._next, None
        if isinstance(frame, EventsFrame):
            events = frame.events
            if self._classes is not None:
                events = [e for e in events if type(e) in self._classes]
            # counted by type in C: no Python call per event
            self._delivered.update(map(type, events))
            return events
        if isinstance(frame, LossFrame):
            self._lost["dropped"] += frame.dropped
            self._lost["undecodable"] += frame.undecodable
            self._lost["unmatched"] += frame.unmatched
            for kind, counts in frame.kinds.items():
                mine = self._lost_kinds.setdefault(kind, {})
                for name, n in counts.items():
                    mine[name] = mine.get(name, 0) + n
        elif isinstance(frame, ProcessesFrame):
            if self.processes is None:
                self.processes = ReplayProcessTable()
            self.processes._apply(frame)
        elif isinstance(frame, EndFrame):
            self._end = frame
        return []

    @property
    def finished(self) -> bool:
        """Everything recorded has been replayed."""
        return self._peek() is None

    @property
    def complete(self) -> bool:
        """The recording's end frame was replayed: it was closed in order."""
        return self._end is not None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> ReplaySensor:
        """Start the replay's clock; idempotent. After close(), start over
        from the beginning (a recording given as a file name only).

        Raises:
            EbpfSensorError: restarting a replay of a file object.
        """
        if self._started:
            return self
        if not self._is_open:
            if not isinstance(self._source, (str, os.PathLike)):
                raise EbpfSensorError("a replay of a file object cannot start over: open the recording again")
            self._open()
        self._t0 = time.monotonic()
        self._started = True
        return self

    def close(self) -> None:
        """Close the recording; idempotent."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        self._is_open = self._started = False

    def __enter__(self) -> ReplaySensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # --- events ------------------------------------------------------------------------------

    def _running(self) -> None:
        if not self._started:
            raise EbpfSensorError("the replay is not started: use `with ReplaySensor(path) as s:` or call start()")

    def poll(self, timeout: float | None = 0.0) -> list[Event]:
        """Wait up to timeout seconds for the next recorded batch and return it.

        The batch is also passed to subscribers. None waits for at most the
        configured max_latency_ms. Returns ``[]`` at once when the
        recording is over.
        """
        self._running()
        seconds = self.config.max_latency_ms / 1000 if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + seconds
        while True:
            frame = self._peek()
            if frame is None:
                return []
            due = self._due(frame)
            now = time.monotonic()
            if due > now:
                if due > deadline:
                    if deadline > now:
                        time.sleep(deadline - now)
                    return []
                time.sleep(due - now)
            batch = self._take()
            if batch:
                if self._subs:
                    self._dispatch(batch)
                return batch

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Iterate over the recorded events; ends with the recording.

        Args:
            timeout: also stop after this many seconds without an event (at
                the recorded pace); None stops only at the end.
        """
        interval = self.config.max_latency_ms / 1000
        last = time.monotonic()
        while self._started and not self.finished:
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
        """``async for event in replay``: waits with asyncio at the recorded
        pace, and lets other tasks run between batches at any speed."""
        while self._started:
            frame = self._peek()
            if frame is None:
                return
            delay = self._due(frame) - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
            for event in self.poll(0):
                yield event

    def subscribe(self, callback: Callable[[Event], Any], kinds: Iterable[str] | None = None) -> ReplaySubscription:
        """Call callback(event) for every event (of the given kinds), from
        whichever call replays it (events(), poll(), run(), async iteration).

        Raises:
            ValueError: an unknown kind.
        """
        classes = None
        if kinds is not None:
            kinds = frozenset(kinds)
            _check_kinds(kinds)
            classes = frozenset(all_kinds()[k] for k in kinds)
        sub = ReplaySubscription(self, callback, classes)
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
        """Replay into the subscribers for duration seconds (None: to the end)."""
        end = None if duration is None else time.monotonic() + duration
        interval = self.config.max_latency_ms / 1000
        while self._started and not self.finished and (end is None or time.monotonic() < end):
            wait = interval if end is None else max(0.0, min(interval, end - time.monotonic()))
            self.poll(wait)

    def record(self, target: str | os.PathLike[str] | IO[bytes], **options: Any) -> Recorder:
        """Record what this replay delivers (to cut a recording down to some
        kinds, say); as :meth:`ebpfsensor.Sensor.record`."""
        from .recorder import Recorder

        return Recorder(self, target, **options)

    # --- state ---------------------------------------------------------------------------------

    def hooks(self) -> dict[str, Any]:
        """No hooks: nothing is attached."""
        return {}

    def kernel_stats(self) -> dict[int, tuple[int, ...]]:
        """No kernel counters: nothing is loaded."""
        return {}

    def stats(self) -> SensorStats:
        """The replay's counters: events replayed so far per kind, and the
        losses the recording marked up to here (``dropped``,
        ``undecodable``, per kind ``dropped`` and ``unmatched``); events of
        kinds this version does not know count as ``undecodable``."""
        kinds: dict[str, KindStats] = {}
        by_kind = {kind_of(cls): n for cls, n in self._delivered.items()}
        for kind in sorted(set(by_kind) | set(self._lost_kinds)):
            delivered = by_kind.get(kind, 0)
            lost = self._lost_kinds.get(kind, {})
            dropped = lost.get("dropped", 0)
            kinds[kind] = KindStats(
                produced=delivered + dropped,
                delivered=delivered,
                pending=0,
                dropped=dropped,
                truncated=0,
                filtered=0,
                unmatched=lost.get("unmatched", 0),
            )
        delivered = sum(self._delivered.values())
        dropped = self._lost["dropped"]
        skipped = self._reader.skipped_events if self._reader is not None else 0
        undecodable = self._lost["undecodable"] + skipped
        return SensorStats(
            kinds=kinds,
            delivered=delivered,
            dropped=dropped,
            undecodable=undecodable,
            lost=dropped + undecodable,
            provider="replay",
        )

    def health(self) -> ReplayHealth:
        """What is replayed, each kind's recorded health, and the counters."""
        h = self.header
        kinds: dict[str, KindHealth] = {}
        for kind in sorted(all_kinds()):
            if kind not in self._kinds:
                kinds[kind] = KindHealth(False, "", "not in the recording" if kind not in h.kinds else "not replayed")
            else:
                recorded = self._kind_health.get(kind)
                kinds[kind] = KindHealth(
                    recorded.live if recorded else True, "replay", recorded.reason if recorded else ""
                )
        truncated_at = self._reader.truncated_at if self._reader is not None else None
        state = "complete" if self.complete else "cut off before its end frame" if self.finished else "replaying"
        return ReplayHealth(
            supplementary_events_subsystem="replay",
            ebpf=h.provider == "ebpf",
            reason=(
                f"replaying {self.path or 'a recording'} (format {h.version}, "
                f"ebpfsensor {h.sensor_version or '?'}, provider {h.provider or '?'}): {state}"
            ),
            kinds=kinds,
            counters=self.stats(),
            recording=self.path,
            format_version=h.version,
            sensor_version=h.sensor_version,
            recorded_provider=h.provider,
            complete=self.complete,
            truncated_at=truncated_at,
        )
