# SPDX-License-Identifier: Apache-2.0
"""The kernel's audit subsystem over its netlink socket (no auditd, auditctl or
libaudit needed): the status, its settings, and the filter rules."""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time

import msgspec

from ..errors import DecodeError, NotSupportedError, PrivilegeError

__all__ = [
    "AuditRule",
    "AuditStatus",
    "add_rule",
    "audit_socket",
    "audit_status",
    "audit_status_text",
    "decode_rule",
    "delete_rule",
    "encode_rule",
    "list_rules",
    "set_audit_enabled",
    "set_audit_status",
]

NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_ADD_RULE = 1011
AUDIT_DEL_RULE = 1012
AUDIT_LIST_RULES = 1013
AUDIT_STATUS_ENABLED = 0x0001
AUDIT_STATUS_PID = 0x0004
AUDIT_STATUS_RATE_LIMIT = 0x0008
AUDIT_STATUS_BACKLOG_LIMIT = 0x0010
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4

# filter lists, actions and the flag that puts a rule first
AUDIT_FILTER_EXIT = 0x04
AUDIT_FILTER_PREPEND = 0x10
AUDIT_NEVER = 0
AUDIT_ALWAYS = 2

# rule fields (linux/audit.h)
AUDIT_PID = 0
AUDIT_UID = 1
AUDIT_LOGINUID = 9
AUDIT_ARCH = 11
AUDIT_PPID = 18
AUDIT_EXIT = 103
AUDIT_SUCCESS = 104
AUDIT_WATCH = 105
AUDIT_DIR = 107
AUDIT_EXE = 112
AUDIT_ARG0 = 200
AUDIT_FILTERKEY = 210
#: fields whose value is a string carried in the rule's buffer
STRING_FIELDS = frozenset({13, 14, 15, 16, 17, 19, 20, 21, 22, 23, AUDIT_WATCH, AUDIT_DIR, AUDIT_EXE, AUDIT_FILTERKEY})

# operators (fieldflags)
AUDIT_NOT_EQUAL = 0x30000000
AUDIT_EQUAL = 0x40000000

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_ARM = 0x40000028

AUDIT_BITMASK_SIZE = 64
AUDIT_MAX_FIELDS = 64
#: the fixed part of struct audit_rule_data: flags, action, field_count,
#: mask[64], fields[64], values[64], fieldflags[64], buflen
_RULE = struct.Struct(f"=3I{AUDIT_BITMASK_SIZE}I{AUDIT_MAX_FIELDS}I{AUDIT_MAX_FIELDS}I{AUDIT_MAX_FIELDS}II")

NLMSG_HEADER = struct.Struct("=IHHII")
_STATUS_FIELDS = (
    "mask",
    "enabled",
    "failure",
    "pid",
    "rate_limit",
    "backlog_limit",
    "lost",
    "backlog",
    "feature_bitmap",
    "backlog_wait_time",
    "backlog_wait_time_actual",
)
_TIMEOUT_S = 2.0


class AuditStatus(msgspec.Struct, frozen=True):
    """The kernel's audit status (AUDIT_GET).

    ``enabled`` is 0 (off), 1 (on) or 2 (on and locked until reboot); ``pid``
    is the registered audit daemon's, 0 for none; ``lost`` counts records
    the kernel dropped (rate limit, backlog limit, no memory);
    ``backlog_wait_time`` is how long, in jiffies, a task generating a record
    waits while the backlog is full, and ``backlog_wait_time_actual`` the
    total time tasks have waited (0 on kernels before 5.10).
    """

    enabled: int
    failure: int
    pid: int
    rate_limit: int
    backlog_limit: int
    lost: int
    backlog: int
    backlog_wait_time: int = 0
    backlog_wait_time_actual: int = 0


class AuditRule(msgspec.Struct, frozen=True):
    """A filter rule as the kernel holds it (``struct audit_rule_data``).

    Attributes:
        flags: the filter list (AUDIT_FILTER_EXIT, ...), with
            AUDIT_FILTER_PREPEND to put a new rule first.
        action: AUDIT_ALWAYS or AUDIT_NEVER.
        mask: the syscall bitmap, 64 32-bit words (bit N of word N // 32 is
            syscall N).
        fields: ``(field, operator, value)`` triples; ``value`` is a str for
            the fields in :data:`STRING_FIELDS`, else an int.
    """

    flags: int
    action: int
    mask: tuple[int, ...]
    fields: tuple[tuple[int, int, int | str], ...]

    @classmethod
    def syscall_rule(
        cls,
        action: int,
        syscalls: frozenset[int] | set[int],
        fields: tuple[tuple[int, int, int | str], ...],
        *,
        flags: int = AUDIT_FILTER_EXIT,
    ) -> AuditRule:
        """A rule on these syscall numbers."""
        words = [0] * AUDIT_BITMASK_SIZE
        for nr in syscalls:
            if not 0 <= nr < AUDIT_BITMASK_SIZE * 32:
                raise ValueError(f"syscall number {nr} is outside the audit bitmap")
            words[nr // 32] |= 1 << (nr % 32)
        return cls(flags, action, tuple(words), fields)

    @property
    def syscalls(self) -> frozenset[int]:
        """The syscall numbers in the mask."""
        return frozenset(w * 32 + b for w, word in enumerate(self.mask) for b in range(32) if word >> b & 1)

    @property
    def key(self) -> str | None:
        """The rule's key (AUDIT_FILTERKEY), None when it has none."""
        for field, _op, value in self.fields:
            if field == AUDIT_FILTERKEY and isinstance(value, str):
                return value
        return None


def encode_rule(rule: AuditRule) -> bytes:
    """The ``struct audit_rule_data`` of a rule, its strings after it.

    Raises:
        ValueError: more than AUDIT_MAX_FIELDS fields, a mask of the wrong
            size, or a value of the wrong type for its field.
    """
    if len(rule.fields) > AUDIT_MAX_FIELDS:
        raise ValueError(f"an audit rule holds at most {AUDIT_MAX_FIELDS} fields, not {len(rule.fields)}")
    if len(rule.mask) != AUDIT_BITMASK_SIZE:
        raise ValueError(f"an audit rule's mask has {AUDIT_BITMASK_SIZE} words, not {len(rule.mask)}")
    fields = [0] * AUDIT_MAX_FIELDS
    values = [0] * AUDIT_MAX_FIELDS
    ops = [0] * AUDIT_MAX_FIELDS
    buf = bytearray()
    for i, (field, op, value) in enumerate(rule.fields):
        fields[i], ops[i] = field, op
        if field in STRING_FIELDS:
            if not isinstance(value, str):
                raise ValueError(f"audit rule field {field} takes a string, not {value!r}")
            raw = os.fsencode(value)
            values[i] = len(raw)
            buf += raw
        else:
            if not isinstance(value, int):
                raise ValueError(f"audit rule field {field} takes a number, not {value!r}")
            values[i] = value & 0xFFFFFFFF
    head = _RULE.pack(rule.flags, rule.action, len(rule.fields), *rule.mask, *fields, *values, *ops, len(buf))
    return head + bytes(buf)


def decode_rule(data: bytes) -> AuditRule:
    """A rule from its ``struct audit_rule_data`` (as AUDIT_LIST_RULES sends it).

    Raises:
        DecodeError: the data is shorter than the structure or its strings.
    """
    if len(data) < _RULE.size:
        raise DecodeError(f"audit rule of {len(data)} bytes; struct audit_rule_data has {_RULE.size}", None, 0)
    words = _RULE.unpack_from(data)
    flags, action, count = words[0], words[1], words[2]
    base = 3
    mask = tuple(words[base : base + AUDIT_BITMASK_SIZE])
    base += AUDIT_BITMASK_SIZE
    fields = words[base : base + AUDIT_MAX_FIELDS]
    values = words[base + AUDIT_MAX_FIELDS : base + 2 * AUDIT_MAX_FIELDS]
    ops = words[base + 2 * AUDIT_MAX_FIELDS : base + 3 * AUDIT_MAX_FIELDS]
    buf = data[_RULE.size :]
    if count > AUDIT_MAX_FIELDS:
        raise DecodeError(f"audit rule with {count} fields; at most {AUDIT_MAX_FIELDS}", None, 8)
    out: list[tuple[int, int, int | str]] = []
    pos = 0
    for i in range(count):
        if fields[i] in STRING_FIELDS:
            if pos + values[i] > len(buf):
                raise DecodeError(f"audit rule string field {fields[i]} runs past the rule's buffer", None, _RULE.size)
            out.append((fields[i], ops[i], os.fsdecode(buf[pos : pos + values[i]])))
            pos += values[i]
        else:
            out.append((fields[i], ops[i], values[i]))
    return AuditRule(flags, action, mask, tuple(out))


def audit_socket() -> socket.socket:
    """A NETLINK_AUDIT socket, close-on-exec.

    Raises:
        NotSupportedError: the kernel has no audit (CONFIG_AUDIT).
    """
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT)
    except OSError as exc:
        raise NotSupportedError(
            "kernel audit", "", f"NETLINK_AUDIT socket: {exc.strerror}; the kernel is built without CONFIG_AUDIT"
        ) from exc


def _request(
    msg_type: int,
    payload: bytes,
    op: str,
    *,
    sock: socket.socket | None = None,
    stash: list[bytes] | None = None,
    multi: bool = False,
) -> list[bytes]:
    """Send an audit request and return the replies of the same type.

    A request with one reply (AUDIT_GET) returns once it and the
    acknowledgement are in; one with many (AUDIT_LIST_RULES) once NLMSG_DONE
    is. Given ``sock`` (an audit receiver's own socket), other messages read
    meanwhile (audit records) are appended to ``stash``, whole datagrams.

    Raises:
        PrivilegeError, NotSupportedError, OSError: the kernel's error.
    """
    own = sock is None
    if sock is None:
        sock = audit_socket()
        sock.bind((0, 0))
    try:
        seq = int(time.monotonic_ns() & 0x7FFFFFFF) or 1
        flags = NLM_F_REQUEST if multi else NLM_F_REQUEST | NLM_F_ACK
        header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(payload), msg_type, flags, seq, 0)
        sock.sendto(header + payload, (0, 0))
        replies: list[bytes] = []
        acked = multi
        deadline = time.monotonic() + _TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise OSError(errno.ETIMEDOUT, f"{op} kernel audit: no reply within {_TIMEOUT_S:.0f} s")
            try:
                data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            ours = False
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, mtype, _flags, rseq, _pid = NLMSG_HEADER.unpack_from(data, offset)
                size = max(length, NLMSG_HEADER.size)
                body = data[offset + NLMSG_HEADER.size : offset + size]
                if rseq == seq:
                    ours = True
                    if mtype == msg_type:
                        replies.append(body)
                    elif mtype == NLMSG_ERROR:
                        (err,) = struct.unpack_from("=i", body)
                        if err:
                            _raise_audit_error(-err, op)
                        acked = True
                    elif mtype == NLMSG_DONE:
                        return replies
                offset += (size + 3) & ~3
            if not ours and stash is not None:
                stash.append(data)
            if not multi and acked and (replies or msg_type != AUDIT_GET):
                return replies
    finally:
        if own:
            sock.close()


def _raise_audit_error(err: int, op: str) -> None:
    if err in (errno.EPERM, errno.EACCES):
        raise PrivilegeError(err, os.strerror(err), op, "kernel audit", "needs root or CAP_AUDIT_CONTROL")
    if err == errno.ECONNREFUSED:
        raise NotSupportedError("kernel audit", "", "refused outside the initial user and PID namespaces")
    raise OSError(err, f"{op} kernel audit: {os.strerror(err)}")


def audit_status(sock: socket.socket | None = None, stash: list[bytes] | None = None) -> AuditStatus:
    """The kernel's audit status, read with an AUDIT_GET request.

    Args:
        sock: an audit socket to ask on (a receiver's own); a new one if None.
        stash: where records read meanwhile on ``sock`` go.

    Raises:
        NotSupportedError: no audit in this kernel, or asked from a container.
        PrivilegeError: needs CAP_AUDIT_CONTROL.
    """
    replies = _request(AUDIT_GET, b"", "read status of", sock=sock, stash=stash)
    if not replies:
        raise OSError(errno.EPROTO, "read status of kernel audit: no AUDIT_GET reply")
    body = replies[0]
    count = min(len(body) // 4, len(_STATUS_FIELDS))
    values = dict(zip(_STATUS_FIELDS[:count], struct.unpack_from(f"={count}I", body), strict=True))
    return AuditStatus(**{k: values.get(k, 0) for k in AuditStatus.__struct_fields__})


def set_audit_status(
    mask: int,
    *,
    enabled: int = 0,
    pid: int = 0,
    rate_limit: int = 0,
    backlog_limit: int = 0,
    sock: socket.socket | None = None,
    stash: list[bytes] | None = None,
) -> None:
    """Change the settings named in ``mask`` (AUDIT_STATUS_ENABLED,
    AUDIT_STATUS_PID, AUDIT_STATUS_RATE_LIMIT, AUDIT_STATUS_BACKLOG_LIMIT).

    The kernel registers as audit daemon the socket the request comes from,
    and only for the caller's own process id (``pid=os.getpid()``); ``pid=0``
    unregisters it, allowed only to the registered process or once that
    process is gone.

    Raises:
        PrivilegeError: needs CAP_AUDIT_CONTROL (also EPERM when audit is
            locked, enabled=2).
        OSError: the kernel refused (EEXIST: another audit daemon is
            registered).
    """
    payload = struct.pack("=8I", mask, enabled, 0, pid, rate_limit, backlog_limit, 0, 0)
    _request(AUDIT_SET, payload, "set status of", sock=sock, stash=stash)


def set_audit_enabled(enabled: int) -> int:
    """Turn kernel audit on (1) or off (0), as ``auditctl -e`` does.

    Meant for tests and administrators: an audit daemon may own this
    setting. Returns the previous value so it can be restored.

    Raises:
        PrivilegeError: needs CAP_AUDIT_CONTROL.
        OSError: the kernel refused (EPERM also when audit is locked, enabled=2).
    """
    previous = audit_status().enabled
    set_audit_status(AUDIT_STATUS_ENABLED, enabled=enabled)
    return previous


def list_rules(sock: socket.socket | None = None, stash: list[bytes] | None = None) -> list[AuditRule]:
    """Every rule the kernel holds, in order, as ``auditctl -l`` lists them.

    Raises:
        PrivilegeError: needs CAP_AUDIT_CONTROL.
        DecodeError: a reply that is not a rule.
    """
    return [
        decode_rule(body)
        for body in _request(AUDIT_LIST_RULES, b"", "list rules of", sock=sock, stash=stash, multi=True)
    ]


def add_rule(rule: AuditRule, sock: socket.socket | None = None, stash: list[bytes] | None = None) -> None:
    """Add a rule (at the end of its list, or first with AUDIT_FILTER_PREPEND).

    Raises:
        PrivilegeError: needs CAP_AUDIT_CONTROL, or audit is locked (enabled=2).
        OSError: EEXIST for a rule already there; EINVAL for one the kernel
            cannot take (an unknown field, a directory that does not exist).
    """
    _request(AUDIT_ADD_RULE, encode_rule(rule), "add rule to", sock=sock, stash=stash)


def delete_rule(rule: AuditRule, sock: socket.socket | None = None, stash: list[bytes] | None = None) -> None:
    """Delete the rule equal to this one (as :func:`list_rules` gave it).

    Raises:
        PrivilegeError: needs CAP_AUDIT_CONTROL, or audit is locked (enabled=2).
        OSError: ENOENT when there is no such rule.
    """
    _request(AUDIT_DEL_RULE, encode_rule(rule), "delete rule from", sock=sock, stash=stash)


def audit_status_text() -> str:
    """One sentence: can login records be received here, and if not, why."""
    try:
        st = audit_status()
    except NotSupportedError as exc:
        return f"kernel audit is not available: {exc.detail}"
    except PrivilegeError as exc:
        return f"kernel audit status unknown: reading it {exc.hint} ({exc.strerror})"
    except OSError as exc:
        return f"kernel audit status unknown: {exc}"
    extra = f"; audit daemon pid {st.pid}" if st.pid else "; no audit daemon"
    if st.lost:
        extra += f"; the kernel has lost {st.lost} audit records"
    if st.enabled == 0:
        cmdline = ""
        try:
            with open("/proc/cmdline") as f:
                if "audit=0" in f.read().split():
                    cmdline = " (audit=0 on the kernel command line)"
        except OSError:
            pass
        return (
            f"kernel audit is disabled (enabled=0){cmdline}: the kernel drops login records, no login events"
            f" will be seen; enable it with `auditctl -e 1` or audit=1 on the kernel command line{extra}"
        )
    locked = " and locked" if st.enabled == 2 else ""
    return f"kernel audit is enabled{locked} (enabled={st.enabled}): login records are received{extra}"
