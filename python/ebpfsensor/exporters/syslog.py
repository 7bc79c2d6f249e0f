# SPDX-License-Identifier: Apache-2.0
"""Events to a syslog server: RFC 5424 messages over TCP or TLS, framed by
octet counting (RFC 6587 section 3.4.1, RFC 5425)."""

from __future__ import annotations

import os
import select
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from ..schema._common import Host, iso, wall_offset_ns
from ._base import Exporter

__all__ = ["SyslogExporter"]

_NIL = "-"


def _token(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most limit long, or NILVALUE."""
    out = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return out or _NIL


class SyslogExporter(Exporter):
    """One RFC 5424 message per event, the event as JSON (native, ECS or
    OCSF) in its MSG part:

        <PRI>1 TIMESTAMP HOSTNAME ebpfsensor PROCID KIND - {"@timestamp": ...}

    sent over TCP, or TLS with ``tls`` (port 6514 by RFC 5425), each message
    preceded by its length (octet counting), so no character in the JSON
    can end it early. TIMESTAMP is the event's own time; PROCID this
    process; MSGID the event's kind. Delivered means written to the
    connection: syslog over TCP has no acknowledgements, so what a server
    that dies had read but not yet stored is lost with it (a server that
    shuts down cleanly stores what it read). Before each batch the
    connection is checked for a close by the server, so a restarted server
    gets the batch on a new connection.

    Receivers must accept messages of the size of the largest event
    (rsyslog: ``global(maxMessageSize="64k")``; an exec with a long argv
    makes tens of KiB).

    Args:
        host, port: the server.
        tls: TLS (RFC 5425) instead of plain TCP.
        ssl_context: for TLS; default: the system's CAs, or ``ca_file``,
            with the host name checked.
        ca_file: CA certificates (PEM) to verify the server with.
        facility: 0-23 (default 13, log audit); severity 0-7 (default 6,
            informational).
        hostname: the HOSTNAME field (default: this machine's name).
        **options: those of :class:`Exporter` (``format``, ``queue_size``, ...).

    Raises:
        ValueError: a facility or severity out of range.
    """

    name = "syslog"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        facility: int = 13,
        severity: int = 6,
        hostname: str | None = None,
        **options: Any,
    ) -> None:
        if not (0 <= facility <= 23 and 0 <= severity <= 7):
            raise ValueError("syslog facility must be 0-23 and severity 0-7")
        super().__init__(**options)
        self.host = host
        self.port = port if port is not None else (6514 if tls else 514)
        self.tls = tls
        if tls and ssl_context is None:
            ssl_context = ssl.create_default_context(cafile=ca_file)
        self._ssl = ssl_context
        self._pri = f"<{facility * 8 + severity}>1 "
        self._hostname = _token(hostname or Host().hostname, 255)
        self._procid = str(os.getpid())
        self._sock: socket.socket | None = None

    def _prepare(self, events: Sequence[Any], payloads: list[bytes]) -> Any:
        off = wall_offset_ns()
        head = f"{self._hostname} ebpfsensor {self._procid} "
        frames = []
        for event, payload in zip(events, payloads, strict=True):
            audit_ts = getattr(event, "audit_ts", None)
            wall = round(audit_ts * 1000) * 1_000_000 if audit_ts else event.ts_ns + off
            msg = f"{self._pri}{iso(wall)} {head}{_token(event.kind, 32)} - ".encode() + payload
            frames.append(b"%d %s" % (len(msg), msg))
        # consumed as sent: a retry goes on from the first message not written
        return frames

    def _connect(self, timeout: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def _closed_by_peer(self) -> bool:
        """The server closed (or reset) the connection: a syslog server sends
        nothing, so anything readable is the end."""
        sock = self._sock
        if sock is None:
            return True
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def _send(self, prepared: Any, timeout: float) -> None:
        frames: list[bytes] = prepared
        if self._closed_by_peer():
            self._disconnect()
            self._connect(timeout)
        sock = self._sock
        assert sock is not None
        sock.settimeout(timeout)
        # a chunk of messages at a time, dropped from the batch once written:
        # a chunk that fails goes again whole on the next connection (at
        # least once: the server may have read part of it)
        batch = 64
        while frames:
            data = b"".join(frames[:batch])
            sock.sendall(data)
            del frames[:batch]

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
