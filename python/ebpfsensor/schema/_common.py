# SPDX-License-Identifier: Apache-2.0
"""What the ECS and OCSF mappings share: wall time, the host, names of
numbers (errno, signals, capabilities, bpf commands, ptrace requests) and the
process context that events may carry."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import signal
import socket
import time
import uuid
from typing import Any

from .. import __version__

__all__ = [
    "PRODUCT",
    "PTRACE_WRITES",
    "VERSION",
    "Host",
    "basename",
    "bpf_cmd_name",
    "cap_names",
    "context",
    "ctx_get",
    "dirname",
    "entity_id",
    "errno_name",
    "hashes",
    "iso",
    "ms",
    "ptrace_request_name",
    "signal_name",
    "wall_offset_ns",
]

PRODUCT = "ebpfsensor"
VERSION = __version__


_offset: tuple[float, int] = (-2.0, 0)


def wall_offset_ns() -> int:
    """What to add to a CLOCK_BOOTTIME timestamp to get Unix time, read at
    most once a second: the documents made within a second agree on it,
    and a clock step shows within one."""
    global _offset
    now = time.monotonic()
    at, off = _offset
    if now - at >= 1.0:
        off = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        _offset = (now, off)
    return off


# one strftime per second: events, and their processes' starts, share few seconds
_iso_seconds: dict[int, str] = {}
_ISO_SECONDS_MAX = 4096


def iso(wall_ns: int) -> str:
    """Unix ns as RFC 3339 UTC with microseconds: ``2026-12-06T17:32:01.123456Z``."""
    sec, frac = divmod(wall_ns, 1_000_000_000)
    prefix = _iso_seconds.get(sec)
    if prefix is None:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        if len(_iso_seconds) >= _ISO_SECONDS_MAX:
            _iso_seconds.clear()
        _iso_seconds[sec] = prefix
    return f"{prefix}.{frac // 1000:06d}Z"


def ms(wall_ns: int) -> int:
    """Unix ns as Unix milliseconds (OCSF's timestamp_t)."""
    return wall_ns // 1_000_000


def _read_boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return str(uuid.UUID(f.read().strip()))
    except (OSError, ValueError):
        return str(uuid.UUID(int=0))


_BOOT_ID = _read_boot_id()
_BOOT_ID_BYTES = uuid.UUID(_BOOT_ID).bytes
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Host:
    """Facts about this machine that every document names; the hostname is
    read again when a Host is made (once per batch)."""

    __slots__ = ("boot_id", "hostname", "machine", "release")

    def __init__(self) -> None:
        uname = os.uname()
        self.hostname = uname.nodename or socket.gethostname()
        self.release = uname.release
        self.machine = uname.machine
        self.boot_id = _BOOT_ID


# processes repeat from event to event: their ids are kept, a bounded number
_entity_ids: dict[tuple[int, int], str] = {}
_ENTITY_IDS_MAX = 8192


def entity_id(pid: int, start_time_ns: int) -> str:
    """A process's name across pid reuse and reboots, as the sensor's process
    context (``ProcessInfo.entity_id``) names it: the first 12 bytes of
    SHA-256 over the boot id (16 bytes), the pid (4 bytes) and the start
    time in clock ticks (8 bytes), both little-endian, in unpadded URL-safe
    base64."""
    key = (pid, start_time_ns)
    found = _entity_ids.get(key)
    if found is None:
        data = _BOOT_ID_BYTES + pid.to_bytes(4, "little") + (start_time_ns // _NS_PER_TICK).to_bytes(8, "little")
        found = base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:12]).decode()
        if len(_entity_ids) >= _ENTITY_IDS_MAX:
            _entity_ids.clear()
        _entity_ids[key] = found
    return found


def basename(path: str) -> str:
    """The last component ("/" for the root, "" for "")."""
    if path == "/":
        return "/"
    return path.rstrip("/").rpartition("/")[2]


def dirname(path: str) -> str:
    head = path.rstrip("/").rpartition("/")[0]
    return head or ("/" if path.startswith("/") else "")


def errno_name(err: int) -> str:
    return errno.errorcode.get(err, str(err))


_SIGNALS = {int(s): s.name for s in signal.Signals}


def signal_name(sig: int) -> str:
    return _SIGNALS.get(sig, str(sig))


# linux/capability.h, in bit order
_CAPS = (
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID "
    "CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW "
    "CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT "
    "CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD "
    "CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG "
    "CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE"
).split()


def cap_names(mask: int) -> list[str]:
    """The capabilities set in a bit mask, by name (``CAP_<N>`` past the table)."""
    out = []
    bit = 0
    while mask:
        if mask & 1:
            out.append(_CAPS[bit] if bit < len(_CAPS) else f"CAP_{bit}")
        mask >>= 1
        bit += 1
    return out


# linux/bpf.h enum bpf_cmd, in order
_BPF_CMDS = (
    "BPF_MAP_CREATE BPF_MAP_LOOKUP_ELEM BPF_MAP_UPDATE_ELEM BPF_MAP_DELETE_ELEM BPF_MAP_GET_NEXT_KEY "
    "BPF_PROG_LOAD BPF_OBJ_PIN BPF_OBJ_GET BPF_PROG_ATTACH BPF_PROG_DETACH BPF_PROG_TEST_RUN "
    "BPF_PROG_GET_NEXT_ID BPF_MAP_GET_NEXT_ID BPF_PROG_GET_FD_BY_ID BPF_MAP_GET_FD_BY_ID "
    "BPF_OBJ_GET_INFO_BY_FD BPF_PROG_QUERY BPF_RAW_TRACEPOINT_OPEN BPF_BTF_LOAD BPF_BTF_GET_FD_BY_ID "
    "BPF_TASK_FD_QUERY BPF_MAP_LOOKUP_AND_DELETE_ELEM BPF_MAP_FREEZE BPF_BTF_GET_NEXT_ID "
    "BPF_MAP_LOOKUP_BATCH BPF_MAP_LOOKUP_AND_DELETE_BATCH BPF_MAP_UPDATE_BATCH BPF_MAP_DELETE_BATCH "
    "BPF_LINK_CREATE BPF_LINK_UPDATE BPF_LINK_GET_FD_BY_ID BPF_LINK_GET_NEXT_ID BPF_ENABLE_STATS "
    "BPF_ITER_CREATE BPF_LINK_DETACH BPF_PROG_BIND_MAP BPF_TOKEN_CREATE"
).split()


def bpf_cmd_name(cmd: int) -> str:
    return _BPF_CMDS[cmd] if 0 <= cmd < len(_BPF_CMDS) else str(cmd)


# linux/ptrace.h and asm/ptrace-abi.h: the requests the sensor reports
_PTRACE = {
    0: "PTRACE_TRACEME",
    4: "PTRACE_POKETEXT",
    5: "PTRACE_POKEDATA",
    6: "PTRACE_POKEUSR",
    13: "PTRACE_SETREGS",
    15: "PTRACE_SETFPREGS",
    16: "PTRACE_ATTACH",
    0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE",
}
#: requests that write to the tracee (the rest attach to it)
PTRACE_WRITES = frozenset({4, 5, 6, 13, 15, 0x4205})


def ptrace_request_name(request: int) -> str:
    return _PTRACE.get(request, str(request))


# --- process context --------------------------------------------------------------
# Events carry the acting process's and its parent's context (``process``,
# ``parent``: a ProcessInfo with image, arguments, credentials, entity id,
# hashes) when the sensor's process table is on; the mappings use what is
# there, read by name, and leave out what is not.

_ctx_fields: dict[type, tuple[bool, bool]] = {}


def context(event: Any) -> tuple[Any, Any]:
    """(process context, parent context) of an event, None where absent."""
    cls = type(event)
    has = _ctx_fields.get(cls)
    if has is None:
        has = _ctx_fields[cls] = (hasattr(cls, "process"), hasattr(cls, "parent"))
    return (event.process if has[0] else None, event.parent if has[1] else None)


def ctx_get(obj: Any, *names: str) -> Any:
    """The first of the named attributes that obj has and that is not empty."""
    if obj is None:
        return None
    for name in names:
        value = getattr(obj, name, None)
        if value is not None and value != "" and value != []:
            return value
    return None


_HASHES = ("md5", "sha1", "sha256", "sha512")


def hashes(obj: Any) -> dict[str, str]:
    """Hex digests by algorithm (md5, sha1, sha256, sha512) of a context's
    executable: its ``exe_hash`` or ``hashes`` (an object or a mapping), or
    its own ``<algorithm>`` attributes; empty digests are left out."""
    if obj is None:
        return {}
    out: dict[str, str] = {}
    for holder in (getattr(obj, "exe_hash", None), getattr(obj, "hashes", None), obj):
        if holder is None:
            continue
        for a in _HASHES:
            v = holder.get(a) if isinstance(holder, dict) else getattr(holder, a, None)
            if isinstance(v, str) and v:
                out.setdefault(a, v)
    return out


class ContextFields:
    """What a mapping derives from one process context, kept per context:
    the process table shares one immutable snapshot among all the events it
    describes, so a process's fields are worked out once (again when the
    clock offset is read anew, at most once a second). ``build(ctx, off)``
    returns (fields always set, fields set where the document has none);
    ``apply`` copies them into a document, nested dicts and lists fresh."""

    __slots__ = ("_build", "_entries")

    def __init__(self, build: Any) -> None:
        self._build = build
        self._entries: dict[int, tuple[Any, int, tuple[dict[str, Any], ...]]] = {}

    def apply(self, target: dict[str, Any], ctx: Any, off: int) -> None:
        entry = self._entries.get(id(ctx))
        if entry is None or entry[0] is not ctx or entry[1] != off:
            if len(self._entries) >= _CONTEXTS_MAX:
                self._entries.clear()
            always, absent = self._build(ctx, off)
            # plain values go in with one update(); nested ones are copied
            split = tuple(
                {k: v for k, v in d.items() if isinstance(v, (dict, list)) == nested}
                for d in (always, absent)
                for nested in (False, True)
            )
            entry = (ctx, off, split)
            self._entries[id(ctx)] = entry
        always_plain, always_nested, absent_plain, absent_nested = entry[2]
        target.update(always_plain)
        for k, v in always_nested.items():
            target[k] = _fresh(v)
        for k, v in absent_plain.items():
            if k not in target:
                target[k] = v
        for k, v in absent_nested.items():
            if k not in target:
                target[k] = _fresh(v)


def _fresh(v: Any) -> Any:
    """A copy of nested dicts and lists (their strings and numbers shared)."""
    if isinstance(v, dict):
        return {k: _fresh(x) if isinstance(x, (dict, list)) else x for k, x in v.items()}
    if v and isinstance(v[0], (dict, list)):
        return [_fresh(x) for x in v]
    return list(v)


_CONTEXTS_MAX = 4096
