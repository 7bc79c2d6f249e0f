# SPDX-License-Identifier: Apache-2.0
"""Privilege and integrity events: credentials, signals, ptrace, memfd,
bpf(), modules, mounts."""

from __future__ import annotations

from ._base import EventType, _SyscallEvent

__all__ = ["BpfCall", "CredChange", "Kill", "MemfdCreate", "ModuleLoad", "Mount", "Ptrace", "Setsid", "Umount"]


class CredChange(_SyscallEvent, frozen=True, gc=False, tag="cred_change"):
    """A credential change: setuid, setgid, setreuid, setregid, setresuid,
    setresgid, setfsuid, setfsgid or capset (``syscall_nr`` tells which).

    ``old_*``/``new_*`` are the task's ids and capability sets (bit masks)
    before and after the call; they differ only when it changed something.
    ``arg0``..``arg2`` are the ids asked for, in argument order
    (4294967295 is -1, "leave unchanged"); unused ones and capset's are 0.
    setfsuid/setfsgid return the previous id, never an error.
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

    ``target_pid`` is the pid (kill: also 0 or negative for a process group,
    -1 for all) or tgkill's thread group, ``target_tid`` the thread of tkill
    and tgkill; both as the caller wrote them, in its pid namespace. Signal 0
    and signals to the caller's own process are not reported (counted as
    filtered).
    """

    event_type = EventType.KILL
    record = "kill_event"

    target_pid: int
    target_tid: int
    signal: int


class Setsid(_SyscallEvent, frozen=True, gc=False, tag="setsid"):
    """setsid(2): ``result`` is the new session id, or -EPERM."""

    event_type = EventType.SETSID
    record = "setsid_event"


class Ptrace(_SyscallEvent, frozen=True, gc=False, tag="ptrace"):
    """ptrace(2) requests that attach to or change a tracee: TRACEME,
    ATTACH, SEIZE, POKETEXT/POKEDATA/POKEUSER, SETREGS/SETFPREGS (x86),
    SETREGSET. Reads and stepping (PEEK*, GETREGS, CONT, ...) are counted as
    filtered. ``target_pid`` is in the caller's pid namespace.
    """

    event_type = EventType.PTRACE
    record = "ptrace_event"

    request: int
    addr: int
    data: int
    target_pid: int


class MemfdCreate(_SyscallEvent, frozen=True, gc=False, tag="memfd_create"):
    """memfd_create(2): an anonymous file (``result`` is its fd), with the
    ``name`` the caller gave it and its MFD_* ``flags``."""

    event_type = EventType.MEMFD_CREATE
    record = "memfd_event"

    flags: int
    name: str


class BpfCall(_SyscallEvent, frozen=True, gc=False, tag="bpf_call"):
    """bpf(2), every command but map element access (lookups, updates,
    deletes, batches: counted as filtered). For BPF_PROG_LOAD (``cmd`` 5)
    ``prog_type``, ``insn_cnt`` and ``prog_name`` describe the program;
    otherwise they are 0 and "". ``attr_size`` is the call's size argument.
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

    ``name`` is the module's own name, known once the kernel has parsed the
    image ("" when the call failed before that). finit_module gives ``fd``,
    its ``flags`` and ``path``, the file's absolute path resolved from the
    kernel's dentries (``path_truncated`` when too deep or long);
    init_module gives ``image_len`` (``fd`` is -1). ``args`` is the
    parameter string.
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
    """mount(2), with the caller's ``source``, ``target`` and ``fstype`` as
    given ("" for a NULL pointer) and the MS_* ``flags``. ``path`` is the
    target made absolute: the caller's root (for a target starting with
    "/", so a chroot shows) or working directory, resolved from the
    kernel's structures, then the string as given ("." and ".." are not
    folded)."""

    event_type = EventType.MOUNT
    record = "mount_event"

    flags: int
    path_truncated: bool
    source: str
    target: str
    fstype: str
    path: str


class Umount(_SyscallEvent, frozen=True, gc=False, tag="umount"):
    """umount2(2): the caller's ``target`` as given, ``path`` made absolute
    as for :class:`Mount`, and the ``flags``."""

    event_type = EventType.UMOUNT
    record = "umount_event"

    flags: int
    path_truncated: bool
    target: str
    path: str
