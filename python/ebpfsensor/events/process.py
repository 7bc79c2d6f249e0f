# SPDX-License-Identifier: Apache-2.0
"""Process lifecycle events: exec, fork, exit."""

from __future__ import annotations

from ._base import EventType, _Event

__all__ = ["ProcessExec", "ProcessExit", "ProcessFork"]


class ProcessExec(_Event, frozen=True, gc=False, tag="process_exec"):
    """A process replaced its image (execve/execveat).

    ``exe`` is the absolute path of the new image resolved from the kernel's
    dentries, ``cwd`` the working directory, ``parent_exe`` the parent's
    image; ``argv`` as the kernel copied it (``argv_truncated`` when longer
    than ARGV_LEN). ``loginuid``/``sessionid`` are 4294967295 when unset.
    Fileless execution shows as ``exe_memfd`` (the image is a memfd) or
    ``exe_deleted`` (its file was deleted before the exec); see ``fileless``.
    Namespace fields are the namespaces' inode numbers.
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

    The common fields describe the parent. ``clone_flags`` is reconstructed
    from what the child shares with its parent (CLONE_VM, CLONE_FS,
    CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD, CLONE_NEW*); 0 where the hook
    in use cannot see the child (the classic tracepoint variant).
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

    ``exit_code`` is the argument of exit() and 0 when a signal ended the
    process; ``exit_signal`` is that signal, 0 for a normal exit.
    """

    event_type = EventType.EXIT
    record = "exit_event"

    duration_ns: int
    exit_code: int
    exit_signal: int
    core_dumped: bool
    is_thread: bool
