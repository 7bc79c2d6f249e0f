# SPDX-License-Identifier: Apache-2.0
"""Network and privilege records on synthetic bytes: the Python decoder and
the C transcoder must agree, field for field."""

from __future__ import annotations

import ipaddress
import json
import random
import socket
from typing import Any

import msgspec
import pytest

from ebpfsensor import events
from ebpfsensor._ffi import ffi
from ebpfsensor.errors import DecodeError
from ebpfsensor.events import EventType, decode
from ebpfsensor.events._layout import RECORDS
from ebpfsensor.sources.ebpf.ring import BatchDecoder

COMMON = {
    "ts_ns": 123456789, "cgroup_id": 4242, "start_time_ns": 1000, "pid": 77, "tid": 78, "ppid": 1,
    "uid": 1000, "gid": 1001, "comm": "prog",
}  # fmt: skip
SYS = {"result": -13, "syscall_nr": 42}


def record(etype: EventType, fields: dict[str, Any], tails: dict[str, bytes] | None = None) -> bytes:
    """A record as a BPF program would write it: fixed part, then tails."""
    spec = RECORDS[int(etype)]
    rec = ffi.new(f"struct {spec.cls.record} *")
    tails = tails or {}
    rec.hdr.ts_ns = fields["ts_ns"]
    rec.hdr.type = int(etype)
    for name in ("cgroup_id", "start_time_ns", "pid", "tid", "ppid", "uid", "gid"):
        setattr(rec.task, name, fields[name])
    rec.task.comm = fields["comm"].encode()
    rec.sys.result = fields["result"]
    rec.sys.syscall_nr = fields["syscall_nr"]
    ctypes = {name: f.type for name, f in ffi.typeof(rec[0]).fields}
    skip = set(COMMON) | set(SYS)
    for name, value in fields.items():
        if name in skip:
            continue
        if isinstance(value, str):
            value = value.encode()
        if ctypes[name].kind == "array" and ctypes[name].item.cname == "uint8_t":
            ffi.memmove(getattr(rec, name), value, len(value))
        else:
            setattr(rec, name, value)
    tail = b""
    for name, data in tails.items():
        setattr(rec, f"{name}_len", len(data))
        tail += data
    rec.hdr.size = ffi.sizeof(rec[0]) + len(tail)
    return bytes(ffi.buffer(rec)) + tail


def both(raw: bytes) -> Any:
    """Decode one record both ways; they must agree."""
    py = decode(raw)
    (c,) = BatchDecoder().transcode([raw])
    assert c == py
    # events survive msgpack as they are (surrogate-escaped text aside)
    if not any("\udc80" <= ch <= "\udcff" for v in msgspec.structs.astuple(py) if isinstance(v, str) for ch in v):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(py), type=type(py)) == py
    return py


def net_fields(**kw: Any) -> dict[str, Any]:
    base = {
        **COMMON, **SYS, "fd": 3, "flags": 0, "backlog": 0, "family": socket.AF_INET, "sock_type": 1,
        "protocol": 6, "local_port": 0, "remote_port": 0, "local_addr": b"", "remote_addr": b"",
    }  # fmt: skip
    base.update(kw)
    return base


def test_net_connect_ipv4() -> None:
    # NUL bytes inside an address must survive (bytes, not a C string)
    raw = record(
        EventType.NET_CONNECT,
        net_fields(local_port=40000, remote_port=443, local_addr=bytes([10, 0, 0, 1]), remote_addr=bytes([1, 0, 0, 1])),
    )
    e = both(raw)
    assert isinstance(e, events.NetConnect)
    # addresses are text, and ipaddress objects through local_ip/remote_ip
    assert (e.local_addr, e.remote_addr) == ("10.0.0.1", "1.0.0.1")
    assert (e.local_ip, e.remote_ip) == (ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("1.0.0.1"))
    assert (e.local_address, e.remote_address) == ("10.0.0.1", "1.0.0.1")
    assert (e.local_port, e.remote_port, e.result, e.errno) == (40000, 443, -13, 13)
    assert e.local_path == "" and e.remote_path == ""
    assert {k: getattr(e, k) for k in COMMON} == COMMON


def test_net_accept_ipv6_and_json() -> None:
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    raw = record(EventType.NET_ACCEPT, net_fields(family=socket.AF_INET6, remote_addr=v6, flags=0o2000000, result=5))
    e = both(raw)
    assert isinstance(e, events.NetAccept)
    assert e.remote_address == "2001:db8::1" and e.local_address == "::"
    assert e.remote_ip == ipaddress.IPv6Address("2001:db8::1") and e.local_ip == ipaddress.IPv6Address("::")
    doc = json.loads(events.to_json(e))
    assert (doc["kind"], doc["remote_addr"], doc["local_addr"]) == ("net_accept", "2001:db8::1", "::")


def test_net_ipv4_mapped_ipv6_is_written_as_rfc_5952_says() -> None:
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.1")
    raw = record(EventType.NET_CONNECT, net_fields(family=socket.AF_INET6, remote_addr=mapped))
    e = both(raw)
    assert e.remote_addr == "::ffff:192.0.2.1"
    assert e.remote_ip.ipv4_mapped == ipaddress.IPv4Address("192.0.2.1")
    assert json.loads(events.to_json(e))["remote_addr"] == "::ffff:192.0.2.1"


def _addresses() -> list[bytes]:
    """16-byte addresses: zero runs of every length and place (the "::" rules),
    IPv4-mapped ones, and random ones, from a fixed seed."""
    rnd = random.Random(5952)
    words = [[rnd.choice([0, 0, 0, 1, 0xFFFF, 0x0DB8, 0xABC]) for _ in range(8)] for _ in range(1500)]
    out = [b"".join(x.to_bytes(2, "big") for x in w) for w in words]
    out += [bytes(10) + b"\xff\xff" + rnd.randbytes(4) for _ in range(200)]
    out += [rnd.randbytes(16) for _ in range(300)]
    return [*out, bytes(16), bytes(15) + b"\x01", b"\xff" * 16, bytes(10) + b"\xff\xff" + bytes(4)]


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6, socket.AF_UNIX, 0, 17])
def test_addresses_as_text_agree_with_ipaddress(family: int) -> None:
    """The C transcoder and the Python decoder write the same canonical text,
    and it reads back as the same address."""
    raws = _addresses()
    records = [
        record(EventType.NET_CONNECT, net_fields(family=family, local_addr=r, remote_addr=r[::-1])) for r in raws
    ]
    transcoded = BatchDecoder(max_batch=len(records)).transcode(records)
    assert transcoded == [decode(r) for r in records]
    for raw, e in zip(raws, transcoded, strict=True):
        if family == socket.AF_INET:
            assert e.local_ip == ipaddress.IPv4Address(raw[:4]) and e.local_addr == str(e.local_ip)
        elif family == socket.AF_INET6:
            ip = ipaddress.IPv6Address(raw)
            assert e.local_ip == ip and e.remote_ip == ipaddress.IPv6Address(raw[::-1])
            # RFC 5952: what ipaddress prints, but a mapped address in dotted form
            assert e.local_addr == (f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped else str(ip)), raw.hex()
        else:
            assert (e.local_addr, e.remote_addr, e.local_ip, e.remote_ip) == ("", "", None, None)


@pytest.mark.parametrize(
    ("local", "remote"),
    [(b"/run/a.sock", b""), (b"", b"\0abstract\0name"), (b"/tmp/x", b"/tmp/y"), (b"p" * 108, b"\0" + b"q" * 107)],
)
def test_net_unix_paths(local: bytes, remote: bytes) -> None:
    raw = record(
        EventType.NET_BIND, net_fields(family=socket.AF_UNIX, protocol=0), {"local_path": local, "remote_path": remote}
    )
    e = both(raw)
    assert isinstance(e, events.NetBind)
    assert e.local_path == local.decode() and e.remote_path == remote.decode()
    if remote.startswith(b"\0"):
        assert e.remote_address == "@" + remote[1:].decode()


def test_net_listen_and_not_utf8_path() -> None:
    raw = record(
        EventType.NET_LISTEN,
        net_fields(family=socket.AF_UNIX, backlog=128),
        {"local_path": b"/tmp/\xff", "remote_path": b""},
    )
    e = both(raw)  # the C side passes it raw, Python decodes it
    assert isinstance(e, events.NetListen)
    assert e.backlog == 128 and e.local_path == "/tmp/\udcff"


def test_net_tail_past_end_is_a_decode_error() -> None:
    raw = bytearray(record(EventType.NET_BIND, net_fields(), {"local_path": b"/a", "remote_path": b""}))
    off = ffi.offsetof("struct net_event", "local_path_len")
    raw[off : off + 4] = (500).to_bytes(4, "little")
    with pytest.raises(DecodeError):
        decode(bytes(raw))
    dec = BatchDecoder()
    assert dec.transcode([bytes(raw)]) == []
    assert dec.undecodable == 1


def test_net_address_sources() -> None:
    """Where each address came from: the socket's (a connect that
    succeeded), the sockaddr the caller passed (a connect that failed)."""
    from ebpfsensor.events.file import PathSource

    ok = both(record(EventType.NET_CONNECT, net_fields(result=0, local_source=1, remote_source=1)))
    failed = both(record(EventType.NET_CONNECT, net_fields(result=-111, local_source=1, remote_source=2)))
    assert (ok.local_source, ok.remote_source) == (PathSource.KERNEL, PathSource.KERNEL)
    assert (failed.local_source, failed.remote_source) == (PathSource.KERNEL, PathSource.SYSCALL_ARG)


def test_net_event_uses_map16() -> None:
    """net_event has 16-31 fields: a map16, not a fixmap (which holds 15)."""
    assert 16 <= len(RECORDS[int(EventType.NET_BIND)].fields) + 1 < 32
    assert isinstance(both(record(EventType.NET_BIND, net_fields())), events.NetBind)


def test_cred_change() -> None:
    names = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid")
    fields = {**COMMON, **SYS, "syscall_nr": 117}
    fields.update({f"old_{n}": 0 for n in names})
    fields.update({f"new_{n}": 4_000_000_000 + i for i, n in enumerate(names)})
    fields.update({"old_cap_inheritable": 0, "old_cap_permitted": (1 << 41) - 1, "old_cap_effective": (1 << 41) - 1})
    fields.update({"new_cap_inheritable": 0, "new_cap_permitted": 0, "new_cap_effective": 1 << 40})
    fields.update({"arg0": 0xFFFFFFFF, "arg1": 5, "arg2": 6})
    e = both(record(EventType.CRED_CHANGE, fields))
    assert isinstance(e, events.CredChange)
    assert {k: getattr(e, k) for k in fields} == fields


def test_kill_and_setsid() -> None:
    fields = {**COMMON, **SYS, "target_pid": -1, "target_tid": 0, "signal": 9}
    e = both(record(EventType.KILL, fields))
    assert isinstance(e, events.Kill)
    assert {k: getattr(e, k) for k in fields} == fields
    fields = {**COMMON, "result": 4242, "syscall_nr": 112}
    e = both(record(EventType.SETSID, fields))
    assert isinstance(e, events.Setsid)
    assert {k: getattr(e, k) for k in fields} == fields and e.errno == 0


@pytest.mark.parametrize("etype", [t for t in EventType if t >= EventType.NET_CONNECT])
def test_truncated_fixed_part_is_a_decode_error(etype: EventType) -> None:
    raw = bytearray(bytes(ffi.sizeof(f"struct {RECORDS[int(etype)].cls.record}")))
    raw[8:16] = int(etype).to_bytes(4, "little") + (len(raw) - 8).to_bytes(4, "little")
    with pytest.raises(DecodeError):
        decode(bytes(raw[:-8]))
    dec = BatchDecoder()
    assert dec.transcode([bytes(raw[:-8])]) == [] and dec.undecodable == 1


def test_ptrace() -> None:
    fields = {**COMMON, **SYS, "request": 0x4206, "addr": 1 << 63, "data": 0xFFFF_FFFF_FFFF_FFFF, "target_pid": 99}
    e = both(record(EventType.PTRACE, fields))
    assert isinstance(e, events.Ptrace)
    assert {k: getattr(e, k) for k in fields} == fields


@pytest.mark.parametrize("name", [b"", b"payload", "caf\u00e9".encode(), b"x" * 255, b"bad\xfe"])
def test_memfd_create(name: bytes) -> None:
    e = both(record(EventType.MEMFD_CREATE, {**COMMON, **SYS, "flags": 3}, {"name": name}))
    assert isinstance(e, events.MemfdCreate)
    assert e.flags == 3 and e.name == name.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("prog_name", [b"", b"short", b"f" * 16])
def test_bpf_call(prog_name: bytes) -> None:
    fields = {**COMMON, **SYS, "cmd": 5, "prog_type": 26, "insn_cnt": 4096, "attr_size": 152}
    e = both(record(EventType.BPF_CALL, {**fields, "prog_name": prog_name}))
    assert isinstance(e, events.BpfCall)
    # a name that fills the array has no NUL: it ends at the array's end
    assert {k: getattr(e, k) for k in fields} == fields and e.prog_name == prog_name.decode()


def test_module_load() -> None:
    fields = {**COMMON, **SYS, "image_len": 0, "fd": 3, "flags": 2, "name": "x" * 55, "path_truncated": 1}
    e = both(record(EventType.MODULE_LOAD, fields, {"path": b"/lib/modules/x.ko", "args": b"debug=1 y=2"}))
    assert isinstance(e, events.ModuleLoad)
    assert {k: getattr(e, k) for k in fields if k != "path_truncated"} == {
        k: v for k, v in fields.items() if k != "path_truncated"
    }
    assert e.path_truncated is True and e.path == "/lib/modules/x.ko" and e.args == "debug=1 y=2"


@pytest.mark.parametrize(
    ("source", "target", "fstype"),
    [
        (b"none", b"/", b""),
        (b"/dev/sda1", b"relative/dir", b"ext4"),
        (b"", b"/m\xffnt", b"tmpfs"),
        (b"s" * 4095, b"t", b"f"),
    ],
)
def test_mount_and_umount(source: bytes, target: bytes, fstype: bytes) -> None:
    tails = {"source": source, "target": target, "fstype": fstype}
    e = both(record(EventType.MOUNT, {**COMMON, **SYS, "flags": 1 << 18 | 1 << 14}, tails))
    assert isinstance(e, events.Mount)
    assert (e.source, e.target, e.fstype) == tuple(t.decode("utf-8", "surrogateescape") for t in tails.values())
    assert e.flags == 1 << 18 | 1 << 14
    u = both(record(EventType.UMOUNT, {**COMMON, **SYS, "flags": 2}, {"target": target}))
    assert isinstance(u, events.Umount)
    assert (u.flags, u.target) == (2, target.decode("utf-8", "surrogateescape"))


def test_record_rules() -> None:
    """sizeof a multiple of 8, numbers in their family's range, tags unique."""
    for rtype, spec in RECORDS.items():
        tag = spec.cls.__struct_config__.tag
        assert ffi.sizeof(f"struct {spec.cls.record}") % 8 == 0, spec.cls.record
        family = (
            range(1, 10)
            if tag.startswith("process_")
            else range(10, 30)
            if tag.startswith(("file_", "dir_"))
            else range(30, 40)
            if tag.startswith("net_")
            else range(40, 60)
        )
        assert rtype in family, tag
    tags = [spec.cls.__struct_config__.tag for spec in RECORDS.values()]
    assert len(tags) == len(set(tags))
