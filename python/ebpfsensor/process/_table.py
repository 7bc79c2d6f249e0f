# SPDX-License-Identifier: Apache-2.0
"""ProcessTable: the host's processes, kept from the lifecycle events.

A process is named by its pid and start time, never by its pid alone; the
table keeps, per pid, the generations it still holds (a live process and
exited ones in their grace period). Each process state is one immutable
:class:`~ebpfsensor.events.ProcessInfo`, shared by the events it describes;
a change (exec, reparenting, a hash, a loss) makes a new one. Mutable facts
live beside them, only for the processes they concern: exit times, the
state before the latest exec, the parents' lists of children, the
processes read from /proc whose start time is known to the clock tick only.

Where the events come from a ring (eBPF), the table also fills the
consumer's C cache (:class:`~ebpfsensor.sources.ebpf.ring.ProcessCache`)
so the transcoder finds each record's process and parent there; the rule
that keeps that safe is in :meth:`ProcessTable._store`: the cache is
updated before the table lets go of an object.
"""

from __future__ import annotations

import logging
import sys
import time
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..events import CredChange, Event, ProcessExec, ProcessExit, ProcessFork, Setsid, boot_to_wall_ns
from ..events._base import LossWindow, ProcessInfo
from . import _procfs
from ._entity import boot_id, entity_id, pid_of
from ._hash import Hasher

if TYPE_CHECKING:
    from ..sources.ebpf.ring import ProcessCache
    from ..status import ProcessTableStats

__all__ = ["ProcessTable", "SessionInfo"]

log = logging.getLogger("ebpfsensor")

UNSET_ID = 0xFFFFFFFF
_set = msgspec.structs.force_setattr
_replace = msgspec.structs.replace
_intern = sys.intern


class SessionInfo(msgspec.Struct, frozen=True):
    """A process's session and login.

    Attributes:
        sid: the POSIX session id: the session leader's pid (0 when unknown).
        leader: the session leader, when the table has it.
        loginuid: the audit login uid (4294967295 when unset).
        sessionid: the audit session id (4294967295 when unset).
        tty: the controlling terminal ("" for none).
    """

    sid: int
    leader: ProcessInfo | None
    loginuid: int
    sessionid: int
    tty: str


def _now() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


# ids repeat across processes (uids, sessions, cgroups, parents): one int
# object each, not one per process, since a table of 100,000 processes
# would otherwise hold several 28-byte ints per process
_ints: dict[int, int] = {}
_INTS_MAX = 65536


def _int(value: int) -> int:
    shared = _ints.get(value)
    if shared is None:
        if len(_ints) >= _INTS_MAX:
            _ints.clear()
        shared = _ints[value] = value
    return shared


class ProcessTable:
    """The processes of the host: lookups by pid or entity id, ancestry,
    children and sessions.

    Args:
        limit: most processes held; the least recently active exited ones
            go first, then the least recently active live ones.
        grace_ns: how long an exited process is kept, so that late events
            still find it (and how long the state before an exec is kept
            for the events from before it).
        max_depth: the longest ancestor chain :meth:`ancestors` walks.
        hasher: hashes executables; None for no hashes.
        boot: the boot id (:func:`~ebpfsensor.process._entity.boot_id`).

    The table is fed by one thread (the one that drains the sensor) and may
    be read from it between polls.
    """

    def __init__(
        self,
        *,
        limit: int = 131072,
        grace_ns: int = 30_000_000_000,
        max_depth: int = 64,
        hasher: Hasher | None = None,
        boot: bytes | None = None,
    ) -> None:
        self.limit = limit
        self.grace_ns = grace_ns
        self.max_depth = max_depth
        self.hasher = hasher
        self._boot = boot_id() if boot is None else boot
        self._by_pid: dict[int, ProcessInfo | list[ProcessInfo]] = {}
        self._count = 0
        # entity -> exit time, in the order of the exits
        self._exited: dict[str, int] = {}
        # entity -> (the state before its latest exec, the exec's time)
        self._prev: dict[str, tuple[ProcessInfo, int]] = {}
        # read from /proc: start time known to the clock tick only
        self._inexact: set[str] = set()
        # parent entity -> its children's entities
        self._children: dict[str, list[str]] = {}
        self._cache: ProcessCache | None = None
        self.expired = self.evicted_exited = self.evicted_live = self.misses = self.unknown = 0
        self.procfs_reads = self.reparented = self.loss_markers = self.marked = 0
        #: how the table was seeded (``ebpfsensor.process._seed``), for stats and health
        self.seeded = ""

    def bind(self, cache: ProcessCache) -> None:
        """Fill a ring consumer's C cache from now on (and with what is held)."""
        self._cache = cache
        for info in list(self):
            self._cache_set(info)

    # --- lookups -------------------------------------------------------------------------

    def _gens(self, pid: int) -> list[ProcessInfo]:
        v = self._by_pid.get(pid)
        if v is None:
            return []
        return v if isinstance(v, list) else [v]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ProcessInfo]:
        """Every process held, live and exited."""
        for v in list(self._by_pid.values()):
            if type(v) is ProcessInfo:
                yield v
            else:
                yield from v  # type: ignore[misc]

    def get(self, pid: int, start_time_ns: int | None = None) -> ProcessInfo | None:
        """A process by pid and start time; without a start time, the live
        process with that pid."""
        if start_time_ns is None:
            return self._alive(pid)
        for info in self._gens(pid):
            if info.start_time_ns == start_time_ns:
                return info
        # read from /proc: its start is known to the tick
        ticks = _procfs.ticks_of(start_time_ns)
        for info in self._gens(pid):
            if info.entity_id in self._inexact and _procfs.ticks_of(info.start_time_ns) == ticks:
                return info
        return None

    def find(self, entity: str) -> ProcessInfo | None:
        """A process by entity id."""
        pid = pid_of(entity)
        if pid is None:
            return None
        for info in self._gens(pid):
            if info.entity_id == entity:
                return info
        return None

    def _alive(self, pid: int) -> ProcessInfo | None:
        for info in reversed(self._gens(pid)):
            if info.entity_id not in self._exited:
                return info
        return None

    def is_alive(self, process: ProcessInfo) -> bool:
        """Whether the table has seen no exit of the process."""
        return process.entity_id not in self._exited

    def exit_time_ns(self, process: ProcessInfo) -> int | None:
        """When the process exited (CLOCK_BOOTTIME ns), or None if it lives."""
        return self._exited.get(process.entity_id)

    def parent(self, process: ProcessInfo | int | str) -> ProcessInfo | None:
        """The parent of a process (a ProcessInfo, a live pid or an entity id)."""
        info = self._resolve(process)
        if info is None or not info.parent_entity_id:
            return None
        return self.find(info.parent_entity_id)

    def ancestors(self, process: ProcessInfo | int | str, max_depth: int | None = None) -> list[ProcessInfo]:
        """The chain of parents, nearest first, up to pid 1 (or as far as
        the table knows it), at most max_depth long (``Config.process_ancestry_depth``)."""
        depth = self.max_depth if max_depth is None else max_depth
        out: list[ProcessInfo] = []
        info = self._resolve(process)
        seen: set[str] = set()
        while info is not None and len(out) < depth:
            parent = self.parent(info)
            if parent is None or parent.entity_id in seen:
                break
            seen.add(parent.entity_id)
            out.append(parent)
            info = parent
        return out

    def children(self, process: ProcessInfo | int | str) -> list[ProcessInfo]:
        """The children of a process the table holds, live and exited."""
        info = self._resolve(process)
        if info is None:
            return []
        found = (self.find(e) for e in self._children.get(info.entity_id, ()))
        return [c for c in found if c is not None and c.parent_entity_id == info.entity_id]

    def session(self, process: ProcessInfo | int | str) -> SessionInfo | None:
        """The session and login of a process."""
        info = self._resolve(process)
        if info is None:
            return None
        leader = None
        if info.sid:
            leader = self._alive(info.sid)
            if leader is None or leader.sid != info.sid:
                leader = next((a for a in self.ancestors(info) if a.pid == info.sid), None)
        return SessionInfo(info.sid, leader, info.loginuid, info.sessionid, info.tty)

    def _resolve(self, process: ProcessInfo | int | str) -> ProcessInfo | None:
        if isinstance(process, ProcessInfo):
            return self.find(process.entity_id) or process
        if isinstance(process, str):
            return self.find(process)
        return self._alive(process)

    # --- keeping it --------------------------------------------------------------------------

    def _new_entity(self, pid: int, start_ns: int) -> str:
        eid = entity_id(self._boot, pid, start_ns)
        if any(g.entity_id == eid and g.start_time_ns != start_ns for g in self._gens(pid)):
            # another process had this pid within the same clock tick
            eid = entity_id(self._boot, pid, start_ns, exact=True)
        return eid

    def _parent_key(self, info: ProcessInfo) -> tuple[int, int]:
        """The parent's key in the C cache: start 0 when the table has no
        parent for it (the transcoder then gives none, and does not ask
        again)."""
        parent = self.find(info.parent_entity_id) if info.parent_entity_id else None
        if parent is None:
            return info.ppid, 0
        return info.ppid, parent.start_time_ns

    def _cache_set(self, info: ProcessInfo) -> None:
        """Set info in the C cache. A process read from /proc is there under
        its start time to the tick: its own records, which carry the exact
        start, miss it (and upgrade it), its children's find it as parent."""
        if self._cache is None:
            return
        ppid, pstart = self._parent_key(info)
        prev, since = self._prev.get(info.entity_id, (None, 0))
        self._cache.set(info.pid, info.start_time_ns, info, ppid, pstart, since, prev)

    def _store(self, info: ProcessInfo, old: ProcessInfo | None = None) -> ProcessInfo:
        """Hold info in place of old (the same process), or as a new process.

        The C cache is set first: it must never point at an object the
        table has let go of (events being transcoded would get it).
        """
        self._cache_set(info)
        gens = self._by_pid.get(info.pid)
        replaced = False
        if old is not None and gens is not None:
            if gens is old:
                self._by_pid[info.pid] = info
                replaced = True
            elif type(gens) is list:
                for i, g in enumerate(gens):
                    if g is old:
                        gens[i] = info
                        replaced = True
                        break
        if replaced:
            assert old is not None
            if old.parent_entity_id != info.parent_entity_id:
                self._unlink(old)
                self._link(info)
            return info
        if gens is None:
            self._by_pid[info.pid] = info
        elif type(gens) is list:
            gens.append(info)
        else:
            self._by_pid[info.pid] = [gens, info]  # type: ignore[list-item]
        self._count += 1
        self._link(info)
        return info

    def _link(self, info: ProcessInfo) -> None:
        if info.parent_entity_id:
            self._children.setdefault(info.parent_entity_id, []).append(info.entity_id)

    def _unlink(self, info: ProcessInfo) -> None:
        siblings = self._children.get(info.parent_entity_id)
        if siblings is None:
            return
        try:
            siblings.remove(info.entity_id)
        except ValueError:
            pass
        if not siblings:
            del self._children[info.parent_entity_id]

    def _drop(self, info: ProcessInfo) -> None:
        """Forget a process: the C cache first, then the table."""
        if self._cache is not None:
            self._cache.delete(info.pid, info.start_time_ns)
        gens = self._by_pid.get(info.pid)
        if gens is info:
            del self._by_pid[info.pid]
        elif type(gens) is list:
            gens.remove(info)
            if len(gens) == 1:
                self._by_pid[info.pid] = gens[0]
        else:
            return
        self._count -= 1
        eid = info.entity_id
        self._exited.pop(eid, None)
        self._prev.pop(eid, None)
        self._inexact.discard(eid)
        self._unlink(info)

    def _update(self, old: ProcessInfo, **changes: Any) -> ProcessInfo:
        return self._store(_replace(old, **changes), old)

    def _from_snapshot(self, snap: _procfs.ProcSnapshot, start_ns: int, parent: ProcessInfo | None) -> ProcessInfo:
        return ProcessInfo(
            entity_id=self._new_entity(snap.pid, start_ns),
            pid=snap.pid,
            start_time_ns=start_ns,
            ppid=snap.ppid,
            parent_entity_id=parent.entity_id if parent is not None else "",
            exe=_intern(snap.exe),
            argv=snap.argv,
            cwd=_intern(snap.cwd),
            comm=_intern(snap.comm),
            uid=snap.uid,
            euid=snap.euid,
            gid=snap.gid,
            egid=snap.egid,
            loginuid=snap.loginuid,
            sessionid=snap.sessionid,
            sid=snap.sid,
            tty=_intern(snap.tty if snap.tty is not None else _procfs.tty_name(snap.tty_nr)),
            cgroup_id=snap.cgroup_id,
            container_id=_intern(snap.container_id),
            exe_hash_reason="" if self.hasher is not None else "disabled",
            source=snap.source,
        )

    def _read_proc(self, pid: int, start_ns: int | None, depth: int = 0) -> ProcessInfo | None:
        """Learn a process from /proc. start_ns None: whatever process has
        the pid now, its start known to the tick (an inexact entry)."""
        snap = _procfs.read_process(pid, None if start_ns is None else _procfs.ticks_of(start_ns))
        if snap is None:
            return None
        self.procfs_reads += 1
        parent = None
        if snap.ppid and depth < self.max_depth:
            parent = self._alive(snap.ppid) or self._read_proc(snap.ppid, None, depth + 1)
        start = snap.start_ticks * _procfs.NS_PER_TICK if start_ns is None else start_ns
        info = self._from_snapshot(snap, start, parent)
        if self.hasher is not None and snap.exe and not snap.kernel_thread:
            token = (info.entity_id, info.exe)
            memfd = snap.exe_memfd
            digest, reason = self.hasher.request(snap.pid, snap.start_ticks, sys.maxsize, token, memfd=memfd)
            info = _replace(info, exe_hash=digest, exe_hash_reason=reason)
        if start_ns is None:
            self._inexact.add(info.entity_id)
        return self._store(info)

    def _upgrade(self, info: ProcessInfo, start_ns: int) -> ProcessInfo:
        """A process read from /proc, now seen in an event: its exact start."""
        self._inexact.discard(info.entity_id)
        if self._cache is not None and start_ns != info.start_time_ns:
            # before the object it points at goes
            self._cache.delete(info.pid, info.start_time_ns)
        new = self._store(_replace(info, start_time_ns=start_ns), info)
        # its children name it by its new key
        for child in self.children(new):
            self._cache_set(child)
        return new

    def _learn(self, pid: int, start_ns: int, ev: Event | None, *, procfs: bool = True) -> ProcessInfo | None:
        """The process (pid, start_ns): held, or read from /proc, or, when
        ev is given and it is gone, what ev's own fields say."""
        if not start_ns:
            return None
        ticks = _procfs.ticks_of(start_ns)
        for info in self._gens(pid):
            if info.entity_id in self._inexact:
                if _procfs.ticks_of(info.start_time_ns) == ticks:
                    return self._upgrade(info, start_ns)
            elif info.start_time_ns == start_ns:
                return info
        found = self._read_proc(pid, start_ns) if procfs else None
        if found is None and ev is not None:
            self.unknown += 1
            found = self._from_event(ev)
            if procfs:
                # /proc no longer has it: gone, kept for the grace period (its
                # exit event, if one comes, tells when it ended)
                self._exited[found.entity_id] = ev.ts_ns
        return found

    def _from_event(self, ev: Any) -> ProcessInfo:
        """A process gone before it could be read: what its event says."""
        parent = self._alive(ev.ppid) if ev.ppid else None
        return self._store(
            ProcessInfo(
                entity_id=self._new_entity(ev.pid, ev.start_time_ns),
                pid=ev.pid,
                start_time_ns=ev.start_time_ns,
                ppid=ev.ppid,
                parent_entity_id=parent.entity_id if parent is not None else "",
                exe="",
                argv=[],
                cwd="",
                comm=_intern(ev.comm),
                uid=ev.uid,
                euid=UNSET_ID,
                gid=ev.gid,
                egid=UNSET_ID,
                loginuid=UNSET_ID,
                sessionid=UNSET_ID,
                sid=0,
                tty="",
                cgroup_id=ev.cgroup_id,
                container_id=_intern(ev.container_id),
                exe_hash_reason="gone" if self.hasher is not None else "disabled",
                source="event",
            )
        )

    def _live_parent(self, ppid: int) -> ProcessInfo | None:
        if not ppid:
            return None
        return self._alive(ppid) or self._read_proc(ppid, None)

    def _reparent(self, info: ProcessInfo, ppid: int) -> ProcessInfo:
        parent = self._live_parent(ppid)
        self.reparented += 1
        return self._update(info, ppid=ppid, parent_entity_id=parent.entity_id if parent is not None else "")

    def _at(self, info: ProcessInfo, ts_ns: int) -> ProcessInfo:
        """The process as it was at ts_ns: before its latest exec, or now."""
        prev = self._prev.get(info.entity_id)
        return prev[0] if prev is not None and ts_ns < prev[1] else info

    # --- the start-up snapshot ----------------------------------------------------------------

    def scan(self) -> int:
        """Read every process /proc lists and hold those the table does not
        hold yet (see :meth:`merge`). Returns how many it added."""
        snaps = _procfs.snapshot()
        self.procfs_reads += len(snaps)
        return self.merge(snaps)

    def merge(self, snaps: Mapping[int, _procfs.ProcSnapshot], now_ns: int | None = None) -> int:
        """Hold the processes of a snapshot (/proc's or the task iterator's)
        that the table does not hold yet. Run after the event sources are
        attached, so that a process started since is in the snapshot, its
        events, or both: its events find it by pid and start (to the tick,
        or exactly when the snapshot knew it exactly). A parent the snapshot
        lacks is read from /proc; an exited process (a zombie) is held as
        exited from now_ns. Returns how many it added."""
        now = _now() if now_ns is None else now_ns
        added: list[tuple[ProcessInfo, _procfs.ProcSnapshot]] = []
        done: dict[int, ProcessInfo | None] = {}

        def add(pid: int, depth: int) -> ProcessInfo | None:
            if pid in done:
                return done[pid]
            snap = snaps[pid]
            held = self._held(snap)
            if held is not None:
                if snap.exited and held.entity_id not in self._exited:
                    self._exited[held.entity_id] = now
                done[pid] = held
                return held
            done[pid] = None  # a loop in ppid (a pid reused meanwhile) ends here
            parent = None
            if snap.ppid and depth < self.max_depth:
                parent = add(snap.ppid, depth + 1) if snap.ppid in snaps else self._live_parent(snap.ppid)
            info = self._from_snapshot(snap, snap.start_time_ns, parent)
            if not snap.start_ns:
                self._inexact.add(info.entity_id)
            done[pid] = info = self._store(info)
            if snap.exited:
                self._exited[info.entity_id] = now
            added.append((info, snap))
            return info

        for pid in sorted(snaps):
            add(pid, 0)
        if self.hasher is not None:
            for info, snap in added:
                if snap.exe and not snap.kernel_thread:
                    self._hash(info, snap.start_ticks, sys.maxsize, snap.exe_memfd)
        return len(added)

    def _held(self, snap: _procfs.ProcSnapshot) -> ProcessInfo | None:
        """The process a snapshot names, when the table holds it already:
        learnt from its events (which know its start exactly) or an earlier
        snapshot. One known to the tick only learns its exact start from an
        exact snapshot."""
        for g in self._gens(snap.pid):
            if _procfs.ticks_of(g.start_time_ns) != snap.start_ticks:
                continue
            if g.entity_id in self._inexact:
                return self._upgrade(g, snap.start_ns) if snap.start_ns else g
            if not snap.start_ns or g.start_time_ns == snap.start_ns:
                return g
        return None

    # --- events --------------------------------------------------------------------------

    def lifecycle(self, events: Iterable[Event]) -> None:
        """Learn from lifecycle events, in order, and put their context on
        them (a fork: the forking process; an exec: the new image)."""
        for ev in events:
            t = type(ev)
            if t is ProcessExec:
                self._exec(ev)  # type: ignore[arg-type]
            elif t is ProcessFork:
                self._fork(ev)  # type: ignore[arg-type]
            elif t is ProcessExit:
                self._exit(ev)  # type: ignore[arg-type]

    def _put(self, ev: Any, info: ProcessInfo | None) -> None:
        if info is None:
            return
        _set(ev, "process", info)
        _set(ev, "parent", self.parent(info))

    def _fork(self, ev: ProcessFork) -> None:
        parent = self._learn(ev.pid, ev.start_time_ns, ev)
        self._put(ev, parent)
        if parent is None or not ev.child_start_time_ns or ev.clone_flags & 0x00010000:  # CLONE_THREAD
            # the classic tracepoint cannot see the child: its first event finds it in /proc
            return
        child = self.get(ev.child_pid, ev.child_start_time_ns)
        if child is not None:
            # read from /proc since the sensor started: the fork tells its exact start
            if child.entity_id in self._inexact:
                self._upgrade(child, ev.child_start_time_ns)
            return
        self._store(
            _replace(
                parent,
                entity_id=self._new_entity(ev.child_pid, ev.child_start_time_ns),
                pid=ev.child_pid,
                start_time_ns=ev.child_start_time_ns,
                ppid=parent.pid,  # the parent's own int object
                parent_entity_id=parent.entity_id,
                source="fork",
                context_incomplete=None,
            )
        )

    def _exec(self, ev: ProcessExec) -> None:
        old = self._learn(ev.pid, ev.start_time_ns, None, procfs=False)
        if old is not None and old.ppid == ev.ppid:
            parent_eid = old.parent_entity_id
        else:
            parent = self._live_parent(ev.ppid)
            parent_eid = parent.entity_id if parent is not None else ""
        sid = old.sid if old is not None else self._sid(ev.pid, ev.start_time_ns)
        info = ProcessInfo(
            entity_id=old.entity_id if old is not None else self._new_entity(ev.pid, ev.start_time_ns),
            pid=ev.pid,
            start_time_ns=ev.start_time_ns,
            ppid=_int(ev.ppid),
            parent_entity_id=parent_eid,
            exe=_intern(ev.exe),
            argv=ev.argv,
            cwd=_intern(ev.cwd),
            comm=_intern(ev.comm),
            uid=_int(ev.uid),
            euid=_int(ev.euid),
            gid=_int(ev.gid),
            egid=_int(ev.egid),
            loginuid=_int(ev.loginuid),
            sessionid=_int(ev.sessionid),
            sid=_int(sid),
            tty=_intern(ev.tty),
            cgroup_id=_int(ev.cgroup_id),
            container_id=_intern(ev.container_id),
            exe_hash_reason="" if self.hasher is not None else "disabled",
            source="exec",
            context_incomplete=old.context_incomplete if old is not None else None,
        )
        if ev.argv:
            # shared with the event: argv[0] repeats across processes, the rest rarely
            ev.argv[0] = _intern(ev.argv[0])
        if old is not None:
            # events from before the exec, transcoded after it, get the old
            # image; kept in the order of the execs, so tick() stops early
            self._prev.pop(info.entity_id, None)
            self._prev[info.entity_id] = (old, ev.ts_ns)
        info = self._store(info, old)
        if self.hasher is not None:
            info = self._hash(info, _procfs.ticks_of(ev.start_time_ns), boot_to_wall_ns(ev.ts_ns), ev.exe_memfd)
        self._put(ev, info)

    def _sid(self, pid: int, start_ns: int) -> int:
        """The session id of a process the table did not know, from /proc."""
        stat = _procfs.read_stat(pid)
        return stat[2] if stat is not None and stat[4] == _procfs.ticks_of(start_ns) else 0

    def _hash(self, info: ProcessInfo, start_ticks: int, exec_wall_ns: int, memfd: bool) -> ProcessInfo:
        assert self.hasher is not None
        token = (info.entity_id, info.exe)
        digest, reason = self.hasher.request(info.pid, start_ticks, exec_wall_ns, token, memfd=memfd)
        if digest is None and reason == info.exe_hash_reason:
            return info
        return self._update(info, exe_hash=digest, exe_hash_reason=reason)

    def _exit(self, ev: ProcessExit) -> None:
        info = self._learn(ev.pid, ev.start_time_ns, ev)
        self._put(ev, self._at(info, ev.ts_ns) if info is not None else None)
        if info is None or ev.is_thread:
            return
        # in the order of the exits (tick() expires from the front)
        self._exited.pop(info.entity_id, None)
        self._exited[info.entity_id] = ev.ts_ns
        # its children now have another parent (init or a subreaper): the
        # kernel has reparented them by the time the exit is read
        for child in self.children(info):
            if child.entity_id in self._exited:
                continue
            ppid = _procfs.read_ppid(child.pid, _procfs.ticks_of(child.start_time_ns))
            if ppid is not None and ppid != child.ppid:
                self._reparent(child, ppid)

    def resolve(self, events: Iterable[Event]) -> None:
        """Find the context of events the C cache had none for (the process
        or its parent unknown to it, a new parent), learn from the events the
        cache hands over for that (setsid, credential changes), and put
        their context on them."""
        for ev in events:
            if not hasattr(ev, "start_time_ns"):
                continue
            e: Any = ev
            self.misses += 1
            info = self._learn(e.pid, e.start_time_ns, ev)
            if info is None:
                continue
            if e.ppid and e.ppid != info.ppid:
                info = self._reparent(info, e.ppid)
            t = type(ev)
            if t is Setsid and e.result > 0 and info.sid != e.result:
                info = self._update(info, sid=e.result)
            elif t is CredChange and e.result == 0:
                new = (e.new_uid, e.new_euid, e.new_gid, e.new_egid)
                if new != (info.uid, info.euid, info.gid, info.egid):
                    info = self._update(info, uid=new[0], euid=new[1], gid=new[2], egid=new[3])
            if e.process is None:
                _set(ev, "process", self._at(info, e.ts_ns))
            _set(ev, "parent", self.parent(info))

    #: record types the C cache hands to resolve() even when it knows the process
    LEARN_FROM = (Setsid, CredChange)

    # --- upkeep -------------------------------------------------------------------------------

    def tick(self, now_ns: int | None = None) -> None:
        """Between polls: take the hashes computed, drop what outlived its
        grace period, and stay within the limit."""
        now = _now() if now_ns is None else now_ns
        if self.hasher is not None:
            for r in self.hasher.results():
                eid, exe = typing.cast(tuple[str, str], r.token)
                info = self.find(eid)
                # not if the process has exec'd another file since
                if info is not None and info.exe_hash_reason == "pending" and info.exe == exe:
                    self._update(info, exe_hash=r.digest, exe_hash_reason=r.reason)
        horizon = now - self.grace_ns
        while self._prev:
            eid, (prev, since) = next(iter(self._prev.items()))
            if since > horizon:
                break
            # prev stays referenced here until the cache no longer points at it
            del self._prev[eid]
            info = self.find(eid)
            if info is not None:
                self._cache_set(info)
            del prev
        while self._exited:
            eid, at = next(iter(self._exited.items()))
            if at > horizon:
                break
            info = self.find(eid)
            if info is None:
                del self._exited[eid]
                continue
            self._drop(info)
            self.expired += 1
        if self._count > self.limit:
            self._evict(self._count - self.limit + max(1, self.limit // 16))

    def _activity(self, info: ProcessInfo) -> int:
        last = self._cache.last_active(info.pid, info.start_time_ns) if self._cache is not None else 0
        return max(last, self._exited.get(info.entity_id, 0), info.start_time_ns)

    def _evict(self, n: int) -> None:
        """Drop n processes, least recently active first: exited ones, then
        live ones without children, then the others (evicted between polls:
        no event in flight refers to them)."""
        exited = sorted((self._activity(i), i.entity_id) for i in self if i.entity_id in self._exited)
        for _, eid in exited[:n]:
            info = self.find(eid)
            if info is not None:
                self._drop(info)
                self.evicted_exited += 1
                n -= 1
        if n <= 0:
            return
        # ancestors last: every descendant's ancestry goes through them
        live = sorted(
            (i.entity_id in self._children, self._activity(i), i.entity_id)
            for i in self
            if i.entity_id not in self._exited
        )
        for _, _, eid in live[:n]:
            info = self.find(eid)
            if info is not None:
                self._drop(info)
                self.evicted_live += 1

    def mark_loss(self, window: LossWindow) -> int:
        """Mark every process alive during window (and so its descendants
        alive then) ``context_incomplete``; returns how many."""
        marked = 0
        for info in list(self):
            exited = self._exited.get(info.entity_id)
            if info.start_time_ns > window.end_ns or (exited is not None and exited < window.start_ns):
                continue
            old = info.context_incomplete
            merged = window if old is None else LossWindow(min(old.start_ns, window.start_ns), window.end_ns)
            if merged != old:
                self._update(info, context_incomplete=merged)
                marked += 1
        self.loss_markers += 1
        self.marked += marked
        return marked

    def stats(self) -> ProcessTableStats:
        """The table's counters."""
        from ..status import HashStats, ProcessTableStats

        h = self.hasher
        hashes = None
        if h is not None:
            hashes = HashStats(
                h.hashed, h.bytes, h.cached, dict(h.refused), h.cache_size(), h.cache_evictions, h.queued
            )
        exited = len(self._exited)
        return ProcessTableStats(
            tracked=self._count,
            live=self._count - exited,
            exited=exited,
            limit=self.limit,
            expired=self.expired,
            evicted_exited=self.evicted_exited,
            evicted_live=self.evicted_live,
            misses=self.misses,
            unknown=self.unknown,
            procfs_reads=self.procfs_reads,
            reparented=self.reparented,
            loss_markers=self.loss_markers,
            marked=self.marked,
            cache_bytes=self._cache.nbytes if self._cache is not None else 0,
            hashes=hashes,
            seeded=self.seeded,
        )

    def close(self) -> None:
        """Stop the hasher; the table stays readable. Idempotent."""
        if self.hasher is not None:
            self.hasher.close()
        self._cache = None
