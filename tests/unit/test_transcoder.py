# SPDX-License-Identifier: Apache-2.0
"""The C transcoder's msgpack headers at the fix* boundaries."""

from __future__ import annotations

import pytest

from ebpfsensor._ffi import ffi
from ebpfsensor.events import EventType, decode
from ebpfsensor.events._layout import RECORDS
from ebpfsensor.sources.ebpf.ring import BatchDecoder


def exec_record(argv: list[str]) -> bytes:
    rec = ffi.new("struct exec_event *")
    rec.hdr.ts_ns = 1
    rec.hdr.type = int(EventType.EXEC)
    rec.task.pid = rec.task.tid = 7
    rec.task.comm = b"sh"
    tail = b"/bin/sh" + b"\0".join(a.encode() for a in argv) + (b"\0" if argv else b"")
    rec.exe_len = 7
    rec.argv_len = len(tail) - 7
    rec.hdr.size = RECORDS[int(EventType.EXEC)].fixed_size + len(tail)
    return bytes(ffi.buffer(rec)) + tail


@pytest.mark.parametrize("n", [0, 1, 15, 16, 20, 31, 32, 1000])
def test_argv_list_lengths(n: int) -> None:
    """fixarray holds 15 items: 16-31 items need an array16 header too."""
    argv = [f"arg{i}" for i in range(n)]
    raw = exec_record(argv)
    (e,) = BatchDecoder().transcode([raw])
    assert e == decode(raw)
    assert e.argv == argv and e.exe == "/bin/sh"
