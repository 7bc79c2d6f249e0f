# SPDX-License-Identifier: Apache-2.0
"""Process lifecycle events: exec, fork, exit."""

from __future__ import annotations

from ._base import EventType, _Event

__all__ = ["ProcessExec", "ProcessExit", "ProcessFork"]


class ProcessExec(_Event, frozen=True, gc=False, tag="process_exec"):
    """A process replaced its image (execve/execveat).

    Fileless execution shows as ``exe_memfd`` (the image is a memfd) or
    ``exe_deleted`` (its file was deleted before the exec); see ``fileless``.
    Paths are absolute, resolved from the kernel's dentries and mounts up to
    the root of the process's mount namespace.

    Attributes:
        euid: the effective uid.
        egid: the effective gid.
        suid: the saved set-user-id.
        sgid: the saved set-group-id.
        fsuid: the filesystem uid.
        fsgid: the filesystem gid.
        loginuid: the audit login uid; 4294967295 when unset (always on a
            kernel without audit support).
        sessionid: the audit session id; 4294967295 when unset (always on a
            kernel without audit support).
        pid_ns: the pid namespace's inode number.
        mnt_ns: the mount namespace's inode number.
        net_ns: the network namespace's inode number.
        user_ns: the user namespace's inode number.
        old_tid: the thread id before the exec; differs from ``tid`` when a
            thread other than the leader exec'd.
        argv_truncated: ``argv`` was longer than ARGV_LEN - 1 (8191) bytes
            and is cut there, or could not be read.
        exe_truncated: ``exe`` is incomplete: deeper than MAX_PATH_DEPTH (64)
            components or longer than PATH_LEN - 1 (4095) bytes.
        cwd_truncated: ``cwd`` is incomplete, as for ``exe_truncated``.
        parent_exe_truncated: ``parent_exe`` is incomplete, as for
            ``exe_truncated``.
        exe_deleted: the image's file has no links left: it was deleted
            before the exec (fileless execution).
        exe_memfd: the image is a memfd (``memfd:NAME``): fileless execution.
        parent_comm: the parent's command name.
        tty: the controlling terminal's name as the kernel has it (``pts0``,
            ``tty1``); "" for none.
        exe: the absolute path of the new image, resolved from the kernel's
            dentries.
        cwd: the working directory, absolute.
        parent_exe: the parent's image, absolute; "" when the parent has none
            (a kernel thread, or a parent that is exiting).
        argv: the arguments as the kernel copied them to the new image's
            stack (``argv[0]`` first).
    """

    event_type = EventType.EXEC
    record = "exec_event"

    euid: int
    egid: int
    suid: int
    sgid: int
    fsuid: int
    fsgid: int
    loginuid: int
    sessionid: int
    pid_ns: int
    mnt_ns: int
    net_ns: int
    user_ns: int
    old_tid: int
    argv_truncated: bool
    exe_truncated: bool
    cwd_truncated: bool
    parent_exe_truncated: bool
    exe_deleted: bool
    exe_memfd: bool
    parent_comm: str
    tty: str
    exe: str
    cwd: str
    parent_exe: str
    argv: list[str]

    @property
    def fileless(self) -> bool:
        """The image has no file on disk: a memfd, or a deleted file."""
        return self.exe_memfd or self.exe_deleted


class ProcessFork(_Event, frozen=True, gc=False, tag="process_fork"):
    """A process created a child (fork/vfork/clone without CLONE_THREAD).

    The common fields describe the parent.

    Attributes:
        child_start_time_ns: when the child started, CLOCK_BOOTTIME ns; 0
            where the hook in use cannot see the child (the classic
            tracepoint variant).
        clone_flags: reconstructed from what the child shares with its parent
            (CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD,
            CLONE_NEW*, with the kernel's values); 0 where the hook in use
            cannot see the child (the classic tracepoint variant).
        child_pid: the child's process id (its thread group id; where the
            hook cannot see the child, its thread id).
        child_tid: the child's thread id.
    """

    event_type = EventType.FORK
    record = "fork_event"

    child_start_time_ns: int
    clone_flags: int
    child_pid: int
    child_tid: int


class ProcessExit(_Event, frozen=True, gc=False, tag="process_exit"):
    """A process ended (its last thread exited), or a thread did when
    thread reporting is on (``is_thread``).

    Attributes:
        duration_ns: from the process's start (``start_time_ns``) to the
            exit, ns.
        exit_code: the argument of exit(); 0 when a signal ended the process.
        exit_signal: the signal that ended the process; 0 for a normal exit.
        core_dumped: the process dumped core.
        is_thread: a thread ended and the process lives on (reported only
            when thread reporting is on).
    """

    event_type = EventType.EXIT
    record = "exit_event"

    duration_ns: int
    exit_code: int
    exit_signal: int
    core_dumped: bool
    is_thread: bool
