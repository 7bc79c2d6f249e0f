# SPDX-License-Identifier: Apache-2.0
"""Builders of synthetic events with consistent process context.

A :class:`Scenario` is a small imaginary machine: processes with a pid, a
parent, a start time, a name, an executable, and a clock. Each builder
makes one event of one kind for one of its processes, with every field
valid and the process's context filled in (pid, tid, ppid, comm, uid, gid,
start time, cgroup, container): the same across the process's events,
unless a field is given (it then applies to that event only). The
lifecycle builders change the scenario as the kernel would: ``make_exec``
gives the process its new executable, name and arguments, ``make_fork``
adds a child, ``make_exit`` removes the process.

    web = make_exec(pid=100, exe="/usr/sbin/nginx")    # pid 100 now runs nginx
    make_net_accept(pid=100, remote_address="203.0.113.9")
    fork = make_fork(pid=100)                          # a child of nginx
    make_file_create(pid=fork.child_pid, path="/tmp/x", mode=0o755)

Where events carry process context (``event.process``, ``event.parent``:
the sensor's process table), the builders fill it from the same process,
one shared object per process state, as the sensor does
(``Scenario(process_context=False)`` leaves it None).

The module's ``make_*`` functions use the current scenario (a fresh one per
test under the pytest plugin; :func:`use_scenario` sets another).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, overload

import msgspec

from ..events import Event
from ..events.file import (
    DirCreate,
    FileChmod,
    FileChown,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
)
from ..events.login import UserLogin
from ..events.net import NetAccept, NetBind, NetConnect, NetListen, ip_text
from ..events.priv import BpfCall, CredChange, Kill, MemfdCreate, ModuleLoad, Mount, Ptrace, Setsid, Umount
from ..events.process import ProcessExec, ProcessExit, ProcessFork
from ..recording._format import _context_type, _fill, all_kinds, convert_filled

__all__ = [
    "Scenario",
    "SyntheticProcess",
    "current_scenario",
    "make",
    "make_bpf_call",
    "make_cred_change",
    "make_dir_create",
    "make_exec",
    "make_exit",
    "make_file_chmod",
    "make_file_chown",
    "make_file_create",
    "make_file_link",
    "make_file_open",
    "make_file_rename",
    "make_file_symlink",
    "make_file_unlink",
    "make_fork",
    "make_kill",
    "make_loss",
    "make_memfd_create",
    "make_module_load",
    "make_mount",
    "make_net_accept",
    "make_net_bind",
    "make_net_connect",
    "make_net_listen",
    "make_ptrace",
    "make_setsid",
    "make_spawn",
    "make_umount",
    "make_user_login",
    "use_scenario",
]

E = TypeVar("E")

UNSET_ID = 4294967295  # loginuid and sessionid before a login
AT_FDCWD = -100
# the initial namespaces' inode numbers on a typical machine
_NAMESPACES = {"pid_ns": 4026531836, "mnt_ns": 4026531841, "net_ns": 4026531840, "user_ns": 4026531837}
_PATH_KERNEL, _PATH_SYSCALL_ARG = 1, 2  # PathSource.KERNEL, .SYSCALL_ARG
_SYSCALLS = {
    "file_open": "openat",
    "file_create": "openat",
    "file_unlink": "unlinkat",
    "dir_create": "mkdirat",
    "file_rename": "renameat2",
    "file_chmod": "fchmodat",
    "file_chown": "fchownat",
    "file_link": "linkat",
    "file_symlink": "symlinkat",
    "net_connect": "connect",
    "net_accept": "accept4",
    "net_bind": "bind",
    "net_listen": "listen",
    "cred_change": "setuid",
    "kill": "kill",
    "setsid": "setsid",
    "ptrace": "ptrace",
    "memfd_create": "memfd_create",
    "bpf_call": "bpf",
    "module_load": "finit_module",
    "mount": "mount",
    "umount": "umount2",
}


@dataclass
class SyntheticProcess:
    """A process of a scenario: the context its events carry.

    Attributes:
        pid: the process id (the thread group id; ``tid`` in events too).
        ppid: the parent's pid.
        start_time_ns: when it started, CLOCK_BOOTTIME ns.
        comm: its name (at most 15 bytes, as the kernel keeps it).
        exe: its executable.
        argv: its arguments.
        cwd: its working directory.
        uid: its real (and effective) uid.
        gid: its real (and effective) gid.
        cgroup_id: its cgroup v2 id.
        container_id: its container's id, "" outside one.
        loginuid: its audit login uid (4294967295 when unset).
        sessionid: its audit session id (4294967295 when unset).
        tty: its controlling terminal ("" for none).
    """

    pid: int
    ppid: int = 1
    start_time_ns: int = 0
    comm: str = "bash"
    exe: str = "/usr/bin/bash"
    argv: list[str] = field(default_factory=lambda: ["bash"])
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    cgroup_id: int = 1
    container_id: str = ""
    loginuid: int = UNSET_ID
    sessionid: int = UNSET_ID
    tty: str = ""
    # the context object its events share, until the process changes
    _info: Any = field(default=None, repr=False, compare=False)


def _comm(exe: str) -> str:
    """The kernel's name for a process running exe: its first 15 bytes."""
    return os.fsdecode(os.fsencode(os.path.basename(exe))[:15])


def _address(text: str) -> tuple[int, bytes, str]:
    """family, 16 address bytes, unix path, of "10.0.0.1", "::1", "/run/x.sock" or "@name"."""
    if text.startswith(("/", "@")):
        return socket.AF_UNIX, bytes(16), "\0" + text[1:] if text.startswith("@") else text
    ip = ipaddress.ip_address(text)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return family, ip.packed.ljust(16, b"\0"), ""


class Scenario:
    """Processes and a clock from which consistent events are built.

    Args:
        start_ns: the clock's first value, CLOCK_BOOTTIME ns.
        step_ns: how far the clock moves for each event.
        first_pid: the first pid handed out to a process not given one.
        process_context: fill events' ``process`` and ``parent`` (where the
            events have them) from the scenario's processes.
    """

    def __init__(
        self,
        *,
        start_ns: int = 1_000_000_000_000,
        step_ns: int = 1_000_000,
        first_pid: int = 1000,
        process_context: bool = True,
    ) -> None:
        self.clock_ns = start_ns
        self.step_ns = step_ns
        self.process_context = process_context
        self._next_pid = first_pid
        #: the running processes, by pid
        self.processes: dict[int, SyntheticProcess] = {}
        #: every event built, in order
        self.events: list[Event] = []
        self._serial = 0

    # --- processes ------------------------------------------------------------------

    def _new_pid(self) -> int:
        while self._next_pid in self.processes:
            self._next_pid += 1
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def process(self, pid: int | None = None, **context: Any) -> SyntheticProcess:
        """A new running process (replacing one with the same pid: the pid is
        reused), started now unless ``start_time_ns`` is given; ``context``
        sets its other attributes (see :class:`SyntheticProcess`); ``comm``
        follows ``exe`` unless given."""
        if "exe" in context and "comm" not in context:
            context["comm"] = _comm(context["exe"])
        if "exe" in context and "argv" not in context:
            context["argv"] = [context["exe"]]
        context.setdefault("start_time_ns", self.clock_ns)
        proc = SyntheticProcess(pid=self._new_pid() if pid is None else pid, **context)
        self.processes[proc.pid] = proc
        return proc

    def get(self, pid: int) -> SyntheticProcess | None:
        """The running process with this pid, or None."""
        return self.processes.get(pid)

    def _resolve(self, process: SyntheticProcess | int | None) -> SyntheticProcess:
        if isinstance(process, SyntheticProcess):
            return self.processes.setdefault(process.pid, process)
        if process is not None and process in self.processes:
            return self.processes[process]
        return self.process(process)

    def _tick(self, ts_ns: int | None) -> int:
        if ts_ns is None:
            self.clock_ns += self.step_ns
            return self.clock_ns
        self.clock_ns = max(self.clock_ns, ts_ns)
        return ts_ns

    def info(self, proc: SyntheticProcess | int) -> Any:
        """The process context object (``ProcessInfo``) of a process as its
        events carry it: one object per process state; None where events
        have no such field."""
        p = proc if isinstance(proc, SyntheticProcess) else self._resolve(proc)
        cls = _context_type("process")
        if cls is None:
            return None
        if p._info is None:
            parent = self.get(p.ppid)
            fields = {
                "entity_id": _entity_id(p),
                "parent_entity_id": _entity_id(parent) if parent else "",
                "euid": p.uid,
                "egid": p.gid,
                "sid": 0,
                "source": "exec",
                **{k: getattr(p, k) for k in _INFO_FROM_PROCESS},
            }
            names = set(cls.__struct_fields__)
            p._info = convert_filled({k: v for k, v in fields.items() if k in names}, cls)
        return p._info

    # --- events ---------------------------------------------------------------------

    @overload
    def make(self, kind: type[E], proc: SyntheticProcess | int | None = None, **fields: Any) -> E: ...
    @overload
    def make(self, kind: str, proc: SyntheticProcess | int | None = None, **fields: Any) -> Event: ...

    def make(self, kind: str | type[Any], proc: SyntheticProcess | int | None = None, **fields: Any) -> Any:
        """One event of a kind (``"process_exec"`` or ``ProcessExec``) for a
        process (``proc``, or ``pid=``: the running one with that pid, else
        a new one); fields not given take the process's context and
        defaults that are valid for the kind.

        Raises:
            TypeError: a field the kind does not have.
            ValueError: an unknown kind.
            msgspec.ValidationError: a field's value of the wrong type.
        """
        known = all_kinds()
        cls: Any = kind if isinstance(kind, type) else known.get(kind)
        if cls is None or cls not in known.values():
            raise ValueError(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(known))}")
        name = cls.__struct_config__.tag
        pid = fields.pop("pid", None)
        p = self._resolve(proc if proc is not None else pid)
        if pid is not None and pid != p.pid:
            raise TypeError(f"{name}: pid={pid} but the process given is {p.pid}")
        ts = self._tick(fields.pop("ts_ns", None))
        names = {f.name for f in msgspec.structs.fields(cls)}
        extra = _NET_CONVENIENCE if cls in _NET else set()
        unknown = sorted(set(fields) - names - extra)
        if unknown:
            raise TypeError(f"{name} has no field(s) {', '.join(unknown)}; its fields: {', '.join(sorted(names))}")
        values: dict[str, Any] = {
            "ts_ns": ts,
            "cgroup_id": p.cgroup_id,
            "start_time_ns": p.start_time_ns,
            "pid": p.pid,
            "tid": p.pid,
            "ppid": p.ppid,
            "uid": p.uid,
            "gid": p.gid,
            "comm": p.comm,
            "container_id": p.container_id,
        }
        defaults = _DEFAULTS.get(cls) or _DEFAULTS_BY_KIND.get(name)
        if defaults is not None:
            values.update(defaults(self, p, ts, fields))
        values.update(fields)
        values = {k: v for k, v in values.items() if k in names}
        # fields this builder does not know yet (added to the Struct since) get neutral values
        for key, value in _fill(cls).items():
            values.setdefault(key, _process_context(value, values))
        # converted, not constructed: a value of the wrong type fails here, in the test
        event: Any = msgspec.convert(values, cls)
        after = _AFTER.get(cls)
        if after is not None:
            after(self, p, event)
        if self.process_context:
            event = self._with_context(event, p, fields)
        self.events.append(event)
        return event

    def _with_context(self, event: Any, p: SyntheticProcess, given: dict[str, Any]) -> Any:
        """The event with its process context, as the table has it once the
        event happened (for an exec, the new image; for a fork, the parent)."""
        slots = event.__struct_fields__
        context = {}
        if "process" in slots and "process" not in given:
            context["process"] = self.info(p)
        if "parent" in slots and "parent" not in given:
            parent = self.get(p.ppid)
            context["parent"] = self.info(parent) if parent else None
        return msgspec.structs.replace(event, **context) if context else event

    def spawn(
        self, parent: SyntheticProcess | int | None, exe: str, argv: list[str] | None = None, **fields: Any
    ) -> list[Event]:
        """A fork of parent and the child's exec of exe: ``[fork, exec]``;
        the child is ``scenario.get(events[1].pid)``."""
        fork = self.make(ProcessFork, parent)
        exec_ = self.make(ProcessExec, fork.child_pid, exe=exe, argv=argv or [exe], **fields)
        return [fork, exec_]


_INFO_FROM_PROCESS = (
    "pid",
    "start_time_ns",
    "ppid",
    "exe",
    "argv",
    "cwd",
    "comm",
    "uid",
    "gid",
    "loginuid",
    "sessionid",
    "tty",
    "cgroup_id",
    "container_id",
)


def _entity_id(p: SyntheticProcess) -> str:
    """The process's entity id as the sensor computes it, on a machine whose boot id is zero."""
    try:
        from ..process._entity import entity_id

        return str(entity_id(bytes(16), p.pid, p.start_time_ns))
    except (ImportError, AttributeError, TypeError):
        return f"{p.pid}-{p.start_time_ns}"


def _process_context(value: Any, values: dict[str, Any]) -> Any:
    """A nested Struct's neutral map, with the process's context where the names match."""
    if isinstance(value, dict):
        return {k: values.get(k, v) if k in _CONTEXT else _process_context(v, values) for k, v in value.items()}
    return value


_CONTEXT = frozenset({"pid", "tid", "ppid", "uid", "gid", "comm", "start_time_ns", "cgroup_id", "container_id"})


# --- defaults per kind ---------------------------------------------------------------------


def _syscall_nr(kind: str) -> int:
    from ..host.syscalls import syscall_number

    try:
        return syscall_number(_SYSCALLS[kind]) or 0
    except (KeyError, ValueError):
        return 0


def _exec(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
    exe = f.get("exe", p.exe)
    parent = sc.get(p.ppid)
    return {
        "euid": p.uid,
        "egid": p.gid,
        "suid": p.uid,
        "sgid": p.gid,
        "fsuid": p.uid,
        "fsgid": p.gid,
        "loginuid": p.loginuid,
        "sessionid": p.sessionid,
        **_NAMESPACES,
        "old_tid": p.pid,
        "argv_truncated": False,
        "exe_truncated": False,
        "cwd_truncated": False,
        "parent_exe_truncated": False,
        "exe_deleted": False,
        "exe_memfd": exe.startswith("memfd:"),
        "parent_comm": parent.comm if parent else "",
        "tty": p.tty,
        "exe": exe,
        "cwd": p.cwd,
        "parent_exe": parent.exe if parent else "",
        "argv": [exe] if "exe" in f else list(p.argv),
        "comm": _comm(exe),
    }


def _after_exec(sc: Scenario, p: SyntheticProcess, e: Any) -> None:
    p.exe, p.comm, p.argv, p.cwd = e.exe, e.comm, list(e.argv), e.cwd
    p._info = None


def _fork(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
    child = f.get("child_pid")
    if child is None:
        child = sc._new_pid()
    return {"child_start_time_ns": ts, "clone_flags": 0, "child_pid": child, "child_tid": child}


def _after_fork(sc: Scenario, p: SyntheticProcess, e: Any) -> None:
    sc.processes[e.child_pid] = replace(
        p, pid=e.child_pid, ppid=p.pid, start_time_ns=e.child_start_time_ns or e.ts_ns, _info=None
    )


def _exit(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
    return {
        "duration_ns": max(0, ts - p.start_time_ns),
        "exit_code": 0,
        "exit_signal": 0,
        "core_dumped": False,
        "is_thread": False,
    }


def _after_exit(sc: Scenario, p: SyntheticProcess, e: Any) -> None:
    if not e.is_thread and sc.processes.get(p.pid) is p:
        del sc.processes[p.pid]


def _inode(path: str) -> int:
    # the same path has the same inode throughout a scenario
    return 100_000 + zlib.crc32(path.encode("utf-8", "surrogateescape")) % 10_000_000


def _syscall(kind: str, result: int = 0) -> dict[str, Any]:
    return {"result": result, "syscall_nr": _syscall_nr(kind)}


def _path(f: dict[str, Any], default: str, source: int = _PATH_SYSCALL_ARG) -> dict[str, Any]:
    path = f.get("path", default)
    return {
        "dirfd": AT_FDCWD,
        "path_truncated": False,
        "arg_path_truncated": False,
        "path": path,
        "arg_path": f.get("arg_path", path),
        "path_source": source,
    }


def _file_open(kind: str, flags: int, created: bool) -> Any:
    def build(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
        path = f.get("path", "/tmp/file")
        return {
            **_syscall(kind, 3),
            **_path(f, path, _PATH_KERNEL),
            "ino": _inode(path),
            "dev": 2049,
            "flags": flags,
            "mode": 0o644 if created else 0,
            "created": created,
            "resolved": True,
        }

    return build


def _two_paths(kind: str, **more: Any) -> Any:
    def build(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
        new_path = f.get("new_path", f.get("path", "/tmp/file") + ".new")
        return {
            **_syscall(kind),
            **_path(f, "/tmp/file"),
            "new_dirfd": AT_FDCWD,
            "flags": 0,
            "new_path_truncated": False,
            "new_arg_path_truncated": False,
            "new_path": new_path,
            "new_arg_path": f.get("new_arg_path", new_path),
            "new_path_source": _PATH_SYSCALL_ARG,
            **more,
        }

    return build


def _one_path(kind: str, default: str, **more: Any) -> Any:
    def build(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
        return {**_syscall(kind), **_path(f, default), **more}

    return build


# per family: the local and the remote address a builder uses when not given one
_DEFAULT_ADDRESSES: dict[int, tuple[str, str]] = {
    socket.AF_INET: ("10.0.0.5", "192.0.2.10"),
    socket.AF_INET6: ("2001:db8::5", "2001:db8::10"),
    socket.AF_UNIX: ("", "/run/app.sock"),
}


def _net(kind: str, local: tuple[str, int], remote: tuple[str, int] | None, result: int = 0, **more: Any) -> Any:
    def build(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
        laddr = f.pop("local_address", None)
        raddr = f.pop("remote_address", None)
        # the family follows the address given (the remote one first), else the default's
        family = _address(raddr if raddr is not None else laddr if laddr is not None else local[0])[0]
        if laddr is None:
            laddr = local[0] if _address(local[0])[0] == family else _DEFAULT_ADDRESSES[family][0]
        if raddr is None and remote is not None:
            raddr = remote[0] if _address(remote[0])[0] == family else _DEFAULT_ADDRESSES[family][1]
        unix = family == socket.AF_UNIX
        _, lraw, lpath = _address(laddr) if laddr else (family, bytes(16), "")
        out = {
            **_syscall(kind, result),
            "fd": 3,
            "flags": 0,
            "backlog": 0,
            "family": family,
            "sock_type": socket.SOCK_STREAM,
            "protocol": 0 if unix else socket.IPPROTO_TCP,
            "local_port": 0 if unix else local[1],
            "remote_port": 0,
            "local_addr": ip_text(family, lraw),
            "remote_addr": ip_text(family, bytes(16)),
            "local_path": lpath,
            "remote_path": "",
            "local_source": _PATH_KERNEL,
            "remote_source": 0,
            **more,
        }
        if raddr is not None:
            _, rraw, rpath = _address(raddr)
            out.update(
                remote_addr=ip_text(family, rraw),
                remote_path=rpath,
                remote_port=0 if unix or remote is None else remote[1],
                remote_source=_PATH_KERNEL,
            )
        return out

    return build


def _cred(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
    new_uid = f.get("new_uid", p.uid)
    new_gid = f.get("new_gid", p.gid)
    out: dict[str, Any] = _syscall("cred_change")
    for name in ("uid", "euid", "suid", "fsuid"):
        out[f"old_{name}"] = p.uid
        out[f"new_{name}"] = new_uid
    for name in ("gid", "egid", "sgid", "fsgid"):
        out[f"old_{name}"] = p.gid
        out[f"new_{name}"] = new_gid
    for name in ("inheritable", "permitted", "effective"):
        out[f"old_cap_{name}"] = out[f"new_cap_{name}"] = 0
    out.update(arg0=new_uid, arg1=0, arg2=0)
    return out


def _after_cred(sc: Scenario, p: SyntheticProcess, e: Any) -> None:
    if e.result == 0:
        p.uid, p.gid, p._info = e.new_uid, e.new_gid, None


def _simple(kind: str, **more: Any) -> Any:
    def build(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
        return {**_syscall(kind), **more}

    return build


def _login(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
    sc._serial += 1
    return {
        "audit_ts": time.time(),
        "audit_serial": sc._serial,
        "record_type": "USER_LOGIN",
        "op": "login",
        "auid": p.loginuid,
        "ses": p.sessionid,
        "user": "root" if p.uid == 0 else str(p.uid),
        "terminal": "ssh",
        "hostname": "",
        "addr": "203.0.113.9",
        "exe": p.exe,
        "success": True,
        "message": "",
    }


_O_WRONLY_CREAT_TRUNC = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
_NET: frozenset[type] = frozenset({NetConnect, NetAccept, NetBind, NetListen})
_NET_CONVENIENCE = {"local_address", "remote_address"}
_DEFAULTS: dict[type, Any] = {
    ProcessExec: _exec,
    ProcessFork: _fork,
    ProcessExit: _exit,
    FileOpen: _file_open("file_open", os.O_RDONLY, False),
    FileCreate: _file_open("file_create", _O_WRONLY_CREAT_TRUNC, True),
    FileUnlink: _one_path("file_unlink", "/tmp/file", flags=0, is_dir=False),
    DirCreate: _one_path("dir_create", "/tmp/dir", mode=0o755),
    FileRename: _two_paths("file_rename", replaced=False),
    FileChmod: _one_path("file_chmod", "/tmp/file", mode=0o755, flags=0),
    FileChown: _one_path("file_chown", "/tmp/file", new_uid=0, new_gid=0, flags=0),
    FileLink: _two_paths("file_link"),
    FileSymlink: _one_path(
        "file_symlink", "/tmp/link", target="/tmp/file", target_truncated=False, target_source=_PATH_SYSCALL_ARG
    ),
    NetConnect: _net("net_connect", ("10.0.0.5", 40000), ("192.0.2.10", 443)),
    NetAccept: _net("net_accept", ("10.0.0.5", 80), ("203.0.113.9", 51234), result=4),
    NetBind: _net("net_bind", ("0.0.0.0", 8080), None),
    NetListen: _net("net_listen", ("0.0.0.0", 8080), None, backlog=128),
    CredChange: _cred,
    Kill: _simple("kill", target_pid=1, target_tid=1, signal=15),
    Setsid: _simple("setsid"),
    Ptrace: _simple("ptrace", request=16, addr=0, data=0, target_pid=1),
    MemfdCreate: _simple("memfd_create", flags=1, name="x"),
    BpfCall: _simple("bpf_call", cmd=5, prog_type=1, insn_cnt=2, attr_size=128, prog_name=""),
    ModuleLoad: _simple("module_load", image_len=0, fd=3, flags=0, name="x", path_truncated=False, path="", args=""),
    Mount: _simple(
        "mount", flags=0, path_truncated=False, source="/dev/sdb1", target="/mnt", fstype="ext4", path="/mnt"
    ),
    Umount: _simple("umount", flags=0, path_truncated=False, target="/mnt", path="/mnt"),
    UserLogin: _login,
}


def _loss(sc: Scenario, p: SyntheticProcess, ts: int, f: dict[str, Any]) -> dict[str, Any]:
    return {
        "window_start_ns": ts - 1_000_000_000,
        "window_end_ns": ts,
        "source": "ebpf",
        "lost": 1,
        "by_kind": {},
        "processes_marked": 0,
    }


# kinds whose Struct this module does not import (they may come and go)
_DEFAULTS_BY_KIND: dict[str, Any] = {"loss": _loss}
_AFTER: dict[type, Any] = {
    ProcessExec: _after_exec,
    ProcessFork: _after_fork,
    ProcessExit: _after_exit,
    CredChange: _after_cred,
}


# --- the current scenario and the module's builders ---------------------------------------------

_current: Scenario | None = None


def current_scenario() -> Scenario:
    """The scenario the module's builders use (created on first use)."""
    global _current
    if _current is None:
        _current = Scenario()
    return _current


@contextlib.contextmanager
def use_scenario(scenario: Scenario | None = None) -> Iterator[Scenario]:
    """Make the module's builders use scenario (a new one by default) inside the block."""
    global _current
    saved, _current = _current, scenario or Scenario()
    try:
        yield _current
    finally:
        _current = saved


@overload
def make(kind: type[E], proc: SyntheticProcess | int | None = None, **fields: Any) -> E: ...
@overload
def make(kind: str, proc: SyntheticProcess | int | None = None, **fields: Any) -> Event: ...


def make(kind: str | type[Any], proc: SyntheticProcess | int | None = None, **fields: Any) -> Any:
    """One event of a kind in the current scenario; see :meth:`Scenario.make`."""
    return current_scenario().make(kind, proc, **fields)


def make_spawn(
    parent: SyntheticProcess | int | None, exe: str, argv: list[str] | None = None, **fields: Any
) -> list[Event]:
    """``[fork, exec]``: parent starts a child running exe; see :meth:`Scenario.spawn`."""
    return current_scenario().spawn(parent, exe, argv, **fields)


def make_exec(proc: SyntheticProcess | int | None = None, **fields: Any) -> ProcessExec:
    """A ``process_exec``: the process now runs ``exe`` (its name, argv follow)."""
    return current_scenario().make(ProcessExec, proc, **fields)


def make_fork(proc: SyntheticProcess | int | None = None, **fields: Any) -> ProcessFork:
    """A ``process_fork``: the process gets a child (``child_pid``, new unless given)."""
    return current_scenario().make(ProcessFork, proc, **fields)


def make_exit(proc: SyntheticProcess | int | None = None, **fields: Any) -> ProcessExit:
    """A ``process_exit``: the process ends (and leaves the scenario)."""
    return current_scenario().make(ProcessExit, proc, **fields)


def make_file_open(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileOpen:
    """A ``file_open`` of ``path`` (read-only unless ``flags`` say otherwise)."""
    return current_scenario().make(FileOpen, proc, **fields)


def make_file_create(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileCreate:
    """A ``file_create``: ``path`` opened O_WRONLY|O_CREAT|O_TRUNC and created."""
    return current_scenario().make(FileCreate, proc, **fields)


def make_file_unlink(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileUnlink:
    """A ``file_unlink`` of ``path``."""
    return current_scenario().make(FileUnlink, proc, **fields)


def make_dir_create(proc: SyntheticProcess | int | None = None, **fields: Any) -> DirCreate:
    """A ``dir_create`` of ``path``."""
    return current_scenario().make(DirCreate, proc, **fields)


def make_file_rename(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileRename:
    """A ``file_rename`` of ``path`` to ``new_path``."""
    return current_scenario().make(FileRename, proc, **fields)


def make_file_chmod(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileChmod:
    """A ``file_chmod`` of ``path`` to ``mode`` (0o755 by default)."""
    return current_scenario().make(FileChmod, proc, **fields)


def make_file_chown(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileChown:
    """A ``file_chown`` of ``path`` to ``new_uid``, ``new_gid``."""
    return current_scenario().make(FileChown, proc, **fields)


def make_file_link(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileLink:
    """A ``file_link``: ``new_path`` made a link to ``path``."""
    return current_scenario().make(FileLink, proc, **fields)


def make_file_symlink(proc: SyntheticProcess | int | None = None, **fields: Any) -> FileSymlink:
    """A ``file_symlink``: ``path`` made a symlink holding ``target``."""
    return current_scenario().make(FileSymlink, proc, **fields)


def make_net_connect(proc: SyntheticProcess | int | None = None, **fields: Any) -> NetConnect:
    """A ``net_connect``; ``remote_address`` ("192.0.2.10", "::1", "/run/x.sock",
    "@abstract") and ``local_address`` set the family, address and path fields."""
    return current_scenario().make(NetConnect, proc, **fields)


def make_net_accept(proc: SyntheticProcess | int | None = None, **fields: Any) -> NetAccept:
    """A ``net_accept`` of a connection (``result``: its fd); addresses as for make_net_connect."""
    return current_scenario().make(NetAccept, proc, **fields)


def make_net_bind(proc: SyntheticProcess | int | None = None, **fields: Any) -> NetBind:
    """A ``net_bind``; ``local_address`` as for make_net_connect."""
    return current_scenario().make(NetBind, proc, **fields)


def make_net_listen(proc: SyntheticProcess | int | None = None, **fields: Any) -> NetListen:
    """A ``net_listen``; ``local_address`` as for make_net_connect."""
    return current_scenario().make(NetListen, proc, **fields)


def make_cred_change(proc: SyntheticProcess | int | None = None, **fields: Any) -> CredChange:
    """A ``cred_change`` to ``new_uid``/``new_gid`` (the process keeps them when ``result`` is 0)."""
    return current_scenario().make(CredChange, proc, **fields)


def make_kill(proc: SyntheticProcess | int | None = None, **fields: Any) -> Kill:
    """A ``kill`` of ``target_pid`` with ``signal`` (SIGTERM by default)."""
    return current_scenario().make(Kill, proc, **fields)


def make_setsid(proc: SyntheticProcess | int | None = None, **fields: Any) -> Setsid:
    """A ``setsid``."""
    return current_scenario().make(Setsid, proc, **fields)


def make_ptrace(proc: SyntheticProcess | int | None = None, **fields: Any) -> Ptrace:
    """A ``ptrace`` ``request`` (PTRACE_ATTACH by default) on ``target_pid``."""
    return current_scenario().make(Ptrace, proc, **fields)


def make_memfd_create(proc: SyntheticProcess | int | None = None, **fields: Any) -> MemfdCreate:
    """A ``memfd_create`` of ``name``."""
    return current_scenario().make(MemfdCreate, proc, **fields)


def make_bpf_call(proc: SyntheticProcess | int | None = None, **fields: Any) -> BpfCall:
    """A ``bpf_call`` (BPF_PROG_LOAD by default)."""
    return current_scenario().make(BpfCall, proc, **fields)


def make_module_load(proc: SyntheticProcess | int | None = None, **fields: Any) -> ModuleLoad:
    """A ``module_load`` of ``name``."""
    return current_scenario().make(ModuleLoad, proc, **fields)


def make_mount(proc: SyntheticProcess | int | None = None, **fields: Any) -> Mount:
    """A ``mount`` of ``source`` on ``target``."""
    return current_scenario().make(Mount, proc, **fields)


def make_umount(proc: SyntheticProcess | int | None = None, **fields: Any) -> Umount:
    """An ``umount`` of ``target``."""
    return current_scenario().make(Umount, proc, **fields)


def make_user_login(proc: SyntheticProcess | int | None = None, **fields: Any) -> UserLogin:
    """A ``user_login`` reported by the process (sshd, say)."""
    return current_scenario().make(UserLogin, proc, **fields)


def make_loss(proc: SyntheticProcess | int | None = None, **fields: Any) -> Event:
    """A ``loss`` marker (``lost`` records, ``by_kind``), where this version has one."""
    return current_scenario().make("loss", proc, **fields)
