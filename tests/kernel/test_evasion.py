# SPDX-License-Identifier: Apache-2.0
"""Attacks by unprivileged users on the events: each is performed for real by a
child that runs as nobody, and each test asserts that the event arrives
intact, or that the loss is counted and the attack refused or reported."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kernel.conftest import wait_for
from tests.kernel.test_file_events import AT_FDCWD, nrs

import ebpfsensor
from ebpfsensor import ProcessExec
from ebpfsensor._ffi import ffi, lib, next_key
from ebpfsensor.errors import LibbpfError
from ebpfsensor.events import DirCreate, FileOpen, NetConnect
from ebpfsensor.events.file import PathSource

pytestmark = pytest.mark.bpf

NOBODY = 65534


def as_nobody(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run argv as an unprivileged user (uid and gid 65534, no groups)."""
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]
    return subprocess.run(cmd, check=True, timeout=30, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def sensor() -> Iterator[ebpfsensor.Sensor]:
    """Every kind on, this process's events reported, and every open
    reported (``read_opens="all"``): the rewrites here are aimed at the
    failed read-only opens the default policy counts rather than reports."""
    with ebpfsensor.Sensor(exclude_self=False, read_opens="all") as s:
        yield s


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory the unprivileged child may enter and write (pytest's
    tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="ebpfsensor-evasion-", dir="/tmp"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def deep_dir(base: Path, length: int) -> Path:
    """A directory whose absolute path is about length bytes long, made
    one component at a time (no single call takes a path that long)."""
    path = base
    while len(str(path)) < length - 250:
        path = path / ("d" * 200)
        path.mkdir(mode=0o755)
    rest = length - len(str(path)) - 1
    path = path / ("e" * rest)
    path.mkdir(mode=0o755)
    return path


def test_exec_with_every_part_at_its_longest_is_delivered(sensor: ebpfsensor.Sensor, public_dir: Path) -> None:
    """A binary run from a ~4000-byte directory, by a parent whose executable
    lies as deep, with ~9 KiB of arguments: every variable part of the record
    at or near its limit. The record's size once wrapped, and the exec was
    counted undecodable and never delivered."""
    deep = deep_dir(public_dir, 4000)
    shutil.copy("/bin/dash", deep / "sh")
    shutil.copy("/bin/true", deep / "true")
    args = [chr(ord("a") + i) * 1000 for i in range(9)]
    before = sensor.stats().undecodable
    as_nobody([str(deep / "sh"), "-c", f'{deep}/true "$@"; exit 0', "sh", *args], cwd=deep)
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.exe == f"{deep}/true")
    assert (e.uid, e.euid) == (NOBODY, NOBODY)
    assert e.cwd == str(deep) and not e.cwd_truncated
    assert e.parent_exe == f"{deep}/sh" and not e.parent_exe_truncated
    assert not e.exe_truncated
    # argv fills ARGV_LEN - 1 bytes: its start is kept, the rest flagged
    assert e.argv_truncated
    assert e.argv[0] == f"{deep}/true"
    joined = "\0".join([f"{deep}/true", *args])
    assert "\0".join(e.argv) == joined[: len("\0".join(e.argv))]
    assert len("\0".join(e.argv).encode()) >= ebpfsensor.events._layout.lib.ARGV_LEN - 2
    assert sensor.stats().undecodable == before


FIFO_READERS_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fifo;

static void *reader(void *arg)
{
	int fd = open(fifo, O_RDONLY); /* blocks until a writer opens the FIFO */

	(void)arg;
	if (fd >= 0)
		close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;
	pthread_t *threads;
	int n, started = 0;

	if (argc != 3)
		return 2;
	fifo = argv[1];
	n = atoi(argv[2]);
	threads = calloc(n, sizeof(*threads));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 16384);
	for (int i = 0; i < n; i++)
		if (pthread_create(&threads[started], &attr, reader, NULL) == 0)
			started++;
	printf("%d\n", started);
	fflush(stdout);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return 0;
}
"""


def blocked_in_open(pid: int) -> int:
    """How many of a process's threads sleep inside a syscall (open here)."""
    count = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                count += f.read().split()[0] in ("2", "257", "56")  # open, openat (x86_64), openat (arm64)
        except (OSError, IndexError):
            continue
    return count


# a thread whose id is below this stashes its file calls in the slot of
# its id (file.bpf.c, CALL_SLOTS); the others in their own task storage
# (call_store) where the kernel has it, else in the file_calls LRU hash
CALL_SLOTS = 32768
# pidfd_open(2): a pidfd of a thread, not only of a process (6.9)
PIDFD_THREAD = os.O_EXCL
# the variants whose open hooks are tracepoint pairs, which stash a call
# from sys_enter to sys_exit (not the open's fentry variant, one program)
PAIRS = frozenset({"lsm", "btf", "raw", "tp", "kprobe"})


@contextlib.contextmanager
def pids_above_call_slots() -> Iterator[None]:
    """Processes and threads started inside get ids above CALL_SLOTS, as on
    a host whose pid_max systemd raised (pid_max restored on leaving)."""
    with open("/proc/sys/kernel/pid_max") as f:
        saved = f.read().strip()
    try:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(str(4 * CALL_SLOTS))
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(2 * CALL_SLOTS))
        yield
    finally:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(saved)


def kernel_has(*names: str) -> bool:
    """The kernel's own BTF names all of these (an enum value, as the BPF
    objects' CO-RE checks ask)."""
    try:
        data = Path("/sys/kernel/btf/vmlinux").read_bytes()
    except OSError:
        return False
    return all(b"\0" + n.encode() + b"\0" in data for n in names)


def file_object(sensor: ebpfsensor.Sensor) -> Any:
    """The sensor's loaded file object."""
    src: Any = sensor._ebpf
    return next(o for o in src._objects if "file_openat_exit" in o.hooks)


def call_store(sensor: ebpfsensor.Sensor) -> tuple[int, int] | None:
    """The fd and value size of the file object's task storage of calls
    above CALL_SLOTS, or None where the kernel has none (they wait in the
    file_calls hash)."""
    o = file_object(sensor)
    if not kernel_has("BPF_FUNC_get_current_task_btf"):
        return None
    try:
        return o.map_fd("call_store"), int(lib.bpf_map__value_size(o._a.maps["call_store"]))
    except LibbpfError:
        return None


def stored_call(store: tuple[int, int], tid: int) -> bytes | None:
    """What thread tid's storage holds, or None when it has none; looked up
    through a pidfd of the thread (OSError where the kernel cannot give
    one: PIDFD_THREAD)."""
    fd, size = store
    pidfd = os.pidfd_open(tid, PIDFD_THREAD)
    try:
        key, value = ffi.new("int *", pidfd), ffi.new("char[]", size)
        rc = lib.bpf_map_lookup_elem(fd, key, value)
        if rc == -errno.ENOENT:
            return None
        assert rc == 0, f"lookup of thread {tid}'s storage: {os.strerror(-rc)}"
        return bytes(ffi.buffer(value))
    finally:
        os.close(pidfd)


@pytest.mark.parametrize("high", [False, True], ids=["slot", "above-call-slots"])
def test_threads_blocked_in_file_syscalls_cannot_switch_file_events_off(
    public_dir: Path, tmp_path: Path, high: bool
) -> None:
    """More threads than the stash has entries, each blocked in open() on a
    FIFO, held every entry of the plain hash the arguments were stashed in:
    every other process's file syscalls were then dropped. Now a thread
    whose id is below CALL_SLOTS holds only the slot of its own id. Above
    it, where the kernel has task storage (5.11), a thread's call waits in
    its own storage: nothing is shared, nothing evicted, and every one of
    the attacker's opens is reported. Elsewhere those calls go to an LRU
    hash whose oldest entries are evicted: another process's open is still
    reported, and every one of the attacker's opens is reported or counted
    as unmatched (its entry evicted before it returned). The hash is made
    small here so that the attack is quick under emulation too; the
    mechanism is the same at the default size."""
    stash = 256
    readers = stash + 128
    src = public_dir / "readers.c"
    src.write_text(FIFO_READERS_C)
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(public_dir / "readers"), str(src)], check=True)
    fifo = public_dir / "fifo"
    os.mkfifo(fifo, 0o666)
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    # the readers' opens are read-only: with every open reported they use the
    # stash, which the tracepoint pairs have (fentry's one exit program on
    # do_filp_open has none)
    with ebpfsensor.Sensor(
        kinds={"file_open"}, stash_entries=stash, log_file=None, read_opens="all", hook_variants=PAIRS
    ) as sensor:
        assert sensor.hooks()["file_openat_exit"].variant == "tp"
        before = sensor.stats().kinds["file_open"]
        store = call_store(sensor)
        # (the ids stay high while the readers start)
        with pids_above_call_slots() if high else contextlib.nullcontext():
            attacker = subprocess.Popen(
                [*cmd, str(public_dir / "readers"), str(fifo), str(readers)], stdout=subprocess.PIPE
            )
            try:
                assert attacker.stdout is not None
                started = int(attacker.stdout.readline())
                assert started == readers, f"only {started} threads started"
                # threads reach open() slowly under emulation: more of them
                # blocked than the stash holds is the attack
                deadline = time.monotonic() + 120
                while blocked_in_open(attacker.pid) < started and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert blocked_in_open(attacker.pid) > stash
                tids = [int(t) for t in os.listdir(f"/proc/{attacker.pid}/task") if int(t) != attacker.pid]
                # another process's open while every attacker thread holds its call
                victim = tmp_path / "victim"
                victim.write_text("x")
                opener = subprocess.run(["cat", str(victim)], check=True, capture_output=True)
                assert opener.stdout == b"x"
                (e,) = wait_for(sensor, lambda e: isinstance(e, FileOpen) and e.path == str(victim) and e.comm == "cat")
                assert e.result >= 0
            finally:
                # a writer releases every reader at once
                fd = os.open(fifo, os.O_RDWR)
                os.close(fd)
                attacker.wait(timeout=120)
                if attacker.stdout is not None:
                    attacker.stdout.close()
        hashed = sum(t >= CALL_SLOTS for t in tids)
        if high:
            assert hashed == len(tids)
        # every thread with a slot or a storage of its own has its open
        # reported, with its own thread id
        owned = {t for t in tids if t < CALL_SLOTS or store}
        if owned:
            got = wait_for(
                sensor,
                lambda e: isinstance(e, FileOpen) and e.pid == attacker.pid and e.tid in owned,
                timeout=60,
                count=len(owned),
            )
            assert {e.tid for e in got} == owned
            assert all(e.path == str(fifo) for e in got)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sensor.poll(0.1)
            after = sensor.stats().kinds["file_open"]
            if (after.produced - before.produced) + (after.unmatched - before.unmatched) >= started:
                break
        # every open of the attacker's is accounted for: reported or counted lost
        assert (after.produced - before.produced) + (after.unmatched - before.unmatched) >= started
        if store:
            assert after.unmatched == before.unmatched
        elif hashed > stash:
            assert after.unmatched - before.unmatched > 0


COLLIDER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *fifo, *mine;
static int target, loops;

/* a thread whose id equals the target's modulo 16384 (and so modulo every
 * smaller power of two) blocks in a write open of the FIFO, then opens its
 * own file loops times; any other thread ends at once */
static void *thread(void *arg)
{
	int tid = syscall(SYS_gettid), fd;

	(void)arg;
	if (tid == target || tid % 16384 != target % 16384)
		return NULL;
	printf("%d\n", tid);
	fflush(stdout);
	fd = open(fifo, O_WRONLY); /* blocks until a reader opens the FIFO */
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < loops; i++) {
		fd = open(mine, O_WRONLY | O_CREAT, 0644);
		if (fd >= 0)
			close(fd);
	}
	return arg;
}

int main(int argc, char **argv)
{
	pthread_t t;
	void *hit = NULL;

	if (argc != 5)
		return 2;
	target = atoi(argv[1]);
	fifo = argv[2];
	mine = argv[3];
	loops = atoi(argv[4]);
	getchar(); /* the test may aim the next thread id first */
	for (int i = 0; i < 400000 && !hit; i++) {
		if (pthread_create(&t, NULL, thread, &t) != 0)
			return 1;
		pthread_join(t, &hit);
	}
	return hit ? 0 : 1;
}
"""

VICTIM_OPENS_C = r"""
import os, sys

path = sys.argv[1]
print(os.getpid(), flush=True)
for line in sys.stdin:
    for _ in range(int(line)):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    print("done", flush=True)
"""


def test_a_thread_with_a_colliding_id_cannot_take_or_falsify_another_threads_call(
    public_dir: Path, tmp_path: Path
) -> None:
    """A call's arguments wait for its exit in the slot of its thread id:
    an unprivileged attacker that makes a thread whose id equals a victim's
    modulo the slot count of a folded index (16384 here) cannot take the
    victim's slot, make its open vanish or give it the attacker's
    arguments, neither while blocked in a write open (its arguments held
    all the while) nor while both open files as fast as they can. Every
    open of both is reported, each with its own path and thread."""
    loops = 2000
    src = public_dir / "collider.c"
    src.write_text(COLLIDER_C)
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(public_dir / "collider"), str(src)], check=True)
    fifo = public_dir / "fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o666)  # the attacker opens it for writing
    theirs = public_dir / "attacker-file"
    ours = tmp_path / "victim-file"
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    with ebpfsensor.Sensor(kinds={"file_open"}, log_file=None) as sensor:
        victim = subprocess.Popen(
            [*SYSTEM_PYTHON, VICTIM_OPENS_C, str(ours)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        attacker = None
        try:
            assert victim.stdin is not None and victim.stdout is not None
            vpid = int(victim.stdout.readline())
            attacker = subprocess.Popen(
                [*cmd, str(public_dir / "collider"), str(vpid), str(fifo), str(theirs), str(loops)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert attacker.stdout is not None
            aim_next_tid(vpid, attacker)
            line = attacker.stdout.readline()
            assert line, f"no thread id colliding with {vpid} (exit {attacker.wait(timeout=60)})"
            atid = int(line)
            assert atid % 16384 == vpid % 16384 and atid != vpid
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with open(f"/proc/{attacker.pid}/task/{atid}/syscall") as f:
                    if f.read().split()[0] in ("2", "257", "56"):
                        break
                time.sleep(0.05)
            # the victim opens while the colliding thread holds its call
            victim.stdin.write("1\n")
            victim.stdin.flush()
            assert victim.stdout.readline() == "done\n"
            # a reader releases the attacker's open; then both open at once
            rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            victim.stdin.write(f"{loops}\n")
            victim.stdin.flush()
            assert victim.stdout.readline() == "done\n"
            assert attacker.wait(timeout=120) == 0
            os.close(rfd)
            got_victim = wait_for(
                sensor, lambda e: isinstance(e, FileOpen) and e.pid == vpid, timeout=30, count=1 + loops
            )
            got_attacker = wait_for(
                sensor,
                lambda e: isinstance(e, FileOpen) and e.pid == attacker.pid and e.uid == NOBODY,
                timeout=30,
                count=1 + loops,
            )
        finally:
            if victim.stdin is not None:
                victim.stdin.close()
            victim.wait(timeout=30)
            if victim.stdout is not None:
                victim.stdout.close()
            if attacker is not None:
                attacker.kill()
                attacker.wait(timeout=30)
                for pipe in (attacker.stdin, attacker.stdout):
                    if pipe is not None:
                        pipe.close()
    assert all(
        (e.tid, e.path, e.arg_path, e.flags & 0o3, e.uid, e.result >= 0) == (vpid, str(ours), str(ours), 1, 0, True)
        for e in got_victim
    ), [e for e in got_victim if e.path != str(ours)][:3]
    assert got_attacker[0].path == str(fifo) and got_attacker[0].arg_path == str(fifo)
    assert all(
        (e.tid, e.path, e.arg_path, e.flags & 0o3, e.uid) == (atid, str(theirs), str(theirs), 1, NOBODY)
        for e in got_attacker[1:]
    )


# the system interpreter, which an unprivileged user can run (pyenv's, under
# /root, is root's alone), isolated from the environment and site packages
SYSTEM_PYTHON = ["/usr/bin/python3", "-I", "-S", "-c"]


def mine(e: Any, child: dict[str, Any]) -> bool:
    """An event of the child's script (setpriv, the same process, makes
    calls of its own as root before it execs the interpreter)."""
    return bool(e.pid == child["pid"] and e.uid == NOBODY and e.comm.startswith("python"))


CONNECT_ASKS_C = r"""
import json, os, socket, sys

port, unix_link = int(sys.argv[1]), sys.argv[2]
out = []
for family, kind, host in (
    (socket.AF_INET, socket.SOCK_DGRAM, "0.0.0.0"),
    (socket.AF_INET, socket.SOCK_STREAM, "0.0.0.0"),
    (socket.AF_INET6, socket.SOCK_DGRAM, "::"),
):
    s = socket.socket(family, kind)
    s.connect((host, port))
    out.append([s.fileno(), s.getpeername()[:2]])
u = socket.socket(socket.AF_UNIX)
u.connect(unix_link)
out.append([u.fileno(), u.getpeername()])
print(json.dumps({"pid": os.getpid(), "connects": out}))
"""


def test_connect_reports_the_peer_the_kernel_connected_to(sensor: ebpfsensor.Sensor, public_dir: Path) -> None:
    """The address a connect() names is not always the peer it reaches: the
    kernel routes 0.0.0.0 and :: to loopback, and a unix socket is reached
    through whatever name (a symlink here) resolves to it. The event's peer
    was the caller's sockaddr, read from its memory; it is the socket's peer,
    as getpeername() gives it."""
    with (
        socket.socket(socket.AF_INET) as tcp,
        socket.socket(socket.AF_UNIX) as unix,
    ):
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        port = tcp.getsockname()[1]
        name = str(public_dir / "sock")
        unix.bind(name)
        unix.listen(4)
        os.chmod(name, 0o777)
        (public_dir / "link").symlink_to(name)
        out = as_nobody([*SYSTEM_PYTHON, CONNECT_ASKS_C, str(port), str(public_dir / "link")], stdout=subprocess.PIPE)
        child = json.loads(out.stdout)
        events = wait_for(sensor, lambda e: isinstance(e, NetConnect) and mine(e, child), count=4)
    for e, (fd, peer) in zip(events, child["connects"], strict=True):
        assert (e.fd, e.result, e.uid) == (fd, 0, NOBODY)
        if e.family == socket.AF_UNIX:
            assert e.remote_path == peer == name
        else:
            assert [e.remote_address, e.remote_port] == peer
            assert e.remote_address in ("127.0.0.1", "::1")


CONNECT_RACE_C = r"""
import ctypes, json, mmap, os, signal, socket, sys

libc = ctypes.CDLL(None, use_errno=True)


class SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16), ("addr", ctypes.c_uint32),
                ("zero", ctypes.c_char * 8)]


port_a, port_b, n = (int(a) for a in sys.argv[1:4])
a, b = socket.htons(port_a), socket.htons(port_b)
# the sockaddr in memory shared with a forked flipper: it runs beside the
# connects, not taking turns with them under one interpreter lock
shared = mmap.mmap(-1, ctypes.sizeof(SockaddrIn))
sa = SockaddrIn.from_buffer(shared)
sa.family, sa.port, sa.addr = socket.AF_INET, a, int.from_bytes(socket.inet_aton("127.0.0.1"), "little")
cpus = sorted(os.sched_getaffinity(0))
flipper = os.fork()
if flipper == 0:
    # on a CPU of its own where there is one
    os.sched_setaffinity(0, {cpus[-1]})
    while True:
        sa.port = b
        sa.port = a
os.sched_setaffinity(0, {cpus[0]})
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
peers = []
for _ in range(n):
    rc = libc.connect(s.fileno(), ctypes.byref(sa), ctypes.sizeof(sa))
    peers.append(s.getpeername()[1] if rc == 0 else -ctypes.get_errno())
os.kill(flipper, signal.SIGKILL)
os.waitpid(flipper, 0)
print(json.dumps({"pid": os.getpid(), "fd": s.fileno(), "peers": peers}))
"""


def test_connect_peer_survives_a_rewritten_sockaddr(sensor: ebpfsensor.Sensor) -> None:
    """A process sharing the caller's memory flips the port in the sockaddr
    the caller passes, on another CPU, while it connects a UDP socket over
    and over: the port read from its memory at sys_enter and the one the
    kernel copied an instant later differ now and then (more than half of
    2000 connects reported the wrong peer when the event took the former; a
    race, so a run can miss). Every event names the peer getpeername()
    then gives."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as x, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as y:
        x.bind(("127.0.0.1", 0))
        y.bind(("127.0.0.1", 0))
        ports = [x.getsockname()[1], y.getsockname()[1]]
        n = 2000
        out = as_nobody([*SYSTEM_PYTHON, CONNECT_RACE_C, *map(str, ports), str(n)], stdout=subprocess.PIPE)
    child = json.loads(out.stdout)
    events = wait_for(sensor, lambda e: isinstance(e, NetConnect) and mine(e, child) and e.fd == child["fd"], count=n)
    assert all(p in ports for p in child["peers"])
    wrong = [(e.remote_port, peer) for e, peer in zip(events, child["peers"], strict=True) if e.remote_port != peer]
    assert wrong == [], f"{len(wrong)} of {n} connects reported another peer than the kernel's"


THREAD_THEN_EXIT = """
import threading
tids = []
t = threading.Thread(target=lambda: tids.append(threading.get_native_id()))
t.start()
t.join()
print(tids[0], flush=True)
"""


def spawn_with_pid(pid: int, argv: list[str]) -> subprocess.Popen[bytes] | None:
    """Start argv under a chosen pid (ns_last_pid: the next fork gets the
    one after it), or None when another process took it first."""
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    p = subprocess.Popen(argv)
    if p.pid == pid:
        return p
    p.wait()
    return None


def test_a_reused_pid_does_not_inherit_a_stale_exclusion(public_dir: Path) -> None:
    """The classic fork tracepoint cannot tell a thread from a process, so a
    thread of an excluded process was entered under its thread id; nothing
    took it out, and a later, unrelated process given that number was
    excluded, for good where the rule had descendants. The entry now goes
    when the thread exits, and a process whose parent is not excluded never
    inherits a stale one."""
    python = public_dir / "threaded-python"
    shutil.copy(os.path.realpath("/usr/bin/python3"), python)
    rule = ebpfsensor.ExcludeExecutable(str(python), descendants=True)
    kinds = {"process_exec", "process_fork", "process_exit"}
    with ebpfsensor.Sensor(
        kinds=kinds, hook_variants={"tp"}, exclusions=(rule,), exclude_self=False, log_file=None
    ) as s:
        assert {h: i.variant for h, i in s.hooks().items()} == {"exec": "tp", "fork": "tp", "exit": "tp"}
        out = subprocess.run([str(python), "-I", "-S", "-c", THREAD_THEN_EXIT], capture_output=True, check=True)
        tid = int(out.stdout)
        for _ in range(5):
            victim = spawn_with_pid(tid, ["/bin/true", "reused-pid"])
            if victim is not None:
                break
        else:
            pytest.fail(f"pid {tid} was taken by other processes five times")
        victim.wait()
        (e,) = wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == tid)
        assert e.argv == ["/bin/true", "reused-pid"]
        assert s.exclusions()[0].hits.get("process_exec", 0) == 1  # the excluded python's own exec


ERESTARTSYS = 512

SWAP_WHILE_BLOCKED_C = r"""
import ctypes, json, os, signal, sys, threading, time

libc = ctypes.CDLL(None, use_errno=True)
fifo, decoy = sys.argv[1], sys.argv[2]
path = ctypes.create_string_buffer(fifo.encode(), 4096)
# a handler without SA_RESTART: the signal ends the blocked open with EINTR
signal.signal(signal.SIGUSR1, lambda *_: None)
out = {"pid": os.getpid()}


def opener():
    out["tid"] = threading.get_native_id()
    out["rc"] = libc.open(path, os.O_RDONLY)  # blocks: the FIFO has no writer
    out["errno"] = ctypes.get_errno()


t = threading.Thread(target=opener)
t.start()
while "tid" not in out:
    time.sleep(0.001)
# the kernel has its copy of the string once the thread sleeps in the open
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    with open(f"/proc/self/task/{out['tid']}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "S":
            break
    time.sleep(0.001)
time.sleep(0.05)
path.value = decoy.encode()
signal.pthread_kill(t.ident, signal.SIGUSR1)
t.join()
print(json.dumps(out))
"""


def swap_while_blocked(fifo: Path, decoy: Path) -> dict[str, Any]:
    """As nobody: open() the FIFO in one thread, which blocks after the
    kernel copied the path; rewrite the path to decoy; interrupt the open
    (EINTR). Returns the child's pid, the opener's tid, rc and errno."""
    os.mkfifo(fifo, 0o666)
    out = as_nobody([*SYSTEM_PYTHON, SWAP_WHILE_BLOCKED_C, str(fifo), str(decoy)], stdout=subprocess.PIPE)
    child: dict[str, Any] = json.loads(out.stdout)
    assert (child["rc"], child["errno"]) == (-1, errno.EINTR)
    return child


def fifo_of_length(base: Path, length: int) -> Path:
    """A path to a (future) FIFO, length bytes long, under base."""
    pad = length - len(f"{base}/") - len("/fifo")
    assert 0 < pad < 256
    (base / ("x" * pad)).mkdir(mode=0o777)
    return base / ("x" * pad) / "fifo"


# the longest string sys_enter keeps whole (ARG_COPY_LEN - 2 in bpf_src/events.h)
ARG_WHOLE = 102


@pytest.mark.parametrize("length", [60, ARG_WHOLE, ARG_WHOLE + 1, 200])
def test_a_path_rewritten_while_the_call_blocks_is_flagged(
    sensor: ebpfsensor.Sensor, public_dir: Path, length: int
) -> None:
    """A failed open's path was the caller's string as sys_exit read it: a
    thread could rewrite it while the open blocked and have the event name
    another file. The event now names the string as it was when the call
    began, where the copy sys_enter keeps holds it whole, and says the
    string changed. A longer one is not checked for an open (an open that
    succeeds names the file it opened; the check would cost every open a
    second read): what sys_exit read, and the event says it is unchecked."""
    fifo = fifo_of_length(public_dir, length)
    decoy = public_dir / "decoy"
    child = swap_while_blocked(fifo, decoy)
    (e,) = wait_for(sensor, lambda e: isinstance(e, FileOpen) and e.tid == child["tid"] and mine(e, child))
    # sys_exit runs before the signal turns the kernel's restart code into EINTR
    assert e.result == -ERESTARTSYS and not e.resolved
    if sensor.hooks()["file_openat_exit"].variant == "fentry":
        # the open's fentry variant (test_open_fexit.py) reports the
        # kernel's copy of the name, which no rewrite reaches
        assert (e.path, e.arg_path, e.path_source) == (str(fifo), str(fifo), PathSource.KERNEL)
    elif length <= ARG_WHOLE:
        assert (e.path, e.arg_path, e.path_source) == (str(fifo), str(fifo), PathSource.SYSCALL_ARG_CHANGED)
    else:
        assert (e.path, e.arg_path, e.path_source) == (str(decoy), str(decoy), PathSource.SYSCALL_ARG_UNCHECKED)


def test_a_path_rewritten_under_an_excluded_prefix_is_not_hidden(public_dir: Path) -> None:
    """The rewrite aimed under an excluded directory: the event read the
    rewritten path, matched the exclusion and was dropped. A string that
    changed during the call, or could not be checked, is never excluded:
    here a long one, which an open's check does not cover, reported as
    rewritten and unchecked."""
    excluded = public_dir / "excluded"
    excluded.mkdir(mode=0o777)
    rule = ebpfsensor.ExcludePathPrefix(str(excluded))
    with ebpfsensor.Sensor(
        kinds={"file_open"}, exclusions=(rule,), exclude_self=False, log_file=None, read_opens="all"
    ) as s:
        fifo = fifo_of_length(public_dir, 200)
        child = swap_while_blocked(fifo, excluded / "decoy")
        (e,) = wait_for(s, lambda e: isinstance(e, FileOpen) and e.tid == child["tid"] and mine(e, child))
        if s.hooks()["file_openat_exit"].variant == "fentry":
            # the kernel's copy of the name: the rewrite never reaches it
            assert (e.path, e.path_source) == (str(fifo), PathSource.KERNEL)
        else:
            assert (e.path, e.path_source) == (str(excluded / "decoy"), PathSource.SYSCALL_ARG_UNCHECKED)
        assert s.exclusions()[0].hits == {}


FLIP_MKDIR_C = r"""
import ctypes, json, mmap, os, sys

libc = ctypes.CDLL(None, use_errno=True)
a, b, n = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
# the name in memory shared with a forked flipper, which rewrites it on
# another CPU while this process makes and removes the directory
shared = mmap.mmap(-1, 4096)
name = (ctypes.c_char * 4096).from_buffer(shared)
name.value = a
cpus = sorted(os.sched_getaffinity(0))
flipper = os.fork()
if flipper == 0:
    os.sched_setaffinity(0, {cpus[-1]})
    while True:
        name.value = b
        name.value = a
os.sched_setaffinity(0, {cpus[0]})
base = os.path.dirname(a.decode())
made = []
for _ in range(n):
    before = set(os.listdir(base))
    libc.mkdir(name, 0o700)
    new = set(os.listdir(base)) - before
    # the name the kernel used: a, b, or one torn by a flip mid-copy
    made.append(os.path.join(base, new.pop()) if new else None)
    if made[-1]:
        os.rmdir(made[-1])
os.kill(flipper, 9)
os.waitpid(flipper, 0)
print(json.dumps({"pid": os.getpid(), "made": made}))
"""


def test_a_long_path_rewritten_during_the_call_is_flagged(sensor: ebpfsensor.Sensor, public_dir: Path) -> None:
    """Names longer than the copy sys_enter keeps whole are checked by
    length and a keyed hash: a process sharing the caller's memory flips
    the name between two such names while the caller makes directories.
    The name sys_exit reads often differs from the one sys_enter read, and
    such events say so. What this cannot see is a flip in the instant
    between sys_enter and the kernel's own copy: a flipper this fast gets
    events through unflagged that name another directory than the one made
    (from a tenth to more than half of the unflagged ones in runs here), but
    not without flagged ones beside them. Where a path_mkdir hook runs,
    every event names the directory the kernel made."""
    names = [str(public_dir / (c * 150)) for c in "ab"]
    n = 300
    out = as_nobody([*SYSTEM_PYTHON, FLIP_MKDIR_C, *names, str(n)], stdout=subprocess.PIPE)
    child = json.loads(out.stdout)
    events = wait_for(sensor, lambda e: isinstance(e, DirCreate) and mine(e, child), count=n)
    assert len(child["made"]) == n
    if sensor.hooks()["path_mkdir"].variant:
        made = [(e.path, e.path_source) for e, path in zip(events, child["made"], strict=True) if path is not None]
        assert made == [(path, PathSource.KERNEL) for path in child["made"] if path is not None]
        return
    flagged = [e for e in events if e.path_source == PathSource.SYSCALL_ARG_CHANGED]
    assert flagged, "no rewrite was seen in 300 calls"
    assert {e.path_source for e in events} <= {PathSource.SYSCALL_ARG, PathSource.SYSCALL_ARG_CHANGED}


REFUSED_UNDER_COLLISION_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *mine;
static int target;
static atomic_int found, stop;

/* a thread whose id equals the main thread's modulo 16384 (and so modulo
 * every smaller power of two) opens its own file read-only until told to
 * stop; any other thread ends at once */
static void *thread(void *arg)
{
	int tid = syscall(SYS_gettid), fd;

	if (tid == target || tid % 16384 != target % 16384)
		return NULL;
	printf("%d\n", tid);
	fflush(stdout);
	atomic_store(&found, 1);
	while (!atomic_load(&stop)) {
		fd = open(mine, O_RDONLY);
		if (fd >= 0)
			close(fd);
	}
	return arg;
}

/* argv: the file the main thread may not read, the colliding thread's own
 * file, how many refused opens */
int main(int argc, char **argv)
{
	pthread_t t;
	int opens, refused = 0, fd;

	if (argc != 4)
		return 2;
	mine = argv[2];
	opens = atoi(argv[3]);
	target = getpid();
	getchar(); /* the test may aim the next thread id first */
	for (int i = 0; i < 400000 && !atomic_load(&found); i++) {
		if (pthread_create(&t, NULL, thread, NULL) != 0)
			return 1;
		while (!atomic_load(&found) && pthread_tryjoin_np(t, NULL) != 0)
			sched_yield();
	}
	if (!atomic_load(&found))
		return 1;
	/* the main thread's refused opens while the other thread opens */
	for (int i = 0; i < opens; i++) {
		fd = open(argv[1], O_RDONLY);
		if (fd >= 0)
			close(fd);
		else if (errno == EACCES)
			refused++;
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("%d\n", refused);
	return 0;
}
"""


def aim_next_tid(target: int, proc: subprocess.Popen[str]) -> None:
    """Let proc, waiting for a line before its search for a thread id
    equal to target's modulo 16384, find one at its first thread: the
    kernel's next id is set to a free one (ns_last_pid), which saves
    creating up to 16384 threads (a minute under emulation). Another
    process may take the id first; the search then goes on as before."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    free = [
        c
        for c in range(target % 16384, pid_max, 16384)
        if c >= 300 and c != target and not os.path.exists(f"/proc/{c}")  # below 300: reserved
    ]
    if free:
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(free[0] - 1))
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def collider_under_pid(pid: int, argv: list[str]) -> subprocess.Popen[str] | None:
    """Start argv under process id pid, which may be above pid_max (raised
    for the fork, then restored), or None when another process took it."""
    with open("/proc/sys/kernel/pid_max") as f:
        saved = f.read().strip()
    try:
        if pid >= int(saved):
            with open("/proc/sys/kernel/pid_max", "w") as f:
                f.write(str(pid + 1024))
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    finally:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(saved)
    if p.pid == pid:
        return p
    p.kill()
    p.wait()
    for pipe in (p.stdin, p.stdout):
        if pipe is not None:
            pipe.close()
    return None


@pytest.mark.parametrize("high", [False, True], ids=["slot", "above-call-slots"])
def test_a_colliding_thread_cannot_make_a_refused_read_only_open_vanish(public_dir: Path, high: bool) -> None:
    """Under the default open policy a read-only open the kernel refused is
    reported (an attempt on a file the caller may not read). Its arguments
    waited for its exit in a slot indexed by the thread id modulo 16384: an
    unprivileged process whose second thread's id collided with the first's
    overwrote the slot with its own read-only opens between the refused
    open's sys_enter and sys_exit, which then found no arguments of its own
    and only counted the open. Now each thread's call waits in the slot of
    its exact id, or under its exact id above CALL_SLOTS, and where the
    kernel gives BPF the task's saved registers a read-only open or openat
    waits nowhere (its exit reads them): every refused open is reported,
    with its thread, path and error."""
    opens = 3000
    src = public_dir / "refuser.c"
    src.write_text(REFUSED_UNDER_COLLISION_C)
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(public_dir / "refuser"), str(src)], check=True)
    secret = public_dir / "secret"
    secret.write_text("s")
    secret.chmod(0o600)  # root's alone
    theirs = public_dir / "readable"
    theirs.write_text("r")
    theirs.chmod(0o644)
    argv = [
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
        str(public_dir / "refuser"), str(secret), str(theirs), str(opens),
    ]  # fmt: skip
    with ebpfsensor.Sensor(kinds={"file_open"}, log_file=None) as sensor:
        before = sensor.stats().kinds["file_open"]
        fentry = sensor.hooks()["file_openat_exit"].variant == "fentry"
        if high:
            pid = CALL_SLOTS + 7232  # likely free: above the default pid_max
            for attempt in range(5):
                proc = collider_under_pid(pid + attempt, argv)
                if proc is not None:
                    break
            else:
                pytest.fail(f"process ids {pid}..{pid + 4} were taken by other processes")
            assert proc.pid >= CALL_SLOTS
        else:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            aim_next_tid(proc.pid, proc)
            line = proc.stdout.readline()
            assert line, f"no thread id colliding with {proc.pid} (exit {proc.wait(timeout=60)})"
            other = int(line)
            assert other % 16384 == proc.pid % 16384 and other != proc.pid
            refused = int(proc.stdout.readline())
            assert proc.wait(timeout=120) == 0
        finally:
            proc.kill()
            proc.wait(timeout=30)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        assert refused == opens
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while len(got) < opens and time.monotonic() < deadline:
            # (setpriv, the same process, opens /etc/passwd and the like first)
            got += [e for e in sensor.poll(0.1) if isinstance(e, FileOpen) and (e.pid, e.comm) == (proc.pid, "refuser")]
        after = sensor.stats().kinds["file_open"]
    lost = after.unmatched - before.unmatched
    assert len(got) == opens, f"{len(got)} of {opens} refused opens reported, {lost} counted unmatched"
    for e in got:
        assert (e.tid, e.uid, e.gid) == (proc.pid, NOBODY, NOBODY)
        assert (e.path, e.arg_path, e.result) == (str(secret), str(secret), -errno.EACCES)
        assert e.syscall_nr in nrs("openat", "open")
        assert (e.dirfd, e.flags & os.O_ACCMODE, e.mode) == (AT_FDCWD, os.O_RDONLY, 0)
        assert not e.created and not e.resolved
        # the pairs read the caller's string at the exit, unchecked; the
        # open's fentry variant (test_open_fexit.py) has the kernel's copy
        assert e.path_source == (PathSource.KERNEL if fentry else PathSource.SYSCALL_ARG_UNCHECKED)
    # the colliding thread's opens were read-only, of a file not watched: counted
    assert after.unwatched - before.unwatched > 0
    assert lost == 0


BLOCKED_OPENS = """
import os, sys, threading
readable, writable, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
threads = [threading.Thread(target=lambda: os.close(os.open(readable, os.O_RDONLY))) for _ in range(n)]
threads.append(threading.Thread(target=lambda: os.close(os.open(writable, os.O_WRONLY))))
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_threads_parked_in_read_only_opens_hold_no_stash_entry(public_dir: Path) -> None:
    """A thread above CALL_SLOTS kept its file call's arguments in the
    file_calls LRU hash from sys_enter to sys_exit, and an entry evicted
    there is a call lost. Threads parked in opens of a FIFO that no one
    writes held one entry each, read-only opens included. Where the kernel
    gives a task's saved registers to BPF (bpf_task_pt_regs, 5.15, through
    the trusted current task), a read-only open or openat reads its
    arguments there at sys_exit and stashes nothing: 64 threads parked in
    read-only opens hold no entry. The one parked in a write open holds its
    own: in its task storage where the kernel has it (5.11), else in the
    hash. Each open is then decided as before."""
    n = 64
    readable, writable = public_dir / "parked-r", public_dir / "parked-w"
    os.mkfifo(readable)
    os.mkfifo(writable)
    at_exit = kernel_has("BPF_FUNC_task_pt_regs", "BPF_FUNC_get_current_task_btf")
    with ebpfsensor.Sensor(kinds={"file_open"}, log_file=None, exclude_self=False, hook_variants=PAIRS) as sensor:
        assert sensor.hooks()["file_openat_exit"].variant == "tp"
        calls_fd = file_object(sensor).map_fd("file_calls")
        store = call_store(sensor)
        before = sensor.stats().kinds["file_open"]
        # the process and its threads above CALL_SLOTS
        with pids_above_call_slots():
            proc = subprocess.Popen([sys.executable, "-c", BLOCKED_OPENS, str(readable), str(writable), str(n)])
            try:
                parked: dict[int, int] = {}  # tid -> the open's access mode

                def all_parked() -> bool:
                    # the threads now in openat (the main thread's own opens, at
                    # start, are not a parked thread's)
                    parked.clear()
                    for task in Path(f"/proc/{proc.pid}/task").iterdir():
                        if int(task.name) == proc.pid:
                            continue
                        fields = (task / "syscall").read_text().split()
                        if fields[0] != "running" and int(fields[0]) in nrs("openat"):
                            parked[int(task.name)] = int(fields[3], 16) & os.O_ACCMODE
                    return len(parked) == n + 1

                deadline = time.monotonic() + 30
                while not all_parked() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert len(parked) == n + 1, f"{len(parked)} of {n + 1} threads parked in openat"
                assert min(parked) > CALL_SLOTS
                hashed = set()
                at, key = ffi.NULL, ffi.new("uint64_t *")
                while next_key(calls_fd, at, key, "file_calls"):
                    hashed.add(key[0] & 0xFFFFFFFF)
                    at, key = key, ffi.new("uint64_t *")
                readers = {t for t, mode in parked.items() if mode == os.O_RDONLY}
                (writer,) = {t for t, mode in parked.items() if mode == os.O_WRONLY}
                assert readers & hashed == (set() if at_exit else readers)
                if store is None:
                    assert writer in hashed
                else:
                    assert not hashed
                    try:
                        held = {t: stored_call(store, t) for t in parked}
                    except OSError as e:
                        # no PIDFD_THREAD (6.9): the writer's report below
                        # shows its call was kept
                        assert e.errno == errno.EINVAL, e
                    else:
                        # the writer's own storage holds its call, under its
                        # id; the readers have none
                        assert held[writer] is not None and writer.to_bytes(4, sys.byteorder) in held[writer]
                        assert {t for t in readers if held[t] is not None} == (set() if at_exit else readers)
                # unpark them all: a writer for the readers, a reader for the writer
                w = os.open(readable, os.O_WRONLY)
                r = os.open(writable, os.O_RDONLY | os.O_NONBLOCK)
                assert proc.wait(timeout=30) == 0
                os.close(w)
                os.close(r)
            finally:
                proc.kill()
                proc.wait(timeout=30)
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got += [e for e in sensor.poll(0.1) if isinstance(e, FileOpen) and e.pid == proc.pid]
        after = sensor.stats().kinds["file_open"]
    # the write open reported, field by field; the read-only ones (a FIFO,
    # not watched) counted, none lost
    assert [(e.tid, e.path, e.arg_path, e.flags & os.O_ACCMODE, e.result >= 0) for e in got] == [
        (writer, str(writable), str(writable), os.O_WRONLY, True)
    ]
    assert after.unwatched - before.unwatched >= n
    assert after.unmatched == before.unmatched
