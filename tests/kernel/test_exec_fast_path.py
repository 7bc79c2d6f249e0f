# SPDX-License-Identifier: Apache-2.0
"""The exec record of the tp_btf program, which loads through its task
pointer and walks paths with direct loads (bpf_rdonly_cast) where the kernel
allows, against the record of the v419 build, which reads every field with a
helper call, for the same execs seen by both sensors at once: equal field by
field (the timestamp aside), for plain, deep, fileless, terminal, mount-
crossing and unprivileged execs, and for names on both sides of the
dentry's inline array, which the walk loads directly, and renamed ones."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.kernel.conftest import wait_for
from tests.kernel.test_process_events import FILELESS, TRUE

import ebpfsensor
from ebpfsensor import Config, ProcessExec

pytestmark = pytest.mark.bpf

LIFECYCLE = frozenset({"process_exec", "process_fork", "process_exit"})
NOBODY = 65534


@pytest.fixture(scope="module")
def sensors() -> Iterator[tuple[ebpfsensor.Sensor, ebpfsensor.Sensor]]:
    base = Config(kinds=LIFECYCLE, log_file=None, exclude_self=False)
    with ebpfsensor.Sensor(base) as fast:
        hook = fast.hooks()["exec"]
        if (hook.object, hook.variant) != ("process.bpf.o", "btf"):
            pytest.skip(f"the exec hook is {hook.variant} of {hook.object} here, not the tp_btf program")
        slow_cfg = msgspec.structs.replace(base, transport="perf", v419_objects="always")
        with ebpfsensor.Sensor(slow_cfg) as slow:
            assert slow.hooks()["exec"].object == "process.v419.bpf.o"
            yield fast, slow


def both(sensors: tuple[ebpfsensor.Sensor, ebpfsensor.Sensor], pid: int, count: int = 1) -> list[tuple[Any, Any]]:
    """The pid's exec records from each sensor, paired in the order they were
    made: a perf buffer per CPU delivers a process's execs on two CPUs in
    the order of its buffers, so each sensor's are put in time order."""
    fast, slow = (
        sorted(
            wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == pid, count=count, timeout=10),
            key=lambda e: e.ts_ns,
        )
        for s in sensors
    )
    return list(zip(fast, slow, strict=True))


def same(fast: Any, slow: Any) -> dict[str, Any]:
    """The record's fields, equal in both; the time each program ran, and
    what each sensor's own process table adds (process, parent: hashes and
    lookups that race the process's exit), left out."""
    a, b = msgspec.structs.asdict(fast), msgspec.structs.asdict(slow)
    for r in (a, b):
        for name in ("ts_ns", "process", "parent"):
            del r[name]
    assert a == b
    return a


def test_plain_exec(sensors: Any, tmp_path: Path) -> None:
    argv = [TRUE, "alpha", "two words", "", "ünï"]
    p = subprocess.Popen(argv, cwd=tmp_path)
    p.wait()
    ((fast, slow),) = both(sensors, p.pid)
    e = same(fast, slow)
    assert (e["exe"], e["cwd"], e["argv"]) == (TRUE, os.path.realpath(tmp_path), argv)
    assert e["parent_exe"] == os.path.realpath("/proc/self/exe")


def test_deep_cwd_truncated(sensors: Any, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(f"d{i}" for i in range(70)))
    deep.mkdir(parents=True)
    p = subprocess.Popen([TRUE], cwd=deep)
    p.wait()
    ((fast, slow),) = both(sensors, p.pid)
    e = same(fast, slow)
    assert e["cwd_truncated"] and os.path.realpath(deep).endswith(e["cwd"])


def test_mount_crossing(sensors: Any) -> None:
    # /proc and /dev/shm are mounts of their own below the root's
    for cwd in ("/proc", "/dev/shm", "/"):
        p = subprocess.Popen([TRUE], cwd=cwd)
        p.wait()
        ((fast, slow),) = both(sensors, p.pid)
        assert same(fast, slow)["cwd"] == cwd


@pytest.mark.parametrize("how", ["memfd", "deleted"])
def test_fileless(sensors: Any, how: str, tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-I", "-S", "-c", FILELESS, TRUE, how, str(tmp_path / "dropper")])
    assert p.wait() == 0
    pairs = both(sensors, p.pid, count=2)
    records = [same(fast, slow) for fast, slow in pairs]
    payload = next(e for e in records if e["argv"] == ["payload", how])
    assert (payload["exe_memfd"], payload["exe_deleted"]) == ((True, True) if how == "memfd" else (False, True))


def test_terminal(sensors: Any) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(TRUE, [TRUE, "tty"])
    try:
        while True:
            try:
                if not os.read(fd, 1024):
                    break
            except OSError:
                break
        os.waitpid(pid, 0)
    finally:
        os.close(fd)
    ((fast, slow),) = both(sensors, pid)
    assert same(fast, slow)["tty"].startswith("pts")


def test_unprivileged(sensors: Any, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    p = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", TRUE, "nobody"], cwd=tmp_path
    )
    p.wait()
    pairs = both(sensors, p.pid, count=2)
    records = [same(fast, slow) for fast, slow in pairs]
    e = next(r for r in records if r["argv"] == [TRUE, "nobody"])
    assert (e["euid"], e["egid"], e["fsuid"], e["fsgid"]) == (NOBODY,) * 4
    assert e["parent_comm"] == Path("/proc/self/comm").read_text().strip()


@pytest.mark.parametrize("lengths", [(1, 31, 32, 33), (39, 40, 41, 255), (7, 200, 8, 39)])
def test_short_and_long_names(sensors: Any, tmp_path: Path, lengths: tuple[int, ...]) -> None:
    # a name shorter than the dentry's inline array (32 or 40 bytes by kernel)
    # is loaded from the dentry, a longer one copied with the helper: both
    # sides of the limit, one after the other in one path
    cwd = tmp_path.joinpath(*(chr(ord("a") + i) * n for i, n in enumerate(lengths)))
    cwd.mkdir(parents=True)
    p = subprocess.Popen([TRUE, "names"], cwd=cwd)
    p.wait()
    ((fast, slow),) = both(sensors, p.pid)
    assert same(fast, slow)["cwd"] == os.path.realpath(cwd)


def test_renamed_shorter(sensors: Any, tmp_path: Path) -> None:
    # a dentry renamed to a shorter name keeps the old name's bytes in its
    # inline array past the new one's end: none of them reach the record
    old = tmp_path / ("x" * 38) / ("y" * 30)
    old.mkdir(parents=True)
    (tmp_path / ("x" * 38)).rename(tmp_path / "s")
    (tmp_path / "s" / ("y" * 30)).rename(tmp_path / "s" / "t")
    cwd = tmp_path / "s" / "t"
    p = subprocess.Popen([TRUE, "renamed"], cwd=cwd)
    p.wait()
    ((fast, slow),) = both(sensors, p.pid)
    e = same(fast, slow)
    assert e["cwd"] == os.path.realpath(cwd)
    assert e["exe"] == TRUE


MEMFD_NAMED = """
import os, sys
fd = os.memfd_create(sys.argv[2], 0)
os.write(fd, open(sys.argv[1], "rb").read())
os.execve(f"/proc/self/fd/{fd}", ["memfd", sys.argv[2]], {})
"""


@pytest.mark.parametrize("name", ["p", "n" * 33, "l" * 120])
def test_memfd_name_lengths(sensors: Any, name: str) -> None:
    # "memfd:<name>" short enough for the dentry's inline array is checked
    # with a load, a longer one with the helper
    p = subprocess.Popen([sys.executable, "-I", "-S", "-c", MEMFD_NAMED, TRUE, name])
    assert p.wait() == 0
    pairs = both(sensors, p.pid, count=2)
    e = next(r for r in (same(fast, slow) for fast, slow in pairs) if r["argv"] == ["memfd", name])
    assert (e["exe"], e["exe_memfd"], e["exe_deleted"]) == (f"/memfd:{name}", True, True)


def test_file_named_like_memfd(sensors: Any, tmp_path: Path) -> None:
    # a regular file whose name starts "memfd:" is a memfd to the name
    # check, as it was before the direct load: the flag is the name's; the
    # record still shows the real path and that the file is not deleted
    exe = tmp_path / "memfd:x"
    exe.write_bytes(Path(TRUE).read_bytes())
    exe.chmod(0o755)
    p = subprocess.Popen([str(exe)])
    p.wait()
    ((fast, slow),) = both(sensors, p.pid)
    e = same(fast, slow)
    assert (e["exe"], e["exe_memfd"], e["exe_deleted"]) == (os.path.realpath(exe), True, False)
