# SPDX-License-Identifier: Apache-2.0
"""Events as Elastic Common Schema documents (docs/schemas.md has the table)."""

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
from ._common import (
    PRODUCT,
    VERSION,
    ContextFields,
    Host,
    basename,
    bpf_cmd_name,
    cap_names,
    context,
    ctx_get,
    dirname,
    entity_id,
    errno_name,
    hashes,
    iso,
    ptrace_request_name,
    signal_name,
    wall_offset_ns,
)

__all__ = ["ECS_VERSION", "ecs", "ecs_batch"]

#: the ECS release the documents follow
ECS_VERSION = "9.4.0"

_UNSET_ID = 4294967295
_EINPROGRESS = 115

Doc = dict[str, Any]
_Mapper = Callable[[Any, int, Host], Doc]


def _base(e: Any, off: int, h: Host, dataset: str, category: list[str], types: list[str], outcome: str) -> Doc:
    """The fields every document of a BPF event has: time, event, host,
    agent, the acting process and its user."""
    pid = e.pid
    pctx, parent = context(e)
    proc: Doc = {
        "pid": pid,
        "name": e.comm,
        "entity_id": entity_id(pid, e.start_time_ns),
        "start": iso(e.start_time_ns + off),
        "thread": {"id": e.tid},
        "parent": {"pid": e.ppid},
        "real_user": {"id": str(e.uid)},
        "real_group": {"id": str(e.gid)},
    }
    if pctx is not None or parent is not None:
        _context(proc, pctx, parent, off)
    doc: Doc = {
        "@timestamp": iso(e.ts_ns + off),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "category": category,
            "type": types,
            "action": e.kind,
            "outcome": outcome,
            "module": PRODUCT,
            "dataset": dataset,
            # the kernel's own clock, in ns: orders events exactly
            "sequence": e.ts_ns,
        },
        "agent": {"type": PRODUCT, "version": VERSION},
        "host": {
            "hostname": h.hostname,
            "name": h.hostname,
            "architecture": h.machine,
            "boot": {"id": h.boot_id},
            "os": {"type": "linux", "kernel": h.release},
        },
        "process": proc,
        "user": {"id": str(e.uid)},
        "group": {"id": str(e.gid)},
    }
    if e.container_id:
        doc["container"] = {"id": e.container_id}
    return doc


def _context(proc: Doc, pctx: Any, parent: Any, off: int) -> None:
    """process.* and process.parent.* from the events' process context."""
    if pctx is not None:
        _from_context(proc, pctx, off)
        sid = ctx_get(pctx, "sid")
        if isinstance(sid, int) and sid > 0:
            proc["session_leader"] = {"pid": sid, "same_as_process": sid == proc["pid"]}
        parent_id = ctx_get(pctx, "parent_entity_id")
        if parent_id:
            proc["parent"]["entity_id"] = parent_id
    if parent is not None:
        _from_context(proc["parent"], parent, off)


def _context_fields(ctx: Any, off: int) -> tuple[Doc, Doc]:
    always: Doc = {}
    absent: Doc = {}
    exe = ctx_get(ctx, "exe")
    if exe:
        always["executable"] = exe
    args = ctx_get(ctx, "argv")
    if isinstance(args, list):
        always["args"] = list(args)
        always["args_count"] = len(args)
        always["command_line"] = " ".join(args)
    cwd = ctx_get(ctx, "cwd")
    if cwd:
        always["working_directory"] = cwd
    name = ctx_get(ctx, "comm")
    if name:
        absent["name"] = name
    pid = ctx_get(ctx, "pid")
    if isinstance(pid, int):
        absent["pid"] = pid
    start = ctx_get(ctx, "start_time_ns")
    if isinstance(start, int):
        absent["start"] = iso(start + off)
    eid = ctx_get(ctx, "entity_id")
    if eid:
        always["entity_id"] = eid
    elif isinstance(pid, int) and isinstance(start, int):
        absent["entity_id"] = entity_id(pid, start)
    for key, attr in (("user", "euid"), ("group", "egid"), ("real_user", "uid"), ("real_group", "gid")):
        value = getattr(ctx, attr, None)
        if isinstance(value, int):
            absent[key] = {"id": str(value)}
    digests = hashes(ctx)
    if digests:
        always["hash"] = digests
    return always, absent


_from_context = ContextFields(_context_fields).apply


def _outcome(result: int) -> str:
    return "success" if result >= 0 else "failure"


def _error(doc: Doc, result: int) -> None:
    if result < 0:
        doc["error"] = {"code": errno_name(-result), "message": os.strerror(-result)}


def _file(path: str) -> Doc:
    f: Doc = {"path": path, "name": basename(path)}
    d = dirname(path)
    if d:
        f["directory"] = d
    return f


# --- process lifecycle ------------------------------------------------------------------


def _exec(e: ProcessExec, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.process", ["process"], ["start"], "success")
    p = doc["process"]
    exe = e.exe
    if p.get("executable", exe) != exe:
        # the context describes another image (the one before the exec)
        p.pop("hash", None)
    p["name"] = basename(exe) or e.comm
    p["executable"] = exe
    argv = e.argv
    p["args"] = argv
    p["args_count"] = len(argv)
    p["command_line"] = " ".join(argv)
    p["working_directory"] = e.cwd
    p["user"] = {"id": str(e.euid)}
    p["group"] = {"id": str(e.egid)}
    p["saved_user"] = {"id": str(e.suid)}
    p["saved_group"] = {"id": str(e.sgid)}
    p["interactive"] = bool(e.tty)
    parent = p["parent"]
    parent["name"] = e.parent_comm
    if e.parent_exe:
        parent["executable"] = e.parent_exe
    return doc


def _fork(e: ProcessFork, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.process", ["process"], ["start"], "success")
    parent = doc["process"]
    # process.* is the child; the event's own process is its parent
    child: Doc = {
        "pid": e.child_pid,
        "name": e.comm,
        "thread": {"id": e.child_tid},
        "real_user": {"id": str(e.uid)},
        "real_group": {"id": str(e.gid)},
        "parent": {
            "pid": parent["pid"],
            "entity_id": parent["entity_id"],
            "start": parent["start"],
            "name": parent["name"],
        },
    }
    if e.child_start_time_ns:
        child["start"] = iso(e.child_start_time_ns + off)
        child["entity_id"] = entity_id(e.child_pid, e.child_start_time_ns)
    # the child runs its parent's image until it execs
    for key in ("executable", "args", "args_count", "command_line", "working_directory", "hash"):
        if key in parent:
            child["parent"][key] = parent[key]
            child[key] = parent[key]
    doc["process"] = child
    return doc


def _exit(e: ProcessExit, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.process", ["process"], ["end"], "success")
    p = doc["process"]
    p["end"] = doc["@timestamp"]
    # a signal's death reads as the shell reports it, 128 + the signal
    p["exit_code"] = 128 + e.exit_signal if e.exit_signal else e.exit_code
    p["uptime"] = e.duration_ns // 1_000_000_000
    if e.exit_signal:
        doc["labels"] = {"exit_signal": signal_name(e.exit_signal), "core_dumped": str(e.core_dumped).lower()}
    return doc


# --- files -----------------------------------------------------------------------


def _open(e: FileOpen, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["access"], _outcome(e.result))
    f = _file(e.path)
    if e.ino:
        f["inode"] = str(e.ino)
        f["device"] = str(e.dev)
    doc["file"] = f
    _error(doc, e.result)
    return doc


_IFMT = 0o170000
_IFTYPE = {0o010000: "fifo", 0o020000: "char", 0o060000: "block", 0o140000: "socket"}


def _create(e: FileCreate, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["creation"], _outcome(e.result))
    f = _file(e.path)
    f["type"] = _IFTYPE.get(e.mode & _IFMT, "file")
    f["mode"] = f"{e.mode & 0o7777:04o}"
    if e.ino:
        f["inode"] = str(e.ino)
        f["device"] = str(e.dev)
    doc["file"] = f
    _error(doc, e.result)
    return doc


def _unlink(e: FileUnlink, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["deletion"], _outcome(e.result))
    f = _file(e.path)
    if e.is_dir:
        f["type"] = "dir"
    doc["file"] = f
    _error(doc, e.result)
    return doc


def _mkdir(e: DirCreate, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["creation"], _outcome(e.result))
    f = _file(e.path)
    f["type"] = "dir"
    f["mode"] = f"{e.mode & 0o7777:04o}"
    doc["file"] = f
    _error(doc, e.result)
    return doc


def _rename(e: FileRename, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["change"], _outcome(e.result))
    # file.* is the file under its new name; ECS has no field for the old one
    doc["file"] = _file(e.new_path)
    labels = {"original_path": e.path}
    if e.replaced is not None:
        labels["replaced"] = str(e.replaced).lower()
    doc["labels"] = labels
    _error(doc, e.result)
    return doc


def _chmod(e: FileChmod, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["change"], _outcome(e.result))
    f = _file(e.path)
    f["mode"] = f"{e.mode & 0o7777:04o}"
    doc["file"] = f
    _error(doc, e.result)
    return doc


def _chown(e: FileChown, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["change"], _outcome(e.result))
    f = _file(e.path)
    if e.new_uid != _UNSET_ID:
        f["uid"] = str(e.new_uid)
    if e.new_gid != _UNSET_ID:
        f["gid"] = str(e.new_gid)
    doc["file"] = f
    _error(doc, e.result)
    return doc


def _link(e: FileLink, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["creation"], _outcome(e.result))
    doc["file"] = _file(e.new_path)
    doc["labels"] = {"link_source": e.path}
    _error(doc, e.result)
    return doc


def _symlink(e: FileSymlink, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["creation"], _outcome(e.result))
    f = _file(e.path)
    f["type"] = "symlink"
    f["target_path"] = e.target
    doc["file"] = f
    _error(doc, e.result)
    return doc


def _memfd(e: MemfdCreate, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["creation"], _outcome(e.result))
    doc["file"] = {"name": "memfd:" + e.name, "type": "file"}
    _error(doc, e.result)
    return doc


def _mount(e: Mount, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["change"], _outcome(e.result))
    f = _file(e.path or e.target)
    f["type"] = "dir"
    doc["file"] = f
    doc["labels"] = {"mount_source": e.source, "fstype": e.fstype, "mount_flags": hex(e.flags)}
    _error(doc, e.result)
    return doc


def _umount(e: Umount, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.file", ["file"], ["change"], _outcome(e.result))
    f = _file(e.path or e.target)
    f["type"] = "dir"
    doc["file"] = f
    doc["labels"] = {"umount_flags": hex(e.flags)}
    _error(doc, e.result)
    return doc


# --- network -----------------------------------------------------------------------

_TRANSPORT = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 132: "sctp", 1: "icmp", 58: "ipv6-icmp"}


def _endpoint(address: str, port: int, family: int) -> Doc:
    if family in (socket.AF_INET, socket.AF_INET6):
        return {"ip": address, "port": port, "address": address}
    return {"address": address}


def _net(
    e: NetConnect | NetAccept | NetBind | NetListen, off: int, h: Host, types: list[str], inbound: bool | None
) -> Doc:
    result = e.result
    outcome = "unknown" if result == -_EINPROGRESS else _outcome(result)
    doc = _base(e, off, h, "ebpfsensor.network", ["network"], types, outcome)
    family = e.family
    net: Doc = {}
    if family == socket.AF_INET:
        net["type"] = "ipv4"
    elif family == socket.AF_INET6:
        net["type"] = "ipv6"
    if family in (socket.AF_INET, socket.AF_INET6):
        transport = _TRANSPORT.get(e.protocol)
        if transport:
            net["transport"] = transport
        net["iana_number"] = str(e.protocol)
    if inbound is not None:
        net["direction"] = "ingress" if inbound else "egress"
    if net:
        doc["network"] = net
    local = e.local_address
    remote = e.remote_address
    ips = []
    if local:
        doc["destination" if inbound else "source"] = _endpoint(local, e.local_port, family)
        if family != socket.AF_UNIX:
            ips.append(local)
    if remote and inbound is not None:
        doc["source" if inbound else "destination"] = _endpoint(remote, e.remote_port, family)
        if family != socket.AF_UNIX:
            ips.append(remote)
    if ips:
        doc["related"] = {"ip": ips}
    if result != -_EINPROGRESS:
        _error(doc, result)
    return doc


def _connect(e: NetConnect, off: int, h: Host) -> Doc:
    return _net(e, off, h, ["connection", "start"], False)


def _accept(e: NetAccept, off: int, h: Host) -> Doc:
    return _net(e, off, h, ["connection", "start"], True)


def _bind(e: NetBind, off: int, h: Host) -> Doc:
    return _net(e, off, h, ["info"], None)


def _listen(e: NetListen, off: int, h: Host) -> Doc:
    doc = _net(e, off, h, ["start"], None)
    doc["labels"] = {"backlog": str(e.backlog)}
    return doc


# --- privileges and integrity --------------------------------------------------------


def _cred(e: CredChange, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.privilege", ["process"], ["change"], _outcome(e.result))
    p = doc["process"]
    # process.* after the call; the user before it stays in user.*, the
    # effective one after it in user.effective
    p["user"] = {"id": str(e.new_euid)}
    p["group"] = {"id": str(e.new_egid)}
    p["real_user"] = {"id": str(e.new_uid)}
    p["real_group"] = {"id": str(e.new_gid)}
    p["saved_user"] = {"id": str(e.new_suid)}
    p["saved_group"] = {"id": str(e.new_sgid)}
    doc["user"] = {"id": str(e.old_uid), "effective": {"id": str(e.new_euid)}}
    if (e.old_cap_effective, e.old_cap_permitted) != (e.new_cap_effective, e.new_cap_permitted):
        p["thread"]["capabilities"] = {
            "effective": cap_names(e.new_cap_effective),
            "permitted": cap_names(e.new_cap_permitted),
        }
    _error(doc, e.result)
    return doc


def _kill(e: Kill, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.privilege", ["process"], ["info"], _outcome(e.result))
    doc["labels"] = {
        "signal": signal_name(e.signal),
        "target_pid": str(e.target_pid),
        "target_tid": str(e.target_tid),
    }
    _error(doc, e.result)
    return doc


def _setsid(e: Setsid, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.privilege", ["process"], ["change"], _outcome(e.result))
    if e.result >= 0:
        doc["process"]["session_leader"] = {"pid": e.result, "same_as_process": e.result == e.pid}
    _error(doc, e.result)
    return doc


def _ptrace(e: Ptrace, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.privilege", ["process"], ["access"], _outcome(e.result))
    doc["labels"] = {"ptrace_request": ptrace_request_name(e.request), "target_pid": str(e.target_pid)}
    _error(doc, e.result)
    return doc


def _bpf(e: BpfCall, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.privilege", ["driver"], ["start" if e.cmd == 5 else "info"], _outcome(e.result))
    labels = {"bpf_cmd": bpf_cmd_name(e.cmd)}
    if e.cmd == 5:
        labels["bpf_prog_type"] = str(e.prog_type)
        labels["bpf_prog_name"] = e.prog_name
        labels["bpf_insn_cnt"] = str(e.insn_cnt)
    doc["labels"] = labels
    _error(doc, e.result)
    return doc


def _module(e: ModuleLoad, off: int, h: Host) -> Doc:
    doc = _base(e, off, h, "ebpfsensor.privilege", ["driver"], ["start"], _outcome(e.result))
    if e.path:
        doc["file"] = _file(e.path)
    labels = {"module_name": e.name}
    if e.args:
        labels["module_args"] = e.args
    doc["labels"] = labels
    _error(doc, e.result)
    return doc


# --- logins ----------------------------------------------------------------------------

_LOGIN: dict[str, tuple[list[str], list[str]]] = {
    "USER_LOGIN": (["authentication", "session"], ["start"]),
    "USER_LOGOUT": (["authentication", "session"], ["end"]),
    "USER_START": (["session"], ["start"]),
    "USER_END": (["session"], ["end"]),
    "USER_MGMT": (["iam"], ["change"]),
    "USER_CHAUTHTOK": (["iam"], ["change"]),
}


def _login(e: UserLogin, off: int, h: Host) -> Doc:
    category, types = _LOGIN.get(e.record_type, (["authentication"], ["info"]))
    # the record's own time, to the millisecond the kernel gives
    wall = round(e.audit_ts * 1000) * 1_000_000 if e.audit_ts else e.ts_ns + off
    doc: Doc = {
        "@timestamp": iso(wall),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "category": list(category),
            "type": list(types),
            "action": "user_login",
            "code": e.record_type,
            "outcome": "success" if e.success else "failure",
            "module": PRODUCT,
            "dataset": "ebpfsensor.login",
            "sequence": e.ts_ns,
            "original": e.message,
        },
        "agent": {"type": PRODUCT, "version": VERSION},
        "host": {
            "hostname": h.hostname,
            "name": h.hostname,
            "architecture": h.machine,
            "boot": {"id": h.boot_id},
            "os": {"type": "linux", "kernel": h.release},
        },
        "process": {"pid": e.pid, "real_user": {"id": str(e.uid)}},
    }
    if e.exe:
        doc["process"]["executable"] = e.exe
        doc["process"]["name"] = basename(e.exe)
    if e.user:
        doc["user"] = {"name": e.user}
        doc["related"] = {"user": [e.user]}
    source: Doc = {}
    if e.addr:
        source["address"] = e.addr
        ip = e.ip
        if ip is not None:
            source["ip"] = canonical(ip)
            doc.setdefault("related", {})["ip"] = [source["ip"]]
    if e.hostname and e.hostname != e.addr:
        source["domain"] = e.hostname
        source.setdefault("address", e.hostname)
    if source:
        doc["source"] = source
    labels = {"op": e.op, "audit_serial": str(e.audit_serial)}
    if e.terminal:
        labels["terminal"] = e.terminal
    if e.auid != _UNSET_ID:
        labels["auid"] = str(e.auid)
    if e.ses != _UNSET_ID:
        labels["ses"] = str(e.ses)
    doc["labels"] = labels
    return doc


# --- loss markers -------------------------------------------------------------------------


def _loss(e: Any, off: int, h: Host) -> Doc:
    """A loss marker (``EventLoss``, kind ``loss``): the sensor lost records
    between two checks; read by name, it has no Struct of its own here."""
    by_kind = ",".join(f"{k}={v}" for k, v in sorted(e.by_kind.items()))
    labels = {"loss_source": e.source, "lost": str(e.lost), "processes_marked": str(e.processes_marked)}
    if by_kind:
        labels["lost_by_kind"] = by_kind
    return {
        "@timestamp": iso(e.ts_ns + off),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "pipeline_error",
            "action": "loss",
            "module": PRODUCT,
            "dataset": "ebpfsensor.loss",
            "sequence": e.ts_ns,
            "start": iso(e.window_start_ns + off),
            "end": iso(e.window_end_ns + off),
            "reason": f"{e.lost} records lost ({e.source})",
        },
        "agent": {"type": PRODUCT, "version": VERSION},
        "host": {
            "hostname": h.hostname,
            "name": h.hostname,
            "architecture": h.machine,
            "boot": {"id": h.boot_id},
            "os": {"type": "linux", "kernel": h.release},
        },
        "labels": labels,
    }


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


def ecs(event: Any) -> Doc:
    """One event as an ECS document: a dict of plain JSON types.

    Raises:
        TypeError: not an ebpfsensor event.
    """
    return _mapper(event)(event, wall_offset_ns(), Host())


def ecs_batch(events: Iterable[Any]) -> list[Doc]:
    """Events as ECS documents, in order; the clock and the host are read
    once for the whole batch.

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
