# SPDX-License-Identifier: Apache-2.0
"""Event types: immutable msgspec Structs, one per record in bpf_src/events.h.

Field names are the C member names (nested structs flattened, ``_pad*``,
``type`` and ``size`` left out); a variable-length field described by
``<name>_len`` in C is ``<name>`` here. Every event carries its kind as the
tag ``"kind"`` and encodes to JSON and msgpack as it is::

    msgspec.json.encode(event)  # {"kind": "process_exec", "ts_ns": ..., ...}

Strings that are not valid UTF-8 in the kernel (file names are bytes) are
decoded with the ``surrogateescape`` error handler, so
``os.fsencode(event.exe)`` gives back the kernel's exact bytes; use
:func:`to_json` to encode such an event.

Timestamps (``ts_ns``, ``start_time_ns``) are CLOCK_BOOTTIME nanoseconds;
:func:`boot_to_wall_ns` converts them.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import socket
import struct
import time
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import msgspec

from ._audit import UserLogin
from ._ffi import ffi, lib
from .errors import DecodeError

__all__ = [
    "BpfCall",
    "CredChange",
    "DirCreate",
    "Event",
    "EventType",
    "FileChmod",
    "FileChown",
    "FileCreate",
    "FileLink",
    "FileOpen",
    "FileRename",
    "FileSymlink",
    "FileUnlink",
    "Kill",
    "MemfdCreate",
    "ModuleLoad",
    "Mount",
    "NetAccept",
    "NetBind",
    "NetConnect",
    "NetListen",
    "ProcessExec",
    "ProcessExit",
    "ProcessFork",
    "Ptrace",
    "Setsid",
    "Umount",
    "UserLogin",
    "boot_to_wall_ns",
    "decode",
    "event_class",
    "to_json",
]


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


def _address(family: int, raw: bytes, path: str) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == socket.AF_INET6:
        return str(ipaddress.IPv6Address(raw))
    if family == socket.AF_UNIX:
        # an abstract name is shown as ss(8) shows it
        return "@" + path[1:] if path.startswith("\0") else path
    return ""


class _NetEvent(_SyscallEvent, frozen=True, gc=False):
    """Fields of the network events (``struct net_event``).

    ``fd`` is the socket the syscall was given (for accept, the listening
    socket; the new one is ``result``). ``family``, ``sock_type`` and
    ``protocol`` are the socket's (AF_*, SOCK_*, IPPROTO_*). For IPv4 and
    IPv6, ``local_addr``/``remote_addr`` hold the address bytes in network
    order (IPv4 in the first 4 of 16) and ports are in host order; for unix
    sockets ``local_path``/``remote_path`` hold the names, an abstract name
    starting with ``"\\0"`` (as Python's socket module writes it; trailing
    NULs of an abstract name are not kept). ``local_address`` and
    ``remote_address`` give either as text. Fields a syscall does not have
    are zero or empty.
    """

    record = "net_event"

    fd: int
    flags: int
    backlog: int
    family: int
    sock_type: int
    protocol: int
    local_port: int
    remote_port: int
    local_addr: bytes
    remote_addr: bytes
    local_path: str
    remote_path: str

    @property
    def local_address(self) -> str:
        """The local address as text (IP, unix path, ``@abstract``), or ""."""
        return _address(self.family, self.local_addr, self.local_path)

    @property
    def remote_address(self) -> str:
        """The remote address as text (IP, unix path, ``@abstract``), or ""."""
        return _address(self.family, self.remote_addr, self.remote_path)


class NetConnect(_NetEvent, frozen=True, gc=False, tag="net_connect"):
    """connect(2). The remote address is the one asked for (also when the
    call failed); the local one is the socket's after the call."""

    event_type = EventType.NET_CONNECT


class NetAccept(_NetEvent, frozen=True, gc=False, tag="net_accept"):
    """accept(2)/accept4(2). Addresses are the new connection's (``result``
    is its fd); ``flags`` are accept4's."""

    event_type = EventType.NET_ACCEPT


class NetBind(_NetEvent, frozen=True, gc=False, tag="net_bind"):
    """bind(2). The local address is the socket's after the call (the port
    the kernel chose for port 0), or the one asked for when it failed."""

    event_type = EventType.NET_BIND


class NetListen(_NetEvent, frozen=True, gc=False, tag="net_listen"):
    """listen(2), with its ``backlog``."""

    event_type = EventType.NET_LISTEN


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


# --- file events ------------------------------------------------------------
# ``path`` is absolute. For an open that succeeded (``resolved``) it comes
# from the opened file's own dentry and mount chain: symlinks, "..", dirfd
# and mount namespaces are resolved by the kernel. Everywhere else it is the
# caller's base directory (dirfd, the cwd for AT_FDCWD, the root for an
# absolute string), resolved the same way, joined with the caller's string
# as passed: the kernel's lookup of that string is not visible at the
# syscall tracepoints, so ".." or a symlink inside the string stays as
# written; with a dirfd that is not open, ``path`` is the string alone.
# Absolute means from the root of the process's mount namespace: a file in
# a container reads as the container sees it, one under a chroot with the
# chroot's own location in front. ``arg_path`` is the string as passed.
# ``dirfd`` is -100 (AT_FDCWD) for the cwd. ``*_truncated`` flags a string
# that could not be read or did not fit: a path longer than PATH_LEN - 1
# keeps its leading part, one deeper than MAX_PATH_DEPTH its last
# components.


class _FileOpenFields(_SyscallEvent, frozen=True, gc=False):
    """The fields of struct file_open_event, shared by FileOpen and FileCreate."""

    ino: int
    dev: int
    flags: int
    mode: int
    dirfd: int
    created: bool
    resolved: bool
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileOpen(_FileOpenFields, frozen=True, gc=False, tag="file_open"):
    """A file was opened (open, openat, openat2, creat), or an open failed.

    ``result`` is the new fd or -errno. ``flags`` are the O_* flags as passed
    and ``mode`` the creation mode; ``created`` when this open created the
    file. ``ino``/``dev`` identify the opened file (``dev`` as ``st_dev``),
    0 when the open failed. ``resolved``: ``path`` comes from the opened
    file itself (always when the open succeeded).
    """

    event_type = EventType.FILE_OPEN
    record = "file_open_event"


class FileCreate(_FileOpenFields, frozen=True, gc=False, tag="file_create"):
    """An open created a new file (``created``), or an open with O_CREAT
    failed: same fields as :class:`FileOpen`, and reported besides it. Also
    mknod/mknodat (``mode`` carries the file type, S_IFREG, S_IFIFO, ...;
    ``created`` when it succeeded; ``flags``, ``ino`` and ``dev`` are 0)."""

    event_type = EventType.FILE_CREATE
    record = "file_open_event"


class FileUnlink(_SyscallEvent, frozen=True, gc=False, tag="file_unlink"):
    """A file or (``is_dir``, rmdir or AT_REMOVEDIR) a directory was removed."""

    event_type = EventType.FILE_UNLINK
    record = "file_unlink_event"

    dirfd: int
    flags: int
    is_dir: bool
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class DirCreate(_SyscallEvent, frozen=True, gc=False, tag="dir_create"):
    """A directory was created (mkdir, mkdirat); ``mode`` as passed."""

    event_type = EventType.DIR_CREATE
    record = "dir_create_event"

    dirfd: int
    mode: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileRename(_SyscallEvent, frozen=True, gc=False, tag="file_rename"):
    """A file was renamed (rename, renameat, renameat2): ``path`` to ``new_path``.

    ``flags`` are renameat2's RENAME_NOREPLACE (1), RENAME_EXCHANGE (2),
    RENAME_WHITEOUT (4).

    ``replaced``: an existing file at ``new_path`` was replaced (False for a
    failed rename and for RENAME_EXCHANGE). The syscall tracepoints cannot
    see it; the ``rename_target`` hook on the kernel's rename permission
    check can, as a BPF LSM, fentry or kprobe program. On a kernel that
    allows none of them, a successful rename reports None (unknown), and
    ``Sensor.health()`` shows file_rename as partly unavailable.
    """

    event_type = EventType.FILE_RENAME
    record = "file_rename_event"

    dirfd: int
    new_dirfd: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    new_path_truncated: bool
    new_arg_path_truncated: bool
    replaced: bool | None
    path: str
    arg_path: str
    new_path: str
    new_arg_path: str


class FileChmod(_SyscallEvent, frozen=True, gc=False, tag="file_chmod"):
    """A file's mode was changed (chmod, fchmod, fchmodat, fchmodat2).

    For fchmod ``dirfd`` is the fd, ``arg_path`` is empty and ``path`` is
    the fd's file.
    """

    event_type = EventType.FILE_CHMOD
    record = "file_chmod_event"

    dirfd: int
    mode: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileChown(_SyscallEvent, frozen=True, gc=False, tag="file_chown"):
    """A file's owner changed (chown, lchown, fchown, fchownat) to
    ``new_uid``/``new_gid``; 4294967295 leaves one unchanged. lchown reports AT_SYMLINK_NOFOLLOW
    (0x100) in ``flags``."""

    event_type = EventType.FILE_CHOWN
    record = "file_chown_event"

    dirfd: int
    new_uid: int
    new_gid: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileLink(_SyscallEvent, frozen=True, gc=False, tag="file_link"):
    """A hard link ``new_path`` to the existing ``path`` was made (link, linkat)."""

    event_type = EventType.FILE_LINK
    record = "file_link_event"

    dirfd: int
    new_dirfd: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    new_path_truncated: bool
    new_arg_path_truncated: bool
    path: str
    arg_path: str
    new_path: str
    new_arg_path: str


class FileSymlink(_SyscallEvent, frozen=True, gc=False, tag="file_symlink"):
    """A symbolic link ``path`` holding ``target`` was made (symlink, symlinkat);
    ``target`` is the string stored, never resolved."""

    event_type = EventType.FILE_SYMLINK
    record = "file_symlink_event"

    dirfd: int
    target_truncated: bool
    path_truncated: bool
    arg_path_truncated: bool
    target: str
    path: str
    arg_path: str


#: every event a Sensor delivers; UserLogin comes from the kernel audit subsystem
Event = Union[
    UserLogin,
    ProcessExec,
    ProcessFork,
    ProcessExit,
    FileOpen,
    FileCreate,
    FileUnlink,
    DirCreate,
    FileRename,
    FileChmod,
    FileChown,
    FileLink,
    FileSymlink,
    NetConnect,
    NetAccept,
    NetBind,
    NetListen,
    CredChange,
    Kill,
    Setsid,
    Ptrace,
    MemfdCreate,
    BpfCall,
    ModuleLoad,
    Mount,
    Umount,
]
#: the records that come from BPF programs (the union without UserLogin)
EVENT_CLASSES: tuple[type[_Event], ...] = tuple(c for c in typing.get_args(Event) if c is not UserLogin)
KINDS: dict[str, type[Any]] = {cls.__struct_config__.tag: cls for cls in (*EVENT_CLASSES, UserLogin)}  # type: ignore[misc]
BPF_KINDS = frozenset(cls.__struct_config__.tag for cls in EVENT_CLASSES)  # type: ignore[misc]


def event_class(kind: str) -> type[_Event]:
    """The Struct for a kind name such as ``"process_exec"``.

    Raises:
        ValueError: unknown kind; the message lists the known ones.
    """
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}") from None


# --- field tables -------------------------------------------------------------
# One table per record, derived from cffi's view of events.h and the Struct
# annotations; it drives the C transcoder and the Python decoder alike.

ES_U, ES_S, ES_BOOL, ES_CSTR, ES_TAIL_STR, ES_TAIL_STRLIST, ES_BYTES, ES_OPTBOOL = (
    lib.ES_U,
    lib.ES_S,
    lib.ES_BOOL,
    lib.ES_CSTR,
    lib.ES_TAIL_STR,
    lib.ES_TAIL_STRLIST,
    lib.ES_BYTES,
    lib.ES_OPTBOOL,
)
_HIDDEN = {"type", "size"}  # event_header members carried by the tag instead
_USER_SPACE = {"container_id"}  # filled in by the consumer, not in the record


@dataclass(frozen=True)
class FieldSpec:
    """Where one Struct field lives in its C record."""

    name: str
    kind: int
    offset: int
    size: int


@dataclass(frozen=True)
class RecordSpec:
    """A record's C layout matched to its Struct."""

    cls: type[_Event]
    type: int
    fixed_size: int
    fields: tuple[FieldSpec, ...]

    @property
    def cgroup_offset(self) -> int:
        return next(f.offset for f in self.fields if f.name == "cgroup_id")


def c_members(ctype: Any, base: int = 0) -> list[tuple[str, int, Any]]:
    """Flattened (name, offset, ctype) of a C struct, nested structs inlined."""
    out: list[tuple[str, int, Any]] = []
    for name, field in ctype.fields:
        if field.type.kind == "struct":
            out.extend(c_members(field.type, base + field.offset))
        else:
            out.append((name, base + field.offset, field.type))
    return out


def _field_kind(name: str, annotation: Any, ctype: Any) -> int:
    if ctype.kind == "array" and ctype.item.cname == "char":
        if annotation is not str:
            raise TypeError(f"{name}: a char array decodes to str")
        return ES_CSTR
    if ctype.kind == "array" and ctype.item.cname == "uint8_t" and ctype.length is not None:
        if annotation is not bytes:
            raise TypeError(f"{name}: a __u8 array decodes to bytes")
        return ES_BYTES
    if ctype.kind != "primitive":
        raise TypeError(f"{name}: unsupported C type {ctype.cname}")
    if annotation is bool:
        return ES_BOOL
    if annotation == bool | None:
        if ctype.cname != "uint8_t":
            raise TypeError(f"{name}: an optional bool is a __u8 (0 false, 1 true, else unknown)")
        return ES_OPTBOOL
    if annotation is not int:
        raise TypeError(f"{name}: an integer member decodes to int or bool, not {annotation}")
    return ES_S if ctype.cname.startswith("int") else ES_U


def _record_spec(cls: type[_Event]) -> RecordSpec:
    ctype = ffi.typeof(f"struct {cls.record}")
    hints = typing.get_type_hints(cls)
    wanted = [f for f in cls.__struct_fields__ if f not in _USER_SPACE]
    fields: list[FieldSpec] = []
    for name, offset, ft in c_members(ctype):
        if name.startswith("_pad") or name in _HIDDEN:
            continue
        if name.endswith("_len") and name[:-4] in hints:
            base = name[:-4]
            kind = ES_TAIL_STRLIST if hints[base] == list[str] else ES_TAIL_STR
            fields.append(FieldSpec(base, kind, offset, ffi.sizeof(ft)))
            continue
        if name not in hints:
            raise TypeError(f"{cls.__name__} lacks a field for {cls.record}.{name}")
        fields.append(FieldSpec(name, _field_kind(name, hints[name], ft), offset, ffi.sizeof(ft)))
    got = [f.name for f in fields]
    if sorted(got) != sorted(wanted):
        raise TypeError(f"{cls.__name__} fields {wanted} do not match struct {cls.record} {got}")
    return RecordSpec(cls, int(cls.event_type), ffi.sizeof(ctype), tuple(fields))


RECORDS: dict[int, RecordSpec] = {int(cls.event_type): _record_spec(cls) for cls in EVENT_CLASSES}
HEADER_SIZE = ffi.sizeof("struct event_header")
MAX_RECORD_LEN = lib.MAX_RECORD_LEN

_UNPACK = {
    (ES_U, 1): struct.Struct("<B"),
    (ES_U, 2): struct.Struct("<H"),
    (ES_U, 4): struct.Struct("<I"),
    (ES_U, 8): struct.Struct("<Q"),
    (ES_S, 4): struct.Struct("<i"),
    (ES_S, 8): struct.Struct("<q"),
    (ES_BOOL, 1): struct.Struct("<B"),
    (ES_OPTBOOL, 1): struct.Struct("<B"),
}
_HDR = struct.Struct("<QII")
_LEN = struct.Struct("<I")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def decode(record: bytes | bytearray | memoryview) -> Event:
    """Decode one raw record as it comes from a ring buffer.

    This is the reference decoder; the consumer transcodes records in C and
    uses it only for records whose strings are not valid UTF-8.

    Raises:
        DecodeError: the bytes are not a well-formed record.
    """
    buf = bytes(record)
    if len(buf) < HEADER_SIZE:
        raise DecodeError(f"record of {len(buf)} bytes is shorter than its header ({HEADER_SIZE})", None, 0)
    _ts, rtype, size = _HDR.unpack_from(buf, 0)
    spec = RECORDS.get(rtype)
    if spec is None:
        raise DecodeError(f"unknown record type {rtype}", rtype, 8)
    if size > len(buf):
        raise DecodeError(f"record claims {size} bytes but {len(buf)} arrived", rtype, 12)
    if size < spec.fixed_size:
        raise DecodeError(f"{spec.cls.__name__} record of {size} bytes, at least {spec.fixed_size} expected", rtype, 12)
    values: dict[str, Any] = {}
    tail = spec.fixed_size
    for f in spec.fields:
        if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST):
            (n,) = _LEN.unpack_from(buf, f.offset)
            if n > size - tail:
                raise DecodeError(
                    f"{spec.cls.__name__}.{f.name}: {n} bytes run past the record's {size}", rtype, f.offset
                )
            raw = buf[tail : tail + n]
            tail += n
            if f.kind == ES_TAIL_STR:
                values[f.name] = _text(raw.rstrip(b"\0"))
            else:
                # NUL-separated, the last item NUL-terminated unless truncated
                items = raw[:-1] if raw.endswith(b"\0") else raw
                values[f.name] = [_text(a) for a in items.split(b"\0")] if n else []
        elif f.kind == ES_CSTR:
            values[f.name] = _text(buf[f.offset : f.offset + f.size].split(b"\0", 1)[0])
        elif f.kind == ES_BYTES:
            values[f.name] = buf[f.offset : f.offset + f.size]
        else:
            (v,) = _UNPACK[(f.kind, f.size)].unpack_from(buf, f.offset)
            if f.kind == ES_BOOL:
                v = bool(v)
            elif f.kind == ES_OPTBOOL:
                v = None if v > 1 else bool(v)
            values[f.name] = v
    return typing.cast(Event, spec.cls(**values))


def boot_to_wall_ns(boot_ns: int) -> int:
    """Convert a CLOCK_BOOTTIME timestamp to Unix time in nanoseconds."""
    return boot_ns + time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


_json = msgspec.json.Encoder()


def to_json(event: Event) -> bytes:
    """One event as JSON. Bytes that are not UTF-8 appear as ``\\udcXX``
    escapes (the surrogateescape convention), so nothing is lost."""
    try:
        return _json.encode(event)
    except UnicodeEncodeError:
        return json.dumps(msgspec.to_builtins(event), ensure_ascii=True, separators=(",", ":")).encode()
