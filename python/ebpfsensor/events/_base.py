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

    Attributes:
        ts_ns: when the event was recorded, CLOCK_BOOTTIME ns
            (:func:`boot_to_wall_ns` converts it).
        cgroup_id: the task's cgroup v2 id (the inode number of its cgroup
            directory).
        start_time_ns: when the process (its thread-group leader) started,
            CLOCK_BOOTTIME ns; ``pid`` and ``start_time_ns`` together name a
            process.
        pid: the process id (thread group id).
        tid: the thread id.
        ppid: the parent's process id (the real parent's thread group id).
        uid: the task's real uid.
        gid: the task's real gid.
        comm: the thread's command name as the kernel keeps it (at most
            TASK_COMM_LEN - 1, 15, bytes).
        container_id: the id of the container the process runs in (docker,
            containerd, cri-o, podman naming), from its cgroup path; ""
            outside one.
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

    Attributes:
        result: the syscall's return value, a negative errno on failure (see
            ``errno``).
        syscall_nr: this architecture's syscall number
            (``ebpfsensor.host.syscalls.syscall_name`` names it).
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
