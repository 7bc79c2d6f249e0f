# SPDX-License-Identifier: Apache-2.0
"""The kernel's audit status, asked over the audit netlink socket (no auditd,
auditctl or libaudit needed)."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time

import msgspec

from ..errors import NotSupportedError, PrivilegeError

__all__ = ["AuditStatus", "audit_socket", "audit_status", "audit_status_text", "set_audit_enabled"]

NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_STATUS_ENABLED = 0x0001
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4

NLMSG_HEADER = struct.Struct("=IHHII")
_STATUS_FIELDS = ("mask", "enabled", "failure", "pid", "rate_limit", "backlog_limit", "lost", "backlog")


class AuditStatus(msgspec.Struct, frozen=True):
    """The kernel's audit status (AUDIT_GET).

    ``enabled`` is 0 (off), 1 (on) or 2 (on and locked until reboot); ``pid``
    is the registered audit daemon's, 0 for none; ``lost`` counts records
    the kernel dropped.
    """

    enabled: int
    failure: int
    pid: int
    rate_limit: int
    backlog_limit: int
    lost: int
    backlog: int


def audit_socket() -> socket.socket:
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT)
    except OSError as exc:
        raise NotSupportedError(
            "kernel audit", "", f"NETLINK_AUDIT socket: {exc.strerror}; the kernel is built without CONFIG_AUDIT"
        ) from exc


def _request(msg_type: int, payload: bytes, op: str) -> bytes | None:
    """Send an audit request and return the reply of the same type (None if
    the kernel only acknowledges)."""
    with audit_socket() as sock:
        sock.settimeout(2.0)
        sock.bind((0, 0))
        seq = int(time.monotonic_ns() & 0x7FFFFFFF)
        header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_ACK, seq, 0)
        sock.sendto(header + payload, (0, 0))
        reply = None
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, mtype, _flags, rseq, _pid = NLMSG_HEADER.unpack_from(data, offset)
                body = data[offset + NLMSG_HEADER.size : offset + max(length, NLMSG_HEADER.size)]
                if rseq == seq and mtype == msg_type:
                    reply = body
                elif rseq == seq and mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", body)
                    if err:
                        _raise_audit_error(-err, op)
                    if reply is not None or msg_type != AUDIT_GET:
                        return reply
                offset += (max(length, NLMSG_HEADER.size) + 3) & ~3
            if reply is not None:
                return reply


def _raise_audit_error(err: int, op: str) -> None:
    if err in (errno.EPERM, errno.EACCES):
        raise PrivilegeError(err, os.strerror(err), op, "kernel audit", "needs root or CAP_AUDIT_CONTROL")
    if err == errno.ECONNREFUSED:
        raise NotSupportedError("kernel audit", "", "refused outside the initial user and PID namespaces")
    raise OSError(err, f"{op} kernel audit: {os.strerror(err)}")


def audit_status() -> AuditStatus:
    """The kernel's audit status, read with an AUDIT_GET request.

    Raises:
        NotSupportedError: no audit in this kernel, or asked from a container.
        PrivilegeError: needs CAP_AUDIT_CONTROL.
    """
    body = _request(AUDIT_GET, b"", "read status of")
    if body is None:
        raise OSError(errno.EPROTO, "read status of kernel audit: no AUDIT_GET reply")
    count = min(len(body) // 4, len(_STATUS_FIELDS))
    values = dict(zip(_STATUS_FIELDS[:count], struct.unpack_from(f"={count}I", body), strict=True))
    return AuditStatus(**{k: values.get(k, 0) for k in AuditStatus.__struct_fields__})


def set_audit_enabled(enabled: int) -> int:
    """Turn kernel audit on (1) or off (0), as ``auditctl -e`` does.

    Meant for tests and administrators: an audit daemon may own this
    setting. Returns the previous value so it can be restored.

    Raises:
        PrivilegeError: needs CAP_AUDIT_CONTROL.
        OSError: the kernel refused (EPERM also when audit is locked, enabled=2).
    """
    previous = audit_status().enabled
    payload = struct.pack("=8I", AUDIT_STATUS_ENABLED, enabled, 0, 0, 0, 0, 0, 0)
    _request(AUDIT_SET, payload, "set enabled of")
    return previous


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
