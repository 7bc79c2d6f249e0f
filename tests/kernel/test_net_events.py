# SPDX-License-Identifier: Apache-2.0
"""Network events from real syscalls on loopback and unix sockets."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from _sysevents import Header, check_header, collect, in_child

from ebpfsensor import schema
from ebpfsensor.events import NetAccept, NetBind, NetConnect, NetListen, to_json

pytestmark = pytest.mark.bpf

NET = (NetConnect, NetAccept, NetBind, NetListen)
# an IP socket's address when it has none
UNSET = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def canonical(family: int, host: str) -> str:
    """An address as the events write it: the kernel's bytes, as text."""
    return str(ipaddress.ip_address(socket.inet_ntop(family, socket.inet_pton(family, host))))


def net_events(sensor: Any, who: Header | dict[str, Any], count: int) -> list[Any]:
    """The next `count` network events of one process, in order."""
    return collect(sensor, who, NET, count)


def check_socket(e: Any, **want: Any) -> None:
    """The socket fields; those not given must be zero or empty."""
    unset = UNSET.get(want.get("family", 0), "")
    base = {
        "family": 0, "sock_type": socket.SOCK_STREAM, "protocol": 0, "flags": 0, "backlog": 0,
        "local_port": 0, "remote_port": 0, "local_addr": unset, "remote_addr": unset,
        "local_path": "", "remote_path": "",
    }  # fmt: skip
    base.update(want)
    assert {k: getattr(e, k) for k in base} == base


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_tcp_bind_listen_connect_accept(sensor: Any, family: int, host: str) -> None:
    h = Header()
    addr = canonical(family, host)
    with socket.socket(family, socket.SOCK_STREAM) as srv, socket.socket(family, socket.SOCK_STREAM) as cli:
        srv.bind((host, 0))
        port = srv.getsockname()[1]
        srv.listen(7)
        cli.connect((host, port))
        cport = cli.getsockname()[1]
        conn, _ = srv.accept()
        with conn:
            bind, listen, connect, accept = net_events(sensor, h, 4)
            tcp = {"family": family, "protocol": socket.IPPROTO_TCP}

            assert isinstance(bind, NetBind) and bind.__struct_config__.tag == "net_bind"
            check_header(bind, h, "bind", 0)
            assert bind.fd == srv.fileno()
            # port 0 was asked for: the event has the port the kernel chose
            check_socket(bind, **tcp, local_addr=addr, local_port=port)
            assert bind.local_address == host and bind.remote_address in ("0.0.0.0", "::")

            assert isinstance(listen, NetListen)
            check_header(listen, h, "listen", 0)
            assert listen.fd == srv.fileno()
            check_socket(listen, **tcp, backlog=7, local_addr=addr, local_port=port)

            assert isinstance(connect, NetConnect)
            check_header(connect, h, "connect", 0)
            assert connect.fd == cli.fileno()
            check_socket(connect, **tcp, local_addr=addr, local_port=cport, remote_addr=addr, remote_port=port)
            assert connect.remote_address == host

            assert isinstance(accept, NetAccept)
            check_header(accept, h, "accept4", conn.fileno())
            assert accept.fd == srv.fileno()
            # Python's accept() is accept4(SOCK_CLOEXEC)
            check_socket(
                accept, **tcp, flags=socket.SOCK_CLOEXEC,
                local_addr=addr, local_port=port, remote_addr=addr, remote_port=cport,
            )  # fmt: skip
            assert (accept.local_address, accept.remote_address) == (host, host)


@pytest.mark.parametrize(
    ("family", "host", "ip"),
    [
        (socket.AF_INET, "127.0.0.1", ipaddress.IPv4Address("127.0.0.1")),
        (socket.AF_INET6, "::1", ipaddress.IPv6Address("::1")),
        # a dual-stack socket reaching IPv4: RFC 5952's mixed notation
        (socket.AF_INET6, "::ffff:127.0.0.1", ipaddress.IPv6Address("::ffff:7f00:1")),
    ],
    ids=["ipv4", "ipv6", "ipv4-mapped"],
)
def test_addresses_are_ipaddress_objects_and_canonical_text(sensor: Any, family: int, host: str, ip: Any) -> None:
    h = Header()
    with socket.socket(family, socket.SOCK_STREAM) as srv, socket.socket(family, socket.SOCK_STREAM) as cli:
        srv.bind((host, 0))
        port = srv.getsockname()[1]
        srv.listen(1)
        cli.connect((host, port))
        conn, _ = srv.accept()
        conn.close()
        _, _, connect, accept = net_events(sensor, h, 4)
    assert isinstance(connect, NetConnect) and isinstance(accept, NetAccept)
    # the Structs: text, and ipaddress objects of the right version
    assert (connect.remote_addr, connect.local_addr, accept.local_addr) == (host, host, host)
    assert connect.remote_ip == ip and type(connect.remote_ip) is type(ip) and accept.remote_ip == ip
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        assert connect.remote_ip.ipv4_mapped == ipaddress.IPv4Address("127.0.0.1")
    # JSON, ECS and OCSF: the same text
    native = json.loads(to_json(connect))
    assert (native["remote_addr"], native["local_addr"], native["remote_port"]) == (host, host, port)
    ecs = schema.ecs(connect)
    assert (ecs["destination"]["ip"], ecs["source"]["ip"], ecs["related"]["ip"]) == (host, host, [host, host])
    ocsf = schema.ocsf(accept)
    assert (ocsf["src_endpoint"]["ip"], ocsf["dst_endpoint"]["ip"]) == (host, host)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_unix_bind_listen_connect_accept(sensor: Any, tmp_path: Path, abstract: bool) -> None:
    name = f"\0ebpfsensor-{uuid.uuid4().hex}" if abstract else str(tmp_path / "sock")
    h = Header()
    with socket.socket(socket.AF_UNIX) as srv, socket.socket(socket.AF_UNIX) as cli:
        srv.bind(name)
        srv.listen(3)
        cli.connect(name)
        conn, _ = srv.accept()
        with conn:
            bind, listen, connect, accept = net_events(sensor, h, 4)
            unix = {"family": socket.AF_UNIX}

            assert isinstance(bind, NetBind)
            check_header(bind, h, "bind", 0)
            assert bind.fd == srv.fileno()
            check_socket(bind, **unix, local_path=name)
            assert bind.local_address == ("@" + name[1:] if abstract else name)

            assert isinstance(listen, NetListen)
            check_header(listen, h, "listen", 0)
            check_socket(listen, **unix, backlog=3, local_path=name)

            assert isinstance(connect, NetConnect)
            check_header(connect, h, "connect", 0)
            assert connect.fd == cli.fileno()
            # the client is not bound: no local name
            check_socket(connect, **unix, remote_path=name)

            assert isinstance(accept, NetAccept)
            check_header(accept, h, "accept4", conn.fileno())
            assert accept.fd == srv.fileno()
            # the new socket carries the listener's name; the peer has none
            check_socket(accept, **unix, flags=socket.SOCK_CLOEXEC, local_path=name)


def test_unix_bound_client_and_datagram(sensor: Any) -> None:
    """A bound client's name on connect, and the peer's on accept."""
    server = f"\0ebpfsensor-{uuid.uuid4().hex}"
    client = f"\0ebpfsensor-{uuid.uuid4().hex}"
    h = Header()
    with socket.socket(socket.AF_UNIX) as srv, socket.socket(socket.AF_UNIX) as cli:
        srv.bind(server)
        srv.listen(1)
        cli.bind(client)
        cli.connect(server)
        conn, _ = srv.accept()
        with conn:
            _, _, _, connect, accept = net_events(sensor, h, 5)
            check_socket(connect, family=socket.AF_UNIX, local_path=client, remote_path=server)
            check_socket(
                accept, family=socket.AF_UNIX, flags=socket.SOCK_CLOEXEC, local_path=server, remote_path=client
            )
    h = Header()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as d:
        d.bind(server)
        (bind,) = net_events(sensor, h, 1)
        check_header(bind, h, "bind", 0)
        check_socket(bind, family=socket.AF_UNIX, sock_type=socket.SOCK_DGRAM, local_path=server)


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_connect_refused(sensor: Any, family: int, host: str) -> None:
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    h = Header()
    with socket.socket(family) as cli:
        with pytest.raises(ConnectionRefusedError):
            cli.connect((host, port))
        (connect,) = net_events(sensor, h, 1)
        assert isinstance(connect, NetConnect)
        check_header(connect, h, "connect", -111)
        assert connect.errno == 111 and connect.fd == cli.fileno()
        # the peer asked for; the failed socket is back to unbound
        check_socket(
            connect, family=family, protocol=socket.IPPROTO_TCP, remote_addr=canonical(family, host), remote_port=port
        )


def test_unix_connect_enoent(sensor: Any, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    h = Header()
    with socket.socket(socket.AF_UNIX) as cli:
        with pytest.raises(FileNotFoundError):
            cli.connect(missing)
        (connect,) = net_events(sensor, h, 1)
        check_header(connect, h, "connect", -2)
        check_socket(connect, family=socket.AF_UNIX, remote_path=missing)


def test_bind_eacces_unprivileged(sensor: Any) -> None:
    """bind to a privileged port as nobody: the port asked for, and EACCES."""

    def child() -> dict[str, Any]:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 80))
            except PermissionError:
                return {"fd": s.fileno()}
        raise AssertionError("bind to port 80 as nobody succeeded")

    out = in_child(child)
    (bind,) = net_events(sensor, {**out["header"]}, 1)
    assert isinstance(bind, NetBind)
    check_header(bind, out["header"], "bind", -13)
    assert bind.fd == out["fd"]
    check_socket(
        bind, family=socket.AF_INET, protocol=socket.IPPROTO_TCP, local_addr=canonical(socket.AF_INET, "127.0.0.1"),
        local_port=80,
    )  # fmt: skip


def test_disabled_kinds_cost_no_events(sensor: Any) -> None:
    """Only the enabled kind is reported (the others' programs are not even loaded)."""
    import ebpfsensor

    with ebpfsensor.Sensor(kinds={"net_listen"}, exclude_self=False) as s:
        # net hooks of the one kind only (the lifecycle hooks are always there)
        assert {h for h, i in s.hooks().items() if i.variant} == {"listen_enter", "listen_exit", "exec", "fork", "exit"}
        h = Header()
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(2)
        (listen,) = net_events(s, h, 1)
        assert isinstance(listen, NetListen) and listen.backlog == 2
        assert s.stats().kinds["net_bind"].produced == 0


def test_accept_eagain_is_filtered_not_sent(sensor: Any) -> None:
    """A non-blocking accept with nothing pending made no connection."""
    h = Header()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.setblocking(False)
        filtered = sensor.stats().kinds["net_accept"].filtered
        with pytest.raises(BlockingIOError):
            srv.accept()
        with socket.create_connection(srv.getsockname()) as cli:
            conn, _ = srv.accept()
            with conn:
                _, _, connect, accept = net_events(sensor, h, 4)
                assert isinstance(connect, NetConnect) and connect.fd == cli.fileno()
                assert isinstance(accept, NetAccept) and accept.result == conn.fileno()
        assert sensor.stats().kinds["net_accept"].filtered >= filtered + 1


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_udp_bind_connect(sensor: Any, family: int, host: str) -> None:
    addr = canonical(family, host)
    h = Header()
    with socket.socket(family, socket.SOCK_DGRAM) as a, socket.socket(family, socket.SOCK_DGRAM) as b:
        a.bind((host, 0))
        port = a.getsockname()[1]
        b.connect((host, port))
        bport = b.getsockname()[1]  # chosen by connect
        bind, connect = net_events(sensor, h, 2)
        udp = {"family": family, "sock_type": socket.SOCK_DGRAM, "protocol": socket.IPPROTO_UDP}
        check_header(bind, h, "bind", 0)
        check_socket(bind, **udp, local_addr=addr, local_port=port)
        check_header(connect, h, "connect", 0)
        assert connect.fd == b.fileno()
        check_socket(connect, **udp, local_addr=addr, local_port=bport, remote_addr=addr, remote_port=port)
