# SPDX-License-Identifier: Apache-2.0
"""Network events: connect, accept, bind, listen."""

from __future__ import annotations

import ipaddress
import socket

from ._base import EventType, _SyscallEvent

__all__ = ["NetAccept", "NetBind", "NetConnect", "NetListen"]


def _address(family: int, raw: bytes, path: str) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == socket.AF_INET6:
        return str(ipaddress.IPv6Address(raw))
    if family == socket.AF_UNIX:
        # an abstract name is shown as ss(8) shows it
        return "@" + path[1:] if path.startswith("\0") else path
    return ""


class _NetEvent(_SyscallEvent, frozen=True, gc=False):
    """Fields of the network events (``struct net_event``).

    ``fd`` is the socket the syscall was given (for accept, the listening
    socket; the new one is ``result``). ``family``, ``sock_type`` and
    ``protocol`` are the socket's (AF_*, SOCK_*, IPPROTO_*). For IPv4 and
    IPv6, ``local_addr``/``remote_addr`` hold the address bytes in network
    order (IPv4 in the first 4 of 16) and ports are in host order; for unix
    sockets ``local_path``/``remote_path`` hold the names, an abstract name
    starting with ``"\\0"`` (as Python's socket module writes it; trailing
    NULs of an abstract name are not kept). ``local_address`` and
    ``remote_address`` give either as text. Fields a syscall does not have
    are zero or empty.
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
    local_addr: bytes
    remote_addr: bytes
    local_path: str
    remote_path: str

    @property
    def local_address(self) -> str:
        """The local address as text (IP, unix path, ``@abstract``), or ""."""
        return _address(self.family, self.local_addr, self.local_path)

    @property
    def remote_address(self) -> str:
        """The remote address as text (IP, unix path, ``@abstract``), or ""."""
        return _address(self.family, self.remote_addr, self.remote_path)


class NetConnect(_NetEvent, frozen=True, gc=False, tag="net_connect"):
    """connect(2). The remote address is the one asked for (also when the
    call failed); the local one is the socket's after the call."""

    event_type = EventType.NET_CONNECT


class NetAccept(_NetEvent, frozen=True, gc=False, tag="net_accept"):
    """accept(2)/accept4(2). Addresses are the new connection's (``result``
    is its fd); ``flags`` are accept4's."""

    event_type = EventType.NET_ACCEPT


class NetBind(_NetEvent, frozen=True, gc=False, tag="net_bind"):
    """bind(2). The local address is the socket's after the call (the port
    the kernel chose for port 0), or the one asked for when it failed."""

    event_type = EventType.NET_BIND


class NetListen(_NetEvent, frozen=True, gc=False, tag="net_listen"):
    """listen(2), with its ``backlog``."""

    event_type = EventType.NET_LISTEN
