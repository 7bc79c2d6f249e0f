# SPDX-License-Identifier: Apache-2.0
"""The sensor's own process is excluded by default (Config.exclude_self),
in the kernel; the processes it starts never are, nor a process that later
gets its pid."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.kernel.conftest import wait_for
from tests.kernel.test_evasion import NOBODY, public_dir, spawn_with_pid

import ebpfsensor
from ebpfsensor.events import FileOpen, NetBind, ProcessExec
from ebpfsensor.exclusions import ExcludeSelf
from ebpfsensor.host import audit as ha
from ebpfsensor.host.audit import list_rules
from ebpfsensor.sources.audit_provider import KEY, STATUS_EVERY_S

pytestmark = pytest.mark.bpf

__all__ = ["public_dir"]  # a fixture, used by name

KINDS = {"file_open", "net_bind", "process_exec", "process_exit"}
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def own_activity(target: Path) -> int:
    """Opens (from this thread and another one) and a bind, by this
    process; the bound port."""
    os.close(os.open(target, os.O_RDONLY))
    t = threading.Thread(target=lambda: os.close(os.open(target, os.O_RDONLY)))
    t.start()
    t.join()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(sensor: ebpfsensor.Sensor, done: Callable[[list[Any]], bool], timeout: float = 10.0) -> list[Any]:
    """Every event the sensor delivers until done(events) holds."""
    seen: list[Any] = []
    end = time.monotonic() + timeout
    while not done(seen):
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout}s; got {len(seen)} events")
        seen += sensor.poll(0.05)
    return seen


def child_opens(sensor: ebpfsensor.Sensor, target: Path, *prefix: str) -> tuple[int, list[Any]]:
    """A child of this process opens target: its pid, and every event until
    its exec and that open. The child's records are behind this process's
    in the rings: once they are here, this process's would be too."""
    child = subprocess.Popen([*prefix, "cat", str(target)], stdout=subprocess.DEVNULL)
    assert child.wait(10) == 0

    def both(seen: list[Any]) -> bool:
        kinds = {type(e) for e in seen if e.pid == child.pid and getattr(e, "path", str(target)) == str(target)}
        return {FileOpen, ProcessExec} <= kinds

    return child.pid, until(sensor, both)


def opens_from_audit(sensor: ebpfsensor.Sensor) -> bool:
    """Whether FileOpen comes from the audit provider beside eBPF (5.4,
    4.19), whose rules leave the sensor's process out in the kernel: no
    record, so no hit to count."""
    return sensor.health().kinds["file_open"].source == "audit"


def test_own_events_are_left_out_and_counted(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x")
    with ebpfsensor.Sensor(kinds=KINDS, log_file=None, watched_files=(str(target),)) as s:
        audit = opens_from_audit(s)
        if audit:
            # the provider's rules carry "pid != this process"
            rules = [r for r in list_rules() if r.key == KEY]
            assert rules and all((ha.AUDIT_PID, ha.AUDIT_NOT_EQUAL, os.getpid()) in r.fields for r in rules)
        (status,) = s.exclusions()
        assert status.rule == ExcludeSelf()
        before = status.hits
        port = own_activity(target)
        child, seen = child_opens(s, target)
        # the child is reported, its parent named as this process
        (ex,) = [e for e in seen if isinstance(e, ProcessExec) and e.pid == child]
        assert (ex.ppid, ex.argv) == (os.getpid(), ["cat", str(target)])
        (opened,) = [e for e in seen if isinstance(e, FileOpen) and e.pid == child and e.path == str(target)]
        assert opened.ppid == os.getpid()
        # this process is not: not its opens (either thread), not its bind
        assert not [e for e in seen if e.pid == os.getpid()]
        assert not [e for e in seen if isinstance(e, NetBind) and e.local_port == port]
        (status,) = s.exclusions()
        hits = {k: n - before.get(k, 0) for k, n in status.hits.items()}
        # eBPF counts the opens it leaves out; audit's rule leaves them out before any record exists
        assert hits.get("file_open", 0) == 0 if audit else hits.get("file_open", 0) >= 2
        assert hits.get("net_bind", 0) == 1
        health = s.health()
        assert [r.rule for r in health.exclusions] == [ExcludeSelf()] and health.exclusions[0].total >= (
            1 if audit else 3
        )
        assert json.loads(msgspec.json.encode(health))["exclusions"][0]["rule"] == {"type": "self"}


def test_own_events_are_reported_with_the_option_off(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x")
    with ebpfsensor.Sensor(kinds=KINDS, exclude_self=False, log_file=None, watched_files=(str(target),)) as s:
        assert s.exclusions() == [] and s.health().exclusions == []
        tid = threading.get_native_id()
        port = own_activity(target)
        (bind,) = wait_for(s, lambda e: isinstance(e, NetBind) and e.local_port == port)
        assert bind.pid == os.getpid()
        if opens_from_audit(s):
            # the audit daemon's calls are never audited: said, not silently missing
            assert "own calls unseen" in s.health().kinds["file_open"].reason
            return
        (opened,) = wait_for(s, lambda e: isinstance(e, FileOpen) and e.path == str(target) and e.tid == tid)
        assert opened.pid == os.getpid()
        # the other thread's open
        (other,) = wait_for(s, lambda e: isinstance(e, FileOpen) and e.path == str(target) and e.tid != tid)
        assert other.pid == os.getpid() != other.tid


def test_the_audit_providers_status_ticks_bind_no_socket(tmp_path: Path) -> None:
    """The audit provider reads the kernel's counters every STATUS_EVERY_S
    on the one socket it bound at start: a socket bound each tick would be a
    NetBind of the sensor's own each second, or a hit of exclude_self that
    miscounts the process's real binds (as it did on 5.4)."""
    with ebpfsensor.Sensor(provider="audit", log_file=None) as audit_only:
        with ebpfsensor.Sensor(kinds={"net_bind"}, exclude_self=False, log_file=None) as s:
            end = time.monotonic() + 3.5 * STATUS_EVERY_S
            while time.monotonic() < end:  # the audit sensor's ticks run in its poll
                audit_only.poll(0.05)
            # a control: a netlink bind of this process is seen
            with ha.audit_socket() as control:
                control.bind((0, 0))
                fd = control.fileno()
                seen = until(s, lambda seen: any(isinstance(e, NetBind) and e.fd == fd for e in seen))
            seen += s.poll(0.2)
    (ours,) = [e for e in seen if isinstance(e, NetBind) and e.fd == fd]
    assert ours.pid == os.getpid() and ours.family == socket.AF_NETLINK and ours.result == 0
    own = [e for e in seen if isinstance(e, NetBind) and e.pid == os.getpid() and e.family == socket.AF_NETLINK]
    assert own == [ours]


def test_children_are_reported_however_they_start(public_dir: Path) -> None:
    """A fork running this very image (no exec), and a child that drops to
    an unprivileged user, are reported: being started by the sensor gives
    no invisibility."""
    target = public_dir / "target"
    target.write_text("x")
    target.chmod(0o644)
    with ebpfsensor.Sensor(kinds=KINDS, log_file=None, watched_files=(str(target),)) as s:
        pid = os.fork()
        if pid == 0:  # no pytest machinery: the syscall, then out
            try:
                os.close(os.open(target, os.O_RDONLY))
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        (forked,) = wait_for(s, lambda e: isinstance(e, FileOpen) and e.pid == pid and e.path == str(target))
        assert forked.ppid == os.getpid() and forked.comm == Path("/proc/self/comm").read_text().strip()
        child, seen = child_opens(s, target, *SETPRIV)
        (opened,) = [e for e in seen if isinstance(e, FileOpen) and e.pid == child and e.path == str(target)]
        assert opened.uid == NOBODY and opened.result >= 0
        assert [r.rule for r in s.exclusions()] == [ExcludeSelf()]


# run by a child: a sensor with the default exclude_self, then a fork that
# keeps the sensor's maps and programs (its fds) after the sensor's process
# exits. The fork says whether the exited process's entry is gone, then,
# once told, whether a process given that pid is excluded, and reported.
AFTER_EXIT = r"""
import json, os, sys, time
import ebpfsensor
from ebpfsensor._ffi import ffi, lib
from ebpfsensor.events import ProcessExec

s = ebpfsensor.Sensor(kinds={"process_exec"}, log_file=None).start()
fd = s._ebpf.exclusions._fds["excluded_tgids"]

def excluded(pid):
    return lib.bpf_map_lookup_elem(fd, ffi.new("uint32_t *", pid), ffi.new("struct excl_value *")) == 0

sensor_pid = os.getpid()
assert excluded(sensor_pid)
if os.fork():
    os._exit(0)
end = time.monotonic() + 10
while excluded(sensor_pid) and time.monotonic() < end:
    time.sleep(0.01)
print(json.dumps({"sensor": sensor_pid, "fork": os.getpid(), "after_exit": excluded(sensor_pid),
                  "fork_excluded": excluded(os.getpid())}), flush=True)
sys.stdin.readline()
end = time.monotonic() + 10
found = None
while found is None and time.monotonic() < end:
    found = next((e for e in s.poll(0.05) if isinstance(e, ProcessExec) and e.pid == sensor_pid), None)
print(json.dumps({"reused_excluded": excluded(sensor_pid), "argv": found.argv if found else None}), flush=True)
s.close()
"""


def test_a_process_given_the_sensors_pid_later_is_not_excluded() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    helper = subprocess.Popen(
        [sys.executable, "-c", AFTER_EXIT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert helper.stdin is not None and helper.stdout is not None
    fork = 0
    try:
        first = json.loads(helper.stdout.readline())
        fork = first["fork"]
        # the kernel took the entry out at the sensor process's exit; its fork never had one
        assert (first["after_exit"], first["fork_excluded"]) == (False, False)
        helper.wait(10)  # reaped: its pid can be given out again
        for _ in range(5):
            reused = spawn_with_pid(first["sensor"], ["/bin/true", "reused-sensor-pid"])
            if reused is not None:
                break
        else:
            pytest.fail(f"pid {first['sensor']} was taken by other processes five times")
        reused.wait()
        helper.stdin.write("go\n")
        helper.stdin.flush()
        second = json.loads(helper.stdout.readline())
        assert second == {"reused_excluded": False, "argv": ["/bin/true", "reused-sensor-pid"]}
    finally:
        helper.stdin.close()
        helper.stdout.close()
        helper.wait(10)
        # the fork (not our child) ends once its stdin closes, and its programs with it
        deadline = time.monotonic() + 15
        while fork and os.path.exists(f"/proc/{fork}") and time.monotonic() < deadline:
            time.sleep(0.05)
