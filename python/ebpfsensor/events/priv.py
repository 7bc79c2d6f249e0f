# SPDX-License-Identifier: Apache-2.0
"""Privilege and integrity events: credentials, signals, ptrace, memfd,
bpf(), modules, mounts."""

from __future__ import annotations

from ._base import EventType, _SyscallEvent

__all__ = ["BpfCall", "CredChange", "Kill", "MemfdCreate", "ModuleLoad", "Mount", "Ptrace", "Setsid", "Umount"]


class CredChange(_SyscallEvent, frozen=True, gc=False, tag="cred_change"):
    """A credential change: setuid, setgid, setreuid, setregid, setresuid,
    setresgid, setfsuid, setfsgid or capset (``syscall_nr`` tells which).

    ``old_*``/``new_*`` are the task's ids and capability sets before and
    after the call; they differ only when it changed something.

    Attributes:
        result: 0 or -errno; setfsuid/setfsgid return the previous id, never
            an error.
        old_uid: the task's real uid before the call.
        old_euid: the task's effective uid before the call.
        old_suid: the task's saved set-user-id before the call.
        old_fsuid: the task's filesystem uid before the call.
        old_gid: the task's real gid before the call.
        old_egid: the task's effective gid before the call.
        old_sgid: the task's saved set-group-id before the call.
        old_fsgid: the task's filesystem gid before the call.
        new_uid: the task's real uid after the call.
        new_euid: the task's effective uid after the call.
        new_suid: the task's saved set-user-id after the call.
        new_fsuid: the task's filesystem uid after the call.
        new_gid: the task's real gid after the call.
        new_egid: the task's effective gid after the call.
        new_sgid: the task's saved set-group-id after the call.
        new_fsgid: the task's filesystem gid after the call.
        old_cap_inheritable: the task's inheritable capability set before the call, a bit mask (bit N is capability N).
        old_cap_permitted: the task's permitted capability set before the call, a bit mask (bit N is capability N).
        old_cap_effective: the task's effective capability set before the call, a bit mask (bit N is capability N).
        new_cap_inheritable: the task's inheritable capability set after the call, a bit mask (bit N is capability N).
        new_cap_permitted: the task's permitted capability set after the call, a bit mask (bit N is capability N).
        new_cap_effective: the task's effective capability set after the call, a bit mask (bit N is capability N).
        arg0: the first id asked for, in argument order (4294967295 is -1,
            "leave unchanged"); 0 when unused and for capset.
        arg1: the second id asked for, as ``arg0``.
        arg2: the third id asked for, as ``arg0``.
    """

    event_type = EventType.CRED_CHANGE
    record = "cred_event"

    old_uid: int
    old_euid: int
    old_suid: int
    old_fsuid: int
    old_gid: int
    old_egid: int
    old_sgid: int
    old_fsgid: int
    new_uid: int
    new_euid: int
    new_suid: int
    new_fsuid: int
    new_gid: int
    new_egid: int
    new_sgid: int
    new_fsgid: int
    old_cap_inheritable: int
    old_cap_permitted: int
    old_cap_effective: int
    new_cap_inheritable: int
    new_cap_permitted: int
    new_cap_effective: int
    arg0: int
    arg1: int
    arg2: int


class Kill(_SyscallEvent, frozen=True, gc=False, tag="kill"):
    """A signal sent to another process: kill, tkill or tgkill.

    Signal 0 and signals to the caller's own process are not reported
    (counted as filtered).

    Attributes:
        target_pid: the pid (kill: also 0 or negative for a process group,
            -1 for all) or tgkill's thread group, as the caller wrote it, in
            its pid namespace; 0 for tkill.
        target_tid: the thread of tkill and tgkill, as the caller wrote it,
            in its pid namespace; 0 for kill.
        signal: the signal number.
    """

    event_type = EventType.KILL
    record = "kill_event"

    target_pid: int
    target_tid: int
    signal: int


class Setsid(_SyscallEvent, frozen=True, gc=False, tag="setsid"):
    """setsid(2): a new session.

    Attributes:
        result: the new session id, or -EPERM.
    """

    event_type = EventType.SETSID
    record = "setsid_event"


class Ptrace(_SyscallEvent, frozen=True, gc=False, tag="ptrace"):
    """ptrace(2) requests that attach to or change a tracee: TRACEME,
    ATTACH, SEIZE, POKETEXT/POKEDATA/POKEUSER, SETREGS/SETFPREGS (x86),
    SETREGSET. Reads and stepping (PEEK*, GETREGS, CONT, ...) are counted as
    filtered.

    Attributes:
        request: the request (PTRACE_ATTACH, PTRACE_POKEDATA, ...) as its
            number.
        addr: the call's ``addr`` argument.
        data: the call's ``data`` argument.
        target_pid: the call's ``pid`` argument (the tracee), in the caller's
            pid namespace.
    """

    event_type = EventType.PTRACE
    record = "ptrace_event"

    request: int
    addr: int
    data: int
    target_pid: int


class MemfdCreate(_SyscallEvent, frozen=True, gc=False, tag="memfd_create"):
    """memfd_create(2): an anonymous file.

    Attributes:
        result: the new file's fd, or -errno.
        flags: the MFD_* flags.
        name: the name the caller gave the file (the kernel shows it as
            ``memfd:NAME``).
    """

    event_type = EventType.MEMFD_CREATE
    record = "memfd_event"

    flags: int
    name: str


class BpfCall(_SyscallEvent, frozen=True, gc=False, tag="bpf_call"):
    """bpf(2), every command but map element access (lookups, updates,
    deletes, batches: counted as filtered).

    Attributes:
        cmd: the command (BPF_MAP_CREATE 0, BPF_PROG_LOAD 5, ...).
        prog_type: BPF_PROG_LOAD: the program's type (BPF_PROG_TYPE_*);
            otherwise 0.
        insn_cnt: BPF_PROG_LOAD: the program's number of instructions;
            otherwise 0.
        attr_size: the call's size argument (the size of its ``attr``).
        prog_name: BPF_PROG_LOAD: the program's name (at most
            PROG_NAME_LEN - 1, 15, bytes); otherwise "".
    """

    event_type = EventType.BPF_CALL
    record = "bpf_event"

    cmd: int
    prog_type: int
    insn_cnt: int
    attr_size: int
    prog_name: str


class ModuleLoad(_SyscallEvent, frozen=True, gc=False, tag="module_load"):
    """init_module(2)/finit_module(2).

    Attributes:
        image_len: init_module: the image's size in bytes; 0 for
            finit_module.
        fd: finit_module: the module file's fd; -1 for init_module.
        flags: finit_module's MODULE_INIT_* flags; 0 for init_module.
        name: the module's own name, known once the kernel has parsed the
            image ("" when the call failed before that).
        path_truncated: ``path`` is incomplete: too deep or too long.
        path: finit_module: the file's absolute path, resolved from the
            kernel's dentries; "" for init_module.
        args: the module's parameter string.
    """

    event_type = EventType.MODULE_LOAD
    record = "module_event"

    image_len: int
    fd: int
    flags: int
    name: str
    path_truncated: bool
    path: str
    args: str


class Mount(_SyscallEvent, frozen=True, gc=False, tag="mount"):
    """mount(2).

    Attributes:
        flags: the MS_* flags.
        path_truncated: ``path`` is incomplete: too deep or too long.
        source: the source as the caller gave it ("" for a NULL pointer).
        target: the target as the caller gave it, possibly relative ("" for
            a NULL pointer).
        fstype: the filesystem type as the caller gave it ("" for a NULL
            pointer).
        path: the target made absolute: the caller's root (for a target
            starting with "/", so a chroot shows) or working directory,
            resolved from the kernel's structures, then the string as given
            ("." and ".." are not folded); "" for no target.
    """

    event_type = EventType.MOUNT
    record = "mount_event"

    flags: int
    path_truncated: bool
    source: str
    target: str
    fstype: str
    path: str


class Umount(_SyscallEvent, frozen=True, gc=False, tag="umount"):
    """umount2(2).

    Attributes:
        flags: the MNT_* and UMOUNT_* flags.
        path_truncated: ``path`` is incomplete: too deep or too long.
        target: the target as the caller gave it.
        path: the target made absolute as for :class:`Mount`.
    """

    event_type = EventType.UMOUNT
    record = "umount_event"

    flags: int
    path_truncated: bool
    target: str
    path: str
