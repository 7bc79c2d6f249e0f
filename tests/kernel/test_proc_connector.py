# SPDX-License-Identifier: Apache-2.0
"""The process-connector fallback provider against real processes (needs root)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ebpfsensor._ffi import lib
from ebpfsensor.events import Event, ProcessExec, ProcessExit, ProcessFork
from ebpfsensor.sources.proc_connector import ProcConnectorSource

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PTRACE_TRACEME = 0
PTRACE_DETACH = 17
TRUE = os.path.realpath("/bin/true")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class Recorder:
    """Keeps every event a provider delivered, so a test can look for several."""

    def __init__(self, provider: ProcConnectorSource) -> None:
        self.provider = provider
        self.events: list[Event] = []

    def wait_for(self, match: Callable[[Event], bool], timeout: float = 5.0) -> Any:
        """The first event (seen or still to come) that satisfies match; fail on timeout."""
        end = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = len(self.events)
            if time.monotonic() >= end:
                pytest.fail(f"no matching event within {timeout}s")
            self.events.extend(self.provider.poll(0.05))


@pytest.fixture
def provider() -> Iterator[ProcConnectorSource]:
    with ProcConnectorSource() as p:
        yield p


@pytest.fixture
def rec(provider: ProcConnectorSource) -> Recorder:
    return Recorder(provider)


def _traceme() -> None:
    # stop right after exec, so /proc can be read before /bin/true exits
    _libc.ptrace(PTRACE_TRACEME, 0, None, None)


def test_exec_fork_exit_of_true(rec: Recorder, tmp_path: Path) -> None:
    argv = [TRUE, "ebpfsensor-proc-connector", "two words", ""]
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    proc = subprocess.Popen(argv, cwd=tmp_path, preexec_fn=_traceme)
    try:
        _, status = os.waitpid(proc.pid, 0)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP
        ex: ProcessExec = rec.wait_for(lambda e: isinstance(e, ProcessExec) and e.pid == proc.pid)
    finally:
        _libc.ptrace(PTRACE_DETACH, proc.pid, None, None)
        proc.wait()
    assert proc.returncode == 0
    assert (ex.pid, ex.tid, ex.old_tid, ex.ppid) == (proc.pid, proc.pid, proc.pid, os.getpid())
    assert ex.argv == argv
    assert ex.exe == TRUE
    assert ex.cwd == os.path.realpath(tmp_path)
    assert (ex.uid, ex.gid, ex.euid, ex.egid, ex.suid, ex.fsuid) == (0, 0, 0, 0, 0, 0)
    assert ex.comm == "true"
    assert ex.parent_exe == os.readlink("/proc/self/exe")
    assert ex.parent_comm == Path("/proc/self/comm").read_text().strip()
    assert ex.loginuid == int(Path("/proc/self/loginuid").read_text())
    assert ex.pid_ns == os.stat("/proc/self/ns/pid").st_ino
    assert ex.mnt_ns == os.stat("/proc/self/ns/mnt").st_ino
    assert ex.user_ns == os.stat("/proc/self/ns/user").st_ino
    assert ex.cgroup_id > 0 and ex.container_id == ""
    assert not ex.fileless
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    assert before <= ex.ts_ns <= now
    assert before - 20_000_000 <= ex.start_time_ns <= ex.ts_ns  # clock-tick resolution
    assert not ex.argv_truncated

    fork: ProcessFork = rec.wait_for(lambda e: isinstance(e, ProcessFork) and e.child_pid == proc.pid)
    assert (fork.pid, fork.child_tid, fork.clone_flags) == (os.getpid(), proc.pid, 0)
    assert fork.child_start_time_ns == ex.start_time_ns
    assert fork.ts_ns <= ex.ts_ns

    exit_: ProcessExit = rec.wait_for(lambda e: isinstance(e, ProcessExit) and e.pid == proc.pid)
    assert (exit_.exit_code, exit_.exit_signal, exit_.core_dumped, exit_.is_thread) == (0, 0, False, False)
    assert (exit_.uid, exit_.ppid, exit_.comm) == (0, os.getpid(), "true")
    assert exit_.ts_ns >= ex.ts_ns
    assert exit_.duration_ns == exit_.ts_ns - exit_.start_time_ns


def test_exit_code(rec: Recorder) -> None:
    proc = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
    assert proc.wait() == 7
    exit_: ProcessExit = rec.wait_for(lambda e: isinstance(e, ProcessExit) and e.pid == proc.pid)
    assert (exit_.exit_code, exit_.exit_signal, exit_.core_dumped) == (7, 0, False)
    assert (exit_.uid, exit_.gid, exit_.ppid) == (0, 0, os.getpid())


def test_killed_by_signal(rec: Recorder) -> None:
    proc = subprocess.Popen(["/bin/sleep", "30"])
    try:
        ex: ProcessExec = rec.wait_for(lambda e: isinstance(e, ProcessExec) and e.pid == proc.pid)
        assert ex.argv == ["/bin/sleep", "30"] and ex.exe == os.path.realpath("/bin/sleep")
    finally:
        proc.kill()
        proc.wait()
    exit_: ProcessExit = rec.wait_for(lambda e: isinstance(e, ProcessExit) and e.pid == proc.pid)
    assert (exit_.exit_code, exit_.exit_signal, exit_.core_dumped) == (0, signal.SIGKILL, False)
    assert exit_.comm == "sleep" and exit_.uid == 0
    assert exit_.duration_ns > 0


# copies /bin/true into a memfd or a deleted file and executes that, stopped
# by ptrace right after the exec so that /proc still has it
FILELESS = """
import ctypes, os, sys
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
ctypes.CDLL(None).ptrace(0, 0, None, None)
os.execve(f"/proc/self/fd/{fd}", ["payload", sys.argv[2]], {})
"""


@pytest.mark.parametrize("how", ["memfd", "deleted"])
def test_fileless_exec_flagged(rec: Recorder, how: str, tmp_path: Path) -> None:
    dropper = tmp_path / "dropper"
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", FILELESS, TRUE, how, str(dropper)])
    try:
        _, status = os.waitpid(proc.pid, 0)
        assert os.WIFSTOPPED(status), status
        ex: ProcessExec = rec.wait_for(
            lambda e: isinstance(e, ProcessExec) and e.pid == proc.pid and e.argv == ["payload", how]
        )
    finally:
        _libc.ptrace(PTRACE_DETACH, proc.pid, None, None)
        proc.wait()
    assert proc.returncode == 0
    assert ex.fileless
    assert (ex.exe_memfd, ex.exe_deleted) == ((True, True) if how == "memfd" else (False, True))
    assert ex.exe == ("/memfd:payload" if how == "memfd" else os.path.realpath(dropper))
    # the interpreter's own exec was read from /proc after the second exec: it
    # shows the payload too (the provider reports what /proc says when it reads)
    execs = [e for e in rec.events if isinstance(e, ProcessExec) and e.pid == proc.pid]
    assert len(execs) == 2


def _run_thread() -> int:
    tids: list[int] = []
    t = threading.Thread(target=lambda: tids.append(threading.get_native_id()))
    t.start()
    t.join()
    return tids[0]


def test_threads_are_filtered_by_default(provider: ProcConnectorSource) -> None:
    filtered = provider.filtered
    tid = _run_thread()
    proc = subprocess.Popen([TRUE])
    proc.wait()
    events: list[Event] = []
    end = time.monotonic() + 5
    while time.monotonic() < end and not any(isinstance(e, ProcessExit) and e.pid == proc.pid for e in events):
        events.extend(provider.poll(0.05))
    assert not [e for e in events if e.pid == os.getpid() and tid in (e.tid, getattr(e, "child_tid", 0))]
    assert provider.filtered >= filtered + 2  # the thread's creation and exit


def test_threads_reported_when_asked() -> None:
    with ProcConnectorSource(report_threads=True) as provider:
        rec = Recorder(provider)
        tid = _run_thread()
        fork: ProcessFork = rec.wait_for(lambda e: isinstance(e, ProcessFork) and e.child_tid == tid)
        assert fork.child_pid == os.getpid() and fork.clone_flags & lib.FORK_CLONE_THREAD
        exit_: ProcessExit = rec.wait_for(lambda e: isinstance(e, ProcessExit) and e.tid == tid)
        assert exit_.pid == os.getpid() and exit_.is_thread


def test_kinds() -> None:
    with ProcConnectorSource(frozenset({"process_exit"})) as provider:
        rec = Recorder(provider)
        proc = subprocess.Popen([TRUE])
        proc.wait()
        rec.wait_for(lambda e: isinstance(e, ProcessExit) and e.pid == proc.pid)
        rec.events.extend(provider.poll(0.1))
        assert all(isinstance(e, ProcessExit) for e in rec.events)


def test_fileno_with_asyncio(provider: ProcConnectorSource) -> None:
    async def main() -> ProcessExit:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(provider.fileno(), ready.set)
        try:
            proc = await asyncio.create_subprocess_exec(TRUE)
            await proc.wait()
            while True:
                await asyncio.wait_for(ready.wait(), 5)
                ready.clear()
                for e in provider.poll(0):
                    if isinstance(e, ProcessExit) and e.pid == proc.pid:
                        return e
        finally:
            loop.remove_reader(provider.fileno())

    assert asyncio.run(main()).exit_code == 0


def test_overrun_is_counted_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    with ProcConnectorSource(rcvbuf_bytes=1) as provider:  # the kernel's minimum
        procs = [subprocess.Popen([TRUE]) for _ in range(64)]
        for p in procs:
            p.wait()
        end = time.monotonic() + 2
        while time.monotonic() < end:
            provider.poll(0.05)
        stats = provider.stats()
    # an overrun is counted at once; the messages it cost show as a gap in
    # the sequence numbers once later messages arrive
    assert stats.overruns > 0
    assert stats.lost >= 0
    assert "events lost" in caplog.text or "overrun" in caplog.text


def test_close_is_idempotent_and_poll_after_close_says_so() -> None:
    provider = ProcConnectorSource().start()
    provider.close()
    provider.close()
    with pytest.raises(ValueError, match="not started"):
        provider.poll(0)


def test_unknown_kind() -> None:
    from ebpfsensor.errors import ConfigError

    with pytest.raises(ConfigError, match="file_open"):
        ProcConnectorSource(frozenset({"file_open"}))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
