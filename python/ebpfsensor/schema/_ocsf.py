# SPDX-License-Identifier: Apache-2.0
"""Events as OCSF events (docs/schemas.md has the table)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ..events import (
    BpfCall,
    CredChange,
    DirCreate,
    FileChmod,
    FileChown,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
    Kill,
    MemfdCreate,
    ModuleLoad,
    Mount,
    NetAccept,
    NetBind,
    NetConnect,
    NetListen,
    ProcessExec,
    ProcessExit,
    ProcessFork,
    Ptrace,
    Setsid,
    Umount,
    UserLogin,
)
from ..events.net import canonical
from ..host.syscalls import syscall_name
from ._common import (
    PRODUCT,
    PTRACE_WRITES,
    VERSION,
    ContextFields,
    Host,
    basename,
    bpf_cmd_name,
    context,
    ctx_get,
    dirname,
    entity_id,
    errno_name,
    hashes,
    ms,
    ptrace_request_name,
    signal_name,
    wall_offset_ns,
)

__all__ = ["OCSF_VERSION", "ocsf", "ocsf_batch"]

#: the OCSF release the events follow
OCSF_VERSION = "1.8.0"

_UNSET_ID = 4294967295
_EINPROGRESS = 115
_ECONNREFUSED = 111

Doc = dict[str, Any]
_Mapper = Callable[[Any, int, Host], Doc]

# (category_uid, category_name, class_uid, class_name, {activity_id: activity_name})
_SYSTEM = (1, "System Activity")
_FILE = (*_SYSTEM, 1001, "File System Activity")
_KEXT = (*_SYSTEM, 1002, "Kernel Extension Activity")
_KERNEL = (*_SYSTEM, 1003, "Kernel Activity")
_PROCESS = (*_SYSTEM, 1007, "Process Activity")
_AUTH = (3, "Identity & Access Management", 3002, "Authentication")
_NETWORK = (4, "Network Activity", 4001, "Network Activity")

_FILE_ACTIVITY = {1: "Create", 4: "Delete", 5: "Rename", 7: "Set Security", 12: "Mount", 13: "Unmount", 14: "Open"}
_PROCESS_ACTIVITY = {1: "Launch", 2: "Terminate", 3: "Open", 4: "Inject", 5: "Set User ID", 99: "Other"}
_NETWORK_ACTIVITY = {1: "Open", 4: "Fail", 5: "Refuse", 7: "Listen", 99: "Other"}

# fingerprint.algorithm_id and its caption
_HASH_IDS = {"md5": 1, "sha1": 2, "sha256": 3, "sha512": 4}
_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}


def _head(
    cls: tuple[int, str, int, str],
    activity_id: int,
    activity_name: str,
    time_ns: int,
    h: Host,
    event_code: str,
    original_time: str,
) -> Doc:
    """The attributes every event has: class, activity, time, metadata, device."""
    category_uid, category_name, class_uid, class_name = cls
    return {
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": 1,
        "severity": "Informational",
        "time": ms(time_ns),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION},
            "profiles": ["host"],
            "event_code": event_code,
            "original_time": original_time,
        },
        "device": {
            "hostname": h.hostname,
            "name": h.hostname,
            "type_id": 0,
            "type": "Unknown",
            "os": {"name": "Linux", "type_id": 200, "type": "Linux", "kernel_release": h.release},
        },
    }


def _process(e: Any, off: int, h: Host) -> Doc:
    """The process that made the call, as an OCSF process."""
    p: Doc = {
        "pid": e.pid,
        "ptid": e.tid,
        "name": e.comm,
        "uid": entity_id(e.pid, e.start_time_ns),
        "created_time": ms(e.start_time_ns + off),
        "user": {"uid": str(e.uid)},
        "parent_process": {"pid": e.ppid},
    }
    if e.container_id:
        p["container"] = {"uid": e.container_id}
    pctx, parent = context(e)
    if pctx is not None or parent is not None:
        _context(p, pctx, parent, off)
    return p


def _image(path: str) -> Doc:
    f: Doc = {"name": basename(path) or path, "path": path, "type_id": 1, "type": "Regular File"}
    d = dirname(path)
    if d:
        f["parent_folder"] = d
    return f


def _context(p: Doc, pctx: Any, parent: Any, off: int) -> None:
    """The process and its parent_process from the events' process context."""
    if pctx is not None:
        _from_context(p, pctx, off)
        parent_id = ctx_get(pctx, "parent_entity_id")
        if parent_id:
            p["parent_process"]["uid"] = parent_id
        session: Doc = {}
        sessionid = getattr(pctx, "sessionid", None)
        if isinstance(sessionid, int) and sessionid != _UNSET_ID:
            session["uid"] = str(sessionid)
        tty = ctx_get(pctx, "tty")
        if tty:
            session["terminal"] = tty
        if session and "session" not in p:
            p["session"] = session
    if parent is not None:
        _from_context(p["parent_process"], parent, off)


def _context_fields(ctx: Any, off: int) -> tuple[Doc, Doc]:
    always: Doc = {}
    absent: Doc = {}
    exe = ctx_get(ctx, "exe")
    name = ctx_get(ctx, "comm")
    digests = hashes(ctx)
    if exe or digests:
        f = _image(exe) if exe else {"name": name or "", "type_id": 1, "type": "Regular File"}
        if digests:
            f["hashes"] = [
                {"algorithm_id": _HASH_IDS[a], "algorithm": _HASH_NAMES[a], "value": v} for a, v in digests.items()
            ]
        always["file"] = f
    args = ctx_get(ctx, "argv")
    if isinstance(args, list):
        always["cmd_line"] = " ".join(args)
    cwd = ctx_get(ctx, "cwd")
    if cwd:
        always["working_directory"] = cwd
    if name:
        absent["name"] = name
    pid = ctx_get(ctx, "pid")
    if isinstance(pid, int):
        absent["pid"] = pid
    start = ctx_get(ctx, "start_time_ns")
    if isinstance(start, int):
        absent["created_time"] = ms(start + off)
    eid = ctx_get(ctx, "entity_id")
    if eid:
        always["uid"] = eid
    elif isinstance(pid, int) and isinstance(start, int):
        absent["uid"] = entity_id(pid, start)
    uid = getattr(ctx, "uid", None)
    if isinstance(uid, int):
        absent["user"] = {"uid": str(uid)}
    return always, absent


_from_context = ContextFields(_context_fields).apply


def _status(doc: Doc, result: int) -> None:
    if result >= 0:
        doc["status_id"] = 1
        doc["status"] = "Success"
    else:
        doc["status_id"] = 2
        doc["status"] = "Failure"
        doc["status_code"] = errno_name(-result)
        doc["status_detail"] = os.strerror(-result)


def _syscall_event(
    e: Any, off: int, h: Host, cls: tuple[int, str, int, str], activity_id: int, activity_name: str
) -> Doc:
    """Head, actor and status of an event from a syscall."""
    doc = _head(cls, activity_id, activity_name, e.ts_ns + off, h, e.kind, str(e.ts_ns))
    doc["actor"] = {"process": _process(e, off, h)}
    if e.container_id:
        doc["metadata"]["profiles"].append("container")
    return doc


# --- process lifecycle ------------------------------------------------------------------


def _exec(e: ProcessExec, off: int, h: Host) -> Doc:
    doc = _head(_PROCESS, 1, "Launch", e.ts_ns + off, h, e.kind, str(e.ts_ns))
    # the launched process is the new image; the actor is its parent, which
    # started the program this process ran before
    p: Doc = {
        "pid": e.pid,
        "ptid": e.tid,
        "name": basename(e.exe) or e.comm,
        "uid": entity_id(e.pid, e.start_time_ns),
        "created_time": ms(e.start_time_ns + off),
        "cmd_line": " ".join(e.argv),
        "file": _image(e.exe),
        "working_directory": e.cwd,
        "user": {"uid": str(e.uid)},
        "parent_process": {"pid": e.ppid, "name": e.parent_comm},
    }
    if e.parent_exe:
        p["parent_process"]["file"] = _image(e.parent_exe)
    if e.tty or e.sessionid != _UNSET_ID:
        session: Doc = {}
        if e.sessionid != _UNSET_ID:
            session["uid"] = str(e.sessionid)
        if e.tty:
            session["terminal"] = e.tty
        p["session"] = session
    if e.container_id:
        p["container"] = {"uid": e.container_id}
        doc["metadata"]["profiles"].append("container")
    pctx, parent = context(e)
    if pctx is not None or parent is not None:
        image = p["file"]
        _context(p, pctx, parent, off)
        # the new image is the event's own; the context's hash only if it is of it
        digests = p["file"].get("hashes") if p["file"].get("path") == e.exe else None
        p["file"] = image
        if digests:
            image["hashes"] = digests
        p["cmd_line"] = " ".join(e.argv)
        p["working_directory"] = e.cwd
    doc["process"] = p
    doc["actor"] = {"process": dict(p["parent_process"]), "user": {"uid": str(e.uid)}}
    doc["launch_type_id"] = 3
    doc["launch_type"] = "Exec"
    doc["status_id"] = 1
    doc["status"] = "Success"
    doc["unmapped"] = {
        "euid": e.euid,
        "egid": e.egid,
        "suid": e.suid,
        "sgid": e.sgid,
        "fsuid": e.fsuid,
        "fsgid": e.fsgid,
        "loginuid": e.loginuid,
        "pid_ns": e.pid_ns,
        "mnt_ns": e.mnt_ns,
        "net_ns": e.net_ns,
        "user_ns": e.user_ns,
        "exe_deleted": e.exe_deleted,
        "exe_memfd": e.exe_memfd,
    }
    return doc


def _fork(e: ProcessFork, off: int, h: Host) -> Doc:
    doc = _syscall_event(e, off, h, _PROCESS, 1, "Launch")
    actor = doc["actor"]["process"]
    child: Doc = {
        "pid": e.child_pid,
        "ptid": e.child_tid,
        "name": e.comm,
        "user": {"uid": str(e.uid)},
        "parent_process": {"pid": e.pid, "uid": actor["uid"], "name": e.comm},
    }
    if e.child_start_time_ns:
        child["created_time"] = ms(e.child_start_time_ns + off)
        child["uid"] = entity_id(e.child_pid, e.child_start_time_ns)
    # the child runs its parent's image until it execs
    for key in ("file", "cmd_line", "working_directory"):
        if key in actor:
            child[key] = actor[key]
    if "container" in actor:
        child["container"] = actor["container"]
    doc["process"] = child
    doc["launch_type_id"] = 2
    doc["launch_type"] = "Fork"
    doc["status_id"] = 1
    doc["status"] = "Success"
    doc["unmapped"] = {"clone_flags": e.clone_flags}
    return doc


def _exit(e: ProcessExit, off: int, h: Host) -> Doc:
    doc = _syscall_event(e, off, h, _PROCESS, 2, "Terminate")
    p = dict(doc["actor"]["process"])
    p["terminated_time"] = doc["time"]
    doc["process"] = p
    # a signal's death reads as the shell reports it, 128 + the signal
    doc["exit_code"] = 128 + e.exit_signal if e.exit_signal else e.exit_code
    doc["status_id"] = 1
    doc["status"] = "Success"
    unmapped: Doc = {"is_thread": e.is_thread, "duration_ns": e.duration_ns}
    if e.exit_signal:
        unmapped["exit_signal"] = signal_name(e.exit_signal)
        unmapped["core_dumped"] = e.core_dumped
    doc["unmapped"] = unmapped
    return doc


# --- files -----------------------------------------------------------------------

_IFMT = 0o170000
# file.type_id by S_IFMT
_FILE_TYPES = {
    0o100000: (1, "Regular File"),
    0o040000: (2, "Folder"),
    0o020000: (3, "Character Device"),
    0o060000: (4, "Block Device"),
    0o140000: (5, "Local Socket"),
    0o010000: (6, "Named Pipe"),
    0o120000: (7, "Symbolic Link"),
}


def _file(path: str, type_id: int = 0, type_name: str = "Unknown") -> Doc:
    f: Doc = {"name": basename(path) or path, "path": path, "type_id": type_id, "type": type_name}
    d = dirname(path)
    if d:
        f["parent_folder"] = d
    return f


def _file_event(e: Any, off: int, h: Host, activity_id: int) -> Doc:
    doc = _syscall_event(e, off, h, _FILE, activity_id, _FILE_ACTIVITY[activity_id])
    _status(doc, e.result)
    return doc


def _open(e: FileOpen, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 14)
    f = _file(e.path)
    if e.ino:
        f["uid"] = f"{e.dev}:{e.ino}"
    doc["file"] = f
    doc["access_mask"] = e.flags
    return doc


def _create(e: FileCreate, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 1)
    f = _file(e.path, *_FILE_TYPES.get(e.mode & _IFMT, (1, "Regular File")))
    if e.ino:
        f["uid"] = f"{e.dev}:{e.ino}"
    doc["file"] = f
    doc["access_mask"] = e.flags
    doc["unmapped"] = {"mode": f"{e.mode & 0o7777:04o}"}
    return doc


def _unlink(e: FileUnlink, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 4)
    doc["file"] = _file(e.path, 2, "Folder") if e.is_dir else _file(e.path)
    return doc


def _mkdir(e: DirCreate, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 1)
    doc["file"] = _file(e.path, 2, "Folder")
    doc["unmapped"] = {"mode": f"{e.mode & 0o7777:04o}"}
    return doc


def _rename(e: FileRename, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 5)
    doc["file"] = _file(e.path)
    doc["file_result"] = _file(e.new_path)
    if e.replaced is not None:
        doc["unmapped"] = {"replaced": e.replaced}
    return doc


def _chmod(e: FileChmod, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 7)
    doc["file"] = _file(e.path)
    doc["unmapped"] = {"mode": f"{e.mode & 0o7777:04o}"}
    return doc


def _chown(e: FileChown, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 7)
    doc["file"] = _file(e.path)
    result = _file(e.path)
    if e.new_uid != _UNSET_ID:
        result["owner"] = {"uid": str(e.new_uid)}
    doc["file_result"] = result
    if e.new_gid != _UNSET_ID:
        doc["unmapped"] = {"gid": e.new_gid}
    return doc


def _link(e: FileLink, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 1)
    doc["file"] = _file(e.new_path)
    doc["unmapped"] = {"link_source": e.path}
    return doc


def _symlink(e: FileSymlink, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 1)
    doc["file"] = _file(e.path, 7, "Symbolic Link")
    doc["unmapped"] = {"link_target": e.target}
    return doc


def _memfd(e: MemfdCreate, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 1)
    doc["file"] = {"name": "memfd:" + e.name, "type_id": 1, "type": "Regular File"}
    doc["unmapped"] = {"memfd_flags": e.flags}
    return doc


def _mount(e: Mount, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 12)
    doc["file"] = _file(e.path or e.target, 2, "Folder")
    doc["unmapped"] = {"source": e.source, "fstype": e.fstype, "flags": e.flags}
    return doc


def _umount(e: Umount, off: int, h: Host) -> Doc:
    doc = _file_event(e, off, h, 13)
    doc["file"] = _file(e.path or e.target, 2, "Folder")
    doc["unmapped"] = {"flags": e.flags}
    return doc


# --- network -----------------------------------------------------------------------

_PROTOCOLS = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 132: "sctp", 1: "icmp", 58: "ipv6-icmp"}


def _endpoint(address: str, port: int, family: int) -> Doc:
    if family in (socket.AF_INET, socket.AF_INET6):
        return {"ip": address, "port": port}
    return {"name": address}


def _net(e: NetConnect | NetAccept | NetBind | NetListen, off: int, h: Host, activity_id: int, direction: int) -> Doc:
    doc = _syscall_event(e, off, h, _NETWORK, activity_id, _NETWORK_ACTIVITY.get(activity_id, "Other"))
    if activity_id == 99:
        doc["activity_name"] = "Bind"
        doc["type_name"] = "Network Activity: Other"
    result = e.result
    if result == -_EINPROGRESS:
        doc["status_id"] = 0
        doc["status"] = "Unknown"
        doc["status_code"] = "EINPROGRESS"
    else:
        _status(doc, result)
    family = e.family
    info: Doc = {"direction_id": direction, "direction": ("Unknown", "Inbound", "Outbound")[direction]}
    if family in (socket.AF_INET, socket.AF_INET6):
        info["protocol_num"] = e.protocol
        name = _PROTOCOLS.get(e.protocol)
        if name:
            info["protocol_name"] = name
        info["protocol_ver_id"] = 4 if family == socket.AF_INET else 6
        info["protocol_ver"] = (
            "Internet Protocol version 4 (IPv4)" if family == socket.AF_INET else "Internet Protocol version 6 (IPv6)"
        )
    doc["connection_info"] = info
    local = e.local_address
    remote = e.remote_address
    # the local side is the source of what goes out and the destination of
    # what comes in (accept, listen)
    inbound = direction == 1 or activity_id == 7
    if local:
        doc["dst_endpoint" if inbound else "src_endpoint"] = _endpoint(local, e.local_port, family)
    if remote and activity_id in (1, 4, 5):
        doc["src_endpoint" if inbound else "dst_endpoint"] = _endpoint(remote, e.remote_port, family)
    if "src_endpoint" not in doc and "dst_endpoint" not in doc:
        # an unnamed unix socket: the endpoint known is this host
        doc["src_endpoint"] = {"hostname": h.hostname}
    doc["unmapped"] = {"fd": e.fd, "family": family, "sock_type": e.sock_type}
    return doc


def _connect(e: NetConnect, off: int, h: Host) -> Doc:
    if e.result >= 0 or e.result == -_EINPROGRESS:
        activity = 1
    elif e.result == -_ECONNREFUSED:
        activity = 5
    else:
        activity = 4
    return _net(e, off, h, activity, 2)


def _accept(e: NetAccept, off: int, h: Host) -> Doc:
    return _net(e, off, h, 1 if e.result >= 0 else 4, 1)


def _bind(e: NetBind, off: int, h: Host) -> Doc:
    return _net(e, off, h, 99, 0)


def _listen(e: NetListen, off: int, h: Host) -> Doc:
    doc = _net(e, off, h, 7, 0)
    doc["unmapped"]["backlog"] = e.backlog
    return doc


# --- privileges and integrity --------------------------------------------------------


def _cred(e: CredChange, off: int, h: Host) -> Doc:
    uid_change = (e.old_uid, e.old_euid, e.old_suid, e.old_fsuid) != (e.new_uid, e.new_euid, e.new_suid, e.new_fsuid)
    call = syscall_name(e.syscall_nr) or str(e.syscall_nr)
    if uid_change or "uid" in call:
        doc = _syscall_event(e, off, h, _PROCESS, 5, "Set User ID")
    else:
        doc = _syscall_event(e, off, h, _PROCESS, 99, "Other")
        doc["activity_name"] = "Set Capabilities" if call == "capset" else "Set Group ID"
    _status(doc, e.result)
    p = dict(doc["actor"]["process"])
    p["user"] = {"uid": str(e.new_uid)}
    doc["process"] = p
    doc["unmapped"] = {
        "syscall": call,
        "old_ids": [e.old_uid, e.old_euid, e.old_suid, e.old_fsuid, e.old_gid, e.old_egid, e.old_sgid, e.old_fsgid],
        "new_ids": [e.new_uid, e.new_euid, e.new_suid, e.new_fsuid, e.new_gid, e.new_egid, e.new_sgid, e.new_fsgid],
        "old_caps": [e.old_cap_inheritable, e.old_cap_permitted, e.old_cap_effective],
        "new_caps": [e.new_cap_inheritable, e.new_cap_permitted, e.new_cap_effective],
        "args": [e.arg0, e.arg1, e.arg2],
    }
    return doc


def _kill(e: Kill, off: int, h: Host) -> Doc:
    doc = _syscall_event(e, off, h, _PROCESS, 99, "Other")
    doc["activity_name"] = "Signal"
    _status(doc, e.result)
    # tkill names a thread only; it stands in for the process
    doc["process"] = {"pid": e.target_pid or e.target_tid}
    if e.target_tid:
        doc["process"]["ptid"] = e.target_tid
    doc["unmapped"] = {"signal": signal_name(e.signal)}
    return doc


def _setsid(e: Setsid, off: int, h: Host) -> Doc:
    doc = _syscall_event(e, off, h, _PROCESS, 99, "Other")
    doc["activity_name"] = "Set Session ID"
    _status(doc, e.result)
    p = dict(doc["actor"]["process"])
    if e.result >= 0:
        p["session"] = {"uid": str(e.result)}
    doc["process"] = p
    return doc


def _ptrace(e: Ptrace, off: int, h: Host) -> Doc:
    inject = e.request in PTRACE_WRITES
    doc = _syscall_event(e, off, h, _PROCESS, 4 if inject else 3, "Inject" if inject else "Open")
    _status(doc, e.result)
    # PTRACE_TRACEME's tracee is the caller, its tracer the parent
    doc["process"] = {"pid": e.ppid} if e.request == 0 else {"pid": e.target_pid}
    if inject:
        doc["injection_type_id"] = 99
        doc["injection_type"] = ptrace_request_name(e.request)
    doc["unmapped"] = {"request": ptrace_request_name(e.request), "addr": e.addr, "data": e.data}
    return doc


def _bpf(e: BpfCall, off: int, h: Host) -> Doc:
    cmd = bpf_cmd_name(e.cmd)
    if e.cmd == 5:  # BPF_PROG_LOAD: a program enters the kernel
        doc = _syscall_event(e, off, h, _KERNEL, 1, "Create")
        doc["kernel"] = {"name": e.prog_name or "(unnamed)", "type_id": 99, "type": "BPF Program", "system_call": cmd}
    elif e.cmd == 0:  # BPF_MAP_CREATE
        doc = _syscall_event(e, off, h, _KERNEL, 1, "Create")
        doc["kernel"] = {"name": "bpf map", "type_id": 99, "type": "BPF Map", "system_call": cmd}
    else:
        doc = _syscall_event(e, off, h, _KERNEL, 4, "Invoke")
        doc["kernel"] = {"name": "bpf", "type_id": 2, "type": "System Call", "system_call": cmd}
    _status(doc, e.result)
    doc["unmapped"] = {"prog_type": e.prog_type, "insn_cnt": e.insn_cnt, "attr_size": e.attr_size}
    return doc


def _module(e: ModuleLoad, off: int, h: Host) -> Doc:
    doc = _syscall_event(e, off, h, _KEXT, 1, "Load")
    _status(doc, e.result)
    f = _file(e.path, 1, "Regular File") if e.path else {"type_id": 1, "type": "Regular File"}
    f["name"] = e.name or basename(e.path) or "(unknown)"
    doc["driver"] = {"file": f}
    doc["unmapped"] = {"args": e.args, "image_len": e.image_len, "flags": e.flags}
    return doc


# --- logins ----------------------------------------------------------------------------

_LOGIN = {
    "USER_LOGIN": (1, "Logon"),
    "USER_AUTH": (1, "Logon"),
    "USER_ACCT": (1, "Logon"),
    "USER_START": (1, "Logon"),
    "USER_ERR": (1, "Logon"),
    "USER_LOGOUT": (2, "Logoff"),
    "USER_END": (2, "Logoff"),
}


def _login(e: UserLogin, off: int, h: Host) -> Doc:
    activity_id, activity_name = _LOGIN.get(e.record_type, (99, "Other"))
    # the record's own time, to the millisecond the kernel gives
    wall = round(e.audit_ts * 1000) * 1_000_000 if e.audit_ts else e.ts_ns + off
    doc = _head(_AUTH, activity_id, activity_name, wall, h, e.record_type, f"{e.audit_ts:.3f}:{e.audit_serial}")
    if activity_id == 99:
        doc["activity_name"] = e.record_type
    if e.success:
        doc["status_id"], doc["status"] = 1, "Success"
    else:
        doc["status_id"], doc["status"] = 2, "Failure"
    doc["status_detail"] = e.op
    if e.user:
        doc["user"] = {"name": e.user}
    elif e.auid != _UNSET_ID:
        doc["user"] = {"uid": str(e.auid)}
    else:
        doc["user"] = {"name": "(unknown)"}
    proc: Doc = {"pid": e.pid, "user": {"uid": str(e.uid)}}
    if e.exe:
        proc["file"] = _image(e.exe)
        proc["name"] = basename(e.exe)
    doc["logon_process"] = proc
    doc["actor"] = {"process": dict(proc)}
    doc["service"] = {"name": basename(e.exe) if e.exe else e.op}
    doc["dst_endpoint"] = {"hostname": h.hostname}
    remote = e.addr and e.addr not in ("127.0.0.1", "::1")
    if e.addr or e.hostname:
        src: Doc = {}
        ip = e.ip
        if ip is not None:
            src["ip"] = canonical(ip)
        if e.hostname and e.hostname != e.addr:
            src["hostname"] = e.hostname
        if src:
            doc["src_endpoint"] = src
    doc["is_remote"] = bool(remote)
    terminal = e.terminal
    if e.ses != _UNSET_ID or terminal:
        session: Doc = {"is_remote": bool(remote)}
        if e.ses != _UNSET_ID:
            session["uid"] = str(e.ses)
        if terminal:
            session["terminal"] = terminal
        doc["session"] = session
    if remote:
        doc["logon_type_id"], doc["logon_type"] = 10, "Remote Interactive"
    elif terminal.startswith(("/dev/tty", "/dev/pts", "tty", "pts")):
        doc["logon_type_id"], doc["logon_type"] = 2, "Interactive"
    doc["raw_data"] = e.message
    doc["unmapped"] = {"audit_serial": e.audit_serial, "auid": e.auid}
    return doc


# --- loss markers -------------------------------------------------------------------------

_APP_ERROR = (6, "Application Activity", 6008, "Application Error")


def _loss(e: Any, off: int, h: Host) -> Doc:
    """A loss marker (``EventLoss``, kind ``loss``): the sensor lost records
    between two checks; read by name, it has no Struct of its own here."""
    doc = _head(_APP_ERROR, 1, "General Error", e.ts_ns + off, h, "loss", str(e.ts_ns))
    doc["severity_id"], doc["severity"] = 3, "Medium"
    doc["message"] = f"{e.lost} records lost ({e.source})"
    doc["start_time"] = ms(e.window_start_ns + off)
    doc["end_time"] = ms(e.window_end_ns + off)
    doc["count"] = e.lost if e.lost < 2**31 else 2**31 - 1
    doc["unmapped"] = {
        "source": e.source,
        "lost": e.lost,
        "by_kind": dict(e.by_kind),
        "processes_marked": e.processes_marked,
    }
    return doc


_MAPPERS: dict[type, _Mapper] = {
    ProcessExec: _exec,
    ProcessFork: _fork,
    ProcessExit: _exit,
    FileOpen: _open,
    FileCreate: _create,
    FileUnlink: _unlink,
    DirCreate: _mkdir,
    FileRename: _rename,
    FileChmod: _chmod,
    FileChown: _chown,
    FileLink: _link,
    FileSymlink: _symlink,
    NetConnect: _connect,
    NetAccept: _accept,
    NetBind: _bind,
    NetListen: _listen,
    CredChange: _cred,
    Kill: _kill,
    Setsid: _setsid,
    Ptrace: _ptrace,
    MemfdCreate: _memfd,
    BpfCall: _bpf,
    ModuleLoad: _module,
    Mount: _mount,
    Umount: _umount,
    UserLogin: _login,
}
# kinds without a Struct in this module, found by their tag
_BY_KIND: dict[str, _Mapper] = {"loss": _loss}


def _mapper(event: Any) -> _Mapper:
    """The mapper of an event's class, or of the kind it derives from."""
    cls = type(event)
    fn = _MAPPERS.get(cls)
    if fn is None:
        fn = next((_MAPPERS[base] for base in cls.__mro__ if base in _MAPPERS), None)
        if fn is None:
            config = getattr(cls, "__struct_config__", None)
            fn = _BY_KIND.get(str(getattr(config, "tag", "")))
        if fn is None:
            raise TypeError(f"not an ebpfsensor event: {cls.__name__}")
        _MAPPERS[cls] = fn
    return fn


def ocsf(event: Any) -> Doc:
    """One event as an OCSF event: a dict of plain JSON types.

    Raises:
        TypeError: not an ebpfsensor event.
    """
    return _mapper(event)(event, wall_offset_ns(), Host())


def ocsf_batch(events: Iterable[Any]) -> list[Doc]:
    """Events as OCSF events, in order; the clock and the host are read once
    for the whole batch.

    Raises:
        TypeError: one of them is not an ebpfsensor event.
    """
    off = wall_offset_ns()
    h = Host()
    mappers = _MAPPERS
    out = []
    for e in events:
        fn = mappers.get(type(e)) or _mapper(e)
        out.append(fn(e, off, h))
    return out
