# SPDX-License-Identifier: Apache-2.0
"""How the eBPF source starts: the maps the objects share are created first
(BpfObject.create_maps) and every object then loads side by side, reusing
them; the task iterator that seeds the process table loads meanwhile and is
handed to the seed. Checked against the kernel: the maps and programs each
process holds, and what the iterator reads."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

import pytest
from tests.kernel.test_resources import bpf_ids, wait_gone

import ebpfsensor
from ebpfsensor._btf import TYPEDEF, Btf
from ebpfsensor._ffi import lib
from ebpfsensor.config import Config
from ebpfsensor.errors import LibbpfError
from ebpfsensor.events import ProcessExec
from ebpfsensor.host import features
from ebpfsensor.host.btf import resolve as resolve_btf
from ebpfsensor.host.paths import BTF_VMLINUX
from ebpfsensor.process import _taskiter
from ebpfsensor.sources.ebpf import source as ebpf_source
from ebpfsensor.sources.ebpf.hooks import KIND_HOOKS, SHARED_MAPS
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


def test_a_start_parses_the_kernels_btf_once() -> None:
    # every object of a start relocates against (or names a kfunc of) the
    # kernel's BTF: libbpf parses it once for all of them, and the copy is
    # freed when the last load is done
    before = bpf_ids()
    parses = lib.es_vmlinux_btf_parses()
    with ebpfsensor.Sensor() as s:
        assert s._ebpf is not None
        made = lib.es_vmlinux_btf_parses() - parses
        assert made == (1 if features.own_btf().works else 0)
        assert lib.es_vmlinux_btf_cached() == 0
        # the loads that read the one copy attached every hook they have
        hooks = s._ebpf.hooks()
        assert {o.name.split(".")[0] for o in s._ebpf._objects[1:]} >= {"process", "net", "priv"}
        assert hooks["exec"].variant is not None and hooks["connect_exit"].variant is not None
    assert bpf_ids() == before
    # outside a start libbpf parses its own copy and frees it, as before
    parses = lib.es_vmlinux_btf_parses()
    with (
        resolve_btf() as btf,
        BpfObject.packaged("process" + SUFFIX).load(hooks=("exec",), btf_path=btf.libbpf_path) as one,
    ):
        assert one.hooks["exec"].attached
    assert lib.es_vmlinux_btf_parses() - parses == (1 if features.own_btf().works else 0)
    assert lib.es_vmlinux_btf_cached() == 0
    assert bpf_ids() == before


def test_sensors_starting_together_share_the_kernels_btf() -> None:
    # two starts at once in one process: each holds the shared copy while
    # its objects load; neither frees it under the other
    before = bpf_ids()
    parses = lib.es_vmlinux_btf_parses()
    barrier = threading.Barrier(2)
    # every kind where eBPF serves them all; on the perf tier the kinds the
    # audit provider would take beside it are left out (one receiver of
    # kernel audit a machine)
    kinds = {} if not SUFFIX else {"kinds": {k for k, (obj, _) in KIND_HOOKS.items() if obj != "file"}}
    started: list[ebpfsensor.Sensor] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            started.append(ebpfsensor.Sensor(exclude_self=False, **kinds).start())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(started) == 2
        assert 1 <= lib.es_vmlinux_btf_parses() - parses <= 2 or not features.own_btf().works
        assert lib.es_vmlinux_btf_cached() == 0
        for s in started:
            assert s._ebpf is not None and s._ebpf.hooks()["exec"].variant is not None
        # both see a process that runs now, each through its own programs,
        # whose fields were relocated against the one copy
        argv = ["/bin/true", "startup", str(os.getpid())]
        child = subprocess.Popen(argv)
        child.wait()
        for s in started:
            ex = _exec_of(s, child.pid)
            assert ex.argv == argv and ex.exe == os.path.realpath("/bin/true")
            assert (ex.pid, ex.ppid, ex.uid, ex.comm) == (child.pid, os.getpid(), os.getuid(), "true")
    finally:
        for s in started:
            s.close()
    assert bpf_ids() == before


def _exec_of(s: ebpfsensor.Sensor, pid: int) -> ProcessExec:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for ev in s.poll(0.2):
            if isinstance(ev, ProcessExec) and ev.pid == pid:
                return ev
    raise AssertionError(f"no exec event of {pid}")


def test_tracepoints_and_task_iterator_read_from_the_kernels_btf() -> None:
    # what the start asks of the kernel's BTF (found in its string table, the
    # file not kept) against a parse of every type in it
    features.clear_cache()
    if not features.own_btf().works:
        # nothing to tell by: the hooks' loads say, and the seed reads /proc
        assert features._kernel_tracepoints() is None
        assert features.raw_tracepoint_exists("sched_process_exec") is None
        assert features.task_iter().outcome == "not_supported"
        return
    with open(BTF_VMLINUX, "rb") as f:
        kernel = Btf(f.read())
    prefix = "btf_trace_"
    traced = {name[len(prefix) :] for kind, name, *_ in kernel.types if kind == TYPEDEF and name.startswith(prefix)}
    assert traced and {"sched_process_exec", "sys_enter", "sys_exit"} <= traced
    for name in traced:
        assert features.raw_tracepoint_exists(name) is True
    assert features.raw_tracepoint_exists("no_such_tracepoint_here") is False
    assert features._kernel_tracepoints() == frozenset(n.encode() for n in traced)
    has_iter = kernel.struct("bpf_iter__task") is not None
    assert features.task_iter().works is has_iter


def test_a_child_forked_during_a_start_loads_on_its_own() -> None:
    # forked while the parent holds the shared copy: the child's loads go on
    # (the lock is not left taken in it), and its exit frees what it loaded
    before = bpf_ids()
    lib.es_vmlinux_btf_hold()
    try:
        with (
            resolve_btf() as btf,
            BpfObject.packaged("process" + SUFFIX).load(hooks=("exec",), btf_path=btf.libbpf_path) as parent,
        ):
            assert parent.hooks["exec"].attached
            pid = os.fork()
            if pid == 0:
                try:
                    net = BpfObject.packaged("net" + SUFFIX)
                    with net.load(hooks=("connect_exit",), btf_path=btf.libbpf_path) as child:
                        os._exit(0 if child.hooks["connect_exit"].attached else 1)
                finally:
                    os._exit(2)
            deadline = time.monotonic() + 60
            while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
                assert time.monotonic() < deadline, "the forked child did not finish its load"
                time.sleep(0.05)
            assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        lib.es_vmlinux_btf_release()
    assert lib.es_vmlinux_btf_cached() == 0
    assert wait_gone("prog", bpf_ids()["prog"] - before["prog"]) == set()
    assert bpf_ids() == before
