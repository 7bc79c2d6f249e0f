# SPDX-License-Identifier: Apache-2.0
"""The process object built for verifiers before 5.3 (process.v419.bpf.o: no
global data, no loops), forced on this kernel: the same records, field by
field, its settings written into its settings map, and the choice between
it and the perf build made by probing the verifier."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _sysevents import cgroup_id, start_time_ns

import ebpfsensor
from conftest import wait_for
from ebpfsensor import Config
from ebpfsensor.events import ProcessExec, ProcessExit, ProcessFork
from ebpfsensor.host import features

pytestmark = pytest.mark.bpf

LIFECYCLE = frozenset({"process_exec", "process_fork", "process_exit"})
CLONE_VM, CLONE_THREAD = 0x100, 0x10000
THREADED = "import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()"


def v419(**kwargs: Any) -> ebpfsensor.Sensor:
    cfg = Config(transport="perf", v419_objects="always", kinds=LIFECYCLE, log_file=None, exclude_self=False)
    return ebpfsensor.Sensor(msgspec.structs.replace(cfg, **kwargs))


@pytest.fixture(scope="module")
def sensor() -> Any:
    with v419() as s:
        yield s


def test_hooks_name_the_object(sensor: Any) -> None:
    hooks = sensor.hooks()
    assert {h: hooks[h].object for h in ("exec", "fork", "exit")} == dict.fromkeys(
        ("exec", "fork", "exit"), "process.v419.bpf.o"
    )
    assert all(hooks[h].variant for h in ("exec", "fork", "exit"))
    health = sensor.health()
    assert health.transport == "perf"
    for kind in LIFECYCLE:
        assert health.kinds[kind].live and health.kinds[kind].source.startswith("ebpf:"), health.kinds[kind]


def test_exec_every_field(sensor: Any, tmp_path: Path) -> None:
    argv = ["/bin/true", "alpha", "two words", "", "ünï"]
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    p = subprocess.Popen(argv, cwd=tmp_path)
    child_start = start_time_ns(p.pid)
    p.wait()
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    assert (e.pid, e.tid, e.old_tid, e.ppid) == (p.pid, p.pid, p.pid, os.getpid())
    assert (e.uid, e.gid, e.euid, e.egid, e.suid, e.sgid, e.fsuid, e.fsgid) == (os.getuid(), os.getgid()) + (
        os.geteuid(),
        os.getegid(),
    ) * 3
    login = tuple(int(Path(f"/proc/self/{n}").read_text()) for n in ("loginuid", "sessionid"))
    assert (e.loginuid, e.sessionid) == login
    ns = tuple(os.stat(f"/proc/self/ns/{n}").st_ino for n in ("pid", "mnt", "net", "user"))
    assert (e.pid_ns, e.mnt_ns, e.net_ns, e.user_ns) == ns
    assert e.cgroup_id == cgroup_id()
    assert e.comm == "true"
    assert e.exe == os.path.realpath("/bin/true")
    assert e.cwd == os.path.realpath(tmp_path)
    assert e.argv == argv
    assert e.parent_comm == Path("/proc/self/comm").read_text().strip()
    assert e.parent_exe == os.path.realpath("/proc/self/exe")
    assert not (e.argv_truncated or e.exe_truncated or e.cwd_truncated or e.parent_exe_truncated)
    assert not (e.exe_deleted or e.exe_memfd)
    assert before <= e.ts_ns <= after
    assert abs(e.start_time_ns - child_start) < 1_000_000_000 // os.sysconf("SC_CLK_TCK") + 1


def test_fork_and_exit_every_field(sensor: Any) -> None:
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    pid = os.fork()
    if pid == 0:
        time.sleep(0.05)
        os._exit(7)
    os.waitpid(pid, 0)
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    (f,) = wait_for(sensor, lambda e: isinstance(e, ProcessFork) and e.child_pid == pid)
    assert (f.pid, f.tid, f.child_tid) == (os.getpid(), threading.get_native_id(), pid)
    assert not f.clone_flags & (CLONE_VM | CLONE_THREAD)
    (x,) = wait_for(sensor, lambda e: isinstance(e, ProcessExit) and e.pid == pid)
    assert (x.pid, x.tid, x.ppid) == (pid, pid, os.getpid())
    assert (x.exit_code, x.exit_signal, x.core_dumped, x.is_thread) == (7, 0, False, False)
    assert x.comm == Path("/proc/self/comm").read_text().strip()
    assert x.start_time_ns == f.child_start_time_ns
    assert before <= x.start_time_ns <= x.ts_ns <= after
    assert 50_000_000 <= x.duration_ns <= after - before


def test_deep_paths(sensor: Any, tmp_path: Path) -> None:
    # the unrolled walk goes up as many components as the looping one (64)
    shallow = tmp_path.joinpath(*(f"d{i}" for i in range(50)))
    deep = tmp_path.joinpath(*(f"d{i}" for i in range(70)))
    deep.mkdir(parents=True)
    got = {}
    for cwd in (shallow, deep):
        p = subprocess.Popen(["/bin/true"], cwd=cwd)
        p.wait()
        (got[cwd],) = wait_for(sensor, lambda e, p=p: isinstance(e, ProcessExec) and e.pid == p.pid)
    assert got[shallow].cwd == os.path.realpath(shallow) and not got[shallow].cwd_truncated
    # deeper than the walk goes: flagged, and what is there is the path's tail
    assert got[deep].cwd_truncated and os.path.realpath(deep).endswith(got[deep].cwd)
    assert sensor.stats().kinds["process_exec"].truncated >= 1


def test_threads_filtered_by_default(sensor: Any) -> None:
    # cfg_report_threads is 0 in the settings map
    before = sensor.stats().kinds["process_fork"].filtered
    p = subprocess.Popen([sys.executable, "-I", "-S", "-c", THREADED])
    p.wait()
    (x,) = wait_for(sensor, lambda e: isinstance(e, ProcessExit) and e.pid == p.pid)
    assert not x.is_thread
    assert sensor.stats().kinds["process_fork"].filtered > before


def test_report_threads_through_the_settings_map() -> None:
    with v419(report_threads=True) as s:
        p = subprocess.Popen([sys.executable, "-I", "-S", "-c", THREADED])
        p.wait()
        (t,) = wait_for(s, lambda e: isinstance(e, ProcessFork) and e.pid == p.pid and e.clone_flags & CLONE_THREAD)
        assert t.child_pid == p.pid and t.child_tid != p.pid and t.clone_flags & CLONE_VM
        exits = wait_for(s, lambda e: isinstance(e, ProcessExit) and e.pid == p.pid, count=2)
        assert {x.is_thread for x in exits} == {True, False}
        assert {x.tid for x in exits} == {p.pid, t.child_tid}


def test_the_build_is_chosen_by_probing() -> None:
    # both probes are this kernel's answer, not its version
    old = not (features.global_data().works and features.bounded_loops().works)
    cfg = Config(transport="perf", kinds=frozenset({"process_exit"}), log_file=None, exclude_self=False)
    with ebpfsensor.Sensor(cfg) as s:
        objects = {info.object for h, info in s.hooks().items() if h in ("exec", "fork", "exit")}
    assert objects == {"process.v419.bpf.o" if old else "process.perf.bpf.o"}
    with ebpfsensor.Sensor(msgspec.structs.replace(cfg, v419_objects="never")) as s:
        assert {i.object for i in s.hooks().values()} == {"process.perf.bpf.o"}
