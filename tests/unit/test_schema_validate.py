# SPDX-License-Identifier: Apache-2.0
"""Validators of ECS documents and OCSF events against the published schemas
kept in tests/data/schemas/ (README.md there names versions and sources),
sample events of every kind, and the validators' own tests: each rule
rejects what it should.

ECS: every field is in the flat field reference with its type (arrays where
the reference normalizes to one, scalars elsewhere), `@timestamp` and
`ecs.version` are present, the categorization fields hold allowed values and
every `event.type` is expected for one of the `event.category` values.

OCSF: the class is known and `category_uid`, `class_uid`, `activity_id` and
`type_uid` agree; every attribute is defined for its class or object, has its
type (objects recursively, enums by value, string types by their regex and
length), required attributes are present (those of a profile only when
`metadata.profiles` declares it), `at_least_one`/`just_one` constraints hold,
and each `_id` enum's sibling caption matches (free text for Other, 99).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.recordgen import make_record

from ebpfsensor.events import KINDS, EventType, decode
from ebpfsensor.sources.audit import parse_record

DATA = Path(__file__).resolve().parents[1] / "data" / "schemas"
ECS_FILE = DATA / "ecs-9.4.0.json"
OCSF_FILE = DATA / "ocsf-1.8.0.json"


@functools.cache
def ecs_schema() -> dict[str, Any]:
    with open(ECS_FILE) as f:
        return dict(json.load(f))


@functools.cache
def ocsf_schema() -> dict[str, Any]:
    with open(OCSF_FILE) as f:
        return dict(json.load(f))


# --- ECS ------------------------------------------------------------------------------

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_INT_RANGES = {
    "long": (-(2**63), 2**63 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "unsigned_long": (0, 2**64 - 1),
}
_STRINGS = {"keyword", "constant_keyword", "wildcard", "match_only_text", "text"}


def _ecs_scalar(name: str, ftype: str, v: Any) -> str | None:
    if ftype in _STRINGS:
        return None if isinstance(v, str) else f"{name}: {ftype} wants a string, got {v!r}"
    if ftype in _INT_RANGES:
        lo, hi = _INT_RANGES[ftype]
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"{name}: {ftype} wants an integer in range, got {v!r}"
    if ftype in ("float", "double", "scaled_float", "half_float"):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return None if ok else f"{name}: {ftype} wants a number, got {v!r}"
    if ftype == "boolean":
        return None if isinstance(v, bool) else f"{name}: boolean wants true/false, got {v!r}"
    if ftype == "date":
        return None if isinstance(v, str) and _ISO.match(v) else f"{name}: date wants ISO 8601, got {v!r}"
    if ftype == "ip":
        try:
            ipaddress.ip_address(v)
            return None
        except (ValueError, TypeError):
            return f"{name}: ip wants an IP address, got {v!r}"
    return f"{name}: type {ftype} is not checked by this validator"


def validate_ecs(doc: dict[str, Any]) -> list[str]:
    """Errors of an ECS document ([] when it is valid)."""
    fields = ecs_schema()["fields"]
    errors: list[str] = []
    prefixes = {n.rsplit(".", i)[0] for n in fields for i in range(1, n.count(".") + 1)}
    flat: dict[str, Any] = {}

    def walk(prefix: str, obj: dict[str, Any]) -> None:
        for key, v in obj.items():
            name = f"{prefix}.{key}" if prefix else key
            spec = fields.get(name)
            if spec is not None and spec["type"] in ("object", "flattened", "nested"):
                if not isinstance(v, dict):
                    errors.append(f"{name}: {spec['type']} wants an object, got {v!r}")
                elif name == "labels":
                    errors.extend(
                        f"labels.{k}: labels hold keywords, got {x!r}" for k, x in v.items() if not isinstance(x, str)
                    )
                flat[name] = v
                continue
            if isinstance(v, dict):
                if spec is not None:
                    errors.append(f"{name}: {spec['type']} given an object")
                elif name not in prefixes:
                    errors.append(f"{name}: not an ECS field or field set")
                else:
                    walk(name, v)
                continue
            if spec is None:
                errors.append(f"{name}: not an ECS field")
                continue
            flat[name] = v
            if spec.get("array"):
                if not isinstance(v, list):
                    errors.append(f"{name}: an array field, got {v!r}")
                    continue
                errors.extend(e for x in v if (e := _ecs_scalar(name, spec["type"], x)))
            elif isinstance(v, list):
                errors.append(f"{name}: not an array field, got a list")
            elif (e := _ecs_scalar(name, spec["type"], v)) is not None:
                errors.append(e)

    walk("", doc)
    for name, spec in fields.items():
        if spec.get("required") and name not in flat:
            errors.append(f"{name}: required, missing")
    for name in ("event.kind", "event.category", "event.type", "event.outcome"):
        allowed = fields[name]["allowed_values"]
        values = flat.get(name)
        for v in values if isinstance(values, list) else [] if values is None else [values]:
            if v not in allowed:
                errors.append(f"{name}: {v!r} is not an allowed value")
    categories = flat.get("event.category") or []
    expected = {t for c in categories for t in (fields["event.category"]["allowed_values"].get(c) or [])}
    for t in flat.get("event.type") or []:
        if categories and t not in expected:
            errors.append(f"event.type: {t!r} is not expected for event.category {categories}")
    return errors


# --- OCSF -----------------------------------------------------------------------------

_OCSF_INT_RANGES = {"integer_t": (-(2**31), 2**31 - 1), "long_t": (-(2**63), 2**63 - 1)}


def _base_type(name: str) -> tuple[str, list[tuple[str, Any]]]:
    """The primitive type under an OCSF type, with the checks met on the way."""
    types = ocsf_schema()["types"]
    checks: list[tuple[str, Any]] = []
    while True:
        t = types[name]
        checks += [(k, t[k]) for k in ("regex", "max_len", "range") if k in t]
        if "type" not in t:
            return name, checks
        name = t["type"]


def _ocsf_value(path: str, attr: dict[str, Any], v: Any, profiles: set[str], errors: list[str]) -> None:
    schema = ocsf_schema()
    t = attr["type"]
    if t == "object" or t == "json_t":
        if t == "object" and not isinstance(v, dict):
            errors.append(f"{path}: object wants a JSON object, got {v!r}")
        return
    if t in schema["objects"]:
        if not isinstance(v, dict):
            errors.append(f"{path}: {t} wants an object, got {v!r}")
            return
        obj = schema["objects"][t]
        _ocsf_object(path, v, obj["attributes"], obj.get("constraints"), profiles, errors)
        return
    if t not in schema["types"]:
        errors.append(f"{path}: unknown type {t}")
        return
    base, checks = _base_type(t)
    if base == "string_t":
        if not isinstance(v, str):
            errors.append(f"{path}: {t} wants a string, got {v!r}")
            return
    elif base in _OCSF_INT_RANGES:
        lo, hi = _OCSF_INT_RANGES[base]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            errors.append(f"{path}: {t} wants an integer in range, got {v!r}")
            return
    elif base == "float_t":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            errors.append(f"{path}: {t} wants a number, got {v!r}")
            return
    elif base == "boolean_t":
        if not isinstance(v, bool):
            errors.append(f"{path}: {t} wants true/false, got {v!r}")
            return
    for kind, rule in checks:
        if kind == "regex" and not re.search(rule, v):
            errors.append(f"{path}: {v!r} does not match {t}'s pattern")
        elif kind == "max_len" and len(v) > rule:
            errors.append(f"{path}: longer than {t}'s {rule}")
        elif kind == "range" and not rule[0] <= v <= rule[1]:
            errors.append(f"{path}: {v} outside {t}'s range {rule}")
    enum = attr.get("enum")
    if enum is not None and str(v) not in enum:
        errors.append(f"{path}: {v!r} is not one of {sorted(enum)}")


def _ocsf_object(
    path: str,
    value: dict[str, Any],
    attrs: dict[str, Any],
    constraints: dict[str, Any] | None,
    profiles: set[str],
    errors: list[str],
) -> None:
    prefix = f"{path}." if path else ""
    for name, v in value.items():
        attr = attrs.get(name)
        where = prefix + name
        if attr is None:
            errors.append(f"{where}: not an attribute here")
            continue
        if attr.get("profile") and attr["profile"] not in profiles:
            errors.append(f"{where}: from profile {attr['profile']}, which metadata.profiles does not declare")
        if attr.get("deprecated"):
            errors.append(f"{where}: deprecated")
        if attr.get("is_array"):
            if not isinstance(v, list):
                errors.append(f"{where}: an array attribute, got {v!r}")
                continue
            for i, item in enumerate(v):
                _ocsf_value(f"{where}[{i}]", attr, item, profiles, errors)
        else:
            _ocsf_value(where, attr, v, profiles, errors)
        sibling = attr.get("sibling")
        enum = attr.get("enum")
        if sibling and enum and sibling in value and str(v) in enum and str(v) != "99":
            if value[sibling] != enum[str(v)]:
                errors.append(f"{prefix}{sibling}: {value[sibling]!r}, but {where} {v} is {enum[str(v)]!r}")
    for name, attr in attrs.items():
        if attr["requirement"] == "required" and name not in value:
            if not attr.get("profile") or attr["profile"] in profiles:
                errors.append(f"{prefix}{name}: required, missing")
    for rule, names in (constraints or {}).items():
        present = [n for n in names if n in value]
        if rule == "at_least_one" and not present:
            errors.append(f"{path or '(event)'}: needs at least one of {names}")
        elif rule == "just_one" and len(present) != 1:
            errors.append(f"{path or '(event)'}: needs exactly one of {names}, has {present}")


def validate_ocsf(doc: dict[str, Any]) -> list[str]:
    """Errors of an OCSF event ([] when it is valid)."""
    schema = ocsf_schema()
    cls = next((c for c in schema["classes"].values() if c["uid"] == doc.get("class_uid")), None)
    if cls is None:
        return [f"class_uid: {doc.get('class_uid')!r} is not a class this extract holds"]
    errors: list[str] = []
    category = schema["categories"].get(cls["category"], {})
    if doc.get("category_uid") != category.get("uid"):
        errors.append(f"category_uid: {doc.get('category_uid')!r}, but class {cls['uid']} is in {category}")
    activity = doc.get("activity_id")
    if isinstance(activity, int) and doc.get("type_uid") != cls["uid"] * 100 + activity:
        errors.append(f"type_uid: {doc.get('type_uid')!r} is not class_uid * 100 + activity_id")
    meta = doc.get("metadata") or {}
    profiles = set(meta.get("profiles") or [])
    errors += [f"metadata.profiles: unknown {p!r}" for p in sorted(profiles - set(schema["profiles"]))]
    if meta.get("version") != schema["version"]:
        errors.append(f"metadata.version: {meta.get('version')!r}, the schema is {schema['version']}")
    _ocsf_object("", doc, cls["attributes"], cls.get("constraints"), profiles, errors)
    return errors


# --- sample events ---------------------------------------------------------------------

TASK = {"ts_ns": 5_000_000_000, "cgroup_id": 4242, "start_time_ns": 4_000_000_000, "pid": 77, "tid": 78, "ppid": 1,
        "uid": 1000, "gid": 1001, "comm": "prog"}  # fmt: skip


def _rec(etype: EventType, tails: dict[str, bytes] | None = None, **fields: Any) -> Any:
    return decode(make_record(etype, tails, **{**TASK, **fields}))


def _addr(text: str) -> list[int]:
    return list(ipaddress.ip_address(text).packed)


def sample_events() -> list[Any]:
    """Events of every kind, decoded from records as the BPF programs write
    them (and a login record as the kernel sends it); variants where a
    mapping branches: failures, IPv4/IPv6/unix, signals, containers."""
    t = EventType
    x: list[Any] = [
        _rec(t.EXEC, {"exe": b"/usr/bin/ls\0", "cwd": b"/home/u\0", "parent_exe": b"/usr/bin/bash\0",
                      "argv": b"ls\0-l\0/tmp\0"},
             euid=0, egid=0, suid=0, sgid=0, fsuid=0, fsgid=0, loginuid=1000, sessionid=3, pid_ns=1, mnt_ns=2,
             net_ns=3, user_ns=4, old_tid=78, parent_comm="bash", tty="pts0"),
        _rec(t.FORK, child_start_time_ns=4_500_000_000, clone_flags=0x11, child_pid=90, child_tid=90),
        _rec(t.FORK, child_start_time_ns=0, clone_flags=0, child_pid=91, child_tid=91),
        _rec(t.EXIT, duration_ns=2_500_000_000, exit_code=3),
        _rec(t.EXIT, duration_ns=1, exit_signal=9, core_dumped=1),
        _rec(t.FILE_OPEN, {"path": b"/etc/passwd\0", "arg_path": b"/etc/passwd\0"}, result=3, syscall_nr=257,
             ino=1234, dev=0x801, flags=0o2000000, dirfd=-100, resolved=1, path_source=1),
        _rec(t.FILE_OPEN, {"path": b"/nope\0", "arg_path": b"/nope\0"}, result=-2, syscall_nr=257, dirfd=-100,
             path_source=2),
        _rec(t.FILE_CREATE, {"path": b"/tmp/new\0", "arg_path": b"new\0"}, result=4, syscall_nr=257, ino=55,
             dev=0x801, flags=0o101, mode=0o644, created=1, resolved=1, dirfd=-100),
        _rec(t.FILE_CREATE, {"path": b"/tmp/fifo\0", "arg_path": b"fifo\0"}, result=0, syscall_nr=133,
             mode=0o010600, created=1, dirfd=-100),
        _rec(t.FILE_UNLINK, {"path": b"/tmp/old\0", "arg_path": b"old\0"}, result=0, syscall_nr=87, dirfd=-100),
        _rec(t.FILE_UNLINK, {"path": b"/tmp/d\0", "arg_path": b"d\0"}, result=-39, syscall_nr=84, dirfd=-100,
             flags=0x200, is_dir=1),
        _rec(t.DIR_CREATE, {"path": b"/tmp/d\0", "arg_path": b"d\0"}, result=0, syscall_nr=83, mode=0o755,
             dirfd=-100),
        _rec(t.FILE_RENAME, {"path": b"/tmp/a\0", "arg_path": b"a\0", "new_path": b"/tmp/b\0",
                             "new_arg_path": b"b\0"}, result=0, syscall_nr=82, dirfd=-100, new_dirfd=-100),
        _rec(t.FILE_CHMOD, {"path": b"/tmp/a\0", "arg_path": b"a\0"}, result=0, syscall_nr=90, mode=0o4755,
             dirfd=-100),
        _rec(t.FILE_CHOWN, {"path": b"/tmp/a\0", "arg_path": b"a\0"}, result=-1, syscall_nr=92, new_uid=0,
             new_gid=4294967295, dirfd=-100),
        _rec(t.FILE_LINK, {"path": b"/tmp/a\0", "arg_path": b"a\0", "new_path": b"/tmp/h\0",
                           "new_arg_path": b"h\0"}, result=0, syscall_nr=86, dirfd=-100, new_dirfd=-100),
        _rec(t.FILE_SYMLINK, {"target": b"../etc/shadow\0", "path": b"/tmp/s\0", "arg_path": b"s\0"}, result=0,
             syscall_nr=88, dirfd=-100),
        _rec(t.NET_CONNECT, {"local_path": b"", "remote_path": b""}, result=0, syscall_nr=42, fd=5,
             family=socket.AF_INET, sock_type=1, protocol=6, local_port=40000, remote_port=443,
             local_addr=_addr("10.0.0.2"), remote_addr=_addr("93.184.216.34"), local_source=1, remote_source=1),
        _rec(t.NET_CONNECT, {"local_path": b"", "remote_path": b""}, result=-111, syscall_nr=42, fd=5,
             family=socket.AF_INET6, sock_type=1, protocol=6, local_port=40001, remote_port=22,
             local_addr=_addr("::1"), remote_addr=_addr("::1")),
        _rec(t.NET_CONNECT, {"local_path": b"", "remote_path": b""}, result=-115, syscall_nr=42, fd=5,
             family=socket.AF_INET, sock_type=1, protocol=6, local_port=40002, remote_port=80,
             local_addr=_addr("10.0.0.2"), remote_addr=_addr("10.0.0.9")),
        _rec(t.NET_CONNECT, {"local_path": b"", "remote_path": b"/run/x.sock\0"}, result=0, syscall_nr=42, fd=5,
             family=socket.AF_UNIX, sock_type=1),
        _rec(t.NET_CONNECT, {"local_path": b"", "remote_path": b""}, result=-2, syscall_nr=42, fd=5,
             family=socket.AF_UNIX, sock_type=1),
        _rec(t.NET_ACCEPT, {"local_path": b"", "remote_path": b""}, result=6, syscall_nr=43, fd=4,
             family=socket.AF_INET, sock_type=1, protocol=6, local_port=8080, remote_port=51000,
             local_addr=_addr("127.0.0.1"), remote_addr=_addr("127.0.0.1")),
        _rec(t.NET_BIND, {"local_path": b"", "remote_path": b""}, result=0, syscall_nr=49, fd=4,
             family=socket.AF_INET, sock_type=2, protocol=17, local_port=5353, local_addr=_addr("0.0.0.0")),
        _rec(t.NET_LISTEN, {"local_path": b"@abstract\0", "remote_path": b""}, result=0, syscall_nr=50, fd=4,
             backlog=128, family=socket.AF_UNIX, sock_type=1),
        _rec(t.CRED_CHANGE, result=0, syscall_nr=105, old_uid=0, old_euid=0, old_suid=0, old_fsuid=0,
             new_uid=65534, new_euid=65534, new_suid=65534, new_fsuid=65534, old_cap_effective=0x1ffffffffff,
             old_cap_permitted=0x1ffffffffff, arg0=65534),
        _rec(t.CRED_CHANGE, result=0, syscall_nr=126, old_cap_effective=0x3, old_cap_permitted=0x3,
             new_cap_effective=0x1, new_cap_permitted=0x3),
        _rec(t.KILL, result=0, syscall_nr=62, target_pid=1234, signal=15),
        _rec(t.KILL, result=-3, syscall_nr=200, target_tid=4321, signal=9),
        _rec(t.SETSID, result=77, syscall_nr=112),
        _rec(t.SETSID, result=-1, syscall_nr=112),
        _rec(t.PTRACE, result=0, syscall_nr=101, request=16, target_pid=1234),
        _rec(t.PTRACE, result=0, syscall_nr=101, request=5, addr=0x1000, data=0x90, target_pid=1234),
        _rec(t.PTRACE, result=0, syscall_nr=101, request=0),
        _rec(t.MEMFD_CREATE, {"name": b"payload\0"}, result=5, syscall_nr=319, flags=1),
        _rec(t.BPF_CALL, result=7, syscall_nr=321, cmd=5, prog_type=1, insn_cnt=42, attr_size=128,
             prog_name="handle_exec"),
        _rec(t.BPF_CALL, result=8, syscall_nr=321, cmd=0, attr_size=72),
        _rec(t.BPF_CALL, result=-1, syscall_nr=321, cmd=6, attr_size=16),
        _rec(t.MODULE_LOAD, {"path": b"/lib/modules/x/dummy.ko\0", "args": b"numdummies=0\0"}, result=0,
             syscall_nr=313, fd=3, name="dummy"),
        _rec(t.MODULE_LOAD, {"path": b"", "args": b"\0"}, result=-8, syscall_nr=175, image_len=100, fd=-1),
        _rec(t.MOUNT, {"source": b"none\0", "target": b"/mnt\0", "fstype": b"tmpfs\0", "path": b"/mnt\0"},
             result=0, syscall_nr=165, flags=6),
        _rec(t.MOUNT, {"source": b"\0", "target": b"/\0", "fstype": b"\0", "path": b"/\0"}, result=-1,
             syscall_nr=165, flags=0x44000),
        _rec(t.UMOUNT, {"target": b"/mnt\0", "path": b"/mnt\0"}, result=0, syscall_nr=166),
    ]  # fmt: skip
    x.append(msgspec.structs.replace(x[0], container_id="f" * 64))
    x.append(msgspec.structs.replace(x[5], container_id="c" * 64))
    x += [
        parse_record(
            "USER_LOGIN",
            'audit(1764000000.123:456): pid=812 uid=0 auid=1000 ses=4 msg=\'op=login acct="bob" exe="/usr/sbin/sshd" '
            "hostname=203.0.113.7 addr=203.0.113.7 terminal=ssh res=success'",
        ),
        parse_record(
            "USER_AUTH",
            "audit(1764000001.5:457): pid=900 uid=65534 auid=4294967295 ses=4294967295 msg='op=PAM:authentication "
            'grantors=? acct="alice" exe="/usr/bin/su" hostname=? addr=? terminal=/dev/pts/1 res=failed\'',
        ),
        parse_record(
            "USER_END",
            "audit(1764000002.0:458): pid=901 uid=0 auid=1000 ses=5 msg='op=PAM:session_close "
            'grantors=pam_unix acct="root" exe="/usr/bin/sudo" hostname=? addr=? terminal=/dev/pts/1 res=success\'',
        ),
        parse_record(
            "CRED_ACQ",
            "audit(1764000003.0:459): pid=902 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:setcred "
            'grantors=pam_permit acct="?" exe="/usr/sbin/cron" hostname=? addr=? terminal=cron res=success\'',
        ),
    ]
    return x


def eid(pid: int, start_time_ns: int) -> str:
    """The entity id the process context documents (``ProcessInfo.entity_id``)."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = uuid.UUID(f.read().strip()).bytes
    ticks = start_time_ns // (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    data = boot + pid.to_bytes(4, "little") + ticks.to_bytes(8, "little")
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:12]).decode()


class _ExeHash(msgspec.Struct, frozen=True):
    sha256: str = ""
    sha1: str = ""
    md5: str = ""


class _ProcessInfo(msgspec.Struct, frozen=True, kw_only=True):
    """ProcessInfo's fields, for a tree where events carry no process context."""

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
    exe_hash: Any = None
    exe_hash_reason: str = ""
    source: str = "exec"
    context_incomplete: Any = None


def process_info(pid: int, start_time_ns: int, exe: str, argv: list[str], *, sha256: str = "", sid: int = 0) -> Any:
    """A process context as the sensor's process table makes it (its own
    ProcessInfo where the events have one)."""
    try:
        from ebpfsensor.events._base import ExeHash, ProcessInfo  # type: ignore[attr-defined]
    except ImportError:
        ExeHash, ProcessInfo = _ExeHash, _ProcessInfo
    return ProcessInfo(
        entity_id=eid(pid, start_time_ns), pid=pid, start_time_ns=start_time_ns, ppid=1, parent_entity_id="",
        exe=exe, argv=argv, cwd="/root", comm=exe.rpartition("/")[2][:15], uid=1000, euid=0, gid=1001, egid=0,
        loginuid=1000, sessionid=3, sid=sid, tty="pts0", cgroup_id=1, container_id="",
        exe_hash=ExeHash(sha256=sha256) if sha256 else None,
    )  # fmt: skip


def with_context(event: Any, process: Any, parent: Any) -> Any:
    """The event with process context, whether or not this tree's events have
    the fields (the mappings read them by name)."""
    cls = type(event)
    if "process" in cls.__struct_fields__:
        return msgspec.structs.replace(event, process=process, parent=parent)
    sub = msgspec.defstruct(
        cls.__name__ + "WithContext",
        [("process", Any, None), ("parent", Any, None)],
        bases=(cls,),
        frozen=True,
        gc=False,
        tag=event.kind,
    )
    return sub(**msgspec.structs.asdict(event), process=process, parent=parent)


class _EventLoss(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="loss"):
    """The loss marker's fields, for a tree whose events have none."""

    ts_ns: int
    window_start_ns: int
    window_end_ns: int
    source: str
    lost: int
    by_kind: dict[str, int]
    processes_marked: int


def loss_marker() -> Any:
    """A loss marker as the sensor puts one in the stream (its own EventLoss
    where the tree has one)."""
    try:
        from ebpfsensor.events.loss import EventLoss  # type: ignore[import-not-found]
    except ImportError:
        EventLoss = _EventLoss
    return EventLoss(
        ts_ns=5_000_000_000, window_start_ns=4_000_000_000, window_end_ns=4_900_000_000, source="ebpf", lost=12,
        by_kind={"file_open": 10, "process_exec": 2}, processes_marked=3,
    )  # fmt: skip


def test_samples_cover_every_kind() -> None:
    assert {e.kind for e in sample_events()} == set(KINDS)


# --- the validators' own tests -----------------------------------------------------------


def _ecs_ok() -> dict[str, Any]:
    return {
        "@timestamp": "2026-01-01T00:00:00.000001Z",
        "ecs": {"version": "9.4.0"},
        "event": {"kind": "event", "category": ["process"], "type": ["start"], "outcome": "success"},
        "process": {"pid": 1, "args": ["a"], "parent": {"pid": 0}},
        "source": {"ip": "::1", "port": 1},
        "labels": {"a": "b"},
    }


def test_ecs_validator_accepts_a_valid_document() -> None:
    assert validate_ecs(_ecs_ok()) == []


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("process", "nonesuch"), 1, "process.nonesuch: not an ECS field"),
        (("nonesuch",), {"a": 1}, "nonesuch: not an ECS field or field set"),
        (("process", "pid"), "1", "process.pid: long wants an integer"),
        (("process", "pid"), True, "process.pid: long wants an integer"),
        (("process", "args"), "a", "process.args: an array field"),
        (("process", "name"), ["a"], "process.name: not an array field"),
        (("source", "ip"), "not-an-ip", "source.ip: ip wants an IP address"),
        (("@timestamp",), "yesterday", "@timestamp: date wants ISO 8601"),
        (("event", "category"), ["nonesuch"], "event.category: 'nonesuch' is not an allowed value"),
        (("event", "type"), ["deletion"], "event.type: 'deletion' is not expected for event.category"),
        (("labels",), {"a": 1}, "labels.a: labels hold keywords"),
        (("process", "parent"), 1, "process.parent: not an ECS field"),
    ],
)
def test_ecs_validator_rejects(path: tuple[str, ...], value: Any, error: str) -> None:
    doc = _ecs_ok()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = validate_ecs(doc)
    assert any(e.startswith(error) or error in e for e in errors), errors


def test_ecs_validator_wants_the_required_fields() -> None:
    doc = _ecs_ok()
    del doc["@timestamp"]
    assert validate_ecs(doc) == ["@timestamp: required, missing"]


def _ocsf_ok() -> dict[str, Any]:
    return {
        "category_uid": 1,
        "class_uid": 1007,
        "activity_id": 2,
        "activity_name": "Terminate",
        "type_uid": 100702,
        "severity_id": 1,
        "time": 1,
        "metadata": {"version": "1.8.0", "product": {"name": "x"}, "profiles": ["host"]},
        "device": {"hostname": "h", "type_id": 0},
        "actor": {"process": {"pid": 1}},
        "process": {"pid": 1, "file": {"name": "x", "type_id": 1}},
    }


def test_ocsf_validator_accepts_a_valid_event() -> None:
    assert validate_ocsf(_ocsf_ok()) == []


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("type_uid",), 100701, "type_uid: 100701 is not class_uid * 100 + activity_id"),
        (("category_uid",), 4, "category_uid: 4"),
        (("class_uid",), 9999, "class_uid: 9999 is not a class"),
        (("activity_id",), 7, "activity_id: 7 is not one of"),
        (("activity_name",), "Launch", "activity_name: 'Launch', but activity_id 2 is 'Terminate'"),
        (("process", "nonesuch"), 1, "process.nonesuch: not an attribute here"),
        (("process", "pid"), "1", "process.pid: integer_t wants an integer"),
        (("process", "pid"), 2**40, "process.pid: integer_t wants an integer in range"),
        (("process", "file", "type_id"), 42, "process.file.type_id: 42 is not one of"),
        (("process", "file", "hashes"), {"value": "x"}, "process.file.hashes: an array attribute"),
        (("device", "ip"), "999.1.1.1", "device.ip: '999.1.1.1' does not match ip_t's pattern"),
        (("process", "container"), {"uid": "c"}, "process.container: from profile container"),
        (("metadata", "version"), "1.3.0", "metadata.version: '1.3.0', the schema is 1.8.0"),
        (("severity_id",), True, "severity_id: integer_t wants an integer"),
    ],
)
def test_ocsf_validator_rejects(path: tuple[str, ...], value: Any, error: str) -> None:
    doc = _ocsf_ok()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = validate_ocsf(doc)
    assert any(e.startswith(error) for e in errors), errors


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (("time",), "time: required, missing"),
        (("actor",), "actor: required, missing"),
        (("device",), "device: required, missing"),
        (("process", "file", "name"), "process.file.name: required, missing"),
        (("actor", "process"), "actor: needs at least one of"),
        (("process", "pid"), "process: needs at least one of ['pid', 'uid', 'cpid']"),
    ],
)
def test_ocsf_validator_wants_required_attributes_and_constraints(path: tuple[str, ...], error: str) -> None:
    doc = _ocsf_ok()
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    errors = validate_ocsf(doc)
    assert any(e.startswith(error) for e in errors), errors


def test_the_extracts_name_their_versions() -> None:
    assert ecs_schema()["version"] == "9.4.0" and ocsf_schema()["version"] == "1.8.0"
    readme = (DATA / "README.md").read_text()
    for text in ("9.4.0", "1.8.0", "elastic/ecs", "ocsf/ocsf-schema", "Apache"):
        assert text in readme
    assert os.path.getsize(ECS_FILE) > 100_000 and os.path.getsize(OCSF_FILE) > 100_000
