# SPDX-License-Identifier: Apache-2.0
"""Privilege and integrity events from real syscalls, mostly in children."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from typing import Any

import pytest
from _sysevents import Header, check_header, collect, in_child, nr, proc_caps

from ebpfsensor.events import CredChange, Kill, Setsid

pytestmark = pytest.mark.bpf

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
NOBODY = 65534
CAP_NET_RAW = 13


def ids() -> list[int]:
    """uid, euid, suid, fsuid, gid, egid, sgid, fsgid of this process."""
    with open("/proc/self/status") as f:
        rows = dict(line.split(":", 1) for line in f)
    uid, gid = [int(x) for x in rows["Uid"].split()], [int(x) for x in rows["Gid"].split()]
    return uid + gid


def check_cred(e: Any, before: dict[str, Any], after: dict[str, Any], args: tuple[int, int, int]) -> None:
    names = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid")
    assert isinstance(e, CredChange)
    assert [getattr(e, f"old_{n}") for n in names] == before["ids"]
    assert [getattr(e, f"new_{n}") for n in names] == after["ids"]
    caps = (("inheritable", "CapInh"), ("permitted", "CapPrm"), ("effective", "CapEff"))
    assert {c: getattr(e, f"old_cap_{c}") for c, _ in caps} == {c: before["caps"][k] for c, k in caps}
    assert {c: getattr(e, f"new_cap_{c}") for c, _ in caps} == {c: after["caps"][k] for c, k in caps}
    assert (e.arg0, e.arg1, e.arg2) == args


def snapshot() -> dict[str, Any]:
    return {"ids": ids(), "caps": proc_caps()}


def test_setuid_in_child(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        before = snapshot()
        os.setuid(1000)
        return {"before": before, "after": snapshot()}

    out = in_child(child)
    (e,) = collect(sensor, out["header"], (CredChange,), 1)
    check_header(e, out["header"], "setuid", 0)
    assert out["after"]["ids"] == [1000] * 4 + [0] * 4
    # from root to a user: permitted and effective capabilities are gone
    assert out["before"]["caps"]["CapEff"] != 0 and out["after"]["caps"]["CapEff"] == 0
    check_cred(e, out["before"], out["after"], (1000, 0, 0))


def test_setres_and_fs_ids_and_a_refusal(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        steps = [snapshot()]
        os.setresgid(1, 2, 3)
        steps.append(snapshot())
        assert _libc.setfsuid(1234) == 0  # returns the previous fsuid
        steps.append(snapshot())
        os.setresuid(4, 5, 6)
        steps.append(snapshot())
        try:
            os.setuid(0)
        except PermissionError:
            pass
        steps.append(snapshot())
        return {"steps": steps}

    out = in_child(child)
    s = out["steps"]
    resgid, fsuid, resuid, refused = collect(sensor, out["header"], (CredChange,), 4)
    header = {**out["header"], "uid": 4}
    check_header(resgid, {**header, "uid": 0, "gid": 1}, "setresgid", 0)
    check_cred(resgid, s[0], s[1], (1, 2, 3))
    assert s[1]["ids"][4:] == [1, 2, 3, 2]
    check_header(fsuid, {**header, "uid": 0, "gid": 1}, "setfsuid", 0)
    check_cred(fsuid, s[1], s[2], (1234, 0, 0))
    check_header(resuid, {**header, "gid": 1}, "setresuid", 0)
    check_cred(resuid, s[2], s[3], (4, 5, 6))
    assert s[3]["ids"][:4] == [4, 5, 6, 5]
    # as a user, setuid(0) fails: reported with EPERM, nothing changed
    check_header(refused, {**header, "gid": 1}, "setuid", -1)
    check_cred(refused, s[3], s[4], (0, 0, 0))
    assert s[3] == s[4]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def test_capset_drops_a_capability(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        before = snapshot()
        hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)()
        assert _libc.syscall(nr("capget"), ctypes.byref(hdr), data) == 0
        data[0].effective &= ~(1 << CAP_NET_RAW)
        assert _libc.syscall(nr("capset"), ctypes.byref(hdr), data) == 0
        return {"before": before, "after": snapshot()}

    out = in_child(child)
    (e,) = collect(sensor, out["header"], (CredChange,), 1)
    check_header(e, out["header"], "capset", 0)
    check_cred(e, out["before"], out["after"], (0, 0, 0))
    assert e.new_cap_effective == e.old_cap_effective & ~(1 << CAP_NET_RAW)
    assert e.new_cap_permitted == e.old_cap_permitted


def test_kill_tkill_tgkill(sensor: Any) -> None:
    with subprocess.Popen(["sleep", "30"]) as target:
        gone = subprocess.Popen(["true"])
        gone.wait()
        h = Header()
        filtered = sensor.stats().kinds["kill"].filtered
        os.kill(os.getpid(), 0)  # a probe of ourselves: not reported
        os.kill(target.pid, signal.SIGCONT)
        assert _libc.syscall(nr("tkill"), target.pid, signal.SIGCONT) == 0
        assert _libc.syscall(nr("tgkill"), target.pid, target.pid, signal.SIGWINCH) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(gone.pid, signal.SIGTERM)
        target.terminate()
        kill, tkill, tgkill, failed, term = collect(sensor, h, (Kill,), 5)
    check_header(kill, h, "kill", 0)
    assert (kill.target_pid, kill.target_tid, kill.signal) == (target.pid, 0, signal.SIGCONT)
    check_header(tkill, h, "tkill", 0)
    assert (tkill.target_pid, tkill.target_tid, tkill.signal) == (0, target.pid, signal.SIGCONT)
    check_header(tgkill, h, "tgkill", 0)
    assert (tgkill.target_pid, tgkill.target_tid, tgkill.signal) == (target.pid, target.pid, signal.SIGWINCH)
    check_header(failed, h, "kill", -3)  # ESRCH
    assert (failed.target_pid, failed.target_tid, failed.signal) == (gone.pid, 0, signal.SIGTERM)
    check_header(term, h, "kill", 0)
    assert (term.target_pid, term.signal) == (target.pid, signal.SIGTERM)
    assert sensor.stats().kinds["kill"].filtered >= filtered + 1


def test_setsid_twice(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        os.setsid()
        sid = os.getsid(0)
        try:
            os.setsid()
        except PermissionError:
            return {"sid": sid}
        raise AssertionError("a session leader could call setsid() again")

    out = in_child(child)
    first, second = collect(sensor, out["header"], (Setsid,), 2)
    check_header(first, out["header"], "setsid", out["pid"])
    assert out["sid"] == out["pid"]
    check_header(second, out["header"], "setsid", -1)  # EPERM
    assert second.errno == 1
