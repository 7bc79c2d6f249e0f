# SPDX-License-Identifier: Apache-2.0
"""The open policy (Config.read_opens): opens with write intent reported,
read-only opens reported only for watched files (by identity, in the
kernel), the others counted. Real sensor, real processes, field by field."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kernel.test_file_events import AT_FDCWD, Backlog, Clock, check_header, mine, nrs, syscall

import ebpfsensor
from ebpfsensor.events import FileOpen
from ebpfsensor.events.file import PathSource
from ebpfsensor.exclusions import kernel_dev
from ebpfsensor.host.mounts import superblock_dev

pytestmark = pytest.mark.bpf

O_PATH = 0o10000000


@pytest.fixture
def d(tmp_path: Path) -> Path:
    return Path(os.path.realpath(tmp_path))


@pytest.fixture(scope="module")
def watched_dir() -> Iterator[Path]:
    """A directory whose files 'secret' and 'shm' (on tmpfs) the module's
    sensor watches besides the defaults."""
    base = Path(os.path.realpath("/var/tmp")) / f"ebpfsensor-ropen-{os.getpid()}"
    base.mkdir()
    shm = Path(f"/dev/shm/ebpfsensor-ropen-{os.getpid()}")
    try:
        (base / "secret").write_text("s")
        shm.write_text("m")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shm.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def sensor(watched_dir: Path) -> Iterator[ebpfsensor.Sensor]:
    """The default policy, file_open only; this process's opens reported."""
    extra = (str(watched_dir / "secret"), f"/dev/shm/ebpfsensor-ropen-{os.getpid()}", str(watched_dir / "later-*"))
    with ebpfsensor.Sensor(kinds={"file_open"}, exclude_self=False, log_file=None, watched_files=extra) as s:
        yield s


def marker(sensor: ebpfsensor.Sensor, d: Path) -> Any:
    """Open a marker file for writing and wait for its event: every event
    of this process's earlier opens has been drained by then."""
    m = d / f"marker-{time.monotonic_ns()}"
    os.close(os.open(m, os.O_WRONLY | os.O_CREAT, 0o600))
    return Backlog.of(sensor).wait(mine(FileOpen, path=str(m)))[0]


def now() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def reported(sensor: ebpfsensor.Sensor, path: Path | str, since: int) -> list[Any]:
    """The events of this process naming path from since on, drained so far."""
    b = Backlog.of(sensor)
    found = [
        e
        for e in b.events
        if isinstance(e, FileOpen) and e.pid == os.getpid() and e.path == str(path) and e.ts_ns >= since
    ]
    b.events = [e for e in b.events if e not in found]
    return found


def sb_dev(path: Path | str) -> int:
    """The device the kernel's inode of path carries: its superblock's
    (stat()'s, but where overlayfs or btrfs report another per file)."""
    sb = superblock_dev(str(path))
    return os.stat(path).st_dev if sb is None else sb


def identities(path: Path | str) -> set[tuple[int, int]]:
    """(dev, inode) as stat() and as the kernel see path: the sensor
    watches it under both."""
    st = os.stat(path)
    return {(st.st_dev, st.st_ino), (sb_dev(path), st.st_ino)}


def unwatched(sensor: ebpfsensor.Sensor) -> int:
    return sensor.stats().kinds["file_open"].unwatched


def test_read_only_open_of_an_unwatched_file_is_counted_not_reported(sensor: ebpfsensor.Sensor, d: Path) -> None:
    plain = d / "plain"
    plain.write_text("x")
    before, since = unwatched(sensor), now()
    for _ in range(20):
        os.close(os.open(plain, os.O_RDONLY))
    with pytest.raises(FileNotFoundError):
        os.open(d / "absent", os.O_RDONLY)  # a failure other than a refusal: counted
    marker(sensor, d)
    assert reported(sensor, plain, since) == [] and reported(sensor, d / "absent", since) == []
    assert unwatched(sensor) - before >= 21


def test_read_only_open_of_a_watched_file_is_reported(sensor: ebpfsensor.Sensor, watched_dir: Path) -> None:
    secret = watched_dir / "secret"
    st = os.stat(secret)
    with Clock() as clock:
        fd = os.open(secret, os.O_RDONLY)
    os.close(fd)
    ev = Backlog.of(sensor).wait(mine(FileOpen, since=clock.before, path=str(secret)))[0]
    check_header(ev, clock, nrs("openat", "open"), fd)
    assert ev.arg_path == str(secret)
    assert ev.flags == os.O_RDONLY | os.O_CLOEXEC and ev.mode == 0
    assert ev.dirfd == AT_FDCWD and ev.resolved and not ev.created
    # the kernel's dev, converted once, is the superblock's: stat()'s on a
    # disk and on tmpfs, the overlay's own where overlayfs reports a layer's
    assert (ev.ino, ev.dev) == (st.st_ino, sb_dev(secret))
    assert ev.path_source == PathSource.KERNEL
    assert sensor.watched_files()[str(secret)] in identities(secret)


def test_watched_file_on_tmpfs(sensor: ebpfsensor.Sensor) -> None:
    shm = Path(f"/dev/shm/ebpfsensor-ropen-{os.getpid()}")
    st = os.stat(shm)
    with Clock() as clock:
        os.close(os.open(shm, os.O_RDONLY))
    ev = Backlog.of(sensor).wait(mine(FileOpen, since=clock.before, path=str(shm)))[0]
    assert (ev.ino, ev.dev) == (st.st_ino, sb_dev(shm))


def test_read_only_open_through_openat2_and_a_dirfd(sensor: ebpfsensor.Sensor, watched_dir: Path, d: Path) -> None:
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

    dfd = os.open(watched_dir, os.O_RDONLY | os.O_DIRECTORY)
    plain = d / "p2"
    plain.write_text("x")
    pfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        how = OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, 0)
        with Clock() as clock:
            fd = syscall("openat2", dfd, b"secret", ctypes.byref(how), ctypes.sizeof(how))
            fd2 = syscall("openat2", pfd, b"p2", ctypes.byref(how), ctypes.sizeof(how))
        assert fd >= 0 and fd2 >= 0
        os.close(fd)
        os.close(fd2)
    finally:
        os.close(dfd)
        os.close(pfd)
    ev = Backlog.of(sensor).wait(mine(FileOpen, since=clock.before, path=str(watched_dir / "secret")))[0]
    check_header(ev, clock, nrs("openat2"), fd)
    assert ev.arg_path == "secret" and ev.dirfd == dfd and ev.flags == os.O_RDONLY | os.O_CLOEXEC
    marker(sensor, d)
    assert reported(sensor, plain, clock.before) == []


_WRITE_INTENT = {
    "wronly": os.O_WRONLY,
    "rdwr": os.O_RDWR,
    "rdonly_trunc": os.O_RDONLY | os.O_TRUNC,
    "rdonly_creat": os.O_RDONLY | os.O_CREAT,
    "append": os.O_WRONLY | os.O_APPEND,
}
_READ_ONLY = {
    "rdonly": os.O_RDONLY,
    "rdonly_append": os.O_RDONLY | os.O_APPEND,  # cannot write
    "path": O_PATH,
    "path_wronly_creat": O_PATH | os.O_WRONLY | os.O_CREAT,  # the kernel drops both
    "directory": os.O_RDONLY | os.O_DIRECTORY,
}


def test_write_intent_is_reported_and_read_only_is_not(sensor: ebpfsensor.Sensor, d: Path) -> None:
    files = {}
    for name, flags in {**_WRITE_INTENT, **_READ_ONLY}.items():
        f = d / name if not flags & os.O_DIRECTORY else d / "dir"
        if flags & os.O_DIRECTORY:
            f.mkdir(exist_ok=True)
        else:
            f.write_text("x")
        files[name] = f
    since = now()
    for name, flags in {**_WRITE_INTENT, **_READ_ONLY}.items():
        os.close(os.open(files[name], flags | os.O_CLOEXEC, 0o600))
    marker(sensor, d)
    for name, flags in _WRITE_INTENT.items():
        evs = reported(sensor, files[name], since)
        assert [e.flags for e in evs] == [flags | os.O_CLOEXEC], name
    for name in _READ_ONLY:
        assert reported(sensor, files[name], since) == [], name


def test_refused_read_only_open_is_reported(sensor: ebpfsensor.Sensor, d: Path) -> None:
    """A read-only open the kernel refused opened nothing to match: the
    refusal itself is reported (an attempt on a file the caller may not
    read), its path from the caller's string, unchecked."""
    secret = d / "refused"
    secret.write_text("x")
    secret.chmod(0o600)
    os.chmod(d, 0o755)
    with Clock() as clock:
        proc = subprocess.Popen(["cat", str(secret)], user=65534, group=65534, cwd="/", stderr=subprocess.DEVNULL)
        assert proc.wait(10) == 1
    ev = Backlog.of(sensor).wait(mine(FileOpen, pid=proc.pid, arg_path=str(secret)))[0]
    check_header(ev, clock, nrs("openat", "open"), -errno.EACCES, pid=proc.pid)
    assert ev.path == str(secret) and not ev.resolved and ev.comm == "cat"
    assert ev.flags & os.O_ACCMODE == os.O_RDONLY
    # the pairs read the caller's string at the exit, unchecked; the fentry
    # variant (test_open_fexit.py) has the kernel's copy of the name
    fentry = sensor.hooks()["file_openat_exit"].variant == "fentry"
    assert ev.path_source == (PathSource.KERNEL if fentry else PathSource.SYSCALL_ARG_UNCHECKED)


def test_default_watched_files_are_watched(sensor: ebpfsensor.Sensor) -> None:
    watched = sensor.watched_files()
    for path in ("/etc/shadow", "/etc/passwd"):
        assert watched[path] in identities(path)
    with Clock():
        proc = subprocess.Popen(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL)
        assert proc.wait(10) == 0
    ev = Backlog.of(sensor).wait(mine(FileOpen, pid=proc.pid, path="/etc/shadow"))[0]
    assert ev.comm == "cat" and ev.result >= 0 and ev.ino == os.stat("/etc/shadow").st_ino


def test_a_hard_link_symlink_or_rename_does_not_hide_a_watched_file(
    sensor: ebpfsensor.Sensor, watched_dir: Path, d: Path
) -> None:
    secret = watched_dir / "secret"
    ino = os.stat(secret).st_ino
    link = watched_dir / "innocent"
    os.link(secret, link)
    sym = d / "sym"
    sym.symlink_to(secret)
    moved = watched_dir / "moved"
    try:
        os.close(os.open(link, os.O_RDONLY))
        os.close(os.open(sym, os.O_RDONLY))
        os.rename(secret, moved)
        try:
            os.close(os.open(moved, os.O_RDONLY))
        finally:
            os.rename(moved, secret)
    finally:
        link.unlink()
    for path in (link, secret, moved):
        ev = Backlog.of(sensor).wait(mine(FileOpen, path=str(path)))[0]
        assert ev.ino == ino and ev.result >= 0


def _same_fs_dir(path: str) -> str | None:
    """A writable directory on path's filesystem, if there is one."""
    dev = os.stat(path).st_dev
    for cand in ("/etc", "/var/tmp", "/root", "/var/lib", "/tmp"):
        if os.path.isdir(cand) and os.stat(cand).st_dev == dev:
            return cand
    return None


def test_etc_shadow_through_a_hard_link_or_a_bind_mount(sensor: ebpfsensor.Sensor, d: Path) -> None:
    shadow = os.stat("/etc/shadow")
    target = d / "x"
    target.write_text("")
    # a bind mount, in a mount namespace of its own: the host's mounts are untouched
    script = f"mount --bind /etc/shadow {target} && exec cat {target}"
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script], stdout=subprocess.DEVNULL
    )
    assert proc.wait(10) == 0
    ev = Backlog.of(sensor).wait(lambda e: isinstance(e, FileOpen) and e.comm == "cat" and e.path == str(target))[0]
    assert (ev.dev, ev.ino) == (sb_dev("/etc/shadow"), shadow.st_ino) and ev.result >= 0
    # a hard link, where a writable directory shares /etc's filesystem
    where = _same_fs_dir("/etc/shadow")
    if where is None:
        return
    link = Path(where) / f".ebpfsensor-test-{os.getpid()}"
    os.link("/etc/shadow", link)
    try:
        proc = subprocess.Popen(["cat", str(link)], stdout=subprocess.DEVNULL)
        assert proc.wait(10) == 0
    finally:
        link.unlink()
    ev = Backlog.of(sensor).wait(mine(FileOpen, pid=proc.pid, path=str(link)))[0]
    assert (ev.dev, ev.ino) == (sb_dev("/etc/shadow"), shadow.st_ino)


def test_files_created_or_replaced_later_are_watched(sensor: ebpfsensor.Sensor, watched_dir: Path) -> None:
    later = watched_dir / "later-one"
    later.write_text("new")
    replaced = watched_dir / "secret"
    old_ino = os.stat(replaced).st_ino
    tmp = watched_dir / "secret.new"
    tmp.write_text("replacement")
    os.rename(tmp, replaced)  # as passwd replaces /etc/shadow
    # the next refresh, made while the sensor polls
    end = time.monotonic() + 5
    while time.monotonic() < end and str(later) not in sensor.watched_files():
        sensor.poll(0.1)
    watched = sensor.watched_files()
    assert str(later) in watched and watched[str(replaced)][1] != old_ino
    os.close(os.open(later, os.O_RDONLY))
    os.close(os.open(replaced, os.O_RDONLY))
    Backlog.of(sensor).wait(mine(FileOpen, path=str(later)))
    ev = Backlog.of(sensor).wait(mine(FileOpen, path=str(replaced)))[0]
    assert ev.ino == os.stat(replaced).st_ino


def test_exclusions_still_apply_to_watched_reads(watched_dir: Path, d: Path) -> None:
    secret = str(watched_dir / "secret")
    with ebpfsensor.Sensor(kinds={"file_open"}, log_file=None, watched_files=(secret,)) as s:
        since = now()
        os.close(os.open(secret, os.O_RDONLY))  # the sensor's own: excluded
        proc = subprocess.Popen(["cat", secret], stdout=subprocess.DEVNULL)
        assert proc.wait(10) == 0
        Backlog.of(s).wait(mine(FileOpen, pid=proc.pid, path=secret))
        assert reported(s, secret, since) == []
        assert s.exclusions()[0].hits.get("file_open", 0) >= 1


def test_read_opens_all_reports_every_open(d: Path) -> None:
    plain = d / "plain"
    plain.write_text("x")
    (d / "dir").mkdir()
    with ebpfsensor.Sensor(kinds={"file_open"}, exclude_self=False, log_file=None, read_opens="all") as s:
        assert s.watched_files() == {}
        since = now()
        for flags in _READ_ONLY.values():
            f = d / "dir" if flags & os.O_DIRECTORY else plain
            os.close(os.open(f, flags | os.O_CLOEXEC))
        with pytest.raises(FileNotFoundError):
            os.open(d / "absent", os.O_RDONLY)
        marker(s, d)
        assert len(reported(s, plain, since)) == len(_READ_ONLY) - 1
        assert len(reported(s, d / "absent", since)) == 1
        assert s.stats().kinds["file_open"].unwatched == 0


def test_watched_reads_from_many_threads_at_once_are_all_reported(sensor: ebpfsensor.Sensor, watched_dir: Path) -> None:
    """Each thread's read-only open keeps its arguments in a slot of its own
    from sys_enter to sys_exit: threads opening at once lose none."""
    secret = str(watched_dir / "secret")
    n = 200
    barrier = threading.Barrier(8)

    def reader() -> None:
        barrier.wait()
        for _ in range(n // 8):
            os.close(os.open(secret, os.O_RDONLY))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # (a deadline, not a pace: under emulation and load the 200 take seconds)
    Backlog.of(sensor).wait(mine(FileOpen, path=secret), count=n, timeout=60)


def test_many_watched_files_each_reported_and_an_unwatched_one_whose_bit_is_set_is_not(d: Path) -> None:
    """The kernel tells a file not watched by a clear bit of watched_bits
    before any lookup. Every watched file's bit is set (computed in Python
    as in file.bpf.c: were the two to differ, nearly every open below would
    be counted, not reported), and stays set when others stop being watched;
    a set bit only sends the open to the lookup, so a file not watched whose
    bit is set (a collision) is still only counted."""
    many = Path(os.path.realpath("/var/tmp")) / f"ebpfsensor-ropen-many-{os.getpid()}"
    many.mkdir()
    try:
        files = [many / f"f{i}" for i in range(300)]
        for f in files:
            f.write_text("x")
        with ebpfsensor.Sensor(
            kinds={"file_open"}, exclude_self=False, log_file=None, watched_files=(f"{many}/*",)
        ) as s:
            assert {str(f) for f in files} <= s.watched_files().keys()
            since = now()
            for f in files:
                os.close(os.open(f, os.O_RDONLY))
            marker(s, d)
            assert [f for f in files if len(reported(s, f, since)) != 1] == []

            # a third no longer watched: the bits are written again without them
            for f in files[:100]:
                f.unlink()
            end = time.monotonic() + 5
            while time.monotonic() < end and str(files[0]) in s.watched_files():
                s.poll(0.1)
            assert str(files[0]) not in s.watched_files()
            since = now()
            for f in files[100:]:
                os.close(os.open(f, os.O_RDONLY))
            marker(s, d)
            assert [f for f in files[100:] if len(reported(s, f, since)) != 1] == []

            # a file not watched whose bit is set: a collision, forged in the
            # map as user space writes it (consecutive inode numbers, as a
            # test's files get, fall in distinct bits: one cannot be waited for)
            neighbour = d / "neighbour"
            neighbour.write_text("x")
            identity = (kernel_dev(sb_dev(neighbour)), os.stat(neighbour).st_ino)
            src: Any = s._ebpf
            src._write_watched_bits([*src._watched, identity])
            assert str(neighbour) not in s.watched_files()
            before, since = unwatched(s), now()
            os.close(os.open(neighbour, os.O_RDONLY))
            marker(s, d)
            assert reported(s, neighbour, since) == []
            assert unwatched(s) - before >= 1
    finally:
        shutil.rmtree(many, ignore_errors=True)
