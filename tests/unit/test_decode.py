# SPDX-License-Identifier: Apache-2.0
"""Decoders on synthetic records: the C transcoder and the Python decoder agree."""

from __future__ import annotations

import json
import os
import struct

import msgspec
import pytest
from tests.recordgen import make_record

from ebpfsensor.errors import DecodeError
from ebpfsensor.events import EventType, ProcessExec, ProcessExit, ProcessFork, decode, to_json
from ebpfsensor.events._layout import RECORDS
from ebpfsensor.sources.ebpf.ring import BatchDecoder


def exec_record(argv: bytes = b"/bin/true\0a b\0\0", **kw: object) -> bytes:
    fields = dict(
        ts_ns=123,
        pid=10,
        tid=11,
        ppid=1,
        uid=1000,
        gid=1001,
        euid=0,
        egid=2,
        suid=3,
        sgid=4,
        fsuid=5,
        fsgid=6,
        loginuid=1000,
        sessionid=7,
        cgroup_id=99,
        start_time_ns=55,
        pid_ns=4026531836,
        mnt_ns=1,
        net_ns=2,
        user_ns=3,
        old_tid=11,
        comm="true",
        parent_comm="bash",
        tty="pts/0",
        argv_truncated=1,
    )
    fields.update(kw)
    tails = {"exe": b"/usr/bin/true", "cwd": b"/tmp", "parent_exe": b"/usr/bin/bash", "argv": argv}
    return make_record(EventType.EXEC, tails, **fields)


def both(record: bytes) -> object:
    """Decode with both decoders, assert they agree, return the event."""
    py = decode(record)
    (c,) = BatchDecoder().transcode([record])
    assert c == py
    return py


def test_exec_fields() -> None:
    e = both(exec_record())
    assert isinstance(e, ProcessExec)
    assert (e.pid, e.tid, e.ppid, e.uid, e.gid) == (10, 11, 1, 1000, 1001)
    assert (e.euid, e.egid, e.suid, e.sgid, e.fsuid, e.fsgid) == (0, 2, 3, 4, 5, 6)
    assert (e.loginuid, e.sessionid, e.cgroup_id, e.start_time_ns, e.ts_ns) == (1000, 7, 99, 55, 123)
    assert (e.pid_ns, e.mnt_ns, e.net_ns, e.user_ns, e.old_tid) == (4026531836, 1, 2, 3, 11)
    assert (e.comm, e.parent_comm, e.tty) == ("true", "bash", "pts/0")
    assert (e.exe, e.cwd, e.parent_exe) == ("/usr/bin/true", "/tmp", "/usr/bin/bash")
    # the trailing empty argument survives; argv_truncated is a bool
    assert e.argv == ["/bin/true", "a b", ""]
    assert e.argv_truncated is True and e.exe_truncated is False


@pytest.mark.parametrize(
    ("raw", "argv"),
    [
        (b"", []),
        (b"\0", [""]),
        (b"one\0", ["one"]),
        (b"one\0two", ["one", "two"]),  # truncated: the last item has no NUL
        (b"a\0\0\0", ["a", "", ""]),
        # msgpack's fixed-size headers end at 15 (arrays) and 31 (strings)
        (b"a\0" * 15, ["a"] * 15),
        (b"a\0" * 16, ["a"] * 16),
        (b"a\0" * 300, ["a"] * 300),
        (b"x" * 31 + b"\0" + b"y" * 32 + b"\0" + b"z" * 256 + b"\0", ["x" * 31, "y" * 32, "z" * 256]),
    ],
)
def test_argv_shapes(raw: bytes, argv: list[str]) -> None:
    assert both(exec_record(argv=raw)).argv == argv


def test_fork_and_exit() -> None:
    f = both(make_record(EventType.FORK, pid=5, child_pid=6, child_tid=6, clone_flags=0x100, comm="sh"))
    assert isinstance(f, ProcessFork)
    assert (f.pid, f.child_pid, f.child_tid, f.clone_flags, f.comm) == (5, 6, 6, 0x100, "sh")
    x = both(make_record(EventType.EXIT, pid=6, exit_code=7, exit_signal=0, core_dumped=0, is_thread=0))
    assert isinstance(x, ProcessExit)
    assert (x.exit_code, x.exit_signal, x.core_dumped, x.is_thread) == (7, 0, False, False)
    neg = both(make_record(EventType.EXIT, exit_code=-3))
    assert neg.exit_code == -3


def test_non_utf8_is_faithful_and_json_escaped() -> None:
    raw_name = b"/tmp/caf\xe9\nx"
    rec = make_record(EventType.EXEC, {"exe": raw_name, "argv": b"a\xff\0"}, comm=b"c\xfe")
    e = both(rec)
    assert os.fsencode(e.exe) == raw_name
    assert [os.fsencode(a) for a in e.argv] == [b"a\xff"]
    assert os.fsencode(e.comm) == b"c\xfe"
    doc = json.loads(to_json(e))
    assert doc["exe"] == "/tmp/caf\udce9\nx" and doc["kind"] == "process_exec"
    # valid events encode with msgspec directly, and round-trip
    ok = both(exec_record())
    assert msgspec.json.decode(to_json(ok), type=ProcessExec) == ok
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ok), type=ProcessExec) == ok


def test_malformed_records() -> None:
    good = exec_record()
    cases = {
        "short": good[:10],
        "unknown type": good[:8] + struct.pack("<I", 63) + good[12:],
        "size past data": good[:12] + struct.pack("<I", len(good) + 1) + good[16:],
        "size below fixed": good[:12] + struct.pack("<I", 20) + good[16:],
    }
    offset = next(f.offset for f in RECORDS[1].fields if f.name == "argv")
    cases["tail past size"] = good[:offset] + struct.pack("<I", 10_000) + good[offset + 4 :]
    dec = BatchDecoder()
    for name, rec in cases.items():
        with pytest.raises(DecodeError):
            decode(rec)
        assert dec.transcode([rec]) == [], name
    assert dec.undecodable == len(cases)


def test_many_fields_and_long_strings() -> None:
    e = both(exec_record(argv=b"\0".join([b"q" * 70000]) + b"\0"))
    assert e.argv == ["q" * 70000]


def test_batch_of_many() -> None:
    recs = [exec_record(pid=i) for i in range(2000)]
    events = BatchDecoder().transcode(recs)
    assert [e.pid for e in events] == list(range(2000))


def test_fuzz_only_decode_error(rng: object) -> None:
    import random

    assert isinstance(rng, random.Random)
    base = exec_record()
    dec = BatchDecoder()
    for _ in range(3000):
        rec = bytearray(base[: rng.randrange(len(base) + 1)])
        for _ in range(rng.randrange(1, 8)):
            if rec:
                rec[rng.randrange(len(rec))] = rng.randrange(256)
        try:
            py = decode(bytes(rec))
        except DecodeError:
            py = None
        out = dec.transcode([bytes(rec)])
        assert out == ([] if py is None else [py]), rng
