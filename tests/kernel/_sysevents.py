# SPDX-License-Identifier: Apache-2.0
"""Expectations shared by the syscall event tests: syscall numbers and the
common process header."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

# this architecture's syscall numbers (asm/unistd_64.h, asm-generic/unistd.h)
_NR = {
    "x86_64": {
        "connect": 42, "accept": 43, "accept4": 288, "bind": 49, "listen": 50,
        "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117,
        "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capget": 125, "capset": 126,
        "kill": 62, "tkill": 200, "tgkill": 234, "setsid": 112, "ptrace": 101,
        "memfd_create": 319, "bpf": 321, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "mount": 165, "umount2": 166,
    },
    "aarch64": {
        "connect": 203, "accept": 202, "accept4": 242, "bind": 200, "listen": 201,
        "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143, "setresuid": 147,
        "setresgid": 149, "setfsuid": 151, "setfsgid": 152, "capget": 90, "capset": 91,
        "kill": 129, "tkill": 130, "tgkill": 131, "setsid": 157, "ptrace": 117,
        "memfd_create": 279, "bpf": 280, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "mount": 40, "umount2": 39,
    },
}  # fmt: skip


def nr(name: str) -> int:
    """The syscall number of name on this machine."""
    return _NR[platform.machine()][name]


def cgroup_id(pid: int | str = "self") -> int:
    """The cgroup v2 id of a process: the inode of its cgroup directory."""
    with open(f"/proc/{pid}/cgroup") as f:
        path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
    with open("/proc/self/mounts") as f:
        root = next(line.split()[1] for line in f if line.split()[2] == "cgroup2")
    return os.stat(root + path).st_ino


def start_time_ns(pid: int | str = "self") -> int:
    """A process's start in CLOCK_BOOTTIME ns, to clock-tick precision."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[19]) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def comm(pid: int | str = "self") -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


class Header:
    """The process header expected on events from one process, captured
    while it runs (call in the process that makes the syscalls)."""

    def __init__(self, *, uid: int | None = None, gid: int | None = None) -> None:
        self.pid = os.getpid()
        self.tid = threading.get_native_id()
        self.ppid = os.getppid()
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.comm = comm()
        self.cgroup_id = cgroup_id()
        self.start_time_ns = start_time_ns()
        self.since_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "since_ns"}


def check_header(event: Any, expected: Header | dict[str, Any], syscall: str, result: int) -> None:
    """Every common field: process header, timestamp, syscall and result."""
    want = expected.as_dict() if isinstance(expected, Header) else dict(expected)
    since = want.pop("since_ns", None) if isinstance(expected, dict) else expected.since_ns
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    start = want.pop("start_time_ns")
    got = {k: getattr(event, k) for k in want}
    assert got == want
    assert abs(event.start_time_ns - start) <= tick, (event.start_time_ns, start)
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    if since is not None:
        assert since <= event.ts_ns <= now
    assert event.syscall_nr == nr(syscall)
    assert event.result == result
    assert event.errno == (-result if result < 0 else 0)


def in_child(fn: Callable[[], dict[str, Any] | None], timeout: float = 10.0) -> dict[str, Any]:
    """Run fn in a forked child and return what it returned, plus "header":
    the child's Header (ids captured after fn, the time before it) and "pid".

    The child leaves with os._exit: no finalizer of the parent's objects
    (the sensor) runs in it. An exception in fn fails the test with its text.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            since = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            out = fn() or {}
            out["header"] = {**Header().as_dict(), "since_ns": since}
        except BaseException as exc:  # reported to the parent
            out = {"error": f"{type(exc).__name__}: {exc}"}
            code = 1
        with os.fdopen(w, "w") as f:
            json.dump(out, f)
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    out = json.loads(data) if data else {"error": f"child died with status {status}"}
    if "error" in out:
        raise AssertionError(f"child failed: {out['error']}")
    out["pid"] = pid
    return out


def collect(sensor: Any, who: Header | dict[str, Any], classes: tuple[type, ...], count: int) -> list[Any]:
    """The next `count` events of the given classes from one process (a
    Header, or in_child()'s "header"), made after it was captured, in order."""
    from conftest import backlog, wait_for

    pid = who.pid if isinstance(who, Header) else who["pid"]
    since = who.since_ns if isinstance(who, Header) else who["since_ns"]
    try:
        found = wait_for(sensor, lambda e: isinstance(e, classes) and e.pid == pid and e.ts_ns >= since, count=count)
    except pytest.fail.Exception as exc:
        # what did arrive, to tell a late consumer from a lost record or a
        # record that does not match (another pid, an earlier time)
        seen = [e for e in backlog(sensor) if isinstance(e, classes)]
        counts = sensor.stats().kinds.items()
        kinds = {k: (v.produced, v.delivered, v.pending, v.dropped) for k, v in counts if v.produced}
        raise AssertionError(
            f"{exc}; wanted pid {pid} at or after ts {since} (now {time.clock_gettime_ns(time.CLOCK_BOOTTIME)});"
            f" of those classes {len(seen)} arrived: {[(type(e).__name__, e.pid, e.ts_ns) for e in seen[-8:]]};"
            f" kinds (produced, delivered, pending, dropped): {kinds}"
        ) from None
    # in call order: perf buffers (kernels before 5.8) deliver each CPU's records in turn
    return sorted(found, key=lambda e: e.ts_ns)


def proc_caps(pid: int | str = "self") -> dict[str, int]:
    """CapInh, CapPrm, CapEff of a process, as integers."""
    with open(f"/proc/{pid}/status") as f:
        rows = dict(line.split(":", 1) for line in f if line.startswith("Cap"))
    return {k: int(rows[k], 16) for k in ("CapInh", "CapPrm", "CapEff")}
