# SPDX-License-Identifier: Apache-2.0
"""Processes as /proc shows them: the start-up snapshot where the kernel
has no task iterator, and the processes whose lifecycle events the table did
not see.

/proc gives a start time in clock ticks (``/proc/PID/stat`` field 22), not
the kernel's nanoseconds: a process read here is matched with its events by
pid and tick (:func:`ticks_of`), and its exact start time is taken from the
first event that names it. :class:`ProcSnapshot` is also what the task
iterator's snapshot (``_taskiter``) gives, with the exact start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .._text import fsdecode
from ..host.containers import find_cgroup2_root, parse_container_id

__all__ = ["NS_PER_TICK", "ProcSnapshot", "pids", "read_ppid", "read_process", "snapshot", "ticks_of", "tty_name"]

#: /proc's clock ticks (USER_HZ, 100 on every architecture Linux runs) in ns:
#: the kernel's nsec_to_clock_t() divides start_boottime by this
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
UNKNOWN_ID = 0xFFFFFFFF
_ARGV_MAX = 8191  # ARGV_LEN - 1, as the exec record cuts argv


def ticks_of(start_time_ns: int) -> int:
    """A start time in /proc's clock ticks, as /proc/PID/stat gives it."""
    return start_time_ns // NS_PER_TICK


class ProcSnapshot(NamedTuple):
    """What /proc says of a process (its thread-group leader), or the task
    iterator (the fields after ``kernel_thread`` say which, and what only
    the iterator knows).

    Attributes:
        cgroup_path: the cgroup v2 path ("" from the task iterator, which
            gives the cgroup id).
        start_ns: the exact start, CLOCK_BOOTTIME ns (the task iterator);
            0 when known to the tick only (/proc).
        tty: the terminal's name (the task iterator); None: from ``tty_nr``.
        exited: every thread has exited (a zombie not reaped yet).
        exe_memfd: the image is a memfd.
        source: ``procfs`` or ``task_iter``.
    """

    pid: int
    start_ticks: int
    ppid: int
    sid: int
    tty_nr: int
    comm: str
    exe: str
    argv: list[str]
    cwd: str
    uid: int
    euid: int
    gid: int
    egid: int
    loginuid: int
    sessionid: int
    cgroup_path: str
    container_id: str
    cgroup_id: int
    kernel_thread: bool
    start_ns: int = 0
    tty: str | None = None
    exited: bool = False
    exe_memfd: bool = False
    source: str = "procfs"

    @property
    def start_time_ns(self) -> int:
        """The start as the table keys it: exact, or the tick's first ns."""
        return self.start_ns or self.start_ticks * NS_PER_TICK


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def parse_stat(raw: bytes) -> tuple[str, int, int, int, int, int] | None:
    """comm, ppid, session id, tty_nr, start ticks and flags from /proc/PID/stat."""
    open_, close = raw.find(b"("), raw.rfind(b")")
    if open_ < 0 or close < open_:
        return None
    fields = raw[close + 2 :].split()
    try:
        # fields[n - 3] is stat field n: 4 ppid, 6 session, 7 tty_nr, 9 flags, 22 starttime
        return (
            fsdecode(raw[open_ + 1 : close]),
            int(fields[1]),
            int(fields[3]),
            int(fields[4]),
            int(fields[19]),
            int(fields[6]),
        )
    except (IndexError, ValueError):
        return None


def read_stat(pid: int) -> tuple[str, int, int, int, int, int] | None:
    """:func:`parse_stat` of /proc/PID/stat, or None when the process is gone."""
    raw = _read(f"/proc/{pid}/stat")
    return parse_stat(raw) if raw else None


def _ids(raw: bytes) -> tuple[int, int, int, int, bool]:
    """uid, euid, gid, egid from /proc/PID/status, and whether the whole
    process has exited (a zombie leader with no thread left)."""
    uid = euid = gid = egid = UNKNOWN_ID
    zombie = threads = False
    for line in raw.split(b"\n"):
        if line.startswith(b"State:"):
            zombie = line.split()[1:2] == [b"Z"]
        elif line.startswith(b"Uid:"):
            parts = line.split()
            uid, euid = int(parts[1]), int(parts[2])
        elif line.startswith(b"Gid:"):
            parts = line.split()
            gid, egid = int(parts[1]), int(parts[2])
        elif line.startswith(b"Threads:"):
            # a leader that exited before its threads is a zombie too
            threads = int(line.split()[1]) > 1
            break
    return uid, euid, gid, egid, zombie and not threads


def _int(path: str) -> int:
    raw = _read(path)
    try:
        return int(raw) if raw else UNKNOWN_ID
    except ValueError:
        return UNKNOWN_ID


_PF_KTHREAD = 0x00200000
_cgroot: list[str | None] = []


def _cgroup(pid: int) -> tuple[str, str, int]:
    """The cgroup v2 path, the container id and the cgroup id of a process."""
    raw = _read(f"/proc/{pid}/cgroup") or b""
    for line in raw.split(b"\n"):
        if line.startswith(b"0::"):
            path = fsdecode(line[3:])
            if not _cgroot:
                _cgroot.append(find_cgroup2_root())
            root = _cgroot[0]
            try:
                cgroup_id = os.stat(os.path.join(root, path.lstrip("/"))).st_ino if root else 0
            except OSError:
                cgroup_id = 0
            return path, parse_container_id(path), cgroup_id
    return "", "", 0


def read_process(pid: int, start_ticks: int | None = None) -> ProcSnapshot | None:
    """A process as /proc shows it, or None when it is gone (or, with
    start_ticks, when the pid now names another process).

    The start time is read first and again last, so that a pid reused while
    it was being read is noticed and not mixed into one snapshot.
    """
    base = f"/proc/{pid}"
    stat = read_stat(pid)
    if stat is None or (start_ticks is not None and stat[4] != start_ticks):
        return None
    comm, ppid, sid, tty_nr, ticks, flags = stat
    status = _read(f"{base}/status")
    if status is None:
        return None
    kthread = bool(flags & _PF_KTHREAD)
    cmdline = b"" if kthread else (_read(f"{base}/cmdline") or b"")[:_ARGV_MAX]
    argv = [fsdecode(a) for a in cmdline.removesuffix(b"\0").split(b"\0")] if cmdline else []
    exe = "" if kthread else _readlink(f"{base}/exe").removesuffix(" (deleted)")
    cwd = "" if kthread else _readlink(f"{base}/cwd")
    uid, euid, gid, egid, exited = _ids(status)
    cgroup_path, container_id, cgroup_id = _cgroup(pid)
    loginuid, sessionid = _int(f"{base}/loginuid"), _int(f"{base}/sessionid")
    again = read_stat(pid)
    if again is None or again[4] != ticks:
        return None
    return ProcSnapshot(
        pid,
        ticks,
        ppid,
        sid,
        tty_nr,
        comm,
        exe,
        argv,
        cwd,
        uid,
        euid,
        gid,
        egid,
        loginuid,
        sessionid,
        cgroup_path,
        container_id,
        cgroup_id,
        kthread,
        exited=exited,
        exe_memfd=exe.startswith("/memfd:"),
    )


def read_ppid(pid: int, start_ticks: int) -> int | None:
    """The current parent of a process (after a reparenting), or None when
    the process is gone."""
    stat = read_stat(pid)
    if stat is None or stat[4] != start_ticks:
        return None
    return stat[1]


def pids() -> Iterator[int]:
    """Every process id /proc lists now (thread-group leaders only)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def snapshot(only: Iterable[int] | None = None) -> dict[int, ProcSnapshot]:
    """Every process /proc lists now (or those of only that it has), by pid."""
    snaps: dict[int, ProcSnapshot] = {}
    for pid in pids() if only is None else only:
        snap = read_process(pid)
        if snap is not None:
            snaps[pid] = snap
    return snaps


def tty_name(tty_nr: int) -> str:
    """The kernel's tty->name (as exec records give it) for a device number."""
    if tty_nr == 0:
        return ""
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:  # UNIX98 pty slaves
        return f"pts{(major - 136) * 256 + minor}"
    target = _readlink(f"/sys/dev/char/{major}:{minor}")
    return os.path.basename(target) if target else ""
