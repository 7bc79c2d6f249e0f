# SPDX-License-Identifier: Apache-2.0
"""Kernel resources are released on close, on error and on process death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ebpfsensor
from ebpfsensor.host.audit import AUDIT_NOT_EQUAL, AUDIT_PID, list_rules
from ebpfsensor.sources.audit_provider import KEY, AuditProvider

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parents[2]


def bpf_ids(pid: int | str = "self") -> dict[str, set[int]]:
    """The ids of the BPF programs, maps and links a process holds."""
    ids: dict[str, set[int]] = {"prog": set(), "map": set(), "link": set()}
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            text = Path(base, fd).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("prog_id", "map_id", "link_id"):
                ids[key[:-3]].add(int(value))
    return ids


def alive(kind: str, ids: set[int]) -> set[int]:
    if not ids:
        # nothing to look for: before 5.8 (no BPF link ids) bpftool cannot even list links
        return set()
    out = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True, check=True).stdout
    return ids & {item["id"] for item in json.loads(out or "[]")}


def wait_gone(kind: str, ids: set[int], timeout: float = 5.0) -> set[int]:
    end = time.monotonic() + timeout
    while (left := alive(kind, ids)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def test_close_releases_everything() -> None:
    before = bpf_ids()
    s = ebpfsensor.Sensor().start()
    held = bpf_ids()
    progs, maps = held["prog"] - before["prog"], held["map"] - before["map"]
    assert len(progs) >= 3 and len(maps) >= 4
    assert alive("prog", progs) == progs
    s.close()
    s.close()  # idempotent
    assert wait_gone("prog", progs) == set()
    assert wait_gone("map", maps) == set()
    assert bpf_ids() == before


def test_error_during_start_releases_everything() -> None:
    before = bpf_ids()
    bad = ROOT / "build" / "bad-vmlinux.btf"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"\x9f\xeb\x01\x00" + bytes(64))
    # fail-closed: the error is raised, not answered with the fallback
    s = ebpfsensor.Sensor(btf_path=str(bad), fail_closed=True)
    with pytest.raises(ebpfsensor.EbpfSensorError):
        s.start()
    assert bpf_ids() == before


CHILD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import ebpfsensor
s = ebpfsensor.Sensor().start()
print("started", flush=True)
time.sleep(60)
"""


def test_sigkill_leaves_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT / "python")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        held = bpf_ids(child.pid)
        assert held["prog"] and held["map"]
        assert alive("prog", held["prog"]) == held["prog"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout:
            child.stdout.close()
    assert wait_gone("prog", held["prog"]) == set()
    assert wait_gone("map", held["map"]) == set()
    assert wait_gone("link", held["link"]) == set()

    # the audit provider beside eBPF (the perf tier's file kinds) cannot undo
    # its audit rules when killed: the next provider to start removes them
    # (the child's rules carry "pid != child": its own process, excluded)
    def left() -> list[object]:
        return [r for r in list_rules() if r.key == KEY and (AUDIT_PID, AUDIT_NOT_EQUAL, child.pid) in r.fields]

    if left():
        with AuditProvider({"file_open"}):
            assert not left()
    assert not left()


UNPRIVILEGED = """
import sys
sys.path.insert(0, sys.argv[1])
import ebpfsensor
try:
    ebpfsensor.Sensor().start()
except ebpfsensor.PrivilegeError as exc:
    print("PrivilegeError", exc)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_unprivileged_gets_privilege_error() -> None:
    # root without capabilities: what a container or a hardened service gets
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--",
            sys.executable,
            "-c",
            UNPRIVILEGED,
            str(ROOT / "python"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.startswith("PrivilegeError "), out.stdout + out.stderr
    assert "needs root or CAP_BPF+CAP_PERFMON" in out.stdout
