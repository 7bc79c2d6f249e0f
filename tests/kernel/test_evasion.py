# SPDX-License-Identifier: Apache-2.0
"""Attacks by unprivileged users on the events: each is performed for real by a
child that runs as nobody, and each test asserts that the event arrives
intact, or that the loss is counted and the attack refused or reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.kernel.conftest import wait_for

import ebpfsensor
from ebpfsensor import ProcessExec

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
