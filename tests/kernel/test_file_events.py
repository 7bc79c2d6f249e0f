# SPDX-License-Identifier: Apache-2.0
"""File events from the kernel: each test performs the real syscall and
checks every field of the record it produced."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ebpfsensor
from ebpfsensor.events import (
    DirCreate,
    FileChmod,
    FileChown,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
    to_json,
)
from ebpfsensor.events.file import PathSource

pytestmark = pytest.mark.bpf

AT_FDCWD = -100
AT_REMOVEDIR = 0x200
AT_SYMLINK_NOFOLLOW = 0x100
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
PATH_LEN = 4096

# syscall numbers per architecture; None: the architecture has no such call
_NR = {
    "x86_64": {
        "open": 2,
        "creat": 85,
        "openat": 257,
        "openat2": 437,
        "rename": 82,
        "renameat": 264,
        "renameat2": 316,
        "unlink": 87,
        "unlinkat": 263,
        "rmdir": 84,
        "mkdir": 83,
        "mkdirat": 258,
        "chmod": 90,
        "fchmod": 91,
        "fchmodat": 268,
        "fchmodat2": 452,
        "chown": 92,
        "fchown": 93,
        "lchown": 94,
        "fchownat": 260,
        "link": 86,
        "linkat": 265,
        "symlink": 88,
        "symlinkat": 266,
        "mknod": 133,
        "mknodat": 259,
    },
    "aarch64": {
        "open": None,
        "creat": None,
        "openat": 56,
        "openat2": 437,
        "rename": None,
        "renameat": 38,
        "renameat2": 276,
        "unlink": None,
        "unlinkat": 35,
        "rmdir": None,
        "mkdir": None,
        "mkdirat": 34,
        "chmod": None,
        "fchmod": 52,
        "fchmodat": 53,
        "fchmodat2": 452,
        "chown": None,
        "fchown": 55,
        "lchown": None,
        "fchownat": 54,
        "link": None,
        "linkat": 37,
        "symlink": None,
        "symlinkat": 36,
        "mknod": None,
        "mknodat": 33,
    },
}[platform.machine()]


def nrs(*names: str) -> set[int]:
    """Numbers of the syscalls libc may use for an operation."""
    return {n for name in names if (n := _NR[name]) is not None}


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def syscall(name: str, *args: Any) -> int:
    """A raw syscall; returns its result or -errno."""
    rc = _libc.syscall(ctypes.c_long(_NR[name]), *args)
    return -ctypes.get_errno() if rc == -1 else rc


def _cgroup_id() -> int:
    """The cgroup v2 id (its directory's inode) of this process."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    rel = next(line[3:].strip() for line in lines if line.startswith("0::"))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ")
        if right.split()[0] == "cgroup2":
            return os.stat(left.split()[4] + rel).st_ino
    pytest.fail("no cgroup2 mount")


def _start_time_ns(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Clock:
    """CLOCK_BOOTTIME around an action."""

    def __enter__(self) -> Clock:
        self.before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        return self

    def __exit__(self, *exc: object) -> None:
        self.after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)


FILE_KINDS = ("file_open", "file_create", "file_unlink", "dir_create", "file_rename")
FILE_KINDS += ("file_chmod", "file_chown", "file_link", "file_symlink")

#: audit's timestamps: the kernel's coarse wall clock (a tick), in milliseconds
COARSE_NS = 12_000_000


def from_audit(sensor: ebpfsensor.Sensor) -> bool:
    """Whether the sensor takes its file kinds from the audit provider beside
    eBPF (5.4 and 4.19: the verifier refuses the file object): all or none
    of them, and then every file hook says why it is not attached."""
    health = sensor.health()
    sources = {health.kinds[k].source for k in FILE_KINDS}
    if sources != {"audit"}:
        assert all(s.startswith("ebpf:") for s in sources), sources
        return False
    if health.ebpf:
        hooks = sensor.hooks()
        exits = [h for h in hooks if h.startswith("file_") and h.endswith("_exit")]
        assert exits and all(hooks[h].variant is None and hooks[h].failures for h in exits), hooks
    return True


@pytest.fixture(autouse=True)
def _in_process(request: pytest.FixtureRequest, sensor: ebpfsensor.Sensor) -> None:
    """Most tests here make their calls in the sensor's own process. Where
    the file kinds come from audit, the sensor is the audit daemon, whose
    calls the kernel never audits: those tests cannot see an event there
    (skipped with the reason; EBPFSENSOR_REQUIRE_BPF=1 makes that a
    failure), test_file_kinds_from_a_child covers that tier."""
    if request.node.get_closest_marker("any_source") is None and from_audit(sensor):
        reason = sensor.health().kinds["file_open"].reason
        assert "own calls unseen" in reason, reason
        pytest.skip(f"file kinds from audit here, which never sees the sensor's own calls ({reason})")


def check_header(ev: Any, clock: Clock, nr: set[int], result: int, pid: int | None = None) -> None:
    """The process header and syscall fields every file event carries."""
    me = pid is None
    pid = os.getpid() if pid is None else pid
    assert ev.pid == pid
    if me:
        assert ev.tid == threading.get_native_id()
        assert ev.ppid == os.getppid()
        assert ev.uid == os.getuid()
        assert ev.gid == os.getgid()
        assert ev.comm == Path("/proc/self/comm").read_text().rstrip("\n")
        assert ev.cgroup_id == _cgroup_id()
        assert abs(ev.start_time_ns - _start_time_ns(pid)) <= 2 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert clock.before <= ev.ts_ns <= clock.after
    assert ev.syscall_nr in nr
    assert ev.result == result
    assert ev.errno == (-result if result < 0 else 0)


def mine(cls: type, pid: int | None = None, since: int = 0, **fields: Any) -> Callable[[Any], bool]:
    """Match events of exactly this class from this process (at or after
    since, CLOCK_BOOTTIME) with these fields."""
    want = os.getpid() if pid is None else pid

    def match(ev: Any) -> bool:
        return (
            type(ev) is cls
            and ev.pid == want
            and ev.ts_ns >= since
            and all(getattr(ev, k) == v for k, v in fields.items())
        )

    return match


class Backlog:
    """File events drained from a sensor and not yet claimed by a test.

    conftest's wait_for() drops the rest of a batch once it has found its
    match; tests that look for several events in turn claim them from here.
    """

    _FILE = (FileOpen, FileCreate, FileUnlink, DirCreate, FileRename, FileChmod, FileChown, FileLink, FileSymlink)
    _by_sensor: dict[int, Backlog] = {}

    def __init__(self, sensor: ebpfsensor.Sensor) -> None:
        self.sensor = sensor
        self.events: list[Any] = []

    @classmethod
    def of(cls, sensor: ebpfsensor.Sensor) -> Backlog:
        if id(sensor) not in cls._by_sensor or cls._by_sensor[id(sensor)].sensor is not sensor:
            cls._by_sensor[id(sensor)] = cls(sensor)
        return cls._by_sensor[id(sensor)]

    def wait(self, match: Callable[[Any], bool], count: int = 1, timeout: float = 5.0) -> list[Any]:
        found: list[Any] = []
        end = time.monotonic() + timeout
        while True:
            keep = []
            for ev in self.events:
                (found if len(found) < count and match(ev) else keep).append(ev)
            self.events = keep[-50_000:]
            if len(found) >= count:
                return found
            if time.monotonic() > end:
                pytest.fail(f"timed out after {timeout}s waiting for {count} matching event(s); got {found}")
            self.events += [e for e in self.sensor.poll(0.05) if isinstance(e, self._FILE)]


def one(sensor: ebpfsensor.Sensor, cls: type, pid: int | None = None, since: int = 0, **fields: Any) -> Any:
    return Backlog.of(sensor).wait(mine(cls, pid, since, **fields))[0]


@pytest.fixture(scope="module")
def sensor() -> Iterator[ebpfsensor.Sensor]:
    """Every kind on, this process's events reported, and every open
    reported (``read_opens="all"``): these tests prove each open's fields,
    whatever file it opens; the open policy has its own tests
    (test_read_open_policy.py)."""
    with ebpfsensor.Sensor(exclude_self=False, read_opens="all") as s:
        yield s


@pytest.fixture
def d(tmp_path: Path) -> Path:
    """A test directory by its real path (tmp_path may cross a symlink)."""
    return Path(os.path.realpath(tmp_path))


@pytest.fixture
def cwd(d: Path) -> Iterator[Path]:
    old = os.getcwd()
    os.chdir(d)
    try:
        yield d
    finally:
        os.chdir(old)


# --- every kind from a child, on either tier ------------------------------------------

CHILD = r"""
import json, os, sys
os.chdir(sys.argv[1])
fd = os.open("new.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
os.close(fd)
fd2 = os.open("new.txt", os.O_RDONLY)
os.close(fd2)
try:
    os.open("missing", os.O_RDONLY)
except FileNotFoundError:
    pass
os.mkdir("dir", 0o750)
os.chmod("new.txt", 0o600)
os.chown("new.txt", 1234, 5678)
os.link("new.txt", "hard")
os.symlink("new.txt", "soft")
os.rename("hard", "moved")
os.unlink("moved")
os.rmdir("dir")
print(json.dumps({"create": fd, "open": fd2}), flush=True)
sys.stdin.read()
"""


def failed_open_source(sensor: ebpfsensor.Sensor) -> PathSource:
    """A failed open's path_source: the kernel's copy of the name where
    the open's fentry variant runs (do_filp_open's struct filename), else
    the caller's string."""
    return KERNEL if sensor.hooks()["file_openat_exit"].variant == "fentry" else ARG


@pytest.mark.any_source
def test_file_kinds_from_a_child(sensor: ebpfsensor.Sensor, d: Path) -> None:
    """One call of each kind by a child, field by field, from whichever
    source this kernel gives: eBPF, or the audit provider beside it (5.4,
    4.19), whose events lack what audit does not record (a thread id, the
    kernel's resolution of a path) instead of inventing it."""
    audit = from_audit(sensor)
    if audit:
        for kind in FILE_KINDS:
            health = sensor.health().kinds[kind]
            assert health.live and health.reason.startswith("as audit "), (kind, health)
    with Clock() as clock:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", CHILD, str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert child.stdin is not None and child.stdout is not None
        fds = json.loads(child.stdout.readline())
    # the child lives until its events are checked: audit reads its cgroup from /proc
    try:
        pid = child.pid
        backlog = Backlog.of(sensor)
        since = clock.before - (COARSE_NS if audit else 0)

        def get(cls: type, **fields: Any) -> Any:
            (ev,) = backlog.wait(
                lambda e: type(e) is cls and e.pid == pid and all(getattr(e, k) == v for k, v in fields.items())
            )
            assert ev.tid == pid and ev.ppid == os.getpid() and (ev.uid, ev.gid) == (os.getuid(), os.getgid())
            assert ev.comm == os.path.basename(sys.executable)[:15] and ev.cgroup_id == _cgroup_id()
            assert abs(ev.start_time_ns - _start_time_ns(pid)) <= 2 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            assert since <= ev.ts_ns <= time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            assert ev.errno == (-ev.result if ev.result < 0 else 0)
            assert not any(getattr(ev, f) for f in type(ev).__struct_fields__ if f.endswith("_truncated"))
            return ev

        st = os.stat(d / "new.txt")
        # the opened file's identity on both tiers; its path resolved by the kernel on eBPF only
        made = get(FileCreate, arg_path="new.txt")
        assert (made.result, made.created, made.path, made.ino, made.dev) == (
            fds["create"],
            True,
            str(d / "new.txt"),
            st.st_ino,
            st.st_dev,
        )
        assert (made.flags, made.mode, made.dirfd) == (
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
            0o640,
            AT_FDCWD,
        )
        assert made.syscall_nr in nrs("openat", "open")
        opened = get(FileOpen, arg_path="new.txt")
        assert (opened.result, opened.created, opened.ino, opened.flags) == (
            fds["open"],
            False,
            st.st_ino,
            os.O_RDONLY | os.O_CLOEXEC,
        )
        for ev in (made, opened):
            assert (ev.resolved, ev.path_source) == ((False, ARG) if audit else (True, KERNEL))
        failed = get(FileOpen, arg_path="missing")
        assert (failed.result, failed.path, failed.resolved, failed.ino, failed.path_source) == (
            -errno.ENOENT,
            str(d / "missing"),
            False,
            0,
            # the open's fentry variant reads the kernel's copy of the name
            ARG if audit else failed_open_source(sensor),
        )
        mk = get(DirCreate, arg_path="dir")
        assert (mk.result, mk.mode, mk.path) == (0, 0o750, str(d / "dir"))
        ch = get(FileChmod, arg_path="new.txt")
        assert (ch.result, ch.mode, ch.path) == (0, 0o600, str(d / "new.txt"))
        co = get(FileChown, arg_path="new.txt")
        assert (co.result, co.new_uid, co.new_gid, co.path) == (0, 1234, 5678, str(d / "new.txt"))
        ln = get(FileLink, arg_path="new.txt")
        assert (ln.result, ln.path, ln.new_path, ln.new_arg_path) == (0, str(d / "new.txt"), str(d / "hard"), "hard")
        sl = get(FileSymlink, arg_path="soft")
        assert (sl.result, sl.target, sl.path) == (0, "new.txt", str(d / "soft"))
        mv = get(FileRename, arg_path="hard")
        assert (mv.result, mv.path, mv.new_path, mv.flags) == (0, str(d / "hard"), str(d / "moved"), 0)
        # audit sees a replaced file in its PATH records; eBPF through rename_target
        assert mv.replaced == (False if audit else replaced(sensor, False))
        rm = get(FileUnlink, arg_path="moved")
        assert (rm.result, rm.path, rm.is_dir) == (0, str(d / "moved"), False)
        rd = get(FileUnlink, arg_path="dir")
        assert (rd.result, rd.path, rd.is_dir) == (0, str(d / "dir"), True)
        if audit:
            # paths as passed, joined to the cwd: audit records no resolution
            for ev in (mk, ch, co, ln, sl, mv, rm, rd):
                assert ev.path_source == ARG, ev
    finally:
        child.stdin.close()
        child.stdout.close()
        assert child.wait(10) == 0


@pytest.mark.any_source
def test_a_second_sensor_says_where_its_file_events_are(sensor: ebpfsensor.Sensor) -> None:
    """eBPF serves any number of sensors; the audit provider one per machine
    (kernel audit has one receiver): a second sensor there says why it has
    no file events, naming both causes."""
    audit = from_audit(sensor)
    with ebpfsensor.Sensor(kinds={"file_open"}, exclude_self=False, log_file=None) as second:
        health = second.health().kinds["file_open"]
        if not audit:
            assert health.live and health.source.startswith("ebpf:"), health
            return
        assert not health.live, health
        assert "the audit provider beside eBPF cannot run" in health.reason and "is locked" in health.reason
        assert second.hooks()["file_openat_exit"].failures[0] in health.reason


# --- FileOpen -------------------------------------------------------------------

_OPEN_FLAGS = {
    "rdonly": os.O_RDONLY,
    "wronly": os.O_WRONLY,
    "rdwr": os.O_RDWR,
    "creat": os.O_WRONLY | os.O_CREAT,
    "creat_excl": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "trunc": os.O_RDWR | os.O_TRUNC,
    "creat_trunc": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "append": os.O_WRONLY | os.O_APPEND,
    "nofollow_sync": os.O_RDONLY | os.O_NOFOLLOW | os.O_SYNC,
    "directory": os.O_RDONLY | os.O_DIRECTORY,
}


@pytest.mark.parametrize("name", sorted(_OPEN_FLAGS))
def test_open_flags(sensor: ebpfsensor.Sensor, d: Path, name: str) -> None:
    flags = _OPEN_FLAGS[name]
    target = d if flags & os.O_DIRECTORY else d / f"f-{name}"
    existed = flags & os.O_EXCL == 0 and target != d
    if existed:
        target.write_bytes(b"x")
    with Clock() as clock:
        fd = os.open(target, flags, 0o640)
    try:
        st = os.fstat(fd)
        # every kind is on: an open that creates its file is a FileCreate
        created = not existed and target != d
        ev = one(sensor, FileCreate if created else FileOpen, since=clock.before, arg_path=str(target))
    finally:
        os.close(fd)
    check_header(ev, clock, nrs("openat", "open"), fd)
    # Python adds O_CLOEXEC; libc passes the mode only with O_CREAT
    assert ev.flags == flags | os.O_CLOEXEC
    assert ev.mode == (0o640 if flags & os.O_CREAT else 0)
    assert ev.dirfd == AT_FDCWD
    assert ev.path == str(target)
    assert ev.resolved
    assert ev.created == created
    assert (ev.ino, ev.dev) == (st.st_ino, st.st_dev)
    assert not ev.path_truncated and not ev.arg_path_truncated


def test_open_relative_from_another_directory(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    (d / "sub").mkdir()
    (d / "sub" / "rel.txt").write_text("x")
    with Clock() as clock:
        fd = os.open("sub/rel.txt", os.O_RDONLY)
    os.close(fd)
    ev = one(sensor, FileOpen, arg_path="sub/rel.txt")
    check_header(ev, clock, nrs("openat", "open"), fd)
    assert ev.path == str(d / "sub" / "rel.txt")
    assert ev.dirfd == AT_FDCWD and ev.resolved and not ev.created


def test_open_from_a_thread(sensor: ebpfsensor.Sensor, d: Path) -> None:
    target = d / "threaded.txt"
    target.write_text("x")
    seen: dict[str, int] = {}

    def work() -> None:
        seen["tid"] = threading.get_native_id()
        fd = os.open(target, os.O_RDONLY)
        seen["fd"] = fd
        os.close(fd)

    with Clock() as clock:
        t = threading.Thread(target=work)
        t.start()
        t.join()
    ev = one(sensor, FileOpen, since=clock.before, arg_path=str(target))
    assert ev.pid == os.getpid() and ev.tid == seen["tid"] != threading.get_native_id()
    assert ev.result == seen["fd"] and ev.path == str(target)
    assert clock.before <= ev.ts_ns <= clock.after


def test_open_dirfd(sensor: ebpfsensor.Sensor, d: Path) -> None:
    (d / "sub").mkdir()
    (d / "sub" / "at.txt").write_text("x")
    dfd = os.open(d / "sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            fd = os.open("at.txt", os.O_RDONLY, dir_fd=dfd)
        os.close(fd)
        ev = one(sensor, FileOpen, arg_path="at.txt", dirfd=dfd)
    finally:
        os.close(dfd)
    check_header(ev, clock, nrs("openat"), fd)
    assert ev.path == str(d / "sub" / "at.txt")


def test_open_through_symlink_and_dotdot(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    (d / "real").mkdir()
    (d / "real" / "t.txt").write_text("x")
    (d / "other").mkdir()
    os.symlink("real/t.txt", d / "link")
    os.symlink(d / "real", d / "dirlink")
    cases = ["link", "other/../real/t.txt", str(d / "dirlink" / "t.txt"), "./dirlink/../real/./t.txt"]
    for arg in cases:
        with Clock() as clock:
            fd = os.open(arg, os.O_RDONLY)
        os.close(fd)
        ev = one(sensor, FileOpen, arg_path=arg)
        check_header(ev, clock, nrs("openat", "open"), fd)
        assert ev.path == str(d / "real" / "t.txt"), arg
        assert ev.resolved


def test_open_openat2_and_creat(sensor: ebpfsensor.Sensor, d: Path) -> None:
    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        how = OpenHow(os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, 0)
        with Clock() as clock:
            fd = syscall("openat2", dfd, b"two.txt", ctypes.byref(how), ctypes.sizeof(how))
        assert fd >= 0
        os.close(fd)
        ev = one(sensor, FileCreate, arg_path="two.txt")
        check_header(ev, clock, nrs("openat2"), fd)
        assert ev.flags == os.O_RDWR | os.O_CREAT | os.O_CLOEXEC and ev.mode == 0o600
        assert ev.dirfd == dfd and ev.created and ev.path == str(d / "two.txt")
    finally:
        os.close(dfd)
    if _NR["creat"] is None:
        return
    with Clock() as clock:
        fd = syscall("creat", str(d / "c.txt").encode(), 0o644)
    os.close(fd)
    ev = one(sensor, FileCreate, arg_path=str(d / "c.txt"))
    check_header(ev, clock, nrs("creat"), fd)
    assert ev.flags == os.O_CREAT | os.O_WRONLY | os.O_TRUNC and ev.mode == 0o644 and ev.created


def test_open_in_another_mount_namespace(sensor: ebpfsensor.Sensor, d: Path) -> None:
    mnt = d / "mnt"
    mnt.mkdir()
    with Clock() as clock:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"mount -t tmpfs none {mnt} && : > {mnt}/x"]
        )
        assert proc.wait(10) == 0
    ev = one(sensor, FileCreate, pid=proc.pid, arg_path=f"{mnt}/x")
    check_header(ev, clock, nrs("openat", "open"), ev.result, pid=proc.pid)
    assert ev.result >= 0 and ev.created and ev.resolved
    assert ev.path == f"{mnt}/x"
    assert not (mnt / "x").exists()  # it was in the child's namespace only


def test_paths_under_a_chroot_show_its_location(sensor: ebpfsensor.Sensor, d: Path) -> None:
    with Clock() as clock:
        pid = os.fork()
        if pid == 0:  # child: no pytest machinery, just the syscalls
            try:
                os.chroot(d)
                os.chdir("/")
                os.close(os.open("/jailed", os.O_WRONLY | os.O_CREAT, 0o600))
                os.unlink("/jailed")
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    ev = one(sensor, FileCreate, pid=pid, since=clock.before, arg_path="/jailed")
    assert ev.resolved and ev.created and ev.path == str(d / "jailed")
    gone = one(sensor, FileUnlink, pid=pid, since=clock.before, arg_path="/jailed")
    assert gone.result == 0 and gone.path == str(d / "jailed")


def test_open_enoent(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    with Clock() as clock, pytest.raises(FileNotFoundError):
        os.open("missing/../nope.txt", os.O_RDONLY)
    ev = one(sensor, FileOpen, arg_path="missing/../nope.txt")
    check_header(ev, clock, nrs("openat", "open"), -errno.ENOENT)
    assert ev.errno == errno.ENOENT
    # not resolved by the kernel: the cwd joined with the string as passed
    assert not ev.resolved and ev.path == f"{d}/missing/../nope.txt"
    assert ev.ino == 0 and ev.dev == 0 and not ev.created


def test_open_ebadf_keeps_the_string(sensor: ebpfsensor.Sensor) -> None:
    with Clock() as clock, pytest.raises(OSError) as exc:
        os.open("rel/x", os.O_RDONLY, dir_fd=999_999)
    assert exc.value.errno == errno.EBADF
    ev = one(sensor, FileOpen, since=clock.before, arg_path="rel/x")
    check_header(ev, clock, nrs("openat"), -errno.EBADF)
    assert ev.dirfd == 999_999 and ev.path == "rel/x" and not ev.resolved and not ev.path_truncated


def test_open_eacces_from_unprivileged_child(sensor: ebpfsensor.Sensor, d: Path) -> None:
    secret = d / "secret"
    secret.write_text("x")
    secret.chmod(0o600)
    with Clock() as clock:
        proc = subprocess.Popen(["cat", str(secret)], user=65534, group=65534, cwd="/", stderr=subprocess.DEVNULL)
        assert proc.wait(10) == 1
    ev = one(sensor, FileOpen, pid=proc.pid, arg_path=str(secret))
    check_header(ev, clock, nrs("openat", "open"), -errno.EACCES, pid=proc.pid)
    assert (ev.uid, ev.gid) == (65534, 65534)
    assert ev.path == str(secret) and not ev.resolved
    assert ev.flags & os.O_ACCMODE == os.O_RDONLY and ev.comm == "cat"


def _deep(base: Path, name: str, depth: int) -> tuple[int, str]:
    """Make base/name/name/... depth levels deep; an fd of the deepest and its path."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    path = str(base)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
        path += "/" + name
    return fd, path


@pytest.mark.parametrize("name,depth", [("d" * 250, 17), ("a", 70)], ids=["long", "deep"])
def test_open_very_long_path_is_flagged(sensor: ebpfsensor.Sensor, d: Path, name: str, depth: int) -> None:
    dfd, path = _deep(d, name, depth)
    try:
        fd = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=dfd)
        st = os.fstat(fd)
        os.close(fd)
        ev = one(sensor, FileCreate, arg_path="leaf.txt", dirfd=dfd)
        assert ev.result == fd and (ev.ino, ev.dev) == (st.st_ino, st.st_dev)
        assert ev.path_truncated and not ev.arg_path_truncated
        assert 0 < len(ev.path) < PATH_LEN
        full = path + "/leaf.txt"
        assert len(full) >= PATH_LEN or full.count("/") > 64
        # one end of the path is kept whole
        assert full.startswith(ev.path) or full.endswith(ev.path)
        # a failed open there is reported with its base directory truncated
        with pytest.raises(FileNotFoundError):
            os.open("none", os.O_RDONLY, dir_fd=dfd)
        ev = one(sensor, FileOpen, arg_path="none", dirfd=dfd)
        assert ev.result == -errno.ENOENT and ev.path_truncated
        stats = sensor.stats().kinds
        assert stats["file_create"].truncated >= 1 and stats["file_open"].truncated >= 1
    finally:
        os.close(dfd)


def test_open_enametoolong_string(sensor: ebpfsensor.Sensor, d: Path) -> None:
    arg = str(d) + "/" + "x" * 5000
    with pytest.raises(OSError) as exc:
        os.open(arg, os.O_RDONLY)
    assert exc.value.errno == errno.ENAMETOOLONG
    if sensor.hooks()["file_openat_exit"].variant == "fentry":
        # the kernel refuses the name as it copies it, before any lookup:
        # do_filp_open, where the open's fentry variant sees opens, is never
        # called (test_open_fexit.py); an open after it arrives alone
        after = d / "after"
        os.close(os.open(after, os.O_WRONLY | os.O_CREAT, 0o600))
        one(sensor, FileCreate, path=str(after))
        assert not [e for e in Backlog.of(sensor).events if getattr(e, "result", 0) == -errno.ENAMETOOLONG]
        return
    ev = one(sensor, FileOpen, result=-errno.ENAMETOOLONG)
    assert ev.arg_path_truncated and ev.arg_path == arg[: PATH_LEN - 1]
    assert ev.path_truncated and arg.startswith(ev.path)


@pytest.mark.parametrize("raw", [b"new\nline", b"bad-\xff\xfe-utf8", b"tab\tand \xc3\x28 and \xe2\x82"])
def test_open_odd_names_are_faithful(sensor: ebpfsensor.Sensor, d: Path, raw: bytes) -> None:
    target = os.fsencode(d) + b"/" + raw
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    ev = Backlog.of(sensor).wait(lambda e: mine(FileCreate)(e) and os.fsencode(e.arg_path) == target)[0]
    assert os.fsencode(ev.path) == target and ev.created
    doc = to_json(ev)
    assert b"\n" not in doc  # escaped
    assert json.loads(doc)["path"] == ev.path


# --- FileCreate -------------------------------------------------------------------


def _calls_on(sensor: ebpfsensor.Sensor, clock: Clock, path: Path, marker: Path) -> list[Any]:
    """Every FileOpen and FileCreate of this process on path since the
    clock started: all of them, once the marker's open (made after the
    calls, its record behind theirs in the ring) has arrived."""

    def opens(on: Path) -> Callable[[Any], bool]:
        return lambda e: mine(type(e), since=clock.before, path=str(on))(e) and type(e) in (FileOpen, FileCreate)

    os.close(os.open(marker, os.O_RDONLY))
    backlog = Backlog.of(sensor)
    backlog.wait(opens(marker))
    found = [e for e in backlog.events if opens(path)(e)]
    backlog.events = [e for e in backlog.events if not opens(path)(e)]
    return sorted(found, key=lambda e: e.ts_ns)


def test_create_new_file_only(sensor: ebpfsensor.Sensor, d: Path) -> None:
    """One call, one event: with every kind on, an open that creates its
    file is a FileCreate only; one that opens an existing file is a
    FileOpen only, and so is a failed O_CREAT open (the file may exist)."""
    new = d / "new.txt"
    (d / "marker").touch()
    open_before = sensor.stats().kinds["file_open"]
    with Clock() as clock:
        fd = os.open(new, os.O_WRONLY | os.O_CREAT, 0o604)
        os.close(fd)
        # opening it again with O_CREAT creates nothing: an open, not a create
        fd2 = os.open(new, os.O_WRONLY | os.O_CREAT, 0o604)
        os.close(fd2)
        # a failed O_CREAT open created nothing: a failed open
        with pytest.raises(FileExistsError):
            os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    evs = _calls_on(sensor, clock, new, d / "marker")
    assert [(type(e), e.result) for e in evs] == [(FileCreate, fd), (FileOpen, fd2), (FileOpen, -errno.EEXIST)]
    ev = evs[0]
    check_header(ev, clock, nrs("openat", "open"), fd)
    assert ev.created and ev.resolved and ev.path == str(new) and ev.mode == 0o604
    assert ev.flags == os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    assert (ev.ino, ev.dev) == (os.stat(new).st_ino, os.stat(new).st_dev)
    again = evs[1]
    assert not again.created and again.resolved and (again.ino, again.dev) == (ev.ino, ev.dev)
    failed = evs[2]
    assert not failed.created and not failed.resolved and failed.path == str(new) and failed.ino == 0
    # the open a FileCreate stands for was never made: neither dropped nor filtered
    open_after = sensor.stats().kinds["file_open"]
    assert (open_after.dropped, open_after.filtered) == (open_before.dropped, open_before.filtered)


def test_create_is_an_open_when_file_create_is_off(d: Path) -> None:
    """With FileCreate off, the creating open is one FileOpen saying it
    created the file; nothing is counted for the kind that is off."""
    new = d / "made.txt"
    (d / "marker").touch()
    with ebpfsensor.Sensor(kinds={"file_open"}, exclude_self=False, log_file=None, read_opens="all") as s:
        with Clock() as clock:
            fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            fd2 = os.open(new, os.O_RDONLY | os.O_CREAT)
            os.close(fd2)
            with pytest.raises(FileExistsError):
                os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        evs = _calls_on(s, clock, new, d / "marker")
        assert [(type(e), e.result, e.created) for e in evs] == [
            (FileOpen, fd, True),
            (FileOpen, fd2, False),
            (FileOpen, -errno.EEXIST, False),
        ]
        check_header(evs[0], clock, nrs("openat", "open"), fd)
        assert evs[0].resolved and (evs[0].ino, evs[0].dev) == (os.stat(new).st_ino, os.stat(new).st_dev)
        kinds = s.stats().kinds
        assert (kinds["file_create"].produced, kinds["file_create"].filtered, kinds["file_create"].dropped) == (0, 0, 0)
        assert kinds["file_open"].dropped == 0 and kinds["file_open"].produced >= 4


def test_creations_alone_get_the_failed_creates(d: Path) -> None:
    """With FileCreate the only file kind, a failed O_CREAT open is a
    (failed) FileCreate; an open of an existing file is nothing."""
    new = d / "only.txt"
    (d / "marker").touch()
    with ebpfsensor.Sensor(kinds={"file_create"}, exclude_self=False, log_file=None) as s:
        with Clock() as clock:
            fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.close(os.open(new, os.O_RDONLY | os.O_CREAT))
            with pytest.raises(FileExistsError):
                os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            # the marker: a created file, behind the others in the ring
            os.close(os.open(d / "marker2", os.O_WRONLY | os.O_CREAT, 0o600))
        backlog = Backlog.of(s)
        backlog.wait(mine(FileCreate, since=clock.before, path=str(d / "marker2")))
        evs = [e for e in backlog.events if mine(FileCreate, since=clock.before, path=str(new))(e)]
        assert [(e.result, e.created) for e in sorted(evs, key=lambda e: e.ts_ns)] == [
            (fd, True),
            (-errno.EEXIST, False),
        ]
        assert not [e for e in backlog.events if type(e) is FileOpen]


def test_o_creat_does_not_move_a_failed_open_to_another_kind(sensor: ebpfsensor.Sensor) -> None:
    """An unprivileged reader adding O_CREAT to its probe of a file it may
    not read (O_CREAT does nothing to an existing file) is still reported
    as a failed FileOpen: a rule on failed opens sees it."""
    public = Path(tempfile.mkdtemp(prefix="ebpfsensor-probe-", dir="/tmp"))
    try:
        public.chmod(0o755)
        secret = public / "secret"
        secret.write_text("x")
        secret.chmod(0o600)
        probe = "import os, sys\ntry:\n    os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT)\nexcept OSError:\n    pass"
        # the system's interpreter: the one running the tests may not be another user's to run
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        with Clock() as clock:
            proc = subprocess.Popen([python, "-I", "-S", "-c", probe, str(secret)], user=65534, group=65534, cwd="/")
            assert proc.wait(10) == 0
        ev = one(sensor, FileOpen, pid=proc.pid, since=clock.before, arg_path=str(secret))
        assert (ev.result, ev.uid, ev.flags & os.O_CREAT) == (-errno.EACCES, 65534, os.O_CREAT)
        assert not [e for e in Backlog.of(sensor).events if type(e) is FileCreate and e.pid == proc.pid]
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_each_action_is_one_event(sensor: ebpfsensor.Sensor, d: Path) -> None:
    """With every kind on, an action the kernel might be thought to report
    twice is one event: a rename over an existing file (no FileUnlink of
    the file it replaced), an O_TRUNC open of an existing file, creat()."""
    (d / "src").write_text("new")
    (d / "dst").write_text("old")
    (d / "trunc").write_text("x")
    (d / "marker").touch()
    with Clock() as clock:
        os.rename(d / "src", d / "dst")
        os.close(os.open(d / "trunc", os.O_WRONLY | os.O_TRUNC))
        creat = _NR["creat"] is not None
        if creat:
            os.close(syscall("creat", str(d / "made").encode(), 0o600))
        os.close(os.open(d / "marker", os.O_RDONLY))
    backlog = Backlog.of(sensor)
    backlog.wait(mine(FileOpen, since=clock.before, path=str(d / "marker")))
    names = {str(d / n) for n in ("src", "dst", "trunc", "made")}
    got = [
        (e.kind, e.path)
        for e in sorted(backlog.events, key=lambda e: e.ts_ns)
        if e.pid == os.getpid() and e.ts_ns >= clock.before and e.path in names
    ]
    backlog.events = [e for e in backlog.events if not (e.pid == os.getpid() and e.path in names)]
    want = [("file_rename", str(d / "src")), ("file_open", str(d / "trunc"))]
    assert got == want + ([("file_create", str(d / "made"))] if creat else [])


def test_create_by_mknod(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.mknod("reg", 0o600 | stat.S_IFREG)
            os.mkfifo("fifo", 0o640, dir_fd=dfd)
            with pytest.raises(FileExistsError):
                os.mknod(d / "reg", 0o600 | stat.S_IFREG)
    finally:
        os.close(dfd)
    reg = one(sensor, FileCreate, since=clock.before, arg_path="reg")
    check_header(reg, clock, nrs("mknod", "mknodat"), 0)
    assert reg.mode == 0o600 | stat.S_IFREG and reg.created and not reg.resolved
    assert (reg.path, reg.dirfd, reg.flags, reg.ino, reg.dev) == (str(d / "reg"), AT_FDCWD, 0, 0, 0)
    assert not reg.path_truncated and not reg.arg_path_truncated
    fifo = one(sensor, FileCreate, since=clock.before, arg_path="fifo")
    check_header(fifo, clock, nrs("mknod", "mknodat"), 0)
    assert fifo.mode == 0o640 | stat.S_IFIFO and fifo.dirfd == dfd and fifo.path == str(d / "fifo")
    exists = one(sensor, FileCreate, since=clock.before, arg_path=str(d / "reg"))
    check_header(exists, clock, nrs("mknod", "mknodat"), -errno.EEXIST)
    assert not exists.created
    assert stat.S_ISFIFO(os.stat(d / "fifo").st_mode)


# --- FileUnlink, DirCreate, FileRename ---------------------------------------------


def test_unlink_file_and_directory(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    (d / "f").write_text("x")
    (d / "sub").mkdir()
    (d / "sub" / "g").write_text("x")
    (d / "dir").mkdir()
    (d / "dir2").mkdir()
    (d / "sub" / "dir3").mkdir()
    dfd = os.open(d / "sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.unlink("f")
            os.unlink("g", dir_fd=dfd)
            os.rmdir(d / "dir")
            os.rmdir("sub/../dir2")
            os.rmdir("dir3", dir_fd=dfd)
            with pytest.raises(FileNotFoundError):
                os.unlink("f")
            with pytest.raises(IsADirectoryError):
                os.unlink(d / "sub")
    finally:
        os.close(dfd)
    f = one(sensor, FileUnlink, arg_path="f", result=0)
    check_header(f, clock, nrs("unlink", "unlinkat"), 0)
    assert f.path == str(d / "f") and f.dirfd == AT_FDCWD and f.flags == 0 and not f.is_dir
    assert not f.path_truncated and not f.arg_path_truncated
    g = one(sensor, FileUnlink, arg_path="g")
    check_header(g, clock, nrs("unlinkat"), 0)
    assert g.path == str(d / "sub" / "g") and g.dirfd == dfd and not g.is_dir
    rd = one(sensor, FileUnlink, arg_path=str(d / "dir"))
    check_header(rd, clock, nrs("rmdir", "unlinkat"), 0)
    assert rd.is_dir and rd.flags == AT_REMOVEDIR and rd.path == str(d / "dir")
    dotdot = one(sensor, FileUnlink, arg_path="sub/../dir2")
    # the kernel's lookup resolves "..": seen where a path_rmdir hook runs
    resolved = f"{d}/dir2" if kernel_paths(sensor, "path_rmdir") else f"{d}/sub/../dir2"
    assert dotdot.is_dir and dotdot.result == 0 and dotdot.path == resolved
    at = one(sensor, FileUnlink, arg_path="dir3")
    check_header(at, clock, nrs("unlinkat"), 0)
    assert at.is_dir and at.flags == AT_REMOVEDIR and at.dirfd == dfd and at.path == str(d / "sub" / "dir3")
    gone = one(sensor, FileUnlink, arg_path="f", result=-errno.ENOENT)
    check_header(gone, clock, nrs("unlink", "unlinkat"), -errno.ENOENT)
    isdir = one(sensor, FileUnlink, arg_path=str(d / "sub"))
    assert isdir.result == -errno.EISDIR and not isdir.is_dir


def test_dir_create(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.mkdir("m1", 0o750)
            os.mkdir("m2", 0o700, dir_fd=dfd)
            with pytest.raises(FileExistsError):
                os.mkdir(d / "m1")
    finally:
        os.close(dfd)
    m1 = one(sensor, DirCreate, arg_path="m1")
    check_header(m1, clock, nrs("mkdir", "mkdirat"), 0)
    assert m1.path == str(d / "m1") and m1.mode == 0o750 and m1.dirfd == AT_FDCWD
    assert not m1.path_truncated and not m1.arg_path_truncated
    m2 = one(sensor, DirCreate, arg_path="m2")
    check_header(m2, clock, nrs("mkdirat"), 0)
    assert m2.path == str(d / "m2") and m2.mode == 0o700 and m2.dirfd == dfd
    exists = one(sensor, DirCreate, arg_path=str(d / "m1"))
    check_header(exists, clock, nrs("mkdir", "mkdirat"), -errno.EEXIST)


def test_rename_across_directories(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    (d / "a").mkdir()
    (d / "b").mkdir()
    (d / "a" / "x").write_text("x")
    (d / "a" / "y").write_text("y")
    (d / "b" / "y").write_text("old")
    afd = os.open(d / "a", os.O_RDONLY | os.O_DIRECTORY)
    bfd = os.open(d / "b", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.rename("a/x", d / "b" / "x2")
            os.rename("y", "y", src_dir_fd=afd, dst_dir_fd=bfd)  # replaces b/y
            rc = syscall("renameat2", afd, b"gone", bfd, b"z", RENAME_NOREPLACE)
        assert rc == -errno.ENOENT
    finally:
        os.close(afd)
        os.close(bfd)
    ev = one(sensor, FileRename, arg_path="a/x")
    check_header(ev, clock, nrs("rename", "renameat", "renameat2"), 0)
    assert ev.path == str(d / "a" / "x") and ev.new_path == str(d / "b" / "x2")
    assert ev.new_arg_path == str(d / "b" / "x2")
    assert (ev.dirfd, ev.new_dirfd, ev.flags) == (AT_FDCWD, AT_FDCWD, 0)
    assert not (ev.path_truncated or ev.arg_path_truncated or ev.new_path_truncated or ev.new_arg_path_truncated)
    at = one(sensor, FileRename, arg_path="y", new_arg_path="y")
    check_header(at, clock, nrs("renameat", "renameat2"), 0)
    assert (at.dirfd, at.new_dirfd) == (afd, bfd)
    assert at.path == str(d / "a" / "y") and at.new_path == str(d / "b" / "y")
    failed = one(sensor, FileRename, arg_path="gone")
    check_header(failed, clock, nrs("renameat2"), -errno.ENOENT)
    assert failed.flags == RENAME_NOREPLACE and failed.new_path == str(d / "b" / "z")
    # a new name replaced nothing, b/y was replaced, a failed call replaced nothing
    assert (ev.replaced, at.replaced, failed.replaced) == (replaced(sensor, False), replaced(sensor, True), False)


def replaced(sensor: ebpfsensor.Sensor, truth: bool) -> bool | None:
    """FileRename.replaced for a successful rename: the truth where a
    rename_target variant runs, unknown where the kernel allows none."""
    return truth if sensor.hooks()["rename_target"].variant else None


def _rename_cases(d: Path) -> Clock:
    """Over an existing file, to a new name, and an exchange of two files."""
    for name in ("src", "old", "other", "e1", "e2"):
        (d / name).write_text(name)
    with Clock() as clock:
        os.rename(d / "src", d / "old")
        os.rename(d / "other", d / "fresh")
        assert (
            syscall("renameat2", AT_FDCWD, str(d / "e1").encode(), AT_FDCWD, str(d / "e2").encode(), RENAME_EXCHANGE)
            == 0
        )
    assert (d / "old").read_text() == "src" and (d / "e1").read_text() == "e2"
    return clock


def _check_rename_cases(sensor: ebpfsensor.Sensor, d: Path, clock: Clock) -> None:
    over = one(sensor, FileRename, path=str(d / "src"), since=clock.before)
    check_header(over, clock, nrs("rename", "renameat", "renameat2"), 0)
    assert (over.new_path, over.replaced) == (str(d / "old"), replaced(sensor, True))
    new = one(sensor, FileRename, path=str(d / "other"), since=clock.before)
    assert (new.new_path, new.replaced) == (str(d / "fresh"), replaced(sensor, False))
    swap = one(sensor, FileRename, path=str(d / "e1"), since=clock.before)
    check_header(swap, clock, nrs("renameat2"), 0)
    assert (swap.new_path, swap.flags) == (str(d / "e2"), RENAME_EXCHANGE)
    assert swap.replaced == replaced(sensor, False)  # an exchange destroys nothing


def test_rename_replaced(sensor: ebpfsensor.Sensor, d: Path) -> None:
    _check_rename_cases(sensor, d, _rename_cases(d))


# the kernel features each rename_target variant needs, as the sensor names them
_RENAME_TARGET_REFUSAL = {
    "lsm": ("refuses lsm programs", "BPF LSM is not active"),
    "fentry": ("refuses fentry programs",),
    "kprobe": ("has no kprobes", "security_inode_rename"),
}


@pytest.mark.parametrize("variant", sorted(_RENAME_TARGET_REFUSAL))
def test_rename_target_variant(d: Path, variant: str) -> None:
    """Each variant forced in turn: where this kernel runs it, renames report
    the truth through it; where it does not, the hook says why, file_rename
    is reported partly unavailable, and renames still arrive, unknown."""
    with ebpfsensor.Sensor(
        kinds={"file_rename"}, hook_variants={variant, "tp"}, exclude_self=False, log_file=None
    ) as s:
        info = s.hooks()["rename_target"]
        health = s.health().kinds["file_rename"]
        assert health.live and health.source == "ebpf:" + ",".join(sorted({"tp", variant} if info.variant else {"tp"}))
        if info.variant:
            assert info.variant == variant and not health.reason
        else:
            (failure,) = [f for f in info.failures if f.startswith(f"{variant}: ")]
            assert any(why in failure for why in _RENAME_TARGET_REFUSAL[variant]), failure
            assert health.reason.startswith("partly unavailable: rename_target:")
        _check_rename_cases(s, d, _rename_cases(d))


# --- FileChmod, FileChown ---------------------------------------------------------


def test_chmod_variants(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    f = d / "m.txt"
    f.write_text("x")
    os.symlink("m.txt", d / "ml")
    fd = os.open(f, os.O_RDONLY)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.chmod("m.txt", 0o600)
            os.chmod(fd, 0o640)
            os.chmod("m.txt", 0o604, dir_fd=dfd)
            nolink = syscall("fchmodat2", AT_FDCWD, b"ml", 0o600, AT_SYMLINK_NOFOLLOW)
            empty = syscall("fchmodat2", fd, b"", 0o644, AT_EMPTY_PATH)
            with pytest.raises(FileNotFoundError):
                os.chmod(d / "missing", 0o600)
    finally:
        os.close(fd)
        os.close(dfd)
    # fchmodat2 came in Linux 6.6: before, the call fails with ENOSYS and its
    # tracepoint does not exist (the hook is reported unavailable)
    has_fchmodat2 = nolink != -errno.ENOSYS
    if not has_fchmodat2:
        assert tuple(int(x) for x in os.uname().release.split(".")[:2]) < (6, 6)
        assert empty == -errno.ENOSYS
        assert not sensor.hooks()["file_fchmodat2_exit"].variant
    else:
        assert nolink == -errno.EOPNOTSUPP and empty == 0
    ev = one(sensor, FileChmod, arg_path="m.txt", mode=0o600)
    check_header(ev, clock, nrs("chmod", "fchmodat"), 0)
    assert ev.path == str(f) and ev.dirfd == AT_FDCWD and ev.flags == 0
    assert not ev.path_truncated and not ev.arg_path_truncated
    byfd = one(sensor, FileChmod, mode=0o640)
    check_header(byfd, clock, nrs("fchmod"), 0)
    assert byfd.dirfd == fd and byfd.arg_path == "" and byfd.path == str(f)
    at = one(sensor, FileChmod, mode=0o604)
    check_header(at, clock, nrs("fchmodat"), 0)
    assert at.dirfd == dfd and at.path == str(f) and at.arg_path == "m.txt"
    if has_fchmodat2:
        nl = one(sensor, FileChmod, arg_path="ml")
        check_header(nl, clock, nrs("fchmodat2"), -errno.EOPNOTSUPP)
        assert nl.flags == AT_SYMLINK_NOFOLLOW and nl.path == str(d / "ml")
        ep = one(sensor, FileChmod, mode=0o644)
        check_header(ep, clock, nrs("fchmodat2"), 0)
        assert ep.flags == AT_EMPTY_PATH and ep.dirfd == fd and ep.arg_path == "" and ep.path == str(f)
    gone = one(sensor, FileChmod, arg_path=str(d / "missing"))
    check_header(gone, clock, nrs("chmod", "fchmodat"), -errno.ENOENT)
    assert stat.S_IMODE(os.stat(f).st_mode) == (0o644 if has_fchmodat2 else 0o604)


def test_chown_variants(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    f = d / "o.txt"
    f.write_text("x")
    os.symlink("o.txt", d / "ol")
    fd = os.open(f, os.O_RDONLY)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.chown("o.txt", 1234, 5678)
            os.lchown("ol", 11, 12)
            os.chown(fd, -1, 42)
            os.chown("o.txt", 7, -1, dir_fd=dfd, follow_symlinks=False)
            with pytest.raises(FileNotFoundError):
                os.chown(d / "missing", 1, 1)
    finally:
        os.close(fd)
        os.close(dfd)
    ev = one(sensor, FileChown, arg_path="o.txt", new_uid=1234)
    check_header(ev, clock, nrs("chown", "fchownat"), 0)
    assert (ev.new_gid, ev.flags, ev.dirfd, ev.path) == (5678, 0, AT_FDCWD, str(f))
    assert not ev.path_truncated and not ev.arg_path_truncated
    ln = one(sensor, FileChown, arg_path="ol")
    check_header(ln, clock, nrs("lchown", "fchownat"), 0)
    assert (ln.new_uid, ln.new_gid, ln.flags) == (11, 12, AT_SYMLINK_NOFOLLOW)
    assert ln.path == str(d / "ol")  # the link itself, not its target
    byfd = one(sensor, FileChown, new_gid=42)
    check_header(byfd, clock, nrs("fchown"), 0)
    assert (byfd.new_uid, byfd.dirfd, byfd.arg_path, byfd.path) == (0xFFFFFFFF, fd, "", str(f))
    at = one(sensor, FileChown, new_uid=7)
    check_header(at, clock, nrs("fchownat"), 0)
    assert (at.new_gid, at.dirfd, at.flags, at.path) == (0xFFFFFFFF, dfd, AT_SYMLINK_NOFOLLOW, str(f))
    gone = one(sensor, FileChown, arg_path=str(d / "missing"))
    check_header(gone, clock, nrs("chown", "fchownat"), -errno.ENOENT)
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (7, 42)


# --- FileLink, FileSymlink ----------------------------------------------------------


def test_link(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    (d / "a").mkdir()
    (d / "b").mkdir()
    (d / "a" / "src").write_text("x")
    afd = os.open(d / "a", os.O_RDONLY | os.O_DIRECTORY)
    bfd = os.open(d / "b", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.link("a/src", d / "b" / "hard")
            os.link("src", "hard2", src_dir_fd=afd, dst_dir_fd=bfd)
            with pytest.raises(FileExistsError):
                os.link("a/src", "b/hard")
    finally:
        os.close(afd)
        os.close(bfd)
    ev = one(sensor, FileLink, arg_path="a/src", new_arg_path=str(d / "b" / "hard"))
    check_header(ev, clock, nrs("link", "linkat"), 0)
    assert ev.path == str(d / "a" / "src") and ev.new_path == str(d / "b" / "hard")
    assert (ev.dirfd, ev.new_dirfd) == (AT_FDCWD, AT_FDCWD)
    assert not (ev.path_truncated or ev.arg_path_truncated or ev.new_path_truncated or ev.new_arg_path_truncated)
    at = one(sensor, FileLink, arg_path="src")
    check_header(at, clock, nrs("linkat"), 0)
    assert (at.dirfd, at.new_dirfd, at.flags) == (afd, bfd, AT_SYMLINK_FOLLOW)
    assert at.path == str(d / "a" / "src") and at.new_path == str(d / "b" / "hard2") and at.new_arg_path == "hard2"
    exists = one(sensor, FileLink, new_arg_path="b/hard")
    check_header(exists, clock, nrs("link", "linkat"), -errno.EEXIST)
    assert os.stat(d / "b" / "hard2").st_nlink == 3


def test_symlink(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    (d / "sub").mkdir()
    dfd = os.open(d / "sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Clock() as clock:
            os.symlink("nowhere/../x", "sl")
            os.symlink("/etc/hostname", "sl2", dir_fd=dfd)
            with pytest.raises(FileExistsError):
                os.symlink("t", d / "sl")
    finally:
        os.close(dfd)
    ev = one(sensor, FileSymlink, arg_path="sl")
    check_header(ev, clock, nrs("symlink", "symlinkat"), 0)
    assert ev.target == "nowhere/../x" and ev.path == str(d / "sl") and ev.dirfd == AT_FDCWD
    assert not (ev.target_truncated or ev.path_truncated or ev.arg_path_truncated)
    at = one(sensor, FileSymlink, arg_path="sl2")
    check_header(at, clock, nrs("symlinkat"), 0)
    assert at.target == "/etc/hostname" and at.dirfd == dfd and at.path == str(d / "sub" / "sl2")
    exists = one(sensor, FileSymlink, arg_path=str(d / "sl"))
    check_header(exists, clock, nrs("symlink", "symlinkat"), -errno.EEXIST)
    assert exists.target == "t"


# --- where paths come from ---------------------------------------------------------

ARG = PathSource.SYSCALL_ARG
KERNEL = PathSource.KERNEL

# the hooks on the kernel's path checks, and the kinds they serve
PATH_HOOKS = {
    "path_unlink": "file_unlink",
    "path_rmdir": "file_unlink",
    "path_mkdir": "dir_create",
    "path_mknod": "file_create",
    "path_rename": "file_rename",
    "path_chmod": "file_chmod",
    "path_chown": "file_chown",
    "path_link": "file_link",
    "path_symlink": "file_symlink",
}


def kernel_paths(sensor: ebpfsensor.Sensor, hook: str) -> bool:
    """Whether a path_* hook runs: its kind's paths are then the kernel's."""
    return sensor.hooks()[hook].variant is not None


def test_path_sources(sensor: ebpfsensor.Sensor, d: Path, cwd: Path) -> None:
    """Every file event says where its paths came from: the opened file for
    an open that succeeded, the fd's file for fchmod and fchown; where the
    kernel's path checks can be hooked (BPF LSM, fentry, kprobe), the path
    the kernel resolved; else the caller's strings, compared between the
    syscall's entry and exit (none changed here), long ones included."""
    long_name = "l" * 200  # longer than the copy kept whole: compared by length and hash
    (d / "f").write_text("x")
    (d / "sub").mkdir()
    fd = os.open(d / "f", os.O_RDONLY)
    try:
        with Clock() as clock:
            os.close(os.open("f", os.O_RDONLY))
            with pytest.raises(FileNotFoundError):
                os.open("missing", os.O_RDONLY)
            os.mkdir(long_name)
            os.rename(long_name, "sub/../short")
            os.chmod("f", 0o600)
            os.fchmod(fd, 0o640)
            os.fchown(fd, -1, -1)
            os.link("f", "f2")
            os.symlink("target", "sl")
            os.unlink("f2")
            os.mknod("node", 0o600 | stat.S_IFREG)
            with pytest.raises(FileNotFoundError):
                os.unlink("missing")
    finally:
        os.close(fd)

    def want(hook: str) -> PathSource:
        return KERNEL if kernel_paths(sensor, hook) else ARG

    opened = one(sensor, FileOpen, arg_path="f", since=clock.before)
    assert (opened.resolved, opened.path_source) == (True, KERNEL)
    # a failed lookup reaches no path check: the caller's string (the
    # kernel's copy of it where the open's fentry variant runs)
    assert one(sensor, FileOpen, arg_path="missing", since=clock.before).path_source == failed_open_source(sensor)
    assert one(sensor, FileUnlink, arg_path="missing", since=clock.before).path_source == ARG
    assert one(sensor, DirCreate, arg_path=long_name, since=clock.before).path_source == want("path_mkdir")
    ren = one(sensor, FileRename, arg_path=long_name, since=clock.before)
    assert (ren.path_source, ren.new_path_source) == (want("path_rename"),) * 2
    assert ren.path == str(d / long_name)
    assert ren.new_path == (str(d / "short") if kernel_paths(sensor, "path_rename") else f"{d}/sub/../short")
    assert one(sensor, FileChmod, arg_path="f", since=clock.before).path_source == want("path_chmod")
    fchmod = one(sensor, FileChmod, dirfd=fd, since=clock.before)
    assert (fchmod.path, fchmod.path_source) == (str(d / "f"), KERNEL)
    assert one(sensor, FileChown, dirfd=fd, since=clock.before).path_source == KERNEL
    link = one(sensor, FileLink, arg_path="f", since=clock.before)
    assert (link.path, link.new_path) == (str(d / "f"), str(d / "f2"))
    assert (link.path_source, link.new_path_source) == (want("path_link"),) * 2
    sl = one(sensor, FileSymlink, arg_path="sl", since=clock.before)
    assert (sl.target, sl.target_source, sl.path_source) == ("target", want("path_symlink"), want("path_symlink"))
    assert one(sensor, FileUnlink, arg_path="f2", since=clock.before).path_source == want("path_unlink")
    node = one(sensor, FileCreate, arg_path="node", since=clock.before)
    assert (node.path, node.path_source) == (str(d / "node"), want("path_mknod"))


@pytest.mark.parametrize("variant", ["lsm", "fentry", "kprobe"])
def test_path_hook_variant(d: Path, variant: str) -> None:
    """Each variant of the path_* hooks forced in turn: where this kernel
    runs it, paths are the kernel's (".." resolved); where it does not,
    every hook says why, each kind it serves is reported partly unavailable,
    never silently, and paths are the caller's strings."""
    kinds = set(PATH_HOOKS.values())
    refusal = {**_RENAME_TARGET_REFUSAL, "kprobe": ("has no kprobes", "security_path_")}[variant]
    with ebpfsensor.Sensor(
        kinds=kinds, hook_variants={variant, "tp"}, exclude_self=False, log_file=None, read_opens="all"
    ) as s:
        hooks, health = s.hooks(), s.health().kinds
        # a trampoline that cannot take a struct by value (security_path_chown's
        # kuid_t on 5.10) leaves its hook out, saying why
        struct_arg = {
            h for h in PATH_HOOKS if hooks[h].variant is None and any("is unsupported" in f for f in hooks[h].failures)
        }
        for hook in struct_arg:
            assert f"{hook}: " in health[PATH_HOOKS[hook]].reason
        runs = {hooks[h].variant for h in PATH_HOOKS if h not in struct_arg}
        # the checks load together or not at all, where rename_target's does
        assert runs == {hooks["rename_target"].variant}, runs
        if runs == {variant}:
            left_out = {PATH_HOOKS[h] for h in struct_arg}
            assert all(health[k].live and variant in health[k].source for k in kinds - left_out)
        else:
            for hook, kind in PATH_HOOKS.items():
                if hook in struct_arg:
                    continue
                (failure,) = [f for f in hooks[hook].failures if f.startswith(f"{variant}: ")]
                assert any(why in failure for why in refusal), failure
                assert health[kind].live and f"{hook}: " in health[kind].reason and failure in health[kind].reason
        (d / "sub").mkdir()
        with Clock() as clock:
            os.mkdir(d / "sub" / ".." / "m")
        mk = one(s, DirCreate, arg_path=f"{d}/sub/../m", since=clock.before)
        assert (mk.path, mk.path_source) == ((str(d / "m"), KERNEL) if runs == {variant} else (f"{d}/sub/../m", ARG))


# --- dedup window, per-kind enablement ------------------------------------------------


def test_open_dedup_window(d: Path) -> None:
    f = d / "noisy.txt"
    f.write_text("x")
    with ebpfsensor.Sensor(kinds={"file_open"}, file_dedup_ms=60_000, exclude_self=False, read_opens="all") as s:
        with Clock() as clock:
            for _ in range(5):
                os.close(os.open(f, os.O_RDONLY))
            os.close(os.open(f, os.O_WRONLY))  # another access class: reported
            for _ in range(2):
                with pytest.raises(FileNotFoundError):
                    os.open(d / "absent", os.O_RDONLY)  # failures: always reported
            # another process opening the same file: reported
            proc = subprocess.Popen(["cat", str(f)], stdout=subprocess.DEVNULL)
            assert proc.wait(10) == 0
        backlog = Backlog.of(s)
        reads = backlog.wait(mine(FileOpen, since=clock.before, arg_path=str(f)), count=2)
        assert [e.flags & os.O_ACCMODE for e in reads] == [os.O_RDONLY, os.O_WRONLY]
        assert reads[0].ts_ns < reads[1].ts_ns
        fails = backlog.wait(mine(FileOpen, since=clock.before, arg_path=str(d / "absent")), count=2)
        assert all(e.result == -errno.ENOENT for e in fails)
        child = backlog.wait(mine(FileOpen, pid=proc.pid, since=clock.before, arg_path=str(f)))[0]
        assert child.result >= 0
        time.sleep(0.2)
        backlog.events += s.poll(0.1)
        assert not [e for e in backlog.events if mine(FileOpen, since=clock.before, arg_path=str(f))(e)]
        stats = s.stats().kinds["file_open"]
        assert stats.deduplicated >= 4
        assert stats.produced >= 5 and stats.dropped == 0
        assert s.stats().kinds["file_unlink"].produced == 0


def test_no_dedup_by_default(sensor: ebpfsensor.Sensor, d: Path) -> None:
    f = d / "every.txt"
    f.write_text("x")
    with Clock() as clock:
        for _ in range(5):
            os.close(os.open(f, os.O_RDONLY))
    evs = Backlog.of(sensor).wait(mine(FileOpen, since=clock.before, arg_path=str(f)), count=5)
    assert len(evs) == 5
    assert sensor.stats().kinds["file_open"].deduplicated == 0


def _my_programs() -> set[int]:
    """Ids of the BPF programs this process holds an fd of."""
    ids = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        ids |= {int(line.split()[1]) for line in info.splitlines() if line.startswith("prog_id:")}
    return ids


def _loaded_programs() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out)}


def test_kinds_are_independent(d: Path) -> None:
    before = _my_programs()
    with ebpfsensor.Sensor(kinds={"file_create", "file_unlink"}, exclude_self=False, read_opens="all") as s:
        hooks = {h for h, info in s.hooks().items() if info.variant}
        # the lifecycle hooks are always attached (they keep exclusion state)
        assert {"exec", "fork", "exit"} <= hooks
        # and the path checks of these kinds, where the kernel lets them be hooked
        checks = {h for h in hooks if h.startswith("path_")}
        assert checks <= {"path_mknod", "path_unlink", "path_rmdir"}
        syscalls = {h.removeprefix("file_").rsplit("_", 1)[0] for h in hooks - {"exec", "fork", "exit"} - checks}
        wanted = ("open", "creat", "openat", "openat2", "mknod", "mknodat", "unlink", "unlinkat", "rmdir")
        assert syscalls == {n for n in wanted if _NR[n]}
        mine_now = _my_programs() - before
        # a program each, but one for the exits of an operation's calls
        assert len(mine_now) == len({info.program for h, info in s.hooks().items() if h in hooks})
        with Clock() as clock:
            os.close(os.open(d / "c.txt", os.O_WRONLY | os.O_CREAT, 0o600))
            os.close(os.open(d / "c.txt", os.O_RDONLY))
            os.mkdir(d / "dd")
            os.rmdir(d / "dd")
            os.unlink(d / "c.txt")
        backlog = Backlog.of(s)
        backlog.wait(mine(FileCreate, since=clock.before, arg_path=str(d / "c.txt")))
        backlog.wait(mine(FileUnlink, since=clock.before, arg_path=str(d / "c.txt")))
        backlog.wait(mine(FileUnlink, since=clock.before, arg_path=str(d / "dd"), is_dir=True))
        time.sleep(0.2)
        backlog.events += s.poll(0.1)
        assert not [e for e in backlog.events if type(e) in (FileOpen, DirCreate) and e.ts_ns >= clock.before]
        kinds = s.stats().kinds
        assert kinds["file_open"].produced == 0 and kinds["dir_create"].produced == 0
        assert kinds["file_create"].produced >= 1 and kinds["file_unlink"].produced >= 2
    # nothing of this sensor is left loaded (the kernel frees a program after
    # an RCU grace period: wait for it, as test_resources does)
    assert _my_programs() == before
    end = time.monotonic() + 5.0
    while (left := mine_now & _loaded_programs()) and time.monotonic() < end:
        time.sleep(0.05)
    assert not left
