# SPDX-License-Identifier: Apache-2.0
"""What every event has: the record type numbers and the common fields."""

from __future__ import annotations

import enum
import time
from typing import ClassVar

import msgspec

from .._ffi import lib

__all__ = ["EventType", "ExeHash", "LossWindow", "ProcessInfo", "boot_to_wall_ns"]


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


class ExeHash(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Digests of the file a process executed, as lowercase hex.

    Computed off the delivery path from the very file that was executed
    (``/proc/PID/exe`` while the process lives), and cached by the file's
    identity (device, inode, size, mtime, ctime), so a file rewritten in
    place is hashed again. ``Config.hash_algorithms`` chooses the digests.

    Attributes:
        sha256: the SHA-256 digest; "" when not asked for.
        sha1: the SHA-1 digest; "" unless asked for.
        md5: the MD5 digest; "" unless asked for.
    """

    sha256: str = ""
    sha1: str = ""
    md5: str = ""


class LossWindow(msgspec.Struct, frozen=True, gc=False):
    """When records were lost: between two checks of the loss counters.

    Attributes:
        start_ns: the last check before the loss, CLOCK_BOOTTIME ns.
        end_ns: the check that found it, CLOCK_BOOTTIME ns.
    """

    start_ns: int
    end_ns: int


class ProcessInfo(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A process as the sensor's process table knows it when an event is
    delivered: what it runs, who runs it, where it sits in the tree.

    One immutable snapshot is shared by every event it describes; the table
    makes a new one when something changes (an exec, a hash computed, a
    reparenting, a loss). ``entity_id`` names the process across pid reuse
    and reboots: 12 bytes in URL-safe base64 (16 characters), the pid (4
    bytes, little-endian) and the first 8 bytes of SHA-256 over the boot id
    (the 16 bytes of ``/proc/sys/kernel/random/boot_id``), the pid (4 bytes,
    little-endian) and the start time in clock ticks since boot (8 bytes,
    little-endian; ``start_time_ns // 10_000_000``, as ``/proc/PID/stat``
    gives it). A pid reused within the same clock tick hashes the start time
    in ns instead, followed by a ``0xff`` byte, so two processes never share
    an id.

    Attributes:
        entity_id: the process's stable id (see above).
        pid: the process id (thread group id).
        start_time_ns: when the process started, CLOCK_BOOTTIME ns (clock
            tick resolution when learnt from /proc; see ``source``).
        ppid: the parent's process id, as the table last learnt it
            (reparenting to init or a subreaper is followed).
        parent_entity_id: the parent's ``entity_id``; "" when unknown.
        exe: the absolute path of the executable.
        argv: the arguments (``argv[0]`` first).
        cwd: the working directory at exec (or when read from /proc).
        comm: the command name.
        uid: the real uid.
        euid: the effective uid.
        gid: the real gid.
        egid: the effective gid.
        loginuid: the audit login uid; 4294967295 when unset.
        sessionid: the audit session id; 4294967295 when unset.
        sid: the POSIX session id: the pid of the session leader (0 when
            unknown).
        tty: the controlling terminal (``pts0``); "" for none.
        cgroup_id: the cgroup v2 id.
        container_id: the container the process runs in; "" outside one.
        exe_hash: the executable's digests, once computed; None before
            (and when refused: see ``exe_hash_reason``).
        exe_hash_reason: why ``exe_hash`` is None: ``pending`` (queued),
            ``too_large`` (over ``Config.hash_max_file_bytes``), ``budget``
            (over the files or bytes per second budget), ``gone`` (the process
            ended before its file could be opened), ``replaced`` (the file
            changed after the exec), ``memfd`` (a memfd image), ``unreadable``
            (opening or reading failed), ``disabled``; "" when ``exe_hash`` is
            set.
        source: how the table learnt the process: ``exec``, ``fork`` (a
            forked child that has not exec'd: the parent's image),
            ``task_iter`` (running when the sensor started, read by the
            BPF task iterator), ``procfs`` (read from /proc: it was running
            before the sensor where the task iterator is not used, or its
            lifecycle events were not seen).
        context_incomplete: set when records were lost while the process
            lived (the window); its events, or its descendants', may be
            missing.
    """

    entity_id: str
    pid: int
    start_time_ns: int
    ppid: int
    parent_entity_id: str
    exe: str
    argv: list[str]
    cwd: str
    comm: str
    uid: int
    euid: int
    gid: int
    egid: int
    loginuid: int
    sessionid: int
    sid: int
    tty: str
    cgroup_id: int
    container_id: str
    exe_hash: ExeHash | None = None
    exe_hash_reason: str = ""
    source: str = "exec"
    context_incomplete: LossWindow | None = None


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
        process: the process that made the event, from the sensor's
            process table (exe, argv, cwd, credentials, entity id, hash):
            what it was when the event happened (an event before an exec
            gets the image before it); for a fork, the forking parent. None
            when the table is off (``Config.process_context``) or the
            process is unknown (gone before it could be read).
        parent: the process's parent, likewise.
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
    process: ProcessInfo | None = None
    parent: ProcessInfo | None = None

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
