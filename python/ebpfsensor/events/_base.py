# SPDX-License-Identifier: Apache-2.0
"""What every event has: the record type numbers and the common fields."""

from __future__ import annotations

import enum
import time
from typing import ClassVar

import msgspec

from .._ffi import lib

__all__ = ["EventType", "boot_to_wall_ns"]


class EventType(enum.IntEnum):
    """Record type numbers, as in ``enum event_type``; they never change."""

    EXEC = lib.EVENT_EXEC
    FORK = lib.EVENT_FORK
    EXIT = lib.EVENT_EXIT
    FILE_OPEN = lib.EVENT_FILE_OPEN
    FILE_CREATE = lib.EVENT_FILE_CREATE
    FILE_UNLINK = lib.EVENT_FILE_UNLINK
    DIR_CREATE = lib.EVENT_DIR_CREATE
    FILE_RENAME = lib.EVENT_FILE_RENAME
    FILE_CHMOD = lib.EVENT_FILE_CHMOD
    FILE_CHOWN = lib.EVENT_FILE_CHOWN
    FILE_LINK = lib.EVENT_FILE_LINK
    FILE_SYMLINK = lib.EVENT_FILE_SYMLINK
    NET_CONNECT = lib.EVENT_NET_CONNECT
    NET_ACCEPT = lib.EVENT_NET_ACCEPT
    NET_BIND = lib.EVENT_NET_BIND
    NET_LISTEN = lib.EVENT_NET_LISTEN
    CRED_CHANGE = lib.EVENT_CRED_CHANGE
    KILL = lib.EVENT_KILL
    SETSID = lib.EVENT_SETSID
    PTRACE = lib.EVENT_PTRACE
    MEMFD_CREATE = lib.EVENT_MEMFD_CREATE
    BPF_CALL = lib.EVENT_BPF_CALL
    MODULE_LOAD = lib.EVENT_MODULE_LOAD
    MOUNT = lib.EVENT_MOUNT
    UMOUNT = lib.EVENT_UMOUNT


class _Event(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="kind"):
    """Fields every event has; ``kind`` is the tag.

    ``container_id`` is the id of the container the process runs in (docker,
    containerd, cri-o, podman naming), from its cgroup path; "" outside one.
    """

    event_type: ClassVar[EventType]
    record: ClassVar[str]

    ts_ns: int
    cgroup_id: int
    start_time_ns: int
    pid: int
    tid: int
    ppid: int
    uid: int
    gid: int
    comm: str
    container_id: str = ""

    @property
    def kind(self) -> str:
        """The event's kind, as tagged in JSON and msgpack ("process_exec", ...)."""
        return self.__struct_config__.tag  # type: ignore[return-value]


class _SyscallEvent(_Event, frozen=True, gc=False):
    """Fields of every event that comes from a syscall.

    ``result`` is the syscall's return value, a negative errno on failure;
    ``syscall_nr`` this architecture's syscall number.
    """

    result: int
    syscall_nr: int

    @property
    def errno(self) -> int:
        """The error number when the syscall failed, else 0."""
        return -self.result if self.result < 0 else 0


def boot_to_wall_ns(boot_ns: int) -> int:
    """Convert a CLOCK_BOOTTIME timestamp to Unix time in nanoseconds."""
    return boot_ns + time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
