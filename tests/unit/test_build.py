# SPDX-License-Identifier: Apache-2.0
"""Events built in C (csrc/build.c) against the msgpack path and the
reference decoder: every field's value and type, shared values, raw records
in between, the container id, and the collector's state."""

from __future__ import annotations

import gc
import random
import struct
from typing import Any

import msgspec
import pytest
from tests.recordgen import make_record

from ebpfsensor._ffi import lib
from ebpfsensor.events import EventType, ProcessExec, decode, to_json
from ebpfsensor.events._layout import ES_CSTR, ES_INADDR, ES_S, ES_TAIL_STR, ES_TAIL_STRLIST, RECORDS
from ebpfsensor.sources.ebpf.ring import BatchDecoder, builder


def _random_record(spec: Any, rng: random.Random, same: dict[str, Any] | None = None) -> bytes:
    """A record of spec's type with random members; those named in same
    take its values (to be equal to a neighbour's)."""
    tails: dict[str, bytes] = {}
    fields: dict[str, Any] = {}
    for f in spec.fields:
        if same and f.name in same:
            value = same[f.name]
        elif f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST):
            items = [f"{f.name}{rng.randrange(1000)}".encode() for _ in range(rng.randrange(4))]
            value = b"\0".join(items) + (b"\0" if items and f.kind == ES_TAIL_STRLIST else b"")
        elif f.kind == ES_CSTR:
            value = f"c{rng.randrange(10**6)}".encode()[: f.size - 1]
        elif f.kind == ES_INADDR or f.size == 16:
            value = bytes(rng.randrange(256) for _ in range(f.size))
        elif f.size == 1:
            value = rng.randrange(3)
        elif f.name == "cgroup_id":
            value = 0  # no container lookup: the cgroup tree is the host's
        elif f.name == "family":
            value = rng.choice([2, 10, 1])
        else:
            value = rng.randrange(1 << (8 * f.size - 1))
        if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST):
            tails[f.name] = value
        else:
            fields[f.name] = value
    return make_record(spec.cls.event_type, tails, **fields)


def _fields_of(raw: bytes) -> dict[str, Any]:
    """The members of a record by name, its tails included (for same=)."""
    spec = RECORDS[struct.unpack_from("<I", raw, 8)[0]]
    out: dict[str, Any] = {}
    tail = spec.fixed_size
    for f in spec.fields:
        if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST):
            (n,) = struct.unpack_from("<I", raw, f.offset)
            out[f.name] = raw[tail : tail + n]
            tail += n
        elif f.kind == ES_CSTR:
            out[f.name] = raw[f.offset : f.offset + f.size].split(b"\0", 1)[0]
        elif f.kind == ES_INADDR or f.size == 16:
            out[f.name] = raw[f.offset : f.offset + f.size]
        else:
            out[f.name] = int.from_bytes(raw[f.offset : f.offset + f.size], "little", signed=f.kind == ES_S)
    return out


def _same_events(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y)
        assert x == y
        for name in x.__struct_fields__:
            vx, vy = getattr(x, name), getattr(y, name)
            assert type(vx) is type(vy), name
            assert vx == vy, name
        assert to_json(x) == to_json(y)


def test_build_mode_is_on_here() -> None:
    b = builder()
    assert b.native, b.why_not
    assert BatchDecoder()._c.build == 1
    assert BatchDecoder(build=False)._c.build == 0


def test_every_type_built_as_msgspec_decodes_it(rng: random.Random) -> None:
    """Random records of every type, each one's fields partly its
    predecessor's (shared in C), in one batch: the three decoders agree."""
    records: list[bytes] = []
    for _ in range(6):
        for spec in RECORDS.values():
            prev = next((r for r in reversed(records) if struct.unpack_from("<I", r, 8)[0] == spec.type), None)
            same = None
            if prev is not None:
                fields = _fields_of(prev)
                same = {k: v for k, v in fields.items() if rng.random() < 0.5 and k != "ts_ns"}
            records.append(_random_record(spec, rng, same))
    rng.shuffle(records)
    built = BatchDecoder(build=True).transcode(records)
    _same_events(built, BatchDecoder(build=False).transcode(records))
    _same_events(built, [decode(r) for r in records])


def _exec(exe: bytes, argv: bytes, pid: int = 10, cwd: bytes = b"/tmp", **kw: Any) -> bytes:
    tails = {"exe": exe, "cwd": cwd, "parent_exe": b"/usr/bin/bash", "argv": argv}
    fields = dict(pid=pid, tid=pid, comm="sh", pid_ns=4026531836, loginuid=4294967295, start_time_ns=5)
    fields.update(kw)
    return make_record(EventType.EXEC, tails, **fields)


def test_shared_values_and_lists() -> None:
    """Equal strings and numbers are the same objects; argv is a list of
    each event's own, of the same strings."""
    argv = b"/bin/true\0-x\0"
    a, b = BatchDecoder().transcode([_exec(b"/bin/true", argv, 10), _exec(b"/bin/true", argv, 11)])
    assert isinstance(a, ProcessExec) and isinstance(b, ProcessExec)
    assert a.exe is b.exe and a.pid_ns is b.pid_ns and a.comm is b.comm
    assert a.pid == 10 and b.pid == 11
    assert a.argv == b.argv == ["/bin/true", "-x"]
    assert a.argv is not b.argv
    a.argv.append("changed")
    assert b.argv == ["/bin/true", "-x"]


def test_tails_after_a_changed_tail() -> None:
    """The second record's exe differs in length from the first's, its argv
    not: the argv found behind the exe is compared, and shared."""
    recs = [
        _exec(b"/a", b"x\0y\0"),
        _exec(b"/bbbbbb", b"x\0y\0"),
        _exec(b"/bbbbbb", b"x\0z\0"),
        _exec(b"/c", b"x\0z\0", exe_truncated=1),
        _exec(b"", b""),
        # a cwd equal to the previous record's bytes at the wrong place (its exe)
        _exec(b"/d", b"/d", cwd=b"/e"),
        _exec(b"/d", b"/d", cwd=b"/d"),
    ]
    events = BatchDecoder().transcode(recs)
    assert [(e.exe, e.argv) for e in events] == [
        ("/a", ["x", "y"]),
        ("/bbbbbb", ["x", "y"]),
        ("/bbbbbb", ["x", "z"]),
        ("/c", ["x", "z"]),
        ("", []),
        ("/d", ["/d"]),
        ("/d", ["/d"]),
    ]
    assert [e.cwd for e in events[-2:]] == ["/e", "/d"]
    assert [e.exe_truncated for e in events] == [False, False, False, True, False, False, False]
    _same_events(events, [decode(r) for r in recs])


def test_raw_records_in_between() -> None:
    """Records that are not UTF-8, and malformed ones, between built ones:
    the order stays, the raw ones decoded faithfully or counted."""
    good = _exec(b"/bin/true", b"a\0")
    bad_utf8 = _exec(b"/bin/\xff", b"a\0", pid=12)
    malformed = good[:8] + struct.pack("<I", 63) + good[12:]
    dec = BatchDecoder()
    events = dec.transcode([good, bad_utf8, malformed, good])
    assert [e.pid for e in events] == [10, 12, 10]
    assert events[1].exe == "/bin/\udcff"
    assert dec.undecodable == 1
    _same_events(events, [decode(good), decode(bad_utf8), decode(good)])


@pytest.mark.parametrize("cid", ["", "abc123def456", "f" * 64])
def test_container_id_from_the_cache(cid: str) -> None:
    """The cache's msgpack string (a fixstr, or a str8 for 64 characters)
    becomes the events' container_id."""
    for build in (True, False):
        dec = BatchDecoder(build=build)
        enc = msgspec.msgpack.encode(cid)
        assert lib.es_cgroup_set(dec._c, 77, enc, len(enc)) == 0
        events = dec.transcode([_exec(b"/x", b"", cgroup_id=77), _exec(b"/x", b"", cgroup_id=77)])
        assert [e.container_id for e in events] == [cid, cid]
        assert [e.process for e in events] == [None, None]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        BatchDecoder().transcode([_exec(b"/x", b"a\0b\0")] * 50)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_fuzzed_batches_agree(rng: random.Random) -> None:
    """Batches of mutated records of every type, raw and malformed ones
    among them: built in C as the reference decoder decodes them."""
    specs = list(RECORDS.values())
    dec = BatchDecoder()
    for _ in range(200):
        batch: list[bytes] = []
        for _ in range(rng.randrange(1, 8)):
            rec = bytearray(_random_record(rng.choice(specs), rng))
            for _ in range(rng.randrange(3)):
                rec[rng.randrange(16, len(rec))] = rng.randrange(256)
            batch.append(bytes(rec))
            if rng.random() < 0.3:
                batch.append(bytes(rec))
        expected = []
        for rec in batch:
            try:
                expected.append(decode(rec))
            except Exception:
                continue
        _same_events(dec.transcode(batch), expected)
