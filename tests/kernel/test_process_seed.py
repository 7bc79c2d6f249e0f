# SPDX-License-Identifier: Apache-2.0
"""Seeding the process table at start, from real processes: the BPF task
iterator's entries checked field by field against /proc and os.stat; the
/proc scan (the iterator switched off) giving the same entity ids; the
iterator's start times equal to the lifecycle records'; processes that end
around the snapshot; the iterator's program released after seeding and on
failure; and a process lying about itself (comm, argv[0] rewritten in
memory; its main thread gone, which hides its executable from /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_kernel
from tests.kernel.conftest import our_programs, wait_for

import ebpfsensor
from ebpfsensor import ProcessExec, ProcessExit
from ebpfsensor.events._base import ProcessInfo
from ebpfsensor.host import features
from ebpfsensor.host.containers import find_cgroup2_root, parse_container_id
from ebpfsensor.process import _procfs, _seed, _taskiter, boot_id, entity_id
from ebpfsensor.process._table import ProcessTable
from ebpfsensor.sources.ebpf.objects import bpf_arch

pytestmark = pytest.mark.bpf

KINDS = {"process_exec", "process_fork", "process_exit"}
PYTHON = os.path.realpath(sys.executable)
SLEEP = os.path.realpath("/bin/sleep")
NOBODY = 65534
ITER_PROGRAM = "name handle_task_ite"  # the kernel keeps 15 characters of a name


def needs_task_iter() -> None:
    require_kernel("5.8", "the BPF task iterator", features.task_iter().works)


def argv_from_iterator() -> bool:
    """Whether the kernel has bpf_copy_from_user_task (5.18): then argv must
    come from the iterator (its sleepable variant must load)."""
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    return release >= (5, 18)


def records_of(pid: int) -> list[dict[str, Any]]:
    """The iterator's records of a process, as it wrote them (a fresh run)."""
    got = _taskiter.read_records()
    if argv_from_iterator():
        assert got.variant == "iter_s", got.failures
    out, off = [], 0
    while off < len(got.data):
        values = _taskiter.RECORD.unpack_from(got.data, off)
        r = {name: values[i] for name, i in _taskiter._AT.items()}
        if r["pid"] == pid:
            out.append(r)
        off += r["size"]
    return out


def started(**kw: Any) -> ebpfsensor.Sensor:
    return ebpfsensor.Sensor(kinds=KINDS, log_file=None, hash_algorithms=(), **kw).start()


def entry(table: ProcessTable, pid: int) -> ProcessInfo:
    """The one process the table holds under pid, live or exited."""
    found = [p for p in table if p.pid == pid]
    assert len(found) == 1, found
    return found[0]


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 on: field n is [n - 3]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def wait_exec(pid: int, exe: str, timeout: float = 10.0) -> None:
    """Until pid has exec'd exe, its arguments in place (an exec sets the
    executable before the argument area)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if os.readlink(f"/proc/{pid}/exe") == exe and Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            pass
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not exec {exe}")


def wait_zombie(pid: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if stat_fields(pid)[0] == "Z":
            return
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not become a zombie")


def check_against_proc(p: ProcessInfo, pid: int) -> None:
    """Every field of a seeded entry, against /proc and os.stat."""
    st = stat_fields(pid)
    status = {
        k: v.split()
        for k, _, v in (line.partition(":") for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    }
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    cgroup = next(line[3:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::"))
    root = find_cgroup2_root()
    assert root is not None
    assert p.pid == pid and p.ppid == int(st[1]) and p.sid == int(st[3]) == os.getsid(pid)
    assert p.start_time_ns // _procfs.NS_PER_TICK == int(st[19])
    assert p.entity_id == entity_id(boot_id(), pid, p.start_time_ns)
    assert p.exe == os.readlink(f"/proc/{pid}/exe")
    exe, real = os.stat(p.exe), os.stat(f"/proc/{pid}/exe")
    assert (exe.st_dev, exe.st_ino) == (real.st_dev, real.st_ino)
    assert p.argv == [os.fsdecode(a) for a in cmdline.removesuffix(b"\0").split(b"\0")]
    assert p.cwd == os.readlink(f"/proc/{pid}/cwd")
    assert p.comm == Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
    assert (p.uid, p.euid) == (int(status["Uid"][0]), int(status["Uid"][1]))
    assert (p.gid, p.egid) == (int(status["Gid"][0]), int(status["Gid"][1]))
    assert p.loginuid == int(Path(f"/proc/{pid}/loginuid").read_text())
    assert p.sessionid == int(Path(f"/proc/{pid}/sessionid").read_text())
    assert p.tty == _procfs.tty_name(int(st[4]))
    assert p.cgroup_id == os.stat(os.path.join(root, cgroup.lstrip("/"))).st_ino
    assert p.container_id == parse_container_id(cgroup)


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """sleep, as nobody, in a session of its own and a directory of ours,
    started before any sensor of the module."""
    d = tmp_path_factory.mktemp("early dir")
    d.chmod(0o755)
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", "sleep", "3599", "1"]
    child = subprocess.Popen(argv, cwd=d, start_new_session=True)
    wait_exec(child.pid, SLEEP)
    yield child
    child.kill()
    child.wait()


def test_a_process_started_before_the_sensor_seeded_by_the_task_iterator(early: subprocess.Popen[bytes]) -> None:
    needs_task_iter()
    with started() as s:
        st = s.stats().processes
        assert st is not None and st.seeded.startswith("seeded by task iterator (")
        # argv from each process's memory, where the kernel can copy it
        assert ("argv from /proc" in st.seeded) != argv_from_iterator(), st.seeded
        assert s.health().process_context.seeded == st.seeded  # type: ignore[union-attr]
        p = s.processes.get(early.pid)
        assert p is not None and p.source == "task_iter"
        check_against_proc(p, early.pid)
        assert (p.uid, p.euid, p.gid, p.egid, p.sid) == (NOBODY, NOBODY, NOBODY, NOBODY, early.pid)
        assert p.exe == SLEEP and p.argv == ["sleep", "3599", "1"] and p.comm == "sleep"
        # its parent, this process, seeded too
        parent = s.processes.parent(p)
        assert parent is not None and parent.pid == os.getpid() and parent.exe == PYTHON
        assert p.parent_entity_id == parent.entity_id


def test_the_proc_scan_seeds_the_same_process_with_the_same_entity_id(
    early: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_task_iter()
    with started() as s:
        by_iter = s.processes.get(early.pid)
        me_iter = s.processes.get(os.getpid())
    monkeypatch.setattr(_seed, "USE_TASK_ITER", False)
    with started() as s:
        seeded = s.stats().processes.seeded  # type: ignore[union-attr]
        assert seeded.startswith("seeded by /proc scan (") and "USE_TASK_ITER" in seeded
        by_proc = s.processes.get(early.pid)
        me_proc = s.processes.get(os.getpid())
        assert by_proc is not None and by_proc.source == "procfs"
        check_against_proc(by_proc, early.pid)
    assert by_iter is not None and me_iter is not None and me_proc is not None
    assert by_proc.entity_id == by_iter.entity_id and me_proc.entity_id == me_iter.entity_id
    # the same fields; the start: the iterator's in ns, the scan's to the tick
    assert by_iter.start_time_ns // _procfs.NS_PER_TICK * _procfs.NS_PER_TICK == by_proc.start_time_ns
    same = {"start_time_ns": 0, "source": ""}
    assert by_iter.__struct_fields__ == by_proc.__struct_fields__
    for name in by_iter.__struct_fields__:
        if name not in same:
            assert getattr(by_iter, name) == getattr(by_proc, name), name


def test_the_iterators_start_times_are_the_lifecycle_records_keys(tmp_path: Path) -> None:
    needs_task_iter()
    with started() as s:
        child = subprocess.Popen([SLEEP, "30"], cwd=tmp_path)
        try:
            (ev,) = wait_for(s, lambda e: type(e) is ProcessExec and e.pid == child.pid, 10)
            snaps, _ = _taskiter.snapshots(_taskiter.read_records().data)
            snap = snaps[child.pid]
            assert snap.start_ns == ev.start_time_ns and snap.source == "task_iter"
            assert (
                (snap.exe, snap.argv, snap.cwd)
                == (ev.exe, ev.argv, ev.cwd)
                == (SLEEP, [SLEEP, "30"], os.path.realpath(tmp_path))
            )
            assert (snap.cgroup_id, snap.uid, snap.euid, snap.loginuid) == (ev.cgroup_id, ev.uid, ev.euid, ev.loginuid)
            assert snaps[os.getpid()].start_ns == ev.parent.start_time_ns  # type: ignore[union-attr]
            # what a restarted sensor seeds is what the events named
            assert ev.process is not None and ev.process.entity_id == entity_id(boot_id(), child.pid, snap.start_ns)
        finally:
            child.kill()
            child.wait()


def _when(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, action: Callable[[], None], after: bool) -> None:
    """Run action when target.name is called (before it, or after it returns)."""
    real = getattr(target, name)

    def hooked(*args: Any, **kw: Any) -> Any:
        if not after:
            action()
        out = real(*args, **kw)
        if after:
            action()
        return out

    monkeypatch.setattr(target, name, hooked)


@pytest.mark.parametrize("seeding", ["task_iter", "procfs"])
@pytest.mark.parametrize("when", ["reaped before the snapshot", "a zombie at the snapshot", "reaped after it"])
def test_a_process_ending_around_the_snapshot_is_not_left_live(
    seeding: str, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if seeding == "task_iter":
        needs_task_iter()
    else:
        monkeypatch.setattr(_seed, "USE_TASK_ITER", False)
    child = subprocess.Popen([SLEEP, "3600"])
    wait_exec(child.pid, SLEEP)
    start_ticks = int(stat_fields(child.pid)[19])

    def end() -> None:
        child.send_signal(signal.SIGKILL)
        if when == "a zombie at the snapshot":
            wait_zombie(child.pid)
        else:
            child.wait()

    # the rings are attached when the seeding starts; the snapshot comes after the reason is decided
    if when == "reaped after it":
        _when(monkeypatch, ProcessTable, "merge", end, after=True)
    else:
        _when(monkeypatch, _seed, "_why_not", end, after=False)
    try:
        with started() as s:
            assert s.stats().processes.seeded.startswith(  # type: ignore[union-attr]
                "seeded by task iterator (" if seeding == "task_iter" else "seeded by /proc scan ("
            )
            if when == "a zombie at the snapshot":
                # held, and exited from the seeding on, before any event is read
                z = entry(s.processes, child.pid)
                assert z.source == seeding and not s.processes.is_alive(z) and s.processes.get(child.pid) is None
            (ex,) = wait_for(s, lambda e: type(e) is ProcessExit and e.pid == child.pid, 10)
            gone = entry(s.processes, child.pid)
            assert gone.start_time_ns // _procfs.NS_PER_TICK == start_ticks
            assert not s.processes.is_alive(gone) and s.processes.exit_time_ns(gone) == ex.ts_ns
            assert s.processes.get(child.pid) is None
    finally:
        child.kill()
        child.wait()


def test_the_iterator_is_released_after_seeding() -> None:
    needs_task_iter()
    with started() as s:
        assert s.stats().processes.seeded.startswith("seeded by task iterator (")  # type: ignore[union-attr]
        # the sensor's programs run; the iterator's program, link and fd are gone
        assert our_programs()
        assert [line for line in our_programs() if ITER_PROGRAM in line] == []
        assert not [fd for fd in os.listdir("/proc/self/fd") if _fd_is(fd, "anon_inode:bpf_iter")]
    assert [line for line in our_programs() if ITER_PROGRAM in line] == []


def _fd_is(fd: str, target: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == target
    except OSError:
        return False


def test_a_failing_iterator_falls_back_to_proc_and_releases_everything(
    early: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_task_iter()
    seen: list[str] = []

    def fail(fd: int, n: int) -> bytes:
        # while the iterator is open: its program is loaded then
        seen.extend(line for line in our_programs() if ITER_PROGRAM in line)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_taskiter, "os", types.SimpleNamespace(read=fail, close=os.close))
    with started() as s:
        seeded = s.stats().processes.seeded  # type: ignore[union-attr]
        assert (
            seeded.startswith("seeded by /proc scan (") and "the task iterator failed: read iter.bpf.o:task" in seeded
        )
        assert len(seen) == 1
        assert [line for line in our_programs() if ITER_PROGRAM in line] == []
        assert not [fd for fd in os.listdir("/proc/self/fd") if _fd_is(fd, "anon_inode:bpf_iter")]
        p = s.processes.get(early.pid)
        assert p is not None and p.source == "procfs"
        check_against_proc(p, early.pid)


# --- a process lying about itself ---------------------------------------------------------------------------

# rewrites its comm and its argv in its own memory (argv[0] the name of
# another program), then says so and sleeps
LIAR = textwrap.dedent(
    """
    import sys, time
    with open("/proc/self/comm", "w") as f:
        f.write("sshd")
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])
    fake = b"/usr/sbin/sshd\\0-D\\0"
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        mem.write(fake.ljust(end - start, b"\\0"))
    print("ready", flush=True)
    time.sleep(3600)
    """
)

# setproctitle(): a title longer than the argument area, over its last NUL
# and into the environment, as daemons rename themselves
TITLE = textwrap.dedent(
    """
    import time
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])
    title = b"worker: " + b"t" * (end - start + 40) + b"\\0"
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        mem.write(title)
    print("ready", flush=True)
    time.sleep(3600)
    """
)


def test_a_setproctitle_title_reads_as_proc_gives_it() -> None:
    needs_task_iter()
    child = _as_nobody(TITLE)
    try:
        title = Path(f"/proc/{child.pid}/cmdline").read_bytes()
        assert title.startswith(b"worker: ttt") and title.count(b"\0") == 1
        with started() as s:
            p = s.processes.get(child.pid)
            assert p is not None and p.source == "task_iter" and p.argv == [title[:-1].decode()]
            check_against_proc(p, child.pid)
        # read by the iterator itself, not left to /proc: where bpf_copy_from_user_task exists
        if argv_from_iterator():
            flags = records_of(child.pid)
            assert flags[0]["argv_read"] == flags[0]["argv_title"] == 1
    finally:
        _end(child)


def test_a_long_argv_is_cut_as_the_proc_scan_cuts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_task_iter()
    # 10 kB of arguments: more than the 8191 bytes either seeding keeps
    child = subprocess.Popen([SLEEP, "3600", *["0"] * 5000])
    try:
        wait_exec(child.pid, SLEEP)
        cut = Path(f"/proc/{child.pid}/cmdline").read_bytes()[:8191]
        expected = [os.fsdecode(a) for a in cut.removesuffix(b"\0").split(b"\0")]
        with started() as s:
            by_iter = s.processes.get(child.pid)
        if argv_from_iterator():
            (flags,) = records_of(child.pid)
            assert flags["argv_truncated"] == flags["argv_read"] == 1 and flags["argv_title"] == 0
        monkeypatch.setattr(_seed, "USE_TASK_ITER", False)
        with started() as s:
            by_proc = s.processes.get(child.pid)
        assert by_iter is not None and by_proc is not None and by_iter.source == "task_iter"
        assert by_iter.argv == by_proc.argv == expected and 4000 < len(expected) < 5002
    finally:
        child.kill()
        child.wait()


# the main thread leaves (exit(2), not exit_group): the process lives on in
# another thread, and /proc/PID/exe, which asks the leader, has nothing
LEADERLESS = textwrap.dedent(
    """
    import ctypes, sys, threading, time
    threading.Thread(target=time.sleep, args=(3600,)).start()
    print("ready", flush=True)
    ctypes.CDLL(None).syscall(int(sys.argv[1]), 0)
    """
)
_NR_EXIT = {"x86": 60, "arm64": 93}


def _end(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def _as_nobody(code: str, *args: str) -> subprocess.Popen[bytes]:
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", PYTHON, "-c", code, *args]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd="/")
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    return child


def test_a_process_rewriting_its_argv_and_comm_gets_its_real_executable() -> None:
    needs_task_iter()
    liar = _as_nobody(LIAR)
    try:
        cmdline = Path(f"/proc/{liar.pid}/cmdline").read_bytes()
        assert cmdline.startswith(b"/usr/sbin/sshd\0-D\0")
        with started() as s:
            p = s.processes.get(liar.pid)
            assert p is not None and p.source == "task_iter"
            check_against_proc(p, liar.pid)
            # what it claims: its comm and argv (what its memory says, as /proc says)
            assert p.comm == "sshd" and p.argv[:2] == ["/usr/sbin/sshd", "-D"] and set(p.argv[2:]) <= {""}
            # what it is: the file the kernel mapped, not the one it names
            assert p.exe == PYTHON and p.exe != p.argv[0]
            exe, real = os.stat(p.exe), os.stat(PYTHON)
            assert (exe.st_dev, exe.st_ino) == (real.st_dev, real.st_ino)
            assert p.uid == NOBODY
    finally:
        _end(liar)


def test_a_process_without_its_main_thread_still_has_its_executable() -> None:
    needs_task_iter()
    child = _as_nobody(LEADERLESS, str(_NR_EXIT[bpf_arch()]))
    try:
        end = time.monotonic() + 10
        while stat_fields(child.pid)[0] != "Z" and time.monotonic() < end:
            time.sleep(0.01)
        # /proc has no executable for it: the leader has no mm left
        with pytest.raises(OSError):
            os.readlink(f"/proc/{child.pid}/exe")
        with started() as s:
            p = s.processes.get(child.pid)
            assert p is not None and p.source == "task_iter" and s.processes.is_alive(p)
            assert p.exe == PYTHON and p.uid == NOBODY
            # argv from the process's memory where the sleepable iterator runs
            # (5.18); before, from /proc, which shows none without a main thread
            assert p.argv[:2] == ([PYTHON, "-c"] if _sleepable_iterator() else [])
            assert p.start_time_ns // _procfs.NS_PER_TICK == int(stat_fields(child.pid)[19])
        monkeypatch = pytest.MonkeyPatch()
        monkeypatch.setattr(_seed, "USE_TASK_ITER", False)
        try:
            with started() as s:
                q = s.processes.get(child.pid)
                assert q is not None and q.source == "procfs" and q.exe == "" and q.entity_id == p.entity_id
        finally:
            monkeypatch.undo()
    finally:
        _end(child)


def _sleepable_iterator() -> bool:
    """Whether this kernel's version has the sleepable task iterator (5.18)."""
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (5, 18)
