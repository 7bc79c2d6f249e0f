# SPDX-License-Identifier: Apache-2.0
"""Process lifecycle events from real processes, checked field by field."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.kernel.conftest import wait_for

import ebpfsensor
from ebpfsensor import ProcessExec, ProcessExit, ProcessFork
from ebpfsensor.host import features

pytestmark = pytest.mark.bpf

TRUE = os.path.realpath("/bin/true")
CLONE_VM, CLONE_THREAD = 0x100, 0x10000


def cgroup2_id() -> int:
    """The cgroup v2 id (directory inode) of this process."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    with open("/proc/self/cgroup") as f:
        path = next(line.strip().split("::", 1)[1] for line in f if line.startswith("0::"))
    return os.stat(mounts[0] + path).st_ino


def proc_value(name: str) -> int:
    with open(f"/proc/self/{name}") as f:
        return int(f.read())


def ns_inode(name: str) -> int:
    return os.stat(f"/proc/self/ns/{name}").st_ino


def test_lifecycle_from_ebpf(sensor: ebpfsensor.Sensor) -> None:
    # on every kernel with BPF: where the verifier lacks global data or
    # loops (4.19), through the process object built for it
    health = sensor.health()
    for kind in ("process_exec", "process_fork", "process_exit"):
        assert health.kinds[kind].live and health.kinds[kind].source.startswith("ebpf:"), (kind, health.kinds[kind])
    old = not (features.global_data().works and features.bounded_loops().works)
    build = "v419" if old else "perf" if health.transport == "perf" else ""
    hooks = sensor.hooks()
    assert {hooks[h].object for h in ("exec", "fork", "exit")} == {".".join(filter(None, ("process", build, "bpf.o")))}


def test_exec_every_field(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    argv = ["/bin/true", "alpha", "two words", "", "ünï"]
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    p = subprocess.Popen(argv, cwd=tmp_path)
    p.wait()
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    me = os.getpid()
    assert (e.pid, e.tid, e.old_tid, e.ppid) == (p.pid, p.pid, p.pid, me)
    assert (e.uid, e.gid, e.euid, e.egid, e.suid, e.sgid, e.fsuid, e.fsgid) == (os.getuid(), os.getgid()) + (
        os.geteuid(),
        os.getegid(),
    ) * 3
    assert (e.loginuid, e.sessionid) == (proc_value("loginuid"), proc_value("sessionid"))
    assert (e.pid_ns, e.mnt_ns, e.net_ns, e.user_ns) == tuple(ns_inode(n) for n in ("pid", "mnt", "net", "user"))
    assert e.cgroup_id == cgroup2_id()
    assert e.comm == "true"
    assert e.exe == TRUE
    assert e.cwd == os.path.realpath(tmp_path)
    assert e.argv == argv
    assert e.parent_comm == Path("/proc/self/comm").read_text().strip()
    assert e.parent_exe == os.path.realpath("/proc/self/exe")
    assert not (e.argv_truncated or e.exe_truncated or e.cwd_truncated or e.parent_exe_truncated)
    tty_nr = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[4])
    assert (e.tty == "") == (tty_nr == 0)
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    assert before <= e.start_time_ns <= e.ts_ns <= now
    assert e.kind == "process_exec"


def test_fork_exec_exit_sequence(sensor: ebpfsensor.Sensor) -> None:
    p = subprocess.Popen([TRUE])
    p.wait()

    def mine(e: Any) -> bool:
        # its lifecycle only: a process's exit comes after its other events
        return (isinstance(e, ProcessFork) and e.child_pid == p.pid) or (
            isinstance(e, (ProcessExec, ProcessExit)) and e.pid == p.pid
        )

    fork, exe, ex = sorted(wait_for(sensor, mine, count=3), key=lambda e: e.ts_ns)
    assert isinstance(fork, ProcessFork) and isinstance(exe, ProcessExec) and isinstance(ex, ProcessExit)
    assert (fork.pid, fork.child_pid, fork.child_tid) == (os.getpid(), p.pid, p.pid)
    assert fork.child_start_time_ns == exe.start_time_ns == ex.start_time_ns
    assert not fork.clone_flags & CLONE_THREAD
    assert (ex.exit_code, ex.exit_signal, ex.core_dumped, ex.is_thread) == (0, 0, False, False)
    assert ex.comm == "true" and ex.ppid == os.getpid()
    if sensor.health().transport == "perf":
        # stamped on the monotonic clock, the boot-time lead added in user
        # space from two clock reads: exact to the time between them
        assert 0 < ex.duration_ns and abs(ex.duration_ns - (ex.ts_ns - ex.start_time_ns)) < 1_000_000
    else:
        assert 0 < ex.duration_ns == ex.ts_ns - ex.start_time_ns


def test_fork_without_exec_and_exit_code(sensor: ebpfsensor.Sensor) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    os.waitpid(pid, 0)
    (fork,) = wait_for(sensor, lambda e: isinstance(e, ProcessFork) and e.child_pid == pid)
    assert (fork.pid, fork.tid, fork.child_tid) == (os.getpid(), threading.get_native_id(), pid)
    assert not fork.clone_flags & (CLONE_VM | CLONE_THREAD)
    (ex,) = wait_for(sensor, lambda e: isinstance(e, ProcessExit) and e.pid == pid)
    assert (ex.exit_code, ex.exit_signal, ex.is_thread) == (7, 0, False)
    assert ex.comm == Path("/proc/self/comm").read_text().strip()


def test_killed_by_signal(sensor: ebpfsensor.Sensor) -> None:
    p = subprocess.Popen(["sleep", "30"])
    wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    (ex,) = wait_for(sensor, lambda e: isinstance(e, ProcessExit) and e.pid == p.pid)
    assert (ex.exit_code, ex.exit_signal, ex.core_dumped) == (0, signal.SIGKILL, False)
    assert ex.comm == "sleep"


THREADED = "import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()"


def test_threads_filtered_by_default(sensor: ebpfsensor.Sensor) -> None:
    before = sensor.stats().kinds["process_fork"].filtered
    p = subprocess.Popen([sys.executable, "-I", "-S", "-c", THREADED])
    p.wait()
    events = wait_for(sensor, lambda e: e.pid == p.pid and isinstance(e, ProcessExit))
    assert not events[0].is_thread
    assert sensor.stats().kinds["process_fork"].filtered > before


def test_threads_reported_when_asked() -> None:
    # the process kinds only: a sensor with every kind takes seconds to close
    with ebpfsensor.Sensor(report_threads=True, kinds={"process_exec", "process_fork", "process_exit"}) as s:
        p = subprocess.Popen([sys.executable, "-I", "-S", "-c", THREADED])
        p.wait()
        forks = wait_for(s, lambda e: isinstance(e, ProcessFork) and e.pid == p.pid and e.clone_flags & CLONE_THREAD)
        t = forks[0]
        assert t.child_pid == p.pid and t.child_tid != p.pid
        assert t.clone_flags & CLONE_VM
        exits = wait_for(s, lambda e: isinstance(e, ProcessExit) and e.pid == p.pid, count=2)
        assert {x.is_thread for x in exits} == {True, False}
        # the process's exit is its last thread's: after join() the main
        # thread may still end first (the other is yet in its exit path)
        assert {x.tid for x in exits} == {p.pid, t.child_tid}


def test_long_argv_truncated(sensor: ebpfsensor.Sensor) -> None:
    long = ["x" * 1000 for _ in range(20)]
    p = subprocess.Popen([TRUE, *long])
    p.wait()
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    assert e.argv_truncated
    joined = "\0".join([TRUE, *long])
    assert "\0".join(e.argv) == joined[: len("\0".join(e.argv))]
    assert 8000 < len("\0".join(e.argv)) < 8192
    assert sensor.stats().kinds["process_exec"].truncated >= 1


def test_deep_cwd(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    deep = tmp_path
    for i in range(70):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    p = subprocess.Popen([TRUE], cwd=deep)
    p.wait()
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    # deeper than the walk goes: flagged, and what is there is the path's tail
    assert e.cwd_truncated
    assert os.path.realpath(deep).endswith(e.cwd)


@pytest.mark.parametrize("variant", ["btf", "raw", "tp"])
def test_each_hook_variant(variant: str) -> None:
    # the process kinds only: a sensor with every kind takes seconds to close
    if variant == "btf" and not os.path.exists("/sys/kernel/btf/vmlinux"):
        # attached by the kernel's own type ids: reported unavailable, and why
        with pytest.raises(ebpfsensor.EbpfSensorError, match="need the kernel's own BTF"):
            ebpfsensor.Sensor(
                hook_variants={variant}, kinds={"process_exec"}, exclude_self=False, provider="ebpf"
            ).start()
        return
    with ebpfsensor.Sensor(
        hook_variants={variant}, kinds={"process_exec", "process_fork", "process_exit"}, exclude_self=False
    ) as s:
        lifecycle = {h: i.variant for h, i in s.hooks().items() if h in ("exec", "fork", "exit")}
        assert lifecycle == {"exec": variant, "fork": variant, "exit": variant}
        p = subprocess.Popen([TRUE, variant])
        p.wait()
        (e,) = wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
        assert (e.exe, e.argv, e.ppid) == (TRUE, [TRUE, variant], os.getpid())
        (f,) = wait_for(s, lambda e: isinstance(e, ProcessFork) and e.child_tid == p.pid)
        assert f.pid == os.getpid()
        if variant != "tp":  # the classic tracepoint has no task pointers
            assert f.child_pid == p.pid and f.child_start_time_ns == e.start_time_ns


def test_disabled_kinds_produce_nothing() -> None:
    # lifecycle hooks stay attached (they keep exclusion state); a disabled
    # kind returns early in the kernel and is never produced
    with ebpfsensor.Sensor(kinds={"process_exit"}) as s:
        assert set(s.hooks()) == {"exec", "fork", "exit"}
        p = subprocess.Popen([TRUE])
        p.wait()
        (ex,) = wait_for(s, lambda e: getattr(e, "pid", 0) == p.pid)
        assert isinstance(ex, ProcessExit)
        assert not [e for e in s.poll(0.2) if not isinstance(e, ProcessExit)]
        st = s.stats().kinds
        assert st["process_exec"].produced == st["process_fork"].produced == 0
        assert st["process_exit"].produced >= 1


def test_subscribe_and_stats_reconcile(sensor: ebpfsensor.Sensor) -> None:
    s = sensor
    got: list[Any] = []
    sub = s.subscribe(got.append, kinds={"process_exit"})
    p = subprocess.Popen([TRUE])
    p.wait()
    wait_for(s, lambda e: isinstance(e, ProcessExit) and e.pid == p.pid)
    assert got and all(isinstance(e, ProcessExit) for e in got)
    assert any(e.pid == p.pid for e in got)
    sub.cancel()
    n = len(got)
    subprocess.run([TRUE], check=True)
    s.poll(0.3)
    assert len(got) == n
    s.poll(0.2)
    st = s.stats()
    for kind, k in st.kinds.items():
        assert k.produced == k.delivered + k.pending, kind
        assert k.dropped == 0, kind
        assert st.undecodable == 0
        # the audit provider beside eBPF (the perf tier's file kinds) counts
        # kernel audit's own losses, which these processes do not decide
        assert st.lost == 0 or st.audit_provider is not None
        with pytest.raises(ValueError, match="unknown event kind"):
            s.subscribe(got.append, kinds={"nope"})


def test_async_iteration() -> None:
    async def main() -> ProcessExec:
        with ebpfsensor.Sensor(kinds={"process_exec"}) as s:
            p = await asyncio.create_subprocess_exec(TRUE, "async")
            await p.wait()
            async for event in s:
                if isinstance(event, ProcessExec) and event.pid == p.pid:
                    return event
        raise AssertionError("unreachable")

    # a deadline, not a pace: the sensor's start is inside it (seconds in a
    # 4.19 guest under emulation, more on a slow machine)
    e = asyncio.run(asyncio.wait_for(main(), 60))
    assert e.argv == [TRUE, "async"]


def test_events_iterator_timeout() -> None:
    with ebpfsensor.Sensor(kinds={"process_exec"}) as s:
        start = time.monotonic()
        subprocess.run([TRUE], check=True)
        seen = [e for e in s.events(timeout=0.5)]
        assert any(isinstance(e, ProcessExec) and e.exe == TRUE for e in seen)
        assert time.monotonic() - start < 10


def test_a_burst_wakes_the_consumer_before_the_latency_bound() -> None:
    """Records are submitted without a wakeup; once wakeup_bytes are waiting
    the consumer is woken at once, not at its max_latency_ms poll."""
    with ebpfsensor.Sensor(kinds={"process_exec"}, wakeup_bytes=4096, max_latency_ms=60_000) as s:
        s.poll(0)
        tag = os.urandom(8).hex()

        def burst() -> None:
            time.sleep(0.5)  # the consumer is asleep in poll() by now
            for _ in range(40):  # ~40 records of ~600 bytes: several multiples of a page
                subprocess.run([TRUE, tag, "x" * 300], check=True)

        t = threading.Thread(target=burst)
        start = time.monotonic()
        t.start()
        seen = 0
        try:
            # the last few records may wait for the next crossing (or poll)
            while seen < 30 and time.monotonic() - start < 30:
                seen += sum(1 for e in s.poll(30) if isinstance(e, ProcessExec) and e.argv[1:2] == [tag])
            took = time.monotonic() - start
        finally:
            t.join()
        # without a wakeup, the first poll() sleeps its full 30 s
        assert seen >= 30 and took < 20, f"{seen} of 40 execs after {took:.1f} s: the burst did not wake the consumer"


def test_drops_are_counted_never_silent() -> None:
    # a one-page lifecycle ring that is not drained while processes start
    with ebpfsensor.Sensor(kinds={"process_exec"}, lifecycle_ring_bytes=4096, wakeup_bytes=4096) as s:
        procs = [subprocess.Popen([TRUE, "x" * 200]) for _ in range(40)]
        for p in procs:
            p.wait()
        delivered = []
        while batch := s.poll(0.1):
            delivered += batch
        if s.health().transport == "perf":
            # a perf buffer reports its losses with the next record written
            # to it: an exec on each CPU
            for cpu in sorted(os.sched_getaffinity(0)):
                subprocess.run([TRUE], preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}), check=True)
            while batch := s.poll(0.1):
                delivered += batch
        stats = s.stats()
        st = stats.kinds["process_exec"]
        assert stats.dropped > 0
        mine = {p.pid for p in procs}
        assert len([e for e in delivered if e.pid in mine]) + stats.dropped >= len(procs)
        if st.dropped:
            # the programs saw each loss
            assert st.dropped == stats.dropped
            assert st.produced == st.delivered == len(delivered)
        else:
            # before 5.4 bpf_perf_event_output reports success for a record
            # its buffer had no room for: the kernel's count is all there is
            lost = sum(s._ebpf.stats().perf_lost)
            assert lost == stats.dropped and st.produced == st.delivered + lost == len(delivered) + lost


def test_container_id_from_cgroup() -> None:
    from ebpfsensor.exclusions import cgroup2_root

    cid = os.urandom(32).hex()
    scope = Path(cgroup2_root()) / f"docker-{cid}.scope"
    scope.mkdir()
    try:
        with ebpfsensor.Sensor(kinds={"process_exec"}) as s:
            p = subprocess.Popen(
                [TRUE, "in-container"], preexec_fn=lambda: (scope / "cgroup.procs").write_text(str(os.getpid()))
            )
            p.wait()
            (e,) = wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
            assert (e.container_id, e.cgroup_id) == (cid, os.stat(scope).st_ino)
            mine = subprocess.Popen([TRUE])
            mine.wait()
            (e,) = wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == mine.pid)
            assert e.container_id == ""
    finally:
        for _ in range(50):
            try:
                scope.rmdir()
                break
            except OSError:
                time.sleep(0.05)


FILELESS = """
import os, sys
data = open(sys.argv[1], "rb").read()
if sys.argv[2] == "memfd":
    fd = os.memfd_create("payload", 0)
    os.write(fd, data)
else:
    path = sys.argv[3]
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
os.execve(f"/proc/self/fd/{fd}", ["payload", sys.argv[2]], {})
"""


@pytest.mark.parametrize("how", ["memfd", "deleted"])
def test_fileless_exec_flagged(sensor: ebpfsensor.Sensor, how: str, tmp_path: Path) -> None:
    p = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", FILELESS, TRUE, how, str(tmp_path / "dropper")], pass_fds=()
    )
    assert p.wait() == 0
    execs = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid, count=2)
    payload = next(e for e in execs if e.argv == ["payload", how])
    assert payload.fileless
    assert (payload.exe_memfd, payload.exe_deleted) == ((True, True) if how == "memfd" else (False, True))
    assert payload.exe == ("/memfd:payload" if how == "memfd" else os.path.realpath(tmp_path / "dropper"))
    python = next(e for e in execs if e.argv[0] == sys.executable)
    assert not python.fileless
