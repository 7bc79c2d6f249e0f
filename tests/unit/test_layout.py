# SPDX-License-Identifier: Apache-2.0
"""The BTF in every compiled object agrees with cffi and the decoder tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpfsensor._btf import read_object_btf
from ebpfsensor._ffi import ffi
from ebpfsensor.events._layout import RECORDS, c_members
from ebpfsensor.sources.ebpf.objects import packaged_object_path

OBJECTS = sorted(packaged_object_path("process").parent.glob("*.bpf.o"))
# map keys and values user space reads through cffi (events.h, not records)
MAP_STRUCTS = (
    "kind_stats",
    "diag_syscall_spec",
    "diag_initiator_key",
    "diag_initiator_syscall_key",
    "diag_initiator",
    "diag_path_key",
    "diag_path_count",
    "diag_counters",
    # the task iterator's record, read from its seq_file
    "task_iter_record",
)
DIAG_STRUCTS = tuple(n for n in MAP_STRUCTS if n.startswith("diag_"))


def test_objects_built() -> None:
    if not OBJECTS:
        pytest.skip("no compiled objects: run `make bpf` first")


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: Path(p).name)
def test_records_match_btf(path: Path) -> None:
    btf = read_object_btf(str(path))
    seen = 0
    for spec in RECORDS.values():
        found = btf.struct(spec.cls.record)
        if found is None:
            continue
        seen += 1
        size, members = found
        assert size == ffi.sizeof(f"struct {spec.cls.record}") == spec.fixed_size
        c_layout = [(n, o, ffi.sizeof(t)) for n, o, t in c_members(ffi.typeof(f"struct {spec.cls.record}"))]
        assert [(m.name, m.offset, m.size) for m in members] == c_layout
        btf_by_name = {m.name: m for m in members}
        for f in spec.fields:
            c_name = f.name if f.name in btf_by_name else f"{f.name}_len"
            assert (btf_by_name[c_name].offset, btf_by_name[c_name].size) == (f.offset, f.size), f.name
        assert size % 8 == 0
    for name in MAP_STRUCTS:
        found = btf.struct(name)
        if found is None:
            continue
        seen += 1
        size, members = found
        assert size == ffi.sizeof(f"struct {name}"), name
        c_layout = [(n, o, ffi.sizeof(t)) for n, o, t in c_members(ffi.typeof(f"struct {name}"))]
        assert [(m.name, m.offset, m.size) for m in members] == c_layout, name
    # an object without maps hands nothing to user space (floor.bpf.o,
    # whose programs return at once): it has nothing to anchor
    assert seen or not _has_maps(path), f"{path.name} anchors no known record or map struct"


def _has_maps(path: Path) -> bool:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        return ELFFile(f).get_section_by_name(".maps") is not None


def test_diag_structs_in_diag_object() -> None:
    path = packaged_object_path("diag")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    btf = read_object_btf(str(path))
    assert {n for n in DIAG_STRUCTS if btf.struct(n)} == set(DIAG_STRUCTS)


def test_task_iter_record_in_iter_object() -> None:
    path = packaged_object_path("iter")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    assert read_object_btf(str(path)).struct("task_iter_record") is not None
    # the reader unpacks it in the order and at the offsets cffi gives
    from ebpfsensor.process._taskiter import RECORD

    assert RECORD.size == ffi.sizeof("struct task_iter_record") and RECORD.size % 8 == 0


def test_every_record_in_some_object() -> None:
    if not OBJECTS:
        pytest.skip("no compiled objects: run `make bpf` first")
    anchored = {
        s for p in OBJECTS for s in (r.cls.record for r in RECORDS.values()) if read_object_btf(str(p)).struct(s)
    }
    assert anchored == {r.cls.record for r in RECORDS.values()}
