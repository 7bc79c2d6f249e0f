# SPDX-License-Identifier: Apache-2.0
"""The mount table, read in one place, and the kernel filesystems the sensor
mounts when they are missing and it may (tracefs, bpffs, securityfs)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
from typing import NamedTuple

from .paths import MOUNTINFO, MOUNTS, SECURITYFS, TRACEFS, TRACEFS_DEBUGFS

__all__ = [
    "Mount",
    "ensure_securityfs",
    "ensure_tracefs",
    "filesystem_mounted",
    "find_mount",
    "mounts",
    "superblock_dev",
    "tracefs_events",
]

log = logging.getLogger("ebpfsensor")


class Mount(NamedTuple):
    """One line of /proc/self/mounts."""

    source: str
    target: str
    fstype: str


def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of the mount tables."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mounts() -> list[Mount]:
    """The mounts of this process's mount namespace; [] when unreadable."""
    out: list[Mount] = []
    try:
        with open(MOUNTS) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2:
                    out.append(Mount(_unescape(parts[0]), _unescape(parts[1]), parts[2]))
    except OSError:
        pass
    return out


def find_mount(fstype: str) -> str | None:
    """The first mount point of a filesystem type (``cgroup2``), or None."""
    return next((m.target for m in mounts() if m.fstype == fstype), None)


def filesystem_mounted(fstype: str, target: str | None = None) -> bool:
    """A filesystem of this type is mounted (at target, when given)."""
    return any(m.fstype == fstype and (target is None or m.target == target) for m in mounts())


def superblock_dev(path: str) -> int | None:
    """The kernel's s_dev of the filesystem holding path (user-space dev_t
    encoding), from /proc/self/mountinfo; None when it cannot be read.

    It differs from stat(2)'s st_dev where the filesystem reports another
    device per file: overlayfs whose layers are on different filesystems
    (a pseudo device per lower layer) and btrfs subvolumes. The kernel's
    inode of an executable carries the superblock's.
    """
    real = os.path.realpath(path)
    best: tuple[int, int] | None = None
    best_len = -1
    try:
        with open(MOUNTINFO) as f:
            for line in f:
                fields = line.split()
                point = _unescape(fields[4])
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                # the longest mount point holding the path; of equals, the last mounted
                if inside and len(point) >= best_len:
                    major, _, minor = fields[2].partition(":")
                    best, best_len = (int(major), int(minor)), len(point)
    except (OSError, IndexError, ValueError):
        return None
    return os.makedev(*best) if best else None


def _mount(source: str, target: str, fstype: str) -> str | None:
    """mount(2); None on success, else the reason."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) == 0:
        return None
    return os.strerror(ctypes.get_errno())


def _mount_or_why(source: str, target: str, fstype: str, name: str) -> str | None:
    """Mount a missing filesystem; None on success, else why it is missing."""
    why = _mount(source, target, fstype)
    if why is None:
        log.info("mounted %s on %s", name, target)
        return None
    return f"{name} is not mounted and mounting it on {target} failed: {why}"


def tracefs_events() -> str | None:
    """The tracefs ``events`` directory in use, or None when none is mounted."""
    for path in (TRACEFS, TRACEFS_DEBUGFS):
        events = os.path.join(path, "events")
        if os.path.isdir(events):
            return events
    return None


def ensure_tracefs() -> str | None:
    """Make tracefs available (classic tracepoints need its event ids).

    Returns None when it is there, or why it is not.
    """
    if tracefs_events() is not None:
        return None
    reason = _mount_or_why("nodev", TRACEFS, "tracefs", "tracefs")
    if reason is None:
        return None
    log.warning("%s; classic tracepoint hooks are unavailable (mount it as root to enable them)", reason)
    return reason


def ensure_securityfs() -> str | None:
    """Make securityfs available (it lists the active LSMs). None, or why not."""
    if os.path.exists(os.path.join(SECURITYFS, "lsm")):
        return None
    return _mount_or_why("securityfs", SECURITYFS, "securityfs", "securityfs")
