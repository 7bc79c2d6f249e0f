# SPDX-License-Identifier: Apache-2.0
"""Network events: connect, accept, bind, listen."""

from __future__ import annotations

import ipaddress
import socket
from typing import Union

from ._base import EventType, _SyscallEvent

__all__ = ["IPAddress", "NetAccept", "NetBind", "NetConnect", "NetListen", "canonical", "ip_text"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def canonical(ip: IPAddress) -> str:
    """An address's canonical text: RFC 5952 for IPv6, an IPv4-mapped one as
    ``::ffff:a.b.c.d`` (its section 5, and what Python 3.13 prints)."""
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return f"::ffff:{mapped}" if mapped is not None else str(ip)


def ip_text(family: int, raw: bytes) -> str:
    """The canonical text of an address from its bytes in network order
    (IPv4 in the first 4); "" for families other than IPv4 and IPv6. The C
    transcoder writes the same text."""
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(bytes(raw[:4])))
    if family == socket.AF_INET6:
        return canonical(ipaddress.IPv6Address(bytes(raw[:16])))
    return ""


def _address(family: int, ip: str, path: str) -> str:
    if family == socket.AF_UNIX:
        # an abstract name is shown as ss(8) shows it
        return "@" + path[1:] if path.startswith("\0") else path
    return ip


def _ip(text: str) -> IPAddress | None:
    return ipaddress.ip_address(text) if text else None


class _NetEvent(_SyscallEvent, frozen=True, gc=False):
    """Fields of the network events (``struct net_event``).

    Addresses are text: ``local_addr`` and ``remote_addr`` hold an IP
    address's canonical form, ``local_path`` and ``remote_path`` a unix
    socket's name; ``local_ip`` and ``remote_ip`` give the IP address as an
    ``ipaddress`` object, ``local_address`` and ``remote_address`` whichever
    of the two the family has. Fields a syscall does not have are zero or
    empty.

    Attributes:
        fd: the socket the syscall was given (for accept, the listening
            socket; the new one is ``result``).
        flags: accept4's flags; 0 for the other calls.
        backlog: listen's backlog; 0 for the other calls.
        family: the socket's address family (AF_INET, AF_INET6, AF_UNIX,
            ...).
        sock_type: the socket's type (SOCK_STREAM, SOCK_DGRAM, ...).
        protocol: the socket's protocol (IPPROTO_TCP, IPPROTO_UDP, ...; 0 for
            unix).
        local_port: IPv4 and IPv6: the local port, in host order; else 0.
        remote_port: IPv4 and IPv6: the remote port, in host order; else 0.
        local_addr: IPv4 and IPv6: the local address in canonical text
            (``"127.0.0.1"``; IPv6 as RFC 5952 writes it, ``"::1"``, an
            IPv4-mapped one as ``"::ffff:127.0.0.1"``), ``"0.0.0.0"`` or
            ``"::"`` when the socket has none; else "".
        remote_addr: IPv4 and IPv6: the remote address, written as
            ``local_addr``; else "".
        local_path: unix: the socket's own name, an abstract name starting
            with ``"\\0"`` (as Python's socket module writes it; trailing
            NULs of an abstract name are not kept); else "".
        remote_path: unix: the peer's name, written as ``local_path``; else
            "".
        local_source: where the local address came from, a
            :class:`~ebpfsensor.events.file.PathSource`: ``KERNEL``, the
            socket's after the call; ``SYSCALL_ARG``, the sockaddr the caller
            passed (a bind that failed); ``NONE`` when there is no socket.
        remote_source: where the remote address came from: ``KERNEL``, the
            socket's peer (an accepted connection, a connect that succeeded
            or is under way); ``SYSCALL_ARG``, the sockaddr the caller passed
            (a connect that failed); ``NONE`` when there is no socket.
    """

    record = "net_event"

    fd: int
    flags: int
    backlog: int
    family: int
    sock_type: int
    protocol: int
    local_port: int
    remote_port: int
    local_addr: str
    remote_addr: str
    local_path: str
    remote_path: str
    local_source: int
    remote_source: int

    @property
    def local_address(self) -> str:
        """The local address as text (IP, unix path, ``@abstract``), or ""."""
        return _address(self.family, self.local_addr, self.local_path)

    @property
    def remote_address(self) -> str:
        """The remote address as text (IP, unix path, ``@abstract``), or ""."""
        return _address(self.family, self.remote_addr, self.remote_path)

    @property
    def local_ip(self) -> IPAddress | None:
        """The local IP address (``ipaddress.IPv4Address`` or
        ``IPv6Address``); None for other families."""
        return _ip(self.local_addr)

    @property
    def remote_ip(self) -> IPAddress | None:
        """The remote IP address, as ``local_ip``; None for other families."""
        return _ip(self.remote_addr)


class NetConnect(_NetEvent, frozen=True, gc=False, tag="net_connect"):
    """connect(2). The remote address is the socket's peer once the connect
    succeeded (or a non-blocking TCP connect is under way): the one the
    kernel connected to, which may differ from the one asked for (0.0.0.0
    reaches 127.0.0.1; a unix socket reached through a symlink has the name
    it was bound to). When the call failed, the one asked for. The local
    address is the socket's after the call."""

    event_type = EventType.NET_CONNECT


class NetAccept(_NetEvent, frozen=True, gc=False, tag="net_accept"):
    """accept(2)/accept4(2). Addresses are the new connection's (``result``
    is its fd); ``flags`` are accept4's.

    Attributes:
        result: the new connection's fd, or -errno.
    """

    event_type = EventType.NET_ACCEPT


class NetBind(_NetEvent, frozen=True, gc=False, tag="net_bind"):
    """bind(2). The local address is the socket's after the call (the port
    the kernel chose for port 0), or the one asked for when it failed."""

    event_type = EventType.NET_BIND


class NetListen(_NetEvent, frozen=True, gc=False, tag="net_listen"):
    """listen(2), with its ``backlog``."""

    event_type = EventType.NET_LISTEN
