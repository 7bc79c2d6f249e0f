# SPDX-License-Identifier: Apache-2.0
"""User login events from the kernel audit subsystem, read-only.

PAM, sshd, login, su and the like report authentications and sessions to
the kernel as USER_* audit records. :class:`AuditLoginSource` receives them
on the audit netlink socket's read-only multicast group
(AUDIT_NLGRP_READLOG): it needs CAP_AUDIT_READ, adds no audit rules, does
not replace or disturb auditd, and must run in the initial network
namespace. The kernel drops user records while audit is disabled
(``enabled=0``, the default until auditd or ``auditctl -e 1`` enables it);
:meth:`AuditLoginSource.status` says so.

Records delivered as :class:`UserLogin` (``record_type`` tells which):

- ``USER_LOGIN``: a login program's verdict (sshd, login, display managers),
  successful or failed.
- ``USER_AUTH``: a PAM authentication; only failures unless
  ``auth_success=True`` (a success is followed by USER_START or USER_LOGIN).
- ``USER_START`` / ``USER_ERR``: a PAM session opened (su, sudo, sshd, cron)
  / a PAM account or session stage failed.
- ``USER_LOGOUT``: the end of a login session.
- ``CRED_ACQ`` (and the other USER_* types in :data:`RECORD_TYPES`) only when
  asked for with ``record_types``.

Values are read as audit writes them: ``key=value`` pairs, the user part
inside ``msg='...'``, strings in double quotes, and strings containing
spaces, quotes or control characters hex-encoded without quotes
(``acct=6A6F686E20646F65`` is "john doe").
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import re
import select
import socket
import time

from .._text import fsdecode
from ..errors import DecodeError, PrivilegeError
from ..events import Event
from ..events.login import UserLogin
from ..host.audit import AUDIT_NLGRP_READLOG, NLMSG_HEADER, audit_socket, audit_status_text
from ..status import AuditSourceStats, KindHealth

__all__ = [
    "DEFAULT_RECORD_TYPES",
    "KERNEL_KEYS",
    "RECORD_TYPES",
    "AuditLoginSource",
    "parse_fields",
    "parse_log_line",
    "parse_record",
]

log = logging.getLogger("ebpfsensor")

UNSET_ID = 0xFFFFFFFF
RCVBUF_BYTES = 4 << 20
MAX_BATCH = 4096

RECORD_TYPES: dict[int, str] = {
    1100: "USER_AUTH",
    1101: "USER_ACCT",
    1102: "USER_MGMT",
    1103: "CRED_ACQ",
    1104: "CRED_DISP",
    1105: "USER_START",
    1106: "USER_END",
    1108: "USER_CHAUTHTOK",
    1109: "USER_ERR",
    1110: "CRED_REFR",
    1112: "USER_LOGIN",
    1113: "USER_LOGOUT",
}
_TYPE_NUMBERS = {name: number for number, name in RECORD_TYPES.items()}
DEFAULT_RECORD_TYPES = frozenset({"USER_LOGIN", "USER_LOGOUT", "USER_AUTH", "USER_START", "USER_ERR"})

#: what the kernel itself writes about the process that sent a user record
KERNEL_KEYS = ("pid", "uid", "auid", "ses", "subj")
# fields that audit hex-encodes when their value has spaces, quotes or control characters
_ENCODED_KEYS = frozenset({"acct", "exe", "comm", "cwd", "name", "path", "cmd", "proctitle", "key", "data"})
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_HEADER = re.compile(r"audit\((?P<sec>\d+)\.(?P<ms>\d+):(?P<serial>\d+)\):\s*")
_LOG_LINE = re.compile(r"^type=(?P<type>\S+)\s+msg=(?P<rest>audit\(.*)$", re.DOTALL)


# --- parsing --------------------------------------------------------------------------


def _decode_value(key: str, value: str, quoted: bool) -> str:
    if not quoted and key in _ENCODED_KEYS and _HEX.fullmatch(value):
        return fsdecode(bytes.fromhex(value))
    return value


def parse_fields(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of an audit record body, decoded.

    The pairs inside ``msg='...'`` are merged in (the user-space part of a
    USER_* record); a key given inside wins over the same key outside,
    except the ones the kernel writes itself (:data:`KERNEL_KEYS`): the
    reporting program chooses what it puts inside, and may not pass itself
    off as another process, user or session.
    Double-quoted values are taken literally; unquoted hex values of keys
    that audit encodes (acct, exe, comm, cwd, name, path, ...) are decoded.
    """
    fields: dict[str, str] = {}
    inner: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\n\x1d\0":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq]
        if " " in key:  # a stray word without a value
            i = text.index(" ", i) + 1
            continue
        j = eq + 1
        if text.startswith("'", j):
            # msg='...' runs to the last quote: values inside may contain '
            end = text.rfind("'")
            if end <= j:
                end = n
            inner.update(parse_fields(text[j + 1 : end]))
            fields[key] = text[j + 1 : end]
            i = end + 1
        elif text.startswith('"', j):
            end = text.find('"', j + 1)
            end = n if end < 0 else end
            fields[key] = text[j + 1 : end]
            i = end + 1
        else:
            end = j
            while end < n and text[end] not in " \t\n\x1d\0":
                end += 1
            fields[key] = _decode_value(key, text[j:end], quoted=False)
            i = end
    kernel = {key: fields[key] for key in KERNEL_KEYS if key in fields}
    fields.update(inner)
    fields.update(kernel)
    return fields


def _int(fields: dict[str, str], key: str, default: int) -> int:
    try:
        return int(fields[key])
    except (KeyError, ValueError):
        return default


def _known(value: str | None) -> str:
    return "" if value in (None, "?", "(none)") else str(value)


def _user(fields: dict[str, str]) -> str:
    if "acct" in fields:
        return _known(fields["acct"])
    uid = fields.get("id") or fields.get("uid")
    if uid is None or not uid.isdigit():
        return _known(uid)
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except KeyError:
        return uid


def parse_record(record_type: int | str, text: str, ts_ns: int = 0) -> UserLogin:
    """One audit record as a :class:`UserLogin`.

    Args:
        record_type: the netlink message type (1112) or its name ("USER_LOGIN").
        text: the record as the kernel sends it:
            ``audit(1700000000.123:456): pid=... msg='...'``.
        ts_ns: the receipt time to record.

    Raises:
        DecodeError: the record lacks the ``audit(SECONDS.MS:SERIAL):`` header.
    """
    name = RECORD_TYPES.get(record_type, str(record_type)) if isinstance(record_type, int) else record_type
    number = record_type if isinstance(record_type, int) else _TYPE_NUMBERS.get(record_type)
    text = text.rstrip("\0\n")
    m = _HEADER.match(text)
    if m is None:
        raise DecodeError(f"{name} record without an audit(SECONDS.MS:SERIAL) header: {text[:80]!r}", number, 0)
    fields = parse_fields(text[m.end() :])
    res = fields.get("res", "").lower()
    return UserLogin(
        ts_ns=ts_ns,
        audit_ts=float(f"{m.group('sec')}.{m.group('ms')}"),
        audit_serial=int(m.group("serial")),
        record_type=name,
        op=fields.get("op", ""),
        pid=_int(fields, "pid", 0),
        uid=_int(fields, "uid", UNSET_ID),
        auid=_int(fields, "auid", UNSET_ID),
        ses=_int(fields, "ses", UNSET_ID),
        user=_user(fields),
        terminal=_known(fields.get("terminal")),
        hostname=_known(fields.get("hostname")),
        addr=_known(fields.get("addr")),
        exe=_known(fields.get("exe")),
        success=res in ("success", "yes", "1"),
        message=text,
    )


def parse_log_line(line: str, ts_ns: int = 0) -> UserLogin | None:
    """A line of audit.log (``type=USER_LOGIN msg=audit(...): ...``); None
    when it is not a user record.

    Raises:
        DecodeError: a user record whose header is malformed.
    """
    m = _LOG_LINE.match(line.strip())
    if m is None or m.group("type") not in _TYPE_NUMBERS:
        return None
    return parse_record(m.group("type"), m.group("rest"), ts_ns)


# --- the source -------------------------------------------------------------------------------


class AuditLoginSource:
    """Login events from the audit subsystem's read-only multicast group.

    Args:
        record_types: the record types to deliver (names from
            :data:`RECORD_TYPES`); :data:`DEFAULT_RECORD_TYPES` when None.
        auth_success: also deliver successful USER_AUTH records.
        rcvbuf_bytes: the socket's receive buffer.

    Use as a context manager, or call :meth:`start` and :meth:`close`; wait
    with :meth:`poll` or on :meth:`fileno`.

    Raises:
        ValueError: (from __init__) an unknown record type.
        NotSupportedError: (from start) the kernel has no audit (CONFIG_AUDIT).
        PrivilegeError: (from start) needs CAP_AUDIT_READ.
    """

    name = "audit"
    kinds = frozenset({"user_login"})

    def __init__(
        self,
        record_types: frozenset[str] | None = None,
        auth_success: bool = False,
        *,
        rcvbuf_bytes: int = RCVBUF_BYTES,
    ) -> None:
        wanted = DEFAULT_RECORD_TYPES if record_types is None else frozenset(record_types)
        unknown = sorted(wanted - set(_TYPE_NUMBERS))
        if unknown:
            raise ValueError(
                f"unknown audit record type(s) {', '.join(unknown)}; known: {', '.join(sorted(_TYPE_NUMBERS))}"
            )
        self._numbers = frozenset(_TYPE_NUMBERS[t] for t in wanted)
        self.auth_success = auth_success
        self.rcvbuf_bytes = rcvbuf_bytes
        self._sock: socket.socket | None = None
        self.delivered = self.filtered = self.overruns = self.undecodable = 0

    def start(self) -> AuditLoginSource:
        """Join the read-only multicast group; idempotent.

        A kernel with audit disabled is not an error (the group still works
        once audit is enabled); it is logged with :meth:`status`'s words.
        """
        if self._sock is not None:
            return self
        sock = audit_socket()
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, 33, self.rcvbuf_bytes)  # SO_RCVBUFFORCE, root only
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
            sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
        except PermissionError as exc:
            sock.close()
            err = exc.errno or errno.EPERM
            raise PrivilegeError(
                err, os.strerror(err), "join", "audit read-only group", "needs CAP_AUDIT_READ"
            ) from exc
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        text = self.status()
        if "enabled" not in text or "disabled" in text:
            log.warning("audit login source: %s", text)
        return self

    def status(self) -> str:
        """Whether login records can arrive (see :func:`audit_status_text`)."""
        return audit_status_text()

    def kind_health(self, kind: str) -> KindHealth:
        """Logins are live when the socket is open and audit is enabled."""
        status = self.status() if self._sock is not None else "the audit source is not running"
        return KindHealth(self._sock is not None and "audit is enabled" in status, "audit", status)

    def fileno(self) -> int:
        """The socket's fd: readable when records are waiting."""
        if self._sock is None:
            raise ValueError("the audit login source is not started; call start()")
        return self._sock.fileno()

    def close(self) -> None:
        """Leave the group and close the socket; idempotent."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> AuditLoginSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> AuditSourceStats:
        """The delivery and loss counters."""
        return AuditSourceStats(self.delivered, self.filtered, self.overruns, self.undecodable)

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Wait up to timeout seconds for records and return the login events.

        Raises:
            ValueError: the source is not started.
        """
        sock = self._sock
        if sock is None:
            raise ValueError("the audit login source is not started; call start()")
        out: list[Event] = []
        if timeout > 0 and not select.select([sock], [], [], timeout)[0]:
            return out
        for _ in range(MAX_BATCH):
            try:
                data, (sender, _groups) = sock.recvfrom(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                log.warning(
                    "audit login source: receive buffer overrun, records lost (%d overruns so far)", self.overruns
                )
                continue
            if sender == 0:
                self._parse(data, out)
        self.delivered += len(out)
        return out

    def _parse(self, data: bytes, out: list[Event]) -> None:
        ts_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        offset = 0
        while offset + NLMSG_HEADER.size <= len(data):
            length, mtype, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
            # some kernels count only the payload in nlmsg_len
            end = len(data) if length < NLMSG_HEADER.size or offset + length > len(data) else offset + length
            if mtype in RECORD_TYPES:
                self._record(mtype, data[offset + NLMSG_HEADER.size : end], ts_ns, out)
            offset = (end + 3) & ~3

    def _record(self, mtype: int, body: bytes, ts_ns: int, out: list[Event]) -> None:
        if mtype not in self._numbers:
            self.filtered += 1
            return
        try:
            event = parse_record(mtype, fsdecode(body), ts_ns)
        except DecodeError as exc:
            self.undecodable += 1
            log.debug("audit login source: %s", exc)
            return
        if event.record_type == "USER_AUTH" and event.success and not self.auth_success:
            self.filtered += 1
            return
        out.append(event)
