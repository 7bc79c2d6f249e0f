# SPDX-License-Identifier: Apache-2.0
"""Attacks by unprivileged users on the events: each is performed for real by a
child that runs as nobody, and each test asserts that the event arrives
intact, or that the loss is counted and the attack refused or reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.kernel.conftest import wait_for

import ebpfsensor
from ebpfsensor import ProcessExec
from ebpfsensor.events import FileOpen

pytestmark = pytest.mark.bpf

NOBODY = 65534


def as_nobody(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run argv as an unprivileged user (uid and gid 65534, no groups)."""
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]
    return subprocess.run(cmd, check=True, timeout=30, **kwargs)  # type: ignore[call-overload, no-any-return]


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


def test_threads_blocked_in_file_syscalls_cannot_switch_file_events_off(
    sensor: ebpfsensor.Sensor, public_dir: Path, tmp_path: Path
) -> None:
    """More threads than the stash has entries, each blocked in open() on a
    FIFO, held every entry of the plain hash the arguments were stashed in:
    every other process's file syscalls were then dropped. Now the oldest
    entries are evicted: another process's open is still reported, and every
    one of the attacker's opens is either reported or counted as unmatched
    (its arguments were evicted before it returned)."""
    readers = 17000  # more than STASH_ENTRIES (bpf_src/maps.bpf.h)
    src = public_dir / "readers.c"
    src.write_text(FIFO_READERS_C)
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(public_dir / "readers"), str(src)], check=True)
    fifo = public_dir / "fifo"
    os.mkfifo(fifo, 0o666)
    before = sensor.stats().kinds["file_open"]
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    attacker = subprocess.Popen([*cmd, str(public_dir / "readers"), str(fifo), str(readers)], stdout=subprocess.PIPE)
    try:
        assert attacker.stdout is not None
        started = int(attacker.stdout.readline())
        assert started > 16384, f"only {started} threads started"
        deadline = time.monotonic() + 30
        while blocked_in_open(attacker.pid) < started and time.monotonic() < deadline:
            time.sleep(0.2)
        assert blocked_in_open(attacker.pid) == started
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
        attacker.wait(timeout=60)
        if attacker.stdout is not None:
            attacker.stdout.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        sensor.poll(0.1)
        after = sensor.stats().kinds["file_open"]
        if (after.produced - before.produced) + (after.unmatched - before.unmatched) >= started:
            break
    # every open of the attacker's is accounted for: reported or counted lost
    assert (after.produced - before.produced) + (after.unmatched - before.unmatched) >= started
    assert after.unmatched - before.unmatched > 0
