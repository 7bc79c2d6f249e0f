# SPDX-License-Identifier: Apache-2.0
"""Smoke test of an installed wheel: load, attach, receive real events.

`make wheel-test` runs this file alone on a machine that has only python3 and
the wheel's runtime dependencies (a debootstrap root; an arm64 guest). It
imports nothing from the source tree, only the installed package, and needs
no other test module: it is self-contained on purpose.

Environment:
    EBPFSENSOR_SMOKE_INSTALLED=1  fail if ebpfsensor was imported from a source
                                  tree rather than an installed distribution
    EBPFSENSOR_SMOKE_ROOT=DIR     the test runs chrooted into DIR: the kernel
                                  reports paths from the mount namespace's
                                  root, so exe and cwd carry DIR as a prefix
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

import pytest

import ebpfsensor
from ebpfsensor import ProcessExec, ProcessExit, ProcessFork
from ebpfsensor.errors import LibbpfError
from ebpfsensor.sources.ebpf.objects import BpfObject, bpf_arch, packaged_object_path

pytestmark = pytest.mark.bpf

ROOT_PREFIX = os.environ.get("EBPFSENSOR_SMOKE_ROOT", "").rstrip("/")
TRUE = os.path.realpath("/bin/true")


def kernel_path(path: str) -> str:
    """A path as the kernel reports it for this process."""
    return ROOT_PREFIX + os.path.realpath(path)


def test_installed_package() -> None:
    pkg = Path(ebpfsensor.__file__).resolve().parent
    if os.environ.get("EBPFSENSOR_SMOKE_INSTALLED") == "1":
        # the installed distribution's files, not a checkout on sys.path
        dist = importlib.metadata.distribution("ebpfsensor")
        assert Path(str(dist.locate_file("ebpfsensor/__init__.py"))).resolve() == pkg / "__init__.py"
        assert not (pkg.parent.parent / "bpf_src").exists(), f"{pkg} is a source tree"
        assert dist.version == ebpfsensor.__version__
    objdir = packaged_object_path("process").parent
    assert objdir.name == bpf_arch() == {"x86_64": "x86", "aarch64": "arm64"}[platform.machine()]
    # only this arch's objects, each one matching the manifest
    assert sorted(p.name for p in objdir.parent.iterdir()) == [objdir.name]
    for line in (objdir / "MANIFEST").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((objdir / name).read_bytes()).hexdigest() == digest


def test_extension_fmemopen() -> None:
    # libbpf's fmemopen goes to the extension's own (manylinux2014 has none)
    from ebpfsensor._ffi import ffi, lib

    data = b"CONFIG_BPF=y\n" * 1000
    out = ffi.new("char[]", len(data) + 1)
    assert lib.es_memfile_read(data, len(data), out, len(data) + 1) == len(data)
    assert ffi.buffer(out, len(data))[:] == data


def test_tampered_object_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = packaged_object_path("process")
    copy = tmp_path / src.name
    data = bytearray(src.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    (tmp_path / "MANIFEST").write_bytes((src.parent / "MANIFEST").read_bytes())
    monkeypatch.setattr("ebpfsensor.sources.ebpf.objects.packaged_object_path", lambda name: tmp_path / f"{name}.bpf.o")
    with pytest.raises(LibbpfError, match="checksum mismatch") as info:
        BpfObject.packaged("process")
    assert info.value.errno == errno.EBADMSG


def test_exec_fork_exit_events(tmp_path: Path) -> None:
    argv = [TRUE, "smoke", "two words", "ünï"]
    with ebpfsensor.Sensor(kinds={"process_exec", "process_fork", "process_exit"}, exclude_self=False) as sensor:
        hooks = {name: h.variant for name, h in sensor.hooks().items()}
        assert set(hooks) == {"exec", "fork", "exit"} and all(hooks.values()), hooks
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        p = subprocess.Popen(argv, cwd=tmp_path)
        p.wait()
        got: dict[type, object] = {}
        end = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < end:
            for e in sensor.poll(0.1):
                pid = e.child_pid if isinstance(e, ProcessFork) else e.pid
                if pid == p.pid:
                    got.setdefault(type(e), e)
        assert set(got) == {ProcessExec, ProcessFork, ProcessExit}, f"missing events; got {got}"
        stats = sensor.stats()
        perf = sensor.health().transport == "perf"
    me, uid, gid = os.getpid(), os.getuid(), os.getgid()

    ex = got[ProcessExec]
    assert isinstance(ex, ProcessExec)
    assert ex.exe == kernel_path(TRUE)
    assert ex.argv == argv
    assert ex.cwd == kernel_path(str(tmp_path))
    assert ex.comm == "true"
    assert (ex.pid, ex.tid, ex.ppid) == (p.pid, p.pid, me)
    assert (ex.uid, ex.gid, ex.euid, ex.egid) == (uid, gid, os.geteuid(), os.getegid())
    assert ex.parent_exe == kernel_path("/proc/self/exe")
    assert not (ex.argv_truncated or ex.exe_truncated or ex.cwd_truncated)
    assert before <= ex.start_time_ns <= ex.ts_ns <= time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    fork = got[ProcessFork]
    assert isinstance(fork, ProcessFork)
    assert (fork.pid, fork.child_pid, fork.child_tid) == (me, p.pid, p.pid)
    assert fork.child_start_time_ns == ex.start_time_ns

    xt = got[ProcessExit]
    assert isinstance(xt, ProcessExit)
    assert (xt.pid, xt.ppid, xt.uid, xt.comm) == (p.pid, me, uid, "true")
    assert (xt.exit_code, xt.exit_signal, xt.core_dumped, xt.is_thread) == (0, 0, False, False)
    assert xt.start_time_ns == ex.start_time_ns and xt.duration_ns > 0
    if perf:
        # stamped on the monotonic clock, the boot-time lead added in user
        # space from two clock reads: exact to the time between them
        assert abs(xt.duration_ns - (xt.ts_ns - xt.start_time_ns)) < 1_000_000
    else:
        assert xt.duration_ns == xt.ts_ns - xt.start_time_ns

    for kind in ("process_exec", "process_fork", "process_exit"):
        k = stats.kinds[kind]
        assert k.produced >= 1 and k.dropped == 0, (kind, k)
