# SPDX-License-Identifier: Apache-2.0
"""How the eBPF source starts: the maps the objects share are created first
(BpfObject.create_maps) and every object then loads side by side, reusing
them; the task iterator that seeds the process table loads meanwhile and is
handed to the seed. Checked against the kernel: the maps and programs each
process holds, and what the iterator reads."""

from __future__ import annotations

import errno
import os

import pytest
from tests.kernel.test_resources import bpf_ids, wait_gone

import ebpfsensor
from ebpfsensor.config import Config
from ebpfsensor.errors import LibbpfError
from ebpfsensor.host import features
from ebpfsensor.process import _taskiter
from ebpfsensor.sources.ebpf import source as ebpf_source
from ebpfsensor.sources.ebpf.hooks import SHARED_MAPS
from ebpfsensor.sources.ebpf.objects import BpfObject

pytestmark = pytest.mark.bpf

#: the builds this kernel loads: perf event arrays before 5.8
SUFFIX = "" if features.ring_buffer().works else ".perf"


def test_create_maps_makes_those_maps_and_no_program() -> None:
    before = bpf_ids()
    sizes = {"activity_events": 1 << 20} if not SUFFIX else {}
    maps = BpfObject.packaged("process" + SUFFIX).create_maps(SHARED_MAPS, map_sizes=sizes)
    try:
        held = bpf_ids()
        new = held["map"] - before["map"]
        assert held["prog"] == before["prog"]
        # those maps and no other (process.bpf.o declares exec_scratch, path_buf, ...)
        fds = {name: maps.map_fd(name) for name in SHARED_MAPS}
        ids = {}
        for name, fd in fds.items():
            with open(f"/proc/self/fdinfo/{fd}") as f:
                text = f.read()
            fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
            ids[name] = int(fields["map_id"])
            if name == "activity_events" and sizes:
                assert int(fields["max_entries"]) == 1 << 20
        assert set(ids.values()) == new
        assert maps.hooks == {}
    finally:
        maps.close()
    assert wait_gone("map", new) == set()
    assert bpf_ids() == before


def test_create_maps_names_a_map_the_object_lacks() -> None:
    before = bpf_ids()
    with pytest.raises(LibbpfError) as info:
        BpfObject.packaged("process" + SUFFIX).create_maps(("kind_stats", "no_such_map"))
    assert info.value.errno == errno.ENOENT and "no_such_map" in str(info.value)
    assert bpf_ids() == before


def test_objects_reuse_the_maps_created_first() -> None:
    before = bpf_ids()
    with ebpfsensor.Sensor() as s:
        assert s._ebpf is not None
        src = s._ebpf
        shared = {name: src._objects[0].map_fd(name) for name in SHARED_MAPS}
        # each object holds the very maps the first made, not its own copy
        for obj in src._objects[1:]:
            for name, fd in shared.items():
                assert _map_id(obj.map_fd(name)) == _map_id(fd)
        assert {o.name.split(".")[0] for o in src._objects[1:]} >= {"process", "net", "priv"}
    assert bpf_ids() == before


def _map_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(next(line.split(":")[1] for line in f if line.startswith("map_id")))


def test_task_iterator_loaded_beside_the_objects_seeds_the_table() -> None:
    before = bpf_ids()
    src = ebpf_source.EbpfSource(frozenset({"process_exec"}), Config())
    try:
        loaded = src.take_task_iter()
        if not features.task_iter().works:
            # nothing loaded for a seed that will read /proc
            assert loaded is None
            return
        assert loaded is not None and src.take_task_iter() is None
        variant = loaded.hooks["task"].variant
        assert variant in ("iter_s", "iter")
        got = _taskiter.read_records(loaded=loaded)
        assert loaded.closed  # the seed owns it: closed after its one run
        snaps, _ = _taskiter.snapshots(got.data)
        me = snaps[os.getpid()]
        assert me.exe == os.path.realpath(f"/proc/{os.getpid()}/exe")
        assert me.ppid == os.getppid() and me.uid == os.getuid()
    finally:
        src.close()
    assert bpf_ids() == before


def test_failed_start_releases_the_task_iterator(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[bool] = []
    close = ebpf_source.EbpfSource.close

    def spy(self: ebpf_source.EbpfSource) -> None:
        held.append(self._task_iter is not None)
        close(self)

    monkeypatch.setattr(ebpf_source.EbpfSource, "close", spy)
    before = bpf_ids()
    # the lifecycle hooks have no kprobe variant: the start fails after
    # every object (and the iterator) loaded
    s = ebpfsensor.Sensor(
        kinds={"process_exec", "process_fork", "process_exit"}, hook_variants={"kprobe"}, fail_closed=True
    )
    with pytest.raises(ebpfsensor.EbpfSensorError, match="no hook could be attached"):
        s.start()
    # held when the kernel has the task iterator (5.8), not loaded where not
    assert held and held[0] == features.task_iter().works
    assert bpf_ids() == before
