# SPDX-License-Identifier: Apache-2.0
"""Entity ids: a process's name across pid reuse and reboots.

``entity_id`` is 12 bytes in URL-safe base64 (16 characters): the pid (4
bytes, little-endian), then the first 8 bytes of SHA-256 over the boot id
(the 16 bytes of /proc/sys/kernel/random/boot_id), the pid (4 bytes) and the
start time in clock ticks since boot (8 bytes), both little-endian. The pid
in front lets the table find a process by its id without an index of its
own; the hash makes it unique across pid reuse and reboots. Clock ticks,
because that is the resolution
/proc gives: a process read from /proc before the sensor saw its events and
the same process seen through its events get the same id, as do the
processes a restarted sensor finds running. A pid reused within the same
tick (forced through ns_last_pid, or a very small pid_max) would collide:
the process table then hashes the start time in ns followed by a 0xff byte
for the newcomer (:func:`entity_id` with ``exact=True``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid

from ._procfs import ticks_of

__all__ = ["BOOT_ID_PATH", "boot_id", "entity_id", "pid_of"]

#: the kernel's random id of this boot
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def boot_id(path: str = BOOT_ID_PATH) -> bytes:
    """This boot's id, 16 bytes (zeros where the kernel has none)."""
    try:
        with open(path) as f:
            return uuid.UUID(f.read().strip()).bytes
    except (OSError, ValueError):
        return bytes(16)


def entity_id(boot: bytes, pid: int, start_time_ns: int, *, exact: bool = False) -> str:
    """The entity id of a process (see the module's docstring).

    Args:
        boot: :func:`boot_id`.
        pid: the process id.
        start_time_ns: its start, CLOCK_BOOTTIME ns.
        exact: hash the start time in ns, not ticks: for a pid reused within
            one tick.
    """
    start = start_time_ns if exact else ticks_of(start_time_ns)
    pid_le = pid.to_bytes(4, "little")
    digest = hashlib.sha256(boot + pid_le + start.to_bytes(8, "little") + (b"\xff" if exact else b"")).digest()
    return base64.urlsafe_b64encode(pid_le + digest[:8]).decode()


def pid_of(entity: str) -> int | None:
    """The pid an entity id names, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(entity)
    except (ValueError, TypeError):
        return None
    return int.from_bytes(raw[:4], "little") if len(raw) == 12 else None
