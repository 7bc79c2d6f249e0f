# SPDX-License-Identifier: Apache-2.0
"""Network records through the consumer's decode step, with their IP
addresses as 16-byte bins into ``bytes`` fields (the representation before
addresses became text) and as canonical text into ``str`` fields (the
shipped one), in one run.

The records are the same for both: connects and accepts, IPv4 (half),
IPv6 (a third, some IPv4-mapped) and unix sockets (the rest, their names in
the tails). Each side is the shipped transcoder (driven from C, as a ring
would) and one msgspec decode per batch; "before" only has the address
members' field kind set back to a bin and Structs whose address fields are
``bytes``. The second figure adds what a consumer that wants the address as
text paid per event: before, ``ipaddress`` on the bytes (what the
``remote_address`` property did); now, reading the field. Rates are per
second of the thread's CPU time, the sides alternated, medians.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import statistics
import time
import typing
from typing import Any, Union

import msgspec

from ebpfsensor._ffi import ffi, lib
from ebpfsensor.events import EventType, NetAccept, NetBind, NetConnect, NetListen
from ebpfsensor.events._layout import ES_BYTES, ES_INADDR
from ebpfsensor.events.net import ip_text
from ebpfsensor.sources.ebpf.ring import BatchDecoder

NET = (NetConnect, NetAccept, NetBind, NetListen)


def _bytes_struct(cls: type) -> type:
    """cls as it was: the address fields ``bytes``, everything else the same."""
    hints = typing.get_type_hints(cls)
    fields = []
    for f in msgspec.structs.fields(cls):
        kind = bytes if f.name in ("local_addr", "remote_addr") else hints[f.name]
        fields.append((f.name, kind) if f.required else (f.name, kind, f.default))
    config = cls.__struct_config__  # type: ignore[attr-defined]
    return msgspec.defstruct(
        cls.__name__, fields, tag=config.tag, tag_field=config.tag_field, kw_only=True, frozen=True, gc=False
    )


def records(n: int, seed: int = 1) -> list[bytes]:
    """n net records as a BPF program writes them."""
    rnd = random.Random(seed)
    out = []
    size = ffi.sizeof("struct net_event")
    for i in range(n):
        e = ffi.new("struct net_event *")
        e.hdr.ts_ns = 10**12 + i
        e.hdr.type = int(EventType.NET_CONNECT if i % 2 else EventType.NET_ACCEPT)
        e.task.pid = e.task.tid = 1000 + i % 500
        e.task.start_time_ns = 10**9
        e.task.comm = b"bench"
        e.sys.result = 3
        e.fd = 3
        e.sock_type = socket.SOCK_STREAM
        pick = rnd.random()
        tail = b""
        if pick < 0.5:
            e.family, e.protocol = socket.AF_INET, socket.IPPROTO_TCP
            ffi.memmove(e.local_addr, bytes([10, 0, rnd.randrange(256), rnd.randrange(256)]), 4)
            ffi.memmove(e.remote_addr, bytes([192, 0, 2, rnd.randrange(256)]), 4)
        elif pick < 0.83:
            e.family, e.protocol = socket.AF_INET6, socket.IPPROTO_TCP
            mapped = rnd.random() < 0.2
            remote = bytes(10) + b"\xff\xff" + rnd.randbytes(4) if mapped else b"\x20\x01\x0d\xb8" + rnd.randbytes(12)
            ffi.memmove(e.local_addr, b"\x20\x01\x0d\xb8" + bytes(10) + rnd.randbytes(2), 16)
            ffi.memmove(e.remote_addr, remote, 16)
        else:
            e.family = socket.AF_UNIX
            tail = b"/run/app-%d.sock" % rnd.randrange(100)
            e.remote_path_len = len(tail)
        e.local_port, e.remote_port = rnd.randrange(1024, 65536), 443
        e.hdr.size = size + len(tail)
        out.append(bytes(ffi.buffer(e)) + tail)
    return out


def _copied(recs: list[bytes], cb: Any) -> tuple[Any, int]:
    """The records as the C drain copies them: [u32 size][u32 0][record, padded to 8]."""
    parts = []
    for r in recs:
        parts.append(len(r).to_bytes(4, "little") + bytes(4) + r + bytes(-len(r) % 8))
    blob = b"".join(parts)
    return cb.ffi.new("uint8_t[]", blob), len(blob)


class _Side:
    """One representation: the shipped transcoder with its tables, a decoder."""

    def __init__(self, text: bool) -> None:
        # the msgpack path: the two representations differ in its tables and decoder
        self.dec = BatchDecoder(build=False)
        self.decoder = self.dec._decoder
        if not text:
            for cls in NET:
                r = self.dec._tables.records[int(cls.event_type)]
                for i in range(r.nfields):
                    if r.fields[i].kind == ES_INADDR:
                        r.fields[i].kind = ES_BYTES
            kinds = tuple(_bytes_struct(cls) for cls in NET)
            self.decoder = msgspec.msgpack.Decoder(list[Union[(*kinds, bytes)]])  # type: ignore[valid-type]

    def decode(self, cb: Any, copy: Any, length: int) -> list[Any]:
        fn = int(ffi.cast("uintptr_t", ffi.addressof(lib, "es_transcode")))
        consumer = int(ffi.cast("uintptr_t", self.dec._c))
        spent = cb.ffi.new("uint64_t *")
        out: list[Any] = []
        pos = 0
        while pos < length:
            lib.es_batch_begin(self.dec._c)
            pos = cb.lib.bc_transcode(fn, consumer, copy, length, pos, spent)
            size = lib.es_batch_end(self.dec._c)
            out += self.decoder.decode(ffi.buffer(self.dec._buf, size))
        return out


def _text_before(e: Any) -> str:
    # NetConnect.remote_address before: ipaddress on the bytes, per access
    if e.family == socket.AF_INET:
        return str(ipaddress.IPv4Address(e.remote_addr[:4]))
    if e.family == socket.AF_INET6:
        return str(ipaddress.IPv6Address(e.remote_addr))
    return str(e.remote_path)


def bench(cb: Any, n: int, reps: int) -> dict[str, Any]:
    recs = records(n)
    copy, length = _copied(recs, cb)
    before, after = _Side(text=False), _Side(text=True)
    got: dict[str, list[Any]] = {}

    # CPU time of this thread: the decode is single-threaded, and the
    # machine may be shared (wall time would count the waits for a CPU)
    def timed(side: _Side, name: str, text: bool) -> float:
        t = time.thread_time()
        events = side.decode(cb, copy, length)
        if text:
            read = _text_before if side is before else (lambda e: e.remote_address)
            for e in events:
                read(e)
        elapsed = time.thread_time() - t
        got[name] = events
        return elapsed

    # alternated, so that both see the same machine
    times: dict[str, list[float]] = {"before": [], "after": [], "before_text": [], "after_text": []}
    for _ in range(reps):
        times["before"].append(timed(before, "before", False))
        times["after"].append(timed(after, "after", False))
        times["before_text"].append(timed(before, "before", True))
        times["after_text"].append(timed(after, "after", True))
    old, new = got["before"], got["after"]
    if len(old) != n or len(new) != n or before.dec._c.raw or after.dec._c.raw:
        raise SystemExit(f"addresses: {len(old)} and {len(new)} events decoded of {n}")
    # the same events, the addresses in either form
    for o, e in zip(old, new, strict=True):
        if (ip_text(o.family, o.remote_addr), ip_text(o.family, o.local_addr)) != (e.remote_addr, e.local_addr):
            raise SystemExit(f"addresses: {o} and {e} disagree")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "records": n,
        "record": f"net_event ({sum(map(len, recs)) // n} B; IPv4, IPv6, unix)",
        "bytes_per_s": n / med["before"],
        "text_per_s": n / med["after"],
        "ratio": med["before"] / med["after"],
        "bytes_then_text_per_s": n / med["before_text"],
        "text_read_per_s": n / med["after_text"],
        "text_ratio": med["before_text"] / med["after_text"],
    }


def report(r: dict[str, Any]) -> None:
    print(f"{'net events, decode step':34} {'16-byte bins':>14} {'text':>16} {'text/bins':>9}")
    print(f"  {r['record']:32} {r['bytes_per_s'] / 1e6:10.2f} M/s {r['text_per_s'] / 1e6:12.2f} M/s {r['ratio']:6.2f}x")
    print(
        f"  {'then the address as text':32} {r['bytes_then_text_per_s'] / 1e6:10.2f} M/s"
        f" {r['text_read_per_s'] / 1e6:12.2f} M/s {r['text_ratio']:6.2f}x"
    )
