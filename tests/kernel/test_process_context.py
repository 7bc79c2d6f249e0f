# SPDX-License-Identifier: Apache-2.0
"""Process context on events from real processes, checked field by field:
a process running before the sensor, a chain of shells, pid reuse, an exec
from a thread, daemons reparented to init and to a subreaper, executable
hashes, a forced ring overflow, the table's limit, delivery order, and the
process connector fallback."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kernel.conftest import _backlog, wait_for

import ebpfsensor
from ebpfsensor import ProcessExec, ProcessExit, ProcessFork
from ebpfsensor.events import FileOpen
from ebpfsensor.events._base import ProcessInfo
from ebpfsensor.host import features
from ebpfsensor.process import EventLoss, boot_id, entity_id

pytestmark = pytest.mark.bpf

KINDS = {"process_exec", "process_fork", "process_exit", "file_open"}
PYTHON = os.path.realpath(sys.executable)
# a file the tests' processes open: what their events are found by
WAIT_FOR_FILE = textwrap.dedent(
    """
    import os, sys, time
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    open(sys.argv[2]).close()
    time.sleep(60)
    """
)


def stat_of(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw.rsplit(")", 1)[1].split()


def proc_int(pid: int, name: str) -> int:
    return int(Path(f"/proc/{pid}/{name}").read_text())


def expected_entity(pid: int, start_ns: int) -> str:
    return entity_id(boot_id(), pid, start_ns)


def sha256(path: str | Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


def opened(sensor: ebpfsensor.Sensor, pid: int, path: Path | str, timeout: float = 10.0) -> FileOpen:
    (ev,) = wait_for(sensor, lambda e: type(e) is FileOpen and e.pid == pid and e.path == str(path), timeout)
    return ev  # type: ignore[no-any-return]


def settle(sensor: ebpfsensor.Sensor, until: Any, timeout: float = 10.0) -> Any:
    """Poll (keeping events for wait_for) until until() is true; its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = until()
        if value:
            return value
        wait_for_nothing(sensor)
    pytest.fail(f"timed out after {timeout}s")


def wait_for_nothing(sensor: ebpfsensor.Sensor) -> None:
    """One poll, its events kept for wait_for."""
    backlog = _backlog.setdefault(sensor, collections.deque(maxlen=100_000))
    backlog.extend(sensor.poll(0.05))


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """A process started before the module's sensor, waiting to open a file."""
    d = tmp_path_factory.mktemp("early")
    go, target = d / "go", d / "target"
    target.write_text("x")
    child = subprocess.Popen([PYTHON, "-c", WAIT_FOR_FILE, str(go), str(target)], cwd=d)
    time.sleep(0.2)
    yield child, go, target
    child.kill()
    child.wait()


@pytest.fixture(scope="module")
def sensor(early: Any) -> Iterator[ebpfsensor.Sensor]:
    """Started after `early`; the hash size budget is 8 MiB. The tests'
    activity is read-only opens: every open is reported."""
    with ebpfsensor.Sensor(
        kinds=KINDS, log_file=None, hash_max_file_bytes=8 << 20, exclude_self=False, read_opens="all"
    ) as s:
        yield s


def test_a_process_started_before_the_sensor_has_full_context(sensor: ebpfsensor.Sensor, early: Any) -> None:
    child, go, target = early
    go.touch()
    ev = opened(sensor, child.pid, target)
    p = ev.process
    assert isinstance(p, ProcessInfo)
    st = stat_of(child.pid)
    assert (p.pid, p.start_time_ns, p.ppid) == (child.pid, ev.start_time_ns, os.getpid())
    assert p.entity_id == expected_entity(child.pid, ev.start_time_ns)
    assert p.exe == PYTHON and p.argv == [PYTHON, "-c", WAIT_FOR_FILE, str(go), str(target)]
    assert p.cwd == os.path.realpath(go.parent) and p.comm == Path(f"/proc/{child.pid}/comm").read_text().strip()
    assert (p.uid, p.euid, p.gid, p.egid) == (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    assert (p.loginuid, p.sessionid) == (proc_int(child.pid, "loginuid"), proc_int(child.pid, "sessionid"))
    assert p.sid == os.getsid(child.pid) == int(st[3])
    assert (p.tty == "") == (int(st[4]) == 0)
    assert (p.cgroup_id, p.container_id) == (ev.cgroup_id, ev.container_id)
    # where eBPF runs the table is seeded by the task iterator, where the kernel has one
    assert p.source == ("task_iter" if features.task_iter().works else "procfs") and p.context_incomplete is None
    # its parent, this test process, also ran before the sensor
    parent = ev.parent
    assert parent is not None and parent.pid == os.getpid() and parent.exe == PYTHON
    assert parent.entity_id == p.parent_entity_id == expected_entity(os.getpid(), parent.start_time_ns)
    table = sensor.processes
    assert table.get(child.pid) == p and table.find(p.entity_id) == p and table.parent(p) == parent
    # the hash comes once the worker has read the file (the table's state is what later events get)
    info = settle(sensor, lambda: (i := table.get(child.pid)) is not None and i.exe_hash is not None and i)
    assert info.exe_hash.sha256 == sha256(PYTHON) and info.exe_hash_reason == ""


def test_a_chain_of_shells_resolves_to_pid_1(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_text("x")
    inner = f"cat {target}; exit 0"
    outer = f"sh -c '{inner}'; exit 0"
    sh = subprocess.Popen(["sh", "-c", outer])
    sh.wait()
    (ev,) = wait_for(sensor, lambda e: type(e) is FileOpen and e.path == str(target) and e.comm == "cat", 10)
    cat = ev.process
    assert cat.exe == os.path.realpath("/usr/bin/cat") and cat.argv == ["cat", str(target)] and cat.source == "exec"
    assert ev.parent.argv == ["sh", "-c", inner] and ev.parent.exe == os.path.realpath("/bin/sh")
    chain = sensor.processes.ancestors(cat)
    assert chain[0] == ev.parent
    assert chain[1].pid == sh.pid and chain[1].argv == ["sh", "-c", outer]
    assert chain[2].pid == os.getpid()
    assert chain[-1].pid == 1
    for child, parent in zip([cat, *chain], chain, strict=False):
        assert child.parent_entity_id == parent.entity_id and child.ppid == parent.pid
    assert len(sensor.processes.ancestors(cat, max_depth=2)) == 2
    assert ev.parent in sensor.processes.children(chain[1])


def _spawn_at(pid: int, argv: list[str]) -> subprocess.Popen[bytes] | None:
    """A child with the given pid (root: ns_last_pid), or None when another
    process took it first."""
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    child = subprocess.Popen(argv)
    if child.pid == pid:
        return child
    child.wait()
    return None


def test_pid_reuse_never_mixes_two_processes(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    first = subprocess.Popen(["cat", str(a)])
    first.wait()
    second = None
    for _ in range(20):
        second = _spawn_at(first.pid, ["head", "-c1", str(b)])
        if second is not None:
            break
    assert second is not None, "could not get the same pid again (20 tries)"
    second.wait()
    ea, eb = opened(sensor, first.pid, a), opened(sensor, first.pid, b)
    assert ea.start_time_ns != eb.start_time_ns
    pa, pb = ea.process, eb.process
    assert (pa.exe, pa.argv) == (os.path.realpath("/usr/bin/cat"), ["cat", str(a)])
    assert (pb.exe, pb.argv) == (os.path.realpath("/usr/bin/head"), ["head", "-c1", str(b)])
    assert pa.entity_id != pb.entity_id and pa.pid == pb.pid == first.pid
    # both are still in the table (exited, in their grace period), each under its own start
    assert sensor.processes.get(first.pid, ea.start_time_ns) == pa
    assert sensor.processes.get(first.pid, eb.start_time_ns) == pb
    assert sensor.processes.find(pa.entity_id) == pa and sensor.processes.find(pb.entity_id) == pb


EXEC_FROM_THREAD = textwrap.dedent(
    """
    import os, sys, threading
    open(sys.argv[1]).close()
    t = threading.Thread(target=lambda: os.execv("/bin/cat", ["cat", sys.argv[2]]))
    t.start()
    t.join()
    """
)


def test_exec_from_a_thread_keeps_the_process(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.write_text("1")
    after.write_text("2")
    p = subprocess.Popen([PYTHON, "-c", EXEC_FROM_THREAD, str(before), str(after)])
    p.wait()
    (ex,) = wait_for(sensor, lambda e: type(e) is ProcessExec and e.pid == p.pid and e.exe.endswith("/cat"), 10)
    assert ex.old_tid != p.pid
    e1, e2 = opened(sensor, p.pid, before), opened(sensor, p.pid, after)
    assert e1.start_time_ns == e2.start_time_ns == ex.start_time_ns
    # one process throughout: one entity id; the image as it was at each event
    assert e1.process.entity_id == e2.process.entity_id == ex.process.entity_id
    assert e1.process.exe == PYTHON and e2.process.exe == ex.process.exe == os.path.realpath("/usr/bin/cat")
    assert ex.process.argv == ["cat", str(after)]
    assert e1.parent.pid == e2.parent.pid == os.getpid()


DAEMON = textwrap.dedent(
    """
    import ctypes, os, sys, time
    go, target, out, subreaper = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    if subreaper:
        assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    mid = os.fork()
    if mid == 0:
        os.setsid()
        me = os.getpid()
        if os.fork() == 0:
            while os.getppid() == me:
                time.sleep(0.01)
            while not os.path.exists(go):
                time.sleep(0.01)
            with open(out, "w") as f:
                f.write(str(os.getppid()))
            open(target).close()
            os._exit(0)
        os._exit(0)
    os.waitpid(mid, 0)
    if subreaper:
        os.wait()  # the grandchild, reparented to us
    """
)


@pytest.mark.parametrize("subreaper", [False, True], ids=["init", "subreaper"])
def test_a_daemon_is_reparented(sensor: ebpfsensor.Sensor, tmp_path: Path, subreaper: bool) -> None:
    go, target, out = tmp_path / "go", tmp_path / "t", tmp_path / "ppid"
    target.write_text("x")
    top = subprocess.Popen([PYTHON, "-c", DAEMON, str(go), str(target), str(out), str(int(subreaper))])
    (top_exec,) = wait_for(sensor, lambda e: type(e) is ProcessExec and e.pid == top.pid, 10)
    (mid_fork,) = wait_for(sensor, lambda e: type(e) is ProcessFork and e.pid == top.pid, 10)
    mid = mid_fork.child_pid
    (gc_fork,) = wait_for(sensor, lambda e: type(e) is ProcessFork and e.pid == mid, 10)
    grandchild = gc_fork.child_pid
    wait_for(sensor, lambda e: type(e) is ProcessExit and e.pid == mid, 10)
    go.touch()
    ev = opened(sensor, grandchild, target)
    top.wait()
    new_parent = int(out.read_text())
    # not the intermediate that exited: init, or whichever subreaper the kernel chose
    assert new_parent != mid
    if subreaper:
        assert new_parent == top.pid and ev.parent.entity_id == top_exec.process.entity_id
    assert ev.ppid == new_parent and ev.parent is not None and ev.parent.pid == new_parent
    table = sensor.processes
    parent_info = table.find(ev.parent.entity_id)
    assert parent_info is not None and parent_info.pid == new_parent
    info = table.get(grandchild, ev.start_time_ns)
    assert info is not None and (info.ppid, info.parent_entity_id) == (new_parent, parent_info.entity_id)
    assert gc_fork.process.pid == mid and table.ancestors(info)[0] == parent_info
    assert table.stats().reparented >= 1


def _hashed(sensor: ebpfsensor.Sensor, pid: int, exe: Path) -> ProcessInfo:
    """The process once its exec is in the table and its hash decided."""

    def done() -> ProcessInfo | None:
        info = sensor.processes.get(pid)
        if info is None or info.exe != str(exe) or info.exe_hash_reason == "pending":
            return None
        return info

    return settle(sensor, done)  # type: ignore[no-any-return]


def test_hash_is_sha256sum_and_follows_a_rewrite(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    exe = tmp_path / "sleeper"
    shutil.copy("/bin/sleep", exe)
    first = subprocess.Popen([exe, "30"])
    try:
        info = _hashed(sensor, first.pid, exe)
        want = sha256(exe)
        assert info.exe_hash is not None and info.exe_hash.sha256 == want and info.exe_hash_reason == ""
        assert (info.exe_hash.sha1, info.exe_hash.md5) == ("", "")  # not asked for
    finally:
        first.kill()
        first.wait()
    # later events of the process carry it
    (ex,) = wait_for(sensor, lambda e: type(e) is ProcessExit and e.pid == first.pid, 10)
    assert ex.process.exe_hash.sha256 == want
    # rewritten in place: the same inode, another content, another hash
    ino = os.stat(exe).st_ino
    with open(exe, "r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(b"\0" * 64)
    assert os.stat(exe).st_ino == ino
    second = subprocess.Popen([exe, "30"])
    try:
        info2 = _hashed(sensor, second.pid, exe)
        want2 = sha256(exe)
        assert want2 != want and info2.exe_hash is not None and info2.exe_hash.sha256 == want2
    finally:
        second.kill()
        second.wait()
    # now cached by the file's identity: on the exec event itself (while the
    # process lives, /proc/PID/exe tells the identity)
    third = subprocess.Popen([exe, "30"])
    try:
        (ev,) = wait_for(sensor, lambda e: type(e) is ProcessExec and e.pid == third.pid, 10)
        assert ev.process.exe_hash is not None and ev.process.exe_hash.sha256 == want2
    finally:
        third.kill()
        third.wait()


MEMFD_EXEC = textwrap.dedent(
    """
    import os
    fd = os.memfd_create("sleeper", 0)
    os.write(fd, open("/bin/sleep", "rb").read())
    # by its /proc path: fexecve (execveat with AT_EMPTY_PATH) fails with
    # ENOENT on a memfd under Debian 11's 5.10
    os.execve(f"/proc/self/fd/{fd}", ["sleeper", "30"], {})
    """
)


def test_hash_refused_too_large_and_memfd(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    big = tmp_path / "big"
    shutil.copy("/bin/sleep", big)
    os.truncate(big, 9 << 20)  # over the module sensor's 8 MiB; the tail is a hole the loader ignores
    p = subprocess.Popen([big, "30"])
    try:
        info = _hashed(sensor, p.pid, big)
        assert info.exe_hash is None and info.exe_hash_reason == "too_large"
    finally:
        p.kill()
        p.wait()
    m = subprocess.Popen([PYTHON, "-c", MEMFD_EXEC])
    try:
        (ev,) = wait_for(sensor, lambda e: type(e) is ProcessExec and e.pid == m.pid and e.exe_memfd, 10)
        assert ev.process.exe.startswith("/memfd:sleeper")
        assert ev.process.exe_hash is None and ev.process.exe_hash_reason == "memfd"
    finally:
        m.kill()
        m.wait()
    refused = sensor.stats().processes.hashes.refused  # type: ignore[union-attr]
    assert refused["too_large"] >= 1 and refused["memfd"] >= 1


def test_fork_and_exec_come_before_activity_and_exit_after(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_text("x")
    script = f"for i in 1 2 3 4 5 6 7 8 9 10; do cat {target} {target}; done"
    sh = subprocess.Popen(["sh", "-c", script])
    sh.wait()
    seen: list[Any] = []
    end = time.monotonic() + 10
    while time.monotonic() < end and sum(1 for e in seen if type(e) is ProcessExit and e.ppid == sh.pid) < 10:
        seen += sensor.poll(0.05)
    cats = {e.child_pid for e in seen if type(e) is ProcessFork and e.pid == sh.pid}
    assert len(cats) == 10
    for pid in cats:
        mine = [i for i, e in enumerate(seen) if getattr(e, "pid", None) == pid and type(e) is not ProcessFork]
        fork_at = next(i for i, e in enumerate(seen) if type(e) is ProcessFork and e.child_pid == pid)
        exec_at = next(i for i in mine if type(seen[i]) is ProcessExec)
        exit_at = next(i for i in mine if type(seen[i]) is ProcessExit)
        opens = [i for i in mine if type(seen[i]) is FileOpen and seen[i].path == str(target)]
        assert len(opens) == 2 and fork_at < min(mine) and exec_at < min(opens) and exit_at == max(mine)
        assert all(seen[i].process.exe == os.path.realpath("/usr/bin/cat") for i in opens)


def _quiet(sensor: ebpfsensor.Sensor, seconds: float = 1.2) -> None:
    """Poll for longer than the loss monitor's back-off: its last check is
    now recent, and the losses before it are reported."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        wait_for_nothing(sensor)


def test_a_ring_overflow_marks_the_processes_alive_then(tmp_path: Path) -> None:
    burst = "import os\nfor _ in range(20000):\n    os.close(os.open('/dev/null', os.O_RDONLY))\n"
    kinds = {*KINDS, "loss"}
    with ebpfsensor.Sensor(
        kinds=kinds, log_file=None, activity_ring_bytes=4096, wakeup_bytes=4096, read_opens="all"
    ) as s:
        _quiet(s)
        dead = subprocess.Popen(["true"])
        dead.wait()
        (dead_exit,) = wait_for(s, lambda e: type(e) is ProcessExit and e.pid == dead.pid, 10)
        alive = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
        try:
            (alive_exec,) = wait_for(s, lambda e: type(e) is ProcessExec and e.pid == alive.pid, 10)
            _quiet(s)
            _backlog[s].clear()
            # no one drains while the burst runs: the tiny ring drops
            subprocess.run([PYTHON, "-c", burst], check=True)
            (marker,) = wait_for(s, lambda e: type(e) is EventLoss, 10)
            assert marker.kind == "loss" and marker.source == "ebpf"
            assert marker.lost >= marker.by_kind.get("file_open", 0) > 0
            assert dead_exit.ts_ns < marker.window_start_ns < marker.window_end_ns
            assert marker.processes_marked >= 3
            table = s.processes

            def marked(info: ProcessInfo | None) -> bool:
                w = info.context_incomplete if info is not None else None
                return w is not None and w.start_ns <= marker.window_start_ns and w.end_ns == marker.window_end_ns

            info = table.get(alive.pid)
            assert marked(info)
            # its child (the sleep), and this process, alive in the window too
            assert info is not None and [marked(k) for k in table.children(info)] == [True]
            assert marked(table.get(os.getpid()))
            # exited before the window: not marked for it (a ring this small
            # may have dropped records of the test's own activity before)
            gone = table.find(dead_exit.process.entity_id)
            assert gone is not None
            assert gone.context_incomplete is None or gone.context_incomplete.end_ns <= marker.window_start_ns
            # the event keeps the state it was delivered with
            assert alive_exec.process.context_incomplete != info.context_incomplete
            # started after it: not marked for it, and its parent's mark shows
            later = subprocess.Popen(["true"])
            later.wait()
            (ev,) = wait_for(s, lambda e: type(e) is ProcessExec and e.pid == later.pid, 10)
            w = ev.process.context_incomplete
            assert (w is None or w.start_ns >= marker.window_end_ns) and ev.parent.context_incomplete is not None
        finally:
            alive.kill()
            alive.wait()
        assert s.stats().processes.loss_markers >= 1  # type: ignore[union-attr]


def test_many_short_lived_processes_stay_within_the_limit() -> None:
    limit = 64
    with ebpfsensor.Sensor(kinds=KINDS, log_file=None, process_table_entries=limit, read_opens="all") as s:
        start = len(s.processes)
        n = 3 * limit + start
        # a shell's loop: a process each, started and reaped as fast as the
        # machine can, while the sensor is polled beside it
        shell = subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done"])
        execs: set[int] = set()
        exits: set[int] = set()

        def take(events: list[Any]) -> None:
            nonlocal execs, exits
            execs |= {e.pid for e in events if type(e) is ProcessExec and e.ppid == shell.pid}
            exits |= {e.pid for e in events if type(e) is ProcessExit}

        while shell.poll() is None:
            take(s.poll(0.01))
        assert shell.returncode == 0
        end = time.monotonic() + 30
        while not (len(execs) == n and execs <= exits) and time.monotonic() < end:
            take(s.poll(0.05))
        assert len(execs) == n and execs <= exits
        s.poll(0)  # the table keeps its limit between polls
        st = s.stats().processes
        assert st is not None and len(s.processes) <= limit and st.tracked == len(s.processes)
        assert st.evicted_exited + st.evicted_live + st.expired >= n + start - limit
        # the processes that make up the ancestry of the live ones stay
        me = s.processes.get(os.getpid())
        assert me is not None and s.processes.ancestors(me)[-1].pid == 1


def test_health_and_stats(sensor: ebpfsensor.Sensor) -> None:
    h = sensor.health().process_context
    assert h is not None and h.live and h.source == "ebpf" and h.native and h.unavailable == []
    st = sensor.stats().processes
    seeded = "seeded by task iterator (" if features.task_iter().works else "seeded by /proc scan ("
    assert st is not None and h.seeded == st.seeded and st.seeded.startswith(seeded)
    assert st is not None and st.live > 10 and st.limit == 131072 and st.cache_bytes > 0
    assert st.hashes is not None and st.hashes.hashed >= 1


@pytest.mark.root
def test_the_process_connector_gives_the_same_context(tmp_path: Path) -> None:
    with ebpfsensor.Sensor(provider="proc_connector", log_file=None) as s:
        health = s.health().process_context
        assert health is not None and health.source == "proc_connector" and not health.native
        assert any("clock tick" in gap for gap in health.unavailable)
        # no BPF program is loaded for the fallback: /proc seeds it, and says why
        assert health.seeded.startswith("seeded by /proc scan (") and "eBPF does not run" in health.seeded
        sh = subprocess.Popen(["sh", "-c", "sleep 1; exit 0"])
        (ev,) = wait_for(s, lambda e: type(e) is ProcessExec and e.pid == sh.pid, 10)
        assert ev.process is not None and ev.process.pid == sh.pid and ev.process.argv == ev.argv
        assert ev.process.entity_id == expected_entity(sh.pid, ev.start_time_ns)
        assert ev.parent is not None and ev.parent.pid == os.getpid() and ev.parent.exe == PYTHON
        (fork,) = wait_for(s, lambda e: type(e) is ProcessFork and e.pid == sh.pid, 10)
        sleeper = s.processes.get(fork.child_pid)
        assert sleeper is not None and sleeper.parent_entity_id == ev.process.entity_id
        sh.wait()
        (ex,) = wait_for(s, lambda e: type(e) is ProcessExit and e.pid == sh.pid, 10)
        assert ex.process is not None and ex.process.entity_id == ev.process.entity_id
        assert [a.pid for a in s.processes.ancestors(ev.process)][:1] == [os.getpid()]
