# SPDX-License-Identifier: Apache-2.0
"""Write seed inputs for tests/fuzz/transcode_fuzz.c.

Records come from tests/recordgen.py, one or more of every type: well-formed,
then broken the ways a BPF bug, a new kernel or corruption could break them
(short, truncated, zero and oversized size and length fields, unknown types,
invalid UTF-8), plus batches that fill up by count and by bytes. Run from the
repository root with PYTHONPATH=python:. :
python3 tests/fuzz/gen_corpus.py build/fuzz/corpus
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.recordgen import make_record

from ebpfsensor.events import EventType
from ebpfsensor.events._layout import (
    ES_BOOL,
    ES_BYTES,
    ES_CSTR,
    ES_INADDR,
    ES_OPTBOOL,
    ES_S,
    ES_TAIL_STR,
    ES_TAIL_STRLIST,
    ES_U,
    MAX_RECORD_LEN,
    RECORDS,
    RecordSpec,
)
from ebpfsensor.sources.ebpf.ring import _RESERVE as RESERVE

FLAG_RING = 1
FLAG_FILL_CGROUPS = 2
FLAG_TIGHT = 4
HEX = "0123456789abcdef"


def fuzz_input(
    records: Iterable[bytes],
    *,
    flags: int = 0,
    cap: int = 4 * RESERVE,  # BatchDecoder's smallest batch
    max_count: int = 256,
    cgroups: Sequence[tuple[int, str]] = (),
) -> bytes:
    """One input in the layout transcode_fuzz.c reads (see its header comment)."""
    out = bytearray(struct.pack("<BIBB", flags, cap, max_count - 1, len(cgroups)))
    for cgroup_id, cid in cgroups:
        # the fuzzer maps each byte's low nibble to a hex digit
        out += struct.pack("<QB", cgroup_id, len(cid)) + bytes(HEX.index(ch) for ch in cid)
    for rec in records:
        out += struct.pack("<I", len(rec)) + rec
    return bytes(out)


def cgroup_of(rtype: int) -> int:
    return 0x1000 + rtype


def container_of(rtype: int) -> str:
    return (f"{rtype:02x}" * 32)[:64]


def tails_for(spec: RecordSpec, strings: dict[int, bytes] | None = None) -> dict[str, bytes]:
    """Tail bytes for every variable field: a path, or argv-style NUL-separated items."""
    tails = {}
    for i, f in enumerate(spec.fields):
        if f.kind == ES_TAIL_STR:
            tails[f.name] = (strings or {}).get(i, f"/usr/lib/{f.name}/x".encode())
        elif f.kind == ES_TAIL_STRLIST:
            tails[f.name] = (strings or {}).get(i, b"sh\0-c\0echo hi\0")
    return tails


def record(
    spec: RecordSpec,
    tails: dict[str, bytes] | None = None,
    fixed: dict[int, bytes] | None = None,
    ints: int = 0,
) -> bytes:
    """A record of spec's type with every fixed field set: ints (0 = field
    number) for integers, short text for char arrays, a pattern for bytes."""
    rec = bytearray(make_record(EventType(spec.type), tails=tails_for(spec) if tails is None else tails))
    struct.pack_into("<Q", rec, 0, 1_000_000_007)
    for i, f in enumerate(spec.fields):
        if f.name == "cgroup_id":
            value = cgroup_of(spec.type).to_bytes(8, "little")
        elif f.name == "ts_ns":
            continue
        elif f.kind in (ES_U, ES_S):
            v = ints or i + 1
            value = ((v if f.kind == ES_U else -v) % (1 << 8 * f.size)).to_bytes(f.size, "little")
        elif f.kind in (ES_BOOL, ES_OPTBOOL):
            value = bytes([(i + (ints & 0xFF)) % 3])
        elif f.kind == ES_CSTR:
            value = f.name.encode()[: f.size - 1].ljust(f.size, b"\0")
        elif f.kind in (ES_BYTES, ES_INADDR):
            value = bytes(range(f.size))
        else:
            continue
        rec[f.offset : f.offset + f.size] = value
    for i, v in (fixed or {}).items():
        f = spec.fields[i]
        rec[f.offset : f.offset + len(v)] = v
    return bytes(rec)


def set_size(rec: bytes, size: int) -> bytes:
    return rec[:12] + struct.pack("<I", size) + rec[16:]


def set_type(rec: bytes, rtype: int) -> bytes:
    return rec[:8] + struct.pack("<I", rtype) + rec[12:]


def seeds() -> Iterable[tuple[str, bytes]]:
    every = []
    for rtype, spec in sorted(RECORDS.items()):
        name = spec.cls.__name__
        rec = record(spec)
        every.append(rec)
        cg = [(cgroup_of(rtype), container_of(rtype))]
        yield f"{name}", fuzz_input([rec], cgroups=cg)
        yield f"{name}-ring", fuzz_input([rec], flags=FLAG_RING)
        extremes = [record(spec, ints=v) for v in ((1 << 64) - 1, 0x80, 0x101, 1 << 31)]
        yield f"{name}-extremes", fuzz_input(extremes)

        tail_fields = [i for i, f in enumerate(spec.fields) if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST)]
        cstr_fields = [i for i, f in enumerate(spec.fields) if f.kind == ES_CSTR]
        broken = [
            rec[:15],
            rec[:16],
            rec[: spec.fixed_size - 1],
            rec[:-1],
            set_size(rec, 0),
            set_size(rec, len(rec) + 1),
            set_size(rec, 0xFFFFFFFF),
            set_size(rec, spec.fixed_size),
            rec + b"\0" * 8,
        ]
        for i in tail_fields:
            f = spec.fields[i]
            empty = record(spec, tails={k: v for k, v in tails_for(spec).items() if k != f.name})
            for n in (0xFFFFFFFF, len(rec) - spec.fixed_size + 1, 0x80000000):
                broken.append(rec[: f.offset] + struct.pack("<I", n) + rec[f.offset + 4 :])
            broken += [
                empty,
                record(spec, tails=tails_for(spec, {i: b"\xff\xfe"})),
                record(spec, tails=tails_for(spec, {i: b"ok\0\xc3("})),
                record(spec, tails=tails_for(spec, {i: b"\xed\xa0\x80"})),  # a surrogate
                record(spec, tails=tails_for(spec, {i: b"\xc0\xaf"})),  # overlong '/'
                record(spec, tails=tails_for(spec, {i: b"\xe0\x80\xaf\xf0\x80\x80\xaf"})),  # overlong, 3 and 4 bytes
                record(spec, tails=tails_for(spec, {i: b"\xf4\x8f\xbf\xbf\xf0\x90\x80\x80"})),
                record(spec, tails=tails_for(spec, {i: b"\xf4\x90\x80\x80"})),
                record(spec, tails=tails_for(spec, {i: b"\0"})),
                record(spec, tails=tails_for(spec, {i: b"\0\0\0"})),
                record(spec, tails=tails_for(spec, {i: b"no-terminator"})),
                record(spec, tails=tails_for(spec, {i: "caf\u00e9 \u20ac \U0001f600\0".encode()})),
            ]
        for i in cstr_fields:
            f = spec.fields[i]
            broken += [
                record(spec, fixed={i: b"\xff" + b"\0" * (f.size - 1)}),
                record(spec, fixed={i: b"x" * f.size}),  # no NUL
                record(spec, fixed={i: "\u00e9".encode() * (f.size // 2)}),
                record(spec, fixed={i: b"ab\xe2\x82" + b"\0" * (f.size - 4)}),  # cut in a character
            ]
        # addresses by family: IPv4, IPv6 (zero runs, IPv4-mapped), others
        addr_fields = [i for i, f in enumerate(spec.fields) if f.kind == ES_INADDR]
        if addr_fields:
            fam = next(i for i, f in enumerate(spec.fields) if f.offset == spec.fields[addr_fields[0]].aux)
            v6 = [bytes(16), bytes(15) + b"\1", bytes(10) + b"\xff\xff\x7f\0\0\1", b"\xff" * 16, bytes([1, 0] * 8)]
            yield f"{name}-addresses", fuzz_input([
                record(spec, fixed={fam: struct.pack("<H", family), **{i: a for i in addr_fields}})
                for family in (2, 10, 1, 0, 0xFFFF)
                for a in v6
            ])  # fmt: skip
        yield f"{name}-broken", fuzz_input(broken)
        yield f"{name}-broken-ring", fuzz_input(broken, flags=FLAG_RING, max_count=8)

    # every type in one batch; then batches filled by count and by bytes
    yield "all", fuzz_input(every, cgroups=[(cgroup_of(t), container_of(t)) for t in sorted(RECORDS)[:15]])
    yield "all-ring", fuzz_input(every, flags=FLAG_RING)
    yield "all-count3", fuzz_input(every, max_count=3)
    yield "all-count1-ring", fuzz_input(every, flags=FLAG_RING, max_count=1)
    yield "all-small-cap", fuzz_input(every * 8, cap=RESERVE + 8 + 2000)
    yield "all-small-cap-ring", fuzz_input(every * 8, flags=FLAG_RING, cap=RESERVE + 8)
    yield "all-fill-cgroups", fuzz_input(every, flags=FLAG_FILL_CGROUPS, cgroups=[(1, "ab" * 32), (0, ""), (2, "")])
    yield "cgroup-too-long", fuzz_input(every[:2], cgroups=[(cgroup_of(1), "a" * 127)])
    yield "unknown-types", fuzz_input([set_type(every[0], t) for t in (0, 4, 49, 63, 64, 0xFFFFFFFF)])
    yield "empty", b""
    yield "header-only", fuzz_input([])
    yield "zero-length-records", fuzz_input([b"", b"\0" * 16, b""])

    # exec at its limits: argv items around the msgpack fix* sizes, a record
    # of MAX_RECORD_LEN, and one larger than any BPF program writes
    exec_spec = RECORDS[int(EventType.EXEC)]
    argv_at = next(i for i, f in enumerate(exec_spec.fields) if f.kind == ES_TAIL_STRLIST)
    for n in (15, 16, 31, 32, 255, 256):
        argv = b"\0".join(b"a" * (i % 40) for i in range(n)) + b"\0"
        yield f"exec-argv-{n}", fuzz_input([record(exec_spec, tails=tails_for(exec_spec, {argv_at: argv}))])
    # 65536 empty items: an array32
    argv = b"\0" * 65536
    yield "exec-argv-65536", fuzz_input([record(exec_spec, tails=tails_for(exec_spec, {argv_at: argv}))])
    for n in (31, 32, 255, 256, 65535, 65536):
        argv = b"x" * n
        yield f"exec-arg-{n}", fuzz_input([record(exec_spec, tails=tails_for(exec_spec, {argv_at: argv}))])
    base = record(exec_spec)
    fill = MAX_RECORD_LEN - len(base) + len(tails_for(exec_spec)[exec_spec.fields[argv_at].name])
    big = record(exec_spec, tails=tails_for(exec_spec, {argv_at: b"b\0" * (fill // 2) + b"b" * (fill % 2)}))
    assert len(big) == MAX_RECORD_LEN, len(big)
    yield "exec-max", fuzz_input([big, big, big, big])
    yield "exec-max-ring", fuzz_input([big, big, big, big], flags=FLAG_RING)
    yield "exec-max-tight", fuzz_input([big, big], flags=FLAG_TIGHT)
    yield "all-tight", fuzz_input(every, flags=FLAG_TIGHT)
    for n in (2, 3):
        huge = record(exec_spec, tails=tails_for(exec_spec, {argv_at: b"c" * (n * MAX_RECORD_LEN)}))
        yield f"exec-oversized-{n}x", fuzz_input([huge])


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, data in seeds():
        (out / f"seed-{name}").write_bytes(data)
        n += 1
    print(f"  SEEDS   {n} in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
