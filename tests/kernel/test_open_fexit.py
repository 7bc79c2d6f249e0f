# SPDX-License-Identifier: Apache-2.0
"""The open hooked inside the kernel (one fexit program on do_filp_open,
the open hooks' fentry variant) where the kernel allows it, else the
tracepoint pairs: which one runs and why, and the opens each reports, field
by field, from real processes, io_uring's included."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kernel.test_file_events import AT_FDCWD, Backlog, Clock, check_header, mine, nrs
from tests.kernel.test_read_open_policy import sb_dev

import ebpfsensor
from ebpfsensor.diagnostic_overhead import AttachFloor, FloorTarget
from ebpfsensor.errors import LibbpfError
from ebpfsensor.events import FileCreate, FileOpen
from ebpfsensor.events.file import PathSource

pytestmark = pytest.mark.bpf

NOBODY = 65534
#: io_uring_enter, on x86-64 and arm64 alike
NR_IO_URING_ENTER = 426
#: why a kernel refuses the fentry variant (objects.py's words)
FENTRY_REFUSAL = ("refuses fexit programs", "need the kernel's own BTF", "not among the allowed variants")

#: an unprivileged process's two read-only opens: a plain open(2) of argv[1]
#: and an io_uring IORING_OP_OPENAT of argv[2] (raw syscalls, no liburing);
#: prints its pid, then each result (the fd or -errno)
OPENER_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct io_uring_params p;
    struct io_uring_sqe *sqes, *sqe;
    struct io_uring_cqe *cqe;
    unsigned *sq_tail, *sq_mask, *sq_array, tail, idx, head;
    char *sq, *cq;
    int ring, fd;

    if (argc != 3)
        return 2;
    printf("%d\n", getpid());
    fd = open(argv[1], O_RDONLY);
    printf("%d\n", fd < 0 ? -errno : fd);
    memset(&p, 0, sizeof(p));
    ring = syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) {
        printf("setup %d\n", -errno);
        return 1;
    }
    sq = mmap(0, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
          MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    cq = mmap(0, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE,
          MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
        return 1;
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    tail = *sq_tail;
    idx = tail & *sq_mask;
    sqe = &sqes[idx];
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[2];
    sqe->open_flags = O_RDONLY;
    sq_array[idx] = idx;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        printf("enter %d\n", -errno);
        return 1;
    }
    head = __atomic_load_n((unsigned *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
    cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) + (head & *(unsigned *)(cq + p.cq_off.ring_mask));
    printf("%d\n", cqe->res);
    return 0;
}
"""


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    """A directory every user may enter: 'secret' (root's, 0600: refused
    to others), 'shared' (0644), 'true' (a copy of /bin/true), all three
    watched by the module's sensor; 'plain' (0644), not watched; and the
    opener compiled."""
    top = Path(os.path.realpath("/var/tmp")) / f"ebpfsensor-fexit-{os.getpid()}"
    top.mkdir(mode=0o755)
    try:
        (top / "secret").write_text("s")
        (top / "secret").chmod(0o600)
        for name in ("shared", "plain"):
            (top / name).write_text("x")
            (top / name).chmod(0o644)
        shutil.copy(shutil.which("true") or "/bin/true", top / "true")
        (top / "true").chmod(0o755)
        (top / "opener.c").write_text(OPENER_C)
        cc = shutil.which("clang") or "gcc"
        subprocess.run([cc, "-O1", "-o", str(top / "opener"), str(top / "opener.c")], check=True, timeout=120)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def sensor(base: Path) -> Iterator[ebpfsensor.Sensor]:
    """The default policy, file_open and file_create; this process's opens
    reported."""
    watched = [str(base / n) for n in ("secret", "shared", "true")]
    with ebpfsensor.Sensor(
        kinds={"file_open", "file_create"}, exclude_self=False, log_file=None, watched_files=watched
    ) as s:
        yield s


@pytest.fixture
def d(tmp_path: Path) -> Path:
    return Path(os.path.realpath(tmp_path))


def open_hooks(sensor: ebpfsensor.Sensor) -> dict[str, Any]:
    """The open's hooks (file_open*, file_creat*) and what became of each."""
    return {h: i for h, i in sensor.hooks().items() if h.startswith(("file_open", "file_creat"))}


def open_variant(sensor: ebpfsensor.Sensor) -> str:
    """The one variant every open hook runs: the fentry program or the pairs."""
    variants = {i.variant for i in open_hooks(sensor).values()}
    assert len(variants) == 1, f"the open's hooks disagree: {open_hooks(sensor)}"
    return str(variants.pop())


def marker(sensor: ebpfsensor.Sensor, d: Path) -> None:
    """A write open of this process, waited for: every event of the opens
    before it has been drained by then."""
    m = d / f"marker-{time.monotonic_ns()}"
    os.close(os.open(m, os.O_WRONLY | os.O_CREAT, 0o600))
    Backlog.of(sensor).wait(mine(FileCreate, path=str(m)))


def test_one_variant_for_every_open_hook(sensor: ebpfsensor.Sensor) -> None:
    """Either the fentry program runs (for all the open's hooks) or the
    tracepoint pairs do, each hook saying why fentry was refused: never
    both, so no open is reported twice."""
    hooks = open_hooks(sensor)
    assert "file_openat_exit" in hooks and "file_openat2_enter" in hooks
    variant = open_variant(sensor)
    health = sensor.health().kinds["file_open"]
    assert health.live and health.source == f"ebpf:{variant}" and not health.reason
    if variant == "fentry":
        assert all(not i.failures for i in hooks.values()), hooks
    else:
        assert variant == "tp"
        for info in hooks.values():
            (why,) = [f for f in info.failures if f.startswith("fentry: ")]
            assert any(r in why for r in FENTRY_REFUSAL), why


def test_a_full_trampoline_moves_every_open_hook_to_the_pairs(d: Path) -> None:
    """do_filp_open's trampoline filled by another tool's fexit programs
    (the kernel takes a few dozen on one function): the fentry program
    loads but cannot attach. Every open hook runs that one program
    (ES_SHARED_HOOK), so every one gives fentry up with it, says why, and
    the pairs report each open once. Where the kernel refuses
    fexit programs, the floor's first load says so and the pairs run."""
    target = FloorTarget("file_openat_exit", "fexit/do_filp_open", "handle_floor_fexit_fentry", "do_filp_open")
    floor: list[AttachFloor] = []
    full: LibbpfError | None = None
    try:
        while full is None and len(floor) < 100:
            try:
                floor.append(AttachFloor([target]))
            except LibbpfError as exc:  # PrivilegeError too
                full = exc
        assert full is not None, "100 fexit programs attached to do_filp_open"
        if floor:
            assert full.errno == errno.E2BIG, full
        with ebpfsensor.Sensor(kinds={"file_open", "file_create"}, exclude_self=False, log_file=None) as s:
            hooks = open_hooks(s)
            assert open_variant(s) == "tp"
            (why,) = [f for f in hooks["file_openat_exit"].failures if f.startswith("fentry: ")]
            if floor:
                # loaded, refused at attach: not the kernel's refusal of fexit
                assert not any(r in why for r in FENTRY_REFUSAL), why
                assert "handle_file_openat_exit_fentry (fexit/do_filp_open)" in why, why
                for info in hooks.values():
                    assert [f for f in info.failures if f.startswith("fentry: ")] == [why], info
            else:
                assert any(r in why for r in FENTRY_REFUSAL), why
            p = d / "once"
            with Clock() as clock:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
            b = Backlog.of(s)
            ev = b.wait(mine(FileCreate, path=str(p)))[0]
            check_header(ev, clock, nrs("openat", "open"), fd)
            marker(s, d)
            # drained up to the marker's open: no second record of it
            assert [e for e in b.events if isinstance(e, (FileOpen, FileCreate)) and e.path == str(p)] == []
    finally:
        for f in floor:
            f.close()


def test_tp_forced(d: Path) -> None:
    """Configured out (hook_variants without fentry), the pairs run, say
    so, and report."""
    with ebpfsensor.Sensor(kinds={"file_open"}, hook_variants={"tp"}, exclude_self=False, log_file=None) as s:
        assert open_variant(s) == "tp"
        assert all(
            any(f.startswith("fentry: not among the allowed variants") for f in i.failures)
            for i in open_hooks(s).values()
        )
        p = d / "forced"
        with Clock() as clock:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        ev = Backlog.of(s).wait(mine(FileOpen, path=str(p)))[0]
        check_header(ev, clock, nrs("openat", "open"), fd)
        assert (ev.created, ev.arg_path, ev.path_source) == (True, str(p), PathSource.KERNEL)


def test_write_open_and_create(sensor: ebpfsensor.Sensor, d: Path) -> None:
    p = d / "w.txt"
    with Clock() as clock:
        made = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        os.write(made, b"x")
        trunc = os.open(p, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    os.close(made)
    os.close(trunc)
    st = os.stat(p)
    b = Backlog.of(sensor)
    c = b.wait(mine(FileCreate, path=str(p)))[0]
    check_header(c, clock, nrs("openat", "open"), made)
    assert (c.created, c.resolved, c.ino, c.dev, c.dirfd, c.arg_path, c.path_source) == (
        True,
        True,
        st.st_ino,
        st.st_dev,
        AT_FDCWD,
        str(p),
        PathSource.KERNEL,
    )
    assert (c.flags, c.mode) == (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    o = b.wait(mine(FileOpen, path=str(p)))[0]
    check_header(o, clock, nrs("openat", "open"), trunc)
    assert (o.created, o.ino, o.flags, o.mode, o.path_source) == (
        False,
        st.st_ino,
        os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC,
        0,
        PathSource.KERNEL,
    )


def test_read_only_opens(sensor: ebpfsensor.Sensor, base: Path, d: Path) -> None:
    """As uid 65534: a refused open of a watched file is reported; an
    io_uring open of a watched file is reported through the fentry program
    (the tracepoint pairs never see it: the evasion it closes). An
    unwatched read-only open is counted, not reported."""
    variant = open_variant(sensor)
    before = sensor.stats().kinds["file_open"].unwatched
    with Clock() as clock:
        fd = os.open(base / "plain", os.O_RDONLY)
        os.close(fd)
        argv = [str(base / n) for n in ("opener", "secret", "shared")]
        out = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv],
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout.split()
    pid, refused, ring_fd = (int(x) for x in out)
    assert refused == -errno.EACCES and ring_fd >= 0
    b = Backlog.of(sensor)
    ev = b.wait(mine(FileOpen, pid=pid, path=str(base / "secret")))[0]
    check_header(ev, clock, nrs("openat", "open"), -errno.EACCES, pid=pid)
    assert (ev.uid, ev.gid, ev.comm, ev.ino, ev.resolved, ev.flags, ev.arg_path) == (
        NOBODY,
        NOBODY,
        "opener",
        0,
        False,
        os.O_RDONLY,
        str(base / "secret"),
    )
    # the kernel's copy of the name, or (the pair) the caller's string read
    # at the exit, which a read-only open's entry did not read
    assert ev.path_source == (PathSource.KERNEL if variant == "fentry" else PathSource.SYSCALL_ARG_UNCHECKED)
    marker(sensor, d)
    ring = [e for e in b.events if isinstance(e, FileOpen) and e.path == str(base / "shared")]
    if variant == "fentry":
        (ev,) = ring
        st = os.stat(base / "shared")
        # made inline in io_uring_enter or by the ring's worker thread (its
        # own tid), both with io_uring_enter's number; before 5.12 the
        # workers are kernel threads of their own (io_wqe_worker-N), which
        # act with the submitter's credentials
        worker = ev.pid != pid
        if worker:
            assert ev.comm.startswith("io_wqe_worker"), ev
        check_header(ev, clock, {NR_IO_URING_ENTER}, ring_fd, pid=ev.pid if worker else pid)
        assert ev.dev in (st.st_dev, sb_dev(base / "shared"))
        assert (ev.uid, ev.ino, ev.resolved, ev.arg_path, ev.dirfd, ev.path_source) == (
            NOBODY,
            st.st_ino,
            True,
            str(base / "shared"),
            AT_FDCWD,
            PathSource.KERNEL,
        )
        # io_uring's inline try adds O_NONBLOCK to the kernel's flags
        assert ev.flags & ~os.O_NONBLOCK == os.O_RDONLY
    else:
        assert ring == []
    assert not [e for e in b.events if isinstance(e, FileOpen) and e.path == str(base / "plain")]
    assert sensor.stats().kinds["file_open"].unwatched >= before + 1


def test_exec_is_not_an_open(sensor: ebpfsensor.Sensor, base: Path, d: Path) -> None:
    """Executing a watched file is an exec, not a FileOpen; reading it is."""
    prog = base / "true"
    child = subprocess.Popen([str(prog)])
    assert child.wait(timeout=30) == 0
    with Clock() as clock:
        fd = os.open(prog, os.O_RDONLY)
    os.close(fd)
    b = Backlog.of(sensor)
    ev = b.wait(mine(FileOpen, path=str(prog)))[0]
    check_header(ev, clock, nrs("openat", "open"), fd)
    marker(sensor, d)
    assert not [e for e in b.events if isinstance(e, FileOpen) and e.pid == child.pid], b.events
