# SPDX-License-Identifier: Apache-2.0
"""The task iterator's object and records: its maps are its own (not the
sensor's rings), and records become the snapshots the /proc scan gives."""

from __future__ import annotations

import io

import pytest
from elftools.elf.elffile import ELFFile

from ebpfsensor._ffi import ffi
from ebpfsensor.process import _procfs
from ebpfsensor.process._taskiter import RECORD, snapshots
from ebpfsensor.sources.ebpf.objects import BpfObject, packaged_object_path


def test_the_object_creates_no_ring_and_no_sensor_map() -> None:
    path = packaged_object_path("iter")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    maps = elf.get_section_by_name(".maps")
    symtab = elf.get_section_by_name(".symtab")
    assert maps is not None and symtab is not None
    index = elf.get_section_index(".maps")
    names = {s.name for s in symtab.iter_symbols() if s["st_shndx"] == index}
    # the path walk's scratch and the record's: loading it allocates no ring
    assert names == {"path_parts", "path_buf", "iter_scratch"}
    assert {p.name for p in BpfObject.packaged("iter").programs} == {"handle_task_iter_s", "handle_task_iter"}


def record(pid: int, tid: int, exe: bytes, cwd: bytes, argv: bytes, **fields: int) -> bytes:
    r = ffi.new("struct task_iter_record *")
    r.pid, r.tid, r.ppid, r.start_time_ns, r.sid = pid, tid, 1, 123 * _procfs.NS_PER_TICK + 45, pid
    r.exe_len, r.cwd_len, r.argv_len, r.argv_read = len(exe), len(cwd), len(argv), 1
    r.comm = b"prog"
    r.tty = b"pts4"
    for name, value in fields.items():
        setattr(r, name, value)
    r.size = ffi.sizeof(r[0]) + len(exe) + len(cwd) + len(argv)
    return bytes(ffi.buffer(r)) + exe + cwd + argv


def test_records_become_snapshots() -> None:
    data = record(300, 300, b"/usr/bin/prog", b"/srv", b"prog\0-x\0a b\0", uid=1000, euid=0, loginuid=1000)
    # a process whose leader has exited: the leader's record has no executable, a thread's has
    data += record(400, 400, b"", b"", b"", argv_read=0)
    data += record(400, 402, b"/usr/bin/other", b"/", b"other\0")
    data += record(400, 403, b"/usr/bin/other", b"/", b"other\0")
    snaps, argv_from_proc = snapshots(data)
    assert sorted(snaps) == [300, 400] and argv_from_proc == 1
    p = snaps[300]
    assert (p.exe, p.cwd, p.argv, p.comm, p.tty) == ("/usr/bin/prog", "/srv", ["prog", "-x", "a b"], "prog", "pts4")
    assert (p.uid, p.euid, p.loginuid, p.sid, p.ppid) == (1000, 0, 1000, 300, 1)
    assert (p.start_ns, p.start_ticks, p.source) == (123 * _procfs.NS_PER_TICK + 45, 123, "task_iter")
    assert p.start_time_ns == p.start_ns and not p.exited and not p.kernel_thread
    assert (snaps[400].exe, snaps[400].argv) == ("/usr/bin/other", ["other"])


def test_records_that_do_not_add_up_are_refused() -> None:
    data = record(300, 300, b"/bin/x", b"/", b"x\0")
    with pytest.raises(ValueError, match="left over"):
        snapshots(data + b"\0" * 8)
    with pytest.raises(ValueError, match="a record of"):
        snapshots(data[:-1])
    assert RECORD.size == ffi.sizeof("struct task_iter_record")
