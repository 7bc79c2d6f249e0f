# SPDX-License-Identifier: Apache-2.0
"""A Python-level fuzz of the ring reader: mutated records through
BatchDecoder.transcode (the C transcoder, then msgspec, then the Python
decoder for raw records), differentially against the reference decoder.

For every record, either the batch holds an event equal to what
ebpfsensor.events.decode makes of it, or decode raises DecodeError and the
record is counted as undecodable; any other exception, or a crash, is a
finding. Records stay within MAX_RECORD_LEN, as the BPF programs write them.
Meant to run under the ASan/UBSan build of the extension (`make fuzz`):

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
    PYTHONPATH=build/fuzz/asan:. python3 tests/fuzz/ring_fuzz.py --seconds 60
"""

from __future__ import annotations

import argparse
import logging
import random
import struct
import sys
import time
import traceback
from pathlib import Path

import msgspec
from tests.recordgen import make_record

from ebpfsensor.errors import DecodeError
from ebpfsensor.events import EventType, decode
from ebpfsensor.events._layout import ES_CSTR, ES_TAIL_STR, ES_TAIL_STRLIST, HEADER_SIZE, MAX_RECORD_LEN, RECORDS
from ebpfsensor.sources.ebpf.ring import BatchDecoder

_TEXT = [b"", b"/bin/sh", b"a" * 31, b"b" * 32, b"c" * 255, "caf\u00e9 \U0001f600".encode(), b"x\0y\0", b"\0"]
_BAD = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]
_SIZES = [0, 1, 15, 16, HEADER_SIZE, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, MAX_RECORD_LEN, MAX_RECORD_LEN + 1]


def _text(rng: random.Random) -> bytes:
    parts = [rng.choice(_TEXT + _BAD) for _ in range(rng.randrange(4))]
    return b"".join(parts)


def base_record(rng: random.Random) -> bytes:
    """A well-formed record of a random type, random strings in its tails."""
    rtype = rng.choice(sorted(RECORDS))
    spec = RECORDS[rtype]
    tails = {f.name: _text(rng) for f in spec.fields if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST)}
    rec = bytearray(make_record(EventType(rtype), tails=tails))
    for f in spec.fields:
        if f.kind == ES_CSTR and rng.random() < 0.3:
            rec[f.offset : f.offset + f.size] = _text(rng)[: f.size].ljust(f.size, b"\0")
        elif f.kind not in (ES_TAIL_STR, ES_TAIL_STRLIST) and f.name != "ts_ns":
            rec[f.offset : f.offset + f.size] = rng.randbytes(f.size)
    return bytes(rec)


def mutate(rng: random.Random, rec: bytes) -> bytes:
    """A few of: the size, the type or a tail length set to a boundary value,
    bytes flipped, the record cut or extended."""
    buf = bytearray(rec)
    spec = RECORDS.get(struct.unpack_from("<I", buf, 8)[0]) if len(buf) >= 16 else None
    for _ in range(rng.randrange(4)):
        op = rng.randrange(6)
        if op == 0 and len(buf) >= 16:
            struct.pack_into("<I", buf, 12, rng.choice([*_SIZES, len(buf), len(buf) - 1, len(buf) + 1]))
        elif op == 1 and len(buf) >= 16:
            struct.pack_into("<I", buf, 8, rng.choice([0, 4, 49, 64, 0xFFFFFFFF, *RECORDS]))
        elif op == 2 and spec is not None:
            lens = [f for f in spec.fields if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST)]
            if lens and len(buf) >= spec.fixed_size:
                f = rng.choice(lens)
                struct.pack_into("<I", buf, f.offset, rng.choice([*_SIZES, rng.randrange(len(buf) + 2)]))
        elif op == 3 and buf:
            for _ in range(rng.randrange(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 4:
            del buf[rng.randrange(len(buf) + 1) :]
        else:
            buf += _text(rng) + rng.randbytes(rng.randrange(16))
    return bytes(buf[:MAX_RECORD_LEN])


def check(dec: BatchDecoder, records: list[bytes]) -> tuple[int, int]:
    """One batch; returns (events, undecodable)."""
    before = dec.undecodable
    events = dec.transcode(records)
    refs = []
    for rec in records:
        try:
            refs.append(decode(rec))
        except DecodeError:
            pass
    bad = dec.undecodable - before
    if len(events) != len(refs) or len(events) + bad != len(records):
        raise AssertionError(
            f"{len(records)} records gave {len(events)} events and {bad} undecodable, expected {len(refs)} events"
        )
    for got, ref in zip(events, refs, strict=True):
        # the container id comes from this host's cgroups, not from the record
        if msgspec.structs.replace(got, container_id="") != msgspec.structs.replace(ref, container_id=""):
            raise AssertionError(f"transcoded {got!r} != reference {ref!r}")
    return len(events), bad


def _where(exc: BaseException) -> str:
    """The innermost frame in ebpfsensor or this file: a finding's identity."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "ebpfsensor" in f.filename or f.filename == __file__
    ]
    f = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(f.filename).name}:{f.lineno}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("build/fuzz/crashes"), help="where findings are written")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    dec = BatchDecoder()
    batches = records = events = undecodable = 0
    findings: dict[str, int] = {}
    deadline = time.monotonic() + args.seconds
    # the undecodable records' warnings are expected here, by the thousand
    logging.getLogger("ebpfsensor").setLevel(logging.ERROR)
    while time.monotonic() < deadline:
        batch = [
            mutate(rng, base_record(rng)) if rng.random() < 0.8 else base_record(rng)
            for _ in range(rng.randrange(1, 9))
        ]
        batches += 1
        records += len(batch)
        try:
            e, u = check(dec, batch)
        except Exception as exc:
            # an exception out of transcode() would end the sensor's read
            # loop: note it once per place, then go on with a fresh decoder
            where = _where(exc)
            findings[where] = findings.get(where, 0) + 1
            if findings[where] == 1:
                args.out.mkdir(parents=True, exist_ok=True)
                path = args.out / f"py-{where.replace(' at ', '-').replace(':', '-')}.txt"
                path.write_text(
                    f"seed {seed}, batch {batches}\nrecords (hex):\n"
                    + "".join(f"{r.hex()}\n" for r in batch)
                    + "".join(traceback.format_exception(exc))
                )
                print(f"  FINDING {where}: {exc!r:.200} (saved in {path})", file=sys.stderr)
            dec = BatchDecoder()
            continue
        events += e
        undecodable += u
    print(
        f"  PYFUZZ  seed {seed}: {batches} batches, {records} records in {args.seconds:.0f} s: "
        f"{events} events, {undecodable} undecodable (counted), "
        f"{sum(findings.values())} batches failed ({len(findings)} distinct findings)"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
