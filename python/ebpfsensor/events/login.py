# SPDX-License-Identifier: Apache-2.0
"""Login events: authentications and sessions, from the kernel audit subsystem."""

from __future__ import annotations

import ipaddress

import msgspec

from .net import IPAddress

__all__ = ["UserLogin"]


class UserLogin(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="user_login"):
    """A login, authentication or session record from the kernel audit log.

    Attributes:
        ts_ns: CLOCK_BOOTTIME ns when the record was received.
        audit_ts: the record's own Unix time (``msg=audit(SECONDS.MS:SERIAL)``).
        audit_serial: the record's serial; records of one event share it.
        record_type: ``USER_LOGIN``, ``USER_AUTH``, ``USER_START``, ...
        op: what was done: ``login``, ``PAM:authentication``, ``PAM:session_open``.
        pid: the process that reported it (sshd, su, login, ...).
        uid: that process's real uid.
        auid: its login uid (4294967295 when unset).
        ses: its audit session id (4294967295 when unset).
        user: the account: ``acct=`` as given, or ``id=`` resolved to a name
            through the password database (the number when unknown); ""
            when the record names none (``acct="?"``).
        terminal: ``/dev/pts/0``, ``ssh``, ``tty1``, ... ("" when unknown).
        hostname: the remote host name ("" when unknown).
        addr: the remote address as the record gives it ("" when unknown
            or local); ``ip`` has it as an ``ipaddress`` object when it is
            an IP address.
        exe: the reporting program.
        success: ``res=success`` (False for ``res=failed``).
        message: the record's text as the kernel sent it.
    """

    ts_ns: int
    audit_ts: float
    audit_serial: int
    record_type: str
    op: str
    pid: int
    uid: int
    auid: int
    ses: int
    user: str
    terminal: str
    hostname: str
    addr: str
    exe: str
    success: bool
    message: str

    @property
    def ip(self) -> IPAddress | None:
        """``addr`` as an ``ipaddress.IPv4Address`` or ``IPv6Address``; None
        when it is empty or not an IP address (a host name)."""
        try:
            return ipaddress.ip_address(self.addr) if self.addr else None
        except ValueError:
            return None

    @property
    def kind(self) -> str:
        """The event's kind, as tagged in JSON and msgspec: "user_login"."""
        return "user_login"
