# SPDX-License-Identifier: Apache-2.0
"""Mount tracefs, bpffs and securityfs when they are missing and we may."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("ebpfsensor")

TRACEFS = "/sys/kernel/tracing"
BPFFS = "/sys/fs/bpf"


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


def ensure_tracefs() -> str | None:
    """Make tracefs available (classic tracepoints need its event ids).

    Returns None when it is there, or why it is not.
    """
    for path in (TRACEFS, "/sys/kernel/debug/tracing"):
        if os.path.isdir(os.path.join(path, "events")):
            return None
    reason = _mount_or_why("nodev", TRACEFS, "tracefs", "tracefs")
    if reason is None:
        return None
    log.warning("%s; classic tracepoint hooks are unavailable (mount it as root to enable them)", reason)
    return reason


def ensure_bpffs() -> str | None:
    """Make bpffs available (only needed to pin objects). None, or why not."""
    try:
        if os.statvfs(BPFFS) and _is_bpffs(BPFFS):
            return None
    except OSError:
        pass
    return _mount_or_why("bpf", BPFFS, "bpf", "bpffs")


SECURITYFS = "/sys/kernel/security"


def ensure_securityfs() -> str | None:
    """Make securityfs available (it lists the active LSMs). None, or why not."""
    if os.path.exists(os.path.join(SECURITYFS, "lsm")):
        return None
    return _mount_or_why("securityfs", SECURITYFS, "securityfs", "securityfs")


def _is_bpffs(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1:3] == [path, "bpf"] for line in f)
