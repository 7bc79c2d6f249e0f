# SPDX-License-Identifier: Apache-2.0
"""The process table on synthetic events, with a fake /proc: lifecycle,
pid reuse, ancestry, reparenting, the start-up snapshot, point-in-time
context, limits, loss marks; the C cache and attach on transcoded records;
the hasher on this process's own executable."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from ebpfsensor._ffi import ffi
from ebpfsensor.config import Config
from ebpfsensor.errors import ConfigError
from ebpfsensor.events import EventType, FileOpen, ProcessExec, ProcessExit, ProcessFork, Setsid, to_json
from ebpfsensor.events._base import LossWindow, ProcessInfo
from ebpfsensor.events._layout import RECORDS
from ebpfsensor.process import EventLoss, Hasher, LossMonitor, ProcessTable, _procfs
from ebpfsensor.process._attach import attacher, sample_event
from ebpfsensor.process._entity import entity_id, pid_of
from ebpfsensor.sources.ebpf.ring import BatchDecoder

BOOT = bytes(range(16))
TICK = _procfs.NS_PER_TICK
S = 1_000_000_000  # a second in ns


class FakeProc:
    """/proc as the table reads it: pid -> ProcSnapshot."""

    def __init__(self) -> None:
        self.procs: dict[int, _procfs.ProcSnapshot] = {}

    def add(self, pid: int, start_ns: int, ppid: int, exe: str = "/bin/sh", sid: int = 0) -> None:
        self.procs[pid] = _procfs.ProcSnapshot(
            pid,
            start_ns // TICK,
            ppid,
            sid,
            0,
            os.path.basename(exe),
            exe,
            [exe],
            "/",
            0,
            0,
            0,
            0,
            1000,
            3,
            "/",
            "",
            1,
            False,
        )

    def read_process(self, pid: int, start_ticks: int | None = None) -> _procfs.ProcSnapshot | None:
        snap = self.procs.get(pid)
        if snap is None or (start_ticks is not None and snap.start_ticks != start_ticks):
            return None
        return snap

    def read_ppid(self, pid: int, start_ticks: int) -> int | None:
        snap = self.read_process(pid, start_ticks)
        return None if snap is None else snap.ppid

    def read_stat(self, pid: int) -> tuple[str, int, int, int, int, int] | None:
        snap = self.procs.get(pid)
        return None if snap is None else (snap.comm, snap.ppid, snap.sid, snap.tty_nr, snap.start_ticks, 0)

    def pids(self) -> Iterator[int]:
        return iter(sorted(self.procs))


@pytest.fixture
def proc(monkeypatch: pytest.MonkeyPatch) -> FakeProc:
    fake = FakeProc()
    monkeypatch.setattr(_procfs, "read_process", fake.read_process)
    monkeypatch.setattr(_procfs, "read_ppid", fake.read_ppid)
    monkeypatch.setattr(_procfs, "read_stat", fake.read_stat)
    monkeypatch.setattr(_procfs, "pids", fake.pids)
    return fake


def table(**kw: Any) -> ProcessTable:
    return ProcessTable(boot=BOOT, **kw)


HEADER = {"cgroup_id": 7, "uid": 0, "gid": 0, "comm": "x", "tid": 0}


def fork(ts: int, pid: int, start: int, child: int, child_start: int, ppid: int = 1) -> Any:
    return sample_event(
        ProcessFork,
        ts_ns=ts,
        pid=pid,
        start_time_ns=start,
        ppid=ppid,
        child_pid=child,
        child_tid=child,
        child_start_time_ns=child_start,
        **HEADER,
    )


def exec_(ts: int, pid: int, start: int, ppid: int, exe: str, argv: list[str] | None = None) -> Any:
    return sample_event(
        ProcessExec,
        ts_ns=ts,
        pid=pid,
        start_time_ns=start,
        ppid=ppid,
        exe=exe,
        argv=argv or [exe],
        cwd="/tmp",
        euid=5,
        loginuid=1000,
        sessionid=4,
        tty="pts1",
        **HEADER,
    )


def exit_(ts: int, pid: int, start: int, ppid: int) -> Any:
    return sample_event(ProcessExit, ts_ns=ts, pid=pid, start_time_ns=start, ppid=ppid, **HEADER)


def opened(ts: int, pid: int, start: int, ppid: int) -> Any:
    return sample_event(FileOpen, ts_ns=ts, pid=pid, start_time_ns=start, ppid=ppid, path="/etc/passwd", **HEADER)


def seeded(proc: FakeProc) -> ProcessTable:
    """init (1) -> bash (100) seeded from the fake /proc."""
    proc.add(1, 1 * TICK, 0, "/sbin/init", sid=1)
    proc.add(100, 50 * TICK, 1, "/bin/bash", sid=100)
    t = table()
    assert t.scan() == 2
    return t


# --- entity ids -----------------------------------------------------------------------------------------------


def test_entity_id_is_derived_from_boot_pid_and_tick() -> None:
    eid = entity_id(BOOT, 4242, 123 * TICK + 5)
    digest = hashlib.sha256(BOOT + (4242).to_bytes(4, "little") + (123).to_bytes(8, "little")).digest()
    assert len(eid) == 16 and pid_of(eid) == 4242
    import base64

    assert base64.urlsafe_b64decode(eid) == (4242).to_bytes(4, "little") + digest[:8]
    # the same tick: the same id (/proc and events agree); another tick, pid or boot: another
    assert entity_id(BOOT, 4242, 123 * TICK + 9) == eid
    assert len({eid, entity_id(BOOT, 4242, 124 * TICK), entity_id(BOOT, 4243, 123 * TICK)}) == 3
    assert entity_id(bytes(16), 4242, 123 * TICK) != eid
    assert entity_id(BOOT, 4242, 123 * TICK, exact=True) != eid
    assert pid_of("not an id") is None


# --- lifecycle ---------------------------------------------------------------------------------------------


def test_fork_exec_exit(proc: FakeProc) -> None:
    t = seeded(proc)
    bash = t.get(100)
    assert bash is not None and bash.source == "procfs" and bash.parent_entity_id == t.get(1).entity_id  # type: ignore[union-attr]
    f = fork(60 * S, 100, 50 * TICK + 3, 200, 60 * S - 10)
    t.lifecycle([f])
    # the fork tells bash's exact start: upgraded, same entity id
    bash2 = t.get(100)
    assert bash2 is not None and bash2.start_time_ns == 50 * TICK + 3 and bash2.entity_id == bash.entity_id
    assert f.process is bash2 and f.parent is not None and f.parent.pid == 1
    child = t.get(200, 60 * S - 10)
    assert child is not None and child.source == "fork" and child.exe == "/bin/bash"
    assert (child.ppid, child.parent_entity_id) == (100, bash.entity_id)
    assert child.entity_id == entity_id(BOOT, 200, 60 * S - 10)
    e = exec_(61 * S, 200, 60 * S - 10, 100, "/usr/bin/cat", ["cat", "/etc/passwd"])
    t.lifecycle([e])
    cat = t.get(200)
    assert cat is not None and e.process is cat and e.parent is bash2
    assert (cat.exe, cat.argv, cat.cwd, cat.euid, cat.loginuid, cat.tty, cat.source) == (
        "/usr/bin/cat",
        ["cat", "/etc/passwd"],
        "/tmp",
        5,
        1000,
        "pts1",
        "exec",
    )
    assert cat.entity_id == child.entity_id and cat.sid == 100
    x = exit_(62 * S, 200, 60 * S - 10, 100)
    t.lifecycle([x])
    assert x.process is cat and not t.is_alive(cat) and t.exit_time_ns(cat) == 62 * S
    # late events still find it in the grace period; then it goes
    assert t.get(200, 60 * S - 10) is cat and t.get(200) is None
    t.tick(62 * S + t.grace_ns - 1)
    assert t.get(200, 60 * S - 10) is cat
    t.tick(62 * S + t.grace_ns)
    assert t.get(200, 60 * S - 10) is None and t.stats().expired == 1
    assert [c.pid for c in t.children(bash2)] == []


def test_pid_reuse_never_mixes(proc: FakeProc) -> None:
    t = seeded(proc)
    t.lifecycle([fork(60 * S, 100, 50 * TICK, 300, 60 * S), exec_(60 * S + 5, 300, 60 * S, 100, "/bin/a")])
    t.lifecycle([exit_(60 * S + 9, 300, 60 * S, 100)])
    # the same pid again, in the same clock tick
    t.lifecycle(
        [fork(60 * S + 20, 100, 50 * TICK, 300, 60 * S + 15), exec_(60 * S + 30, 300, 60 * S + 15, 100, "/bin/b")]
    )
    a, b = t.get(300, 60 * S), t.get(300, 60 * S + 15)
    assert a is not None and b is not None
    assert (a.exe, b.exe) == ("/bin/a", "/bin/b") and a.entity_id != b.entity_id
    assert b.entity_id == entity_id(BOOT, 300, 60 * S + 15, exact=True)
    assert t.get(300) is b and t.find(a.entity_id) is a and t.find(b.entity_id) is b
    ev = opened(60 * S + 40, 300, 60 * S, 100)
    t.resolve([ev])
    assert ev.process is a


def test_ancestry_children_session(proc: FakeProc) -> None:
    t = seeded(proc)
    start = 60 * S
    chain = [(1, TICK), (100, 50 * TICK)]
    for i, pid in enumerate((201, 202, 203)):
        (ppid, _), (parent, pstart) = chain[-2], chain[-1]
        t.lifecycle([fork(start + i, parent, pstart, pid, start + i + 1, ppid=ppid)])
        chain.append((pid, start + i + 1))
    t.lifecycle([exec_(start + 10, 203, start + 3, 202, "/usr/bin/cat")])
    cat = t.get(203)
    assert cat is not None
    assert [p.pid for p in t.ancestors(cat)] == [202, 201, 100, 1]
    assert [p.pid for p in t.ancestors(cat, max_depth=2)] == [202, 201]
    assert [c.pid for c in t.children(100)] == [201]
    s = t.session(cat)
    assert s is not None and s.sid == 100 and s.leader is not None and s.leader.pid == 100
    assert (s.loginuid, s.sessionid, s.tty) == (1000, 4, "pts1")


def test_setsid_changes_the_session(proc: FakeProc) -> None:
    t = seeded(proc)
    t.lifecycle([fork(60 * S, 100, 50 * TICK, 400, 60 * S)])
    ev = sample_event(Setsid, ts_ns=61 * S, pid=400, start_time_ns=60 * S, ppid=100, result=400, **HEADER)
    t.resolve([ev])
    info = t.get(400)
    assert info is not None and info.sid == 400
    s = t.session(400)
    assert s is not None and s.leader is info


def test_reparenting_on_exit_and_from_events(proc: FakeProc) -> None:
    t = seeded(proc)
    t.lifecycle([fork(60 * S, 100, 50 * TICK, 500, 60 * S), fork(61 * S, 500, 60 * S, 501, 61 * S, ppid=100)])
    # 500 exits; the kernel reparented 501 to init: /proc says so
    proc.add(501, 61 * S, 1)
    t.lifecycle([exit_(62 * S, 500, 60 * S, 100)])
    child = t.get(501)
    assert child is not None and child.ppid == 1 and child.parent_entity_id == t.get(1).entity_id  # type: ignore[union-attr]
    # another one, gone from /proc: its next event's ppid tells the new parent (a subreaper, 100)
    t.lifecycle([fork(63 * S, 501, 61 * S, 502, 63 * S), fork(63 * S, 502, 63 * S, 503, 63 * S + 1, ppid=501)])
    t.lifecycle([exit_(64 * S, 502, 63 * S, 501)])
    assert t.get(503).ppid == 502  # type: ignore[union-attr]
    ev = opened(65 * S, 503, 63 * S + 1, 100)
    t.resolve([ev])
    assert ev.parent is not None and ev.parent.pid == 100 and t.get(503).ppid == 100  # type: ignore[union-attr]
    assert t.stats().reparented == 2


def test_snapshot_and_events_merge(proc: FakeProc) -> None:
    t = seeded(proc)
    # a process that started after the rings were attached is in the snapshot and its fork
    proc.add(600, 70 * S + 3, 100)
    t.scan()
    snap = t.get(600)
    assert snap is not None and snap.source == "procfs" and snap.start_time_ns == 70 * S
    t.lifecycle([fork(70 * S + 5, 100, 50 * TICK, 600, 70 * S + 3)])
    assert len([p for p in t if p.pid == 600]) == 1
    merged = t.get(600)
    assert merged is not None and merged.start_time_ns == 70 * S + 3 and merged.entity_id == snap.entity_id
    assert t.scan() == 0


def exact(snap: _procfs.ProcSnapshot, start_ns: int, **changes: Any) -> _procfs.ProcSnapshot:
    """snap as the task iterator gives it: its exact start."""
    return snap._replace(start_ns=start_ns, source="task_iter", **changes)


def test_an_exact_snapshot_merges_with_events_and_agrees_with_proc(proc: FakeProc) -> None:
    proc.add(1, TICK, 0, "/sbin/init", sid=1)
    proc.add(600, 70 * S + 3, 1)
    by_proc = table()
    by_proc.scan()
    t = table()
    assert t.merge({1: exact(proc.procs[1], TICK + 7), 600: exact(proc.procs[600], 70 * S + 3, tty="pts3")}) == 2
    p = t.get(600)
    assert p is not None and p.source == "task_iter" and p.start_time_ns == 70 * S + 3 and p.tty == "pts3"
    # the same entity ids as the /proc scan gives; the parent linked
    assert p.entity_id == by_proc.get(600).entity_id and p.parent_entity_id == t.get(1).entity_id  # type: ignore[union-attr]
    # exact: its events find it at its ns, not by the tick alone
    t.lifecycle([fork(70 * S + 5, 600, 70 * S + 3, 601, 70 * S + 4)])
    assert len([x for x in t if x.pid == 600]) == 1 and t.get(601).parent_entity_id == p.entity_id  # type: ignore[union-attr]
    assert t.get(600, 70 * S + 4) is None
    # merged again: nothing new
    assert t.merge({600: exact(proc.procs[600], 70 * S + 3)}) == 0


def test_an_exact_snapshot_upgrades_a_process_known_to_the_tick(proc: FakeProc) -> None:
    t = seeded(proc)
    bash = t.get(100)
    assert bash is not None
    assert t.merge({100: exact(proc.procs[100], 50 * TICK + 9)}) == 0
    now = t.get(100)
    assert now is not None and now.start_time_ns == 50 * TICK + 9 and now.entity_id == bash.entity_id
    # another process within the same tick (a pid reused): a process of its own
    assert t.merge({100: exact(proc.procs[100], 50 * TICK + 11)}) == 1
    assert len([x for x in t if x.pid == 100]) == 2


def test_a_zombie_in_a_snapshot_is_held_as_exited(proc: FakeProc) -> None:
    proc.add(1, TICK, 0, "/sbin/init", sid=1)
    proc.add(700, 60 * S, 1)
    t = table()
    assert t.merge({1: proc.procs[1], 700: proc.procs[700]._replace(exited=True)}, now_ns=61 * S) == 2
    z = t.get(700, 60 * S)
    assert z is not None and not t.is_alive(z) and t.exit_time_ns(z) == 61 * S and t.get(700) is None
    # its exit event, if it comes, says when
    t.lifecycle([exit_(60 * S + 5, 700, 60 * S, 1)])
    assert t.exit_time_ns(z) == 60 * S + 5
    t.tick(61 * S + t.grace_ns)
    assert t.get(700, 60 * S) is None


def test_a_parent_missing_from_a_snapshot_is_read_from_proc(proc: FakeProc) -> None:
    proc.add(1, TICK, 0, "/sbin/init", sid=1)
    proc.add(800, 80 * S, 1)
    t = table()
    assert t.merge({800: exact(proc.procs[800], 80 * S + 1)}) == 1
    p, init = t.get(800), t.get(1)
    assert init is not None and init.source == "procfs" and p is not None and p.parent_entity_id == init.entity_id


def test_an_event_before_an_exec_gets_the_image_before_it(proc: FakeProc) -> None:
    t = seeded(proc)
    t.lifecycle([fork(60 * S, 100, 50 * TICK, 700, 60 * S), exec_(61 * S, 700, 60 * S, 100, "/bin/new")])
    before, after = opened(61 * S - 1, 700, 60 * S, 100), opened(61 * S + 1, 700, 60 * S, 100)
    t.resolve([before, after])
    assert before.process.exe == "/bin/bash" and after.process.exe == "/bin/new"
    assert before.process.entity_id == after.process.entity_id


def test_unknown_process_from_its_event(proc: FakeProc) -> None:
    t = seeded(proc)
    ev = opened(70 * S, 900, 65 * S, 100)
    t.resolve([ev])
    assert ev.process is not None and ev.process.source == "event" and ev.process.comm == "x"
    assert ev.parent is not None and ev.parent.pid == 100
    assert t.stats().unknown == 1


def test_limit_evicts_exited_first(proc: FakeProc) -> None:
    t = table(limit=64)
    proc.add(1, TICK, 0, "/sbin/init")
    t.scan()
    for i in range(100):
        pid = 1000 + i
        t.lifecycle([fork(S + i, 1, TICK, pid, S + i)])
        if i < 50:
            t.lifecycle([exit_(2 * S + i, pid, S + i, 1)])
    t.tick(3 * S)
    # over by 37, and a sixteenth of the limit more: exited ones only, oldest exits first
    st = t.stats()
    assert (st.tracked, st.evicted_exited, st.evicted_live) == (60, 41, 0) == (len(t), 41, 0)
    assert sorted(p.pid for p in t if not t.is_alive(p)) == list(range(1041, 1050))
    for i in range(100, 130):
        t.lifecycle([fork(S + i, 1, TICK, 1000 + i, S + i)])
    t.tick(3 * S)
    st = t.stats()
    # then the live ones: leaves first (init, an ancestor, stays), least recently active first
    assert (st.tracked, st.evicted_exited, st.evicted_live) == (60, 50, 21)
    assert t.get(1) is not None and all(t.is_alive(p) for p in t)
    assert min(p.pid for p in t if p.pid != 1) == 1071


def test_loss_marks_who_lived_in_the_window(proc: FakeProc) -> None:
    t = seeded(proc)
    t.lifecycle([fork(60 * S, 100, 50 * TICK, 800, 60 * S), exit_(61 * S, 800, 60 * S, 100)])
    t.lifecycle([fork(70 * S, 100, 50 * TICK, 801, 70 * S)])
    t.lifecycle([fork(90 * S, 100, 50 * TICK, 802, 90 * S)])
    assert t.mark_loss(LossWindow(65 * S, 80 * S)) == 3  # init, bash, 801
    marked = {p.pid for p in t if p.context_incomplete is not None}
    assert marked == {1, 100, 801}
    assert t.get(801).context_incomplete == LossWindow(65 * S, 80 * S)  # type: ignore[union-attr]


def test_loss_monitor_makes_markers(proc: FakeProc) -> None:
    t = seeded(proc)
    counters = {"total": 0, "by": {}}

    def read() -> tuple[int, dict[str, int]]:
        return counters["total"], dict(counters["by"])  # type: ignore[arg-type]

    m = LossMonitor("ebpf", read, t, now_ns=S)
    assert m.check(S + 200_000_000) is None
    counters.update(total=7, by={"file_open": 7})
    marker = m.check(S + 400_000_000)
    assert isinstance(marker, EventLoss) and marker.kind == "loss"
    assert (marker.window_start_ns, marker.window_end_ns, marker.lost) == (S + 200_000_000, S + 400_000_000, 7)
    assert marker.by_kind == {"file_open": 7} and marker.processes_marked == 2
    assert m.check(S + 500_000_000) is None  # at most once a second after a loss


# --- the C cache and attach ----------------------------------------------------------------------------------


def record(cls: type, pid: int, start: int, ppid: int, ts: int) -> bytes:
    rec = ffi.new(f"struct {cls.record} *")  # type: ignore[attr-defined]
    rec.hdr.ts_ns = ts
    rec.hdr.type = int(cls.event_type)  # type: ignore[attr-defined]
    rec.task.pid = rec.task.tid = pid
    rec.task.ppid = ppid
    rec.task.start_time_ns = start
    rec.task.comm = b"cat"
    rec.hdr.size = RECORDS[int(cls.event_type)].fixed_size  # type: ignore[attr-defined]
    return bytes(ffi.buffer(rec))


def test_the_transcoder_finds_process_and_parent(proc: FakeProc) -> None:
    t = seeded(proc)
    dec = BatchDecoder()
    t.bind(dec.enable_context(t, ProcessTable.LEARN_FROM))
    t.lifecycle([fork(60 * S, 100, 50 * TICK, 200, 60 * S), exec_(61 * S, 200, 60 * S, 100, "/usr/bin/cat")])
    cat = t.get(200)
    before, after = record(FileOpen, 200, 60 * S, 100, 61 * S - 1), record(FileOpen, 200, 60 * S, 100, 62 * S)
    misses = t.misses
    evs = dec.transcode([before, after], lookups=True)
    assert evs[1].process is cat and evs[1].parent is t.get(100)
    assert evs[0].process is not cat and evs[0].process.exe == "/bin/bash"  # before the exec
    assert t.misses == misses  # found in C, nothing in Python
    # encoded as they are, process and parent included
    doc = msgspec.json.decode(to_json(evs[1]))
    assert doc["process"]["exe"] == "/usr/bin/cat" and doc["parent"]["entity_id"] == t.get(100).entity_id  # type: ignore[union-attr]
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(evs[1]), type=FileOpen) == evs[1]
    # an unknown process and a new parent go to Python
    (unknown,) = dec.transcode([record(FileOpen, 4321, 5 * S, 1, 70 * S)], lookups=True)
    assert unknown.process is not None and unknown.process.pid == 4321 and t.misses == misses + 1
    (moved,) = dec.transcode([record(FileOpen, 200, 60 * S, 1, 71 * S)], lookups=True)
    assert moved.parent is t.get(1) and t.get(200).ppid == 1  # type: ignore[union-attr]
    # learnt from, even when found
    (sid,) = dec.transcode([record(Setsid, 200, 60 * S, 1, 72 * S)], lookups=True)
    assert sid.process is not None and t.misses == misses + 3
    # a record of no process (start time 0) gets nothing and costs nothing
    (none,) = dec.transcode([record(FileOpen, 5, 0, 1, 73 * S)], lookups=True)
    assert none.process is None and t.misses == misses + 3


def test_cache_grows_and_forgets() -> None:
    dec = BatchDecoder()
    t = table()
    cache = dec.enable_context(t)
    infos = [msgspec.structs.replace(ProcessInfo_blank(), pid=i) for i in range(5000)]
    for i, info in enumerate(infos):
        cache.set(i + 1, S + i, info)
    assert cache.live == 5000 and cache.nbytes >= 5000 * ffi.sizeof("struct es_proc_slot")
    evs = dec.transcode([record(FileOpen, i + 1, S + i, 0, 2 * S) for i in range(0, 5000, 499)], lookups=True)
    assert [e.process.pid for e in evs] == list(range(0, 5000, 499))
    for i in range(5000):
        cache.delete(i + 1, S + i)
    assert cache.live == 0 and cache.last_active(1, S) == 0


def ProcessInfo_blank() -> ProcessInfo:
    from ebpfsensor.process._attach import blank_info

    return blank_info()


def test_attach_is_native_here() -> None:
    """CPython with msgspec's slot layout: the C path is in use (else health says why)."""
    a = attacher()
    assert a.native, a.why_not


# --- hashes -----------------------------------------------------------------------------------------------------


def _my_start_ticks() -> int:
    with open("/proc/self/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


def _results(h: Hasher) -> list[Any]:
    import time

    end = time.monotonic() + 10
    while time.monotonic() < end:
        out = h.results()
        if out:
            return out
        time.sleep(0.01)
    raise AssertionError("the hasher did not finish")


def test_hasher_hashes_the_executed_file_once() -> None:
    exe = os.path.realpath("/proc/self/exe")
    with open(exe, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest(), None
    h = Hasher(("sha256", "md5"))
    try:
        assert h.request(os.getpid(), _my_start_ticks(), sys.maxsize, "a") == (None, "pending")
        # the same file meanwhile: one read for both
        assert h.request(os.getpid(), _my_start_ticks(), sys.maxsize, "b") == (None, "pending")
        results = _results(h)
        assert [r.token for r in results] == ["a", "b"]
        digest = results[0].digest
        assert digest is not None and digest.sha256 == want[0] and len(digest.md5) == 32 and digest.sha1 == ""
        assert h.request(os.getpid(), _my_start_ticks(), sys.maxsize, "c") == (digest, "")
        assert (h.hashed, h.cached) == (1, 1)
    finally:
        h.close()


def test_hasher_refusals() -> None:
    me, ticks = os.getpid(), _my_start_ticks()
    h = Hasher(max_file_bytes=1024)
    try:
        assert h.request(me, ticks, sys.maxsize, 1) == (None, "too_large")
        assert h.request(me, ticks, sys.maxsize, 1, memfd=True) == (None, "memfd")
        assert h.request(me, ticks + 1, sys.maxsize, 1) == (None, "gone")
        assert h.request(2**22 + 7, ticks, sys.maxsize, 1) == (None, "gone")
        assert h.request(me, ticks, 0, 1) == (None, "replaced")  # changed after that exec time
        assert h.refused == {"too_large": 1, "memfd": 1, "gone": 2, "replaced": 1}
    finally:
        h.close()
    budget = Hasher(files_per_s=1)
    try:
        budget.request(me, ticks, sys.maxsize, 1)
        _results(budget)
        budget._cache.clear()
        assert budget.request(me, ticks, sys.maxsize, 2) == (None, "budget")
    finally:
        budget.close()


# --- configuration -----------------------------------------------------------------------------------------------


def test_config_fields() -> None:
    c = Config()
    assert c.process_context and c.hash_algorithms == ("sha256",) and c.process_table_entries == 131072
    with pytest.raises(ConfigError, match="hash_algorithms: sha512 not among"):
        Config(hash_algorithms=("sha512",))
    with pytest.raises(ConfigError, match="process_table_entries: 1 is outside"):
        Config(process_table_entries=1)
    assert Config(hash_algorithms=()).hash_algorithms == ()


def test_event_type_numbers_fit_the_learn_mask() -> None:
    assert max(int(t) for t in EventType) < 64
