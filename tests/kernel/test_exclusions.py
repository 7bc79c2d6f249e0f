# SPDX-License-Identifier: Apache-2.0
"""Exclusions of every type, with real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.kernel.conftest import wait_for

import ebpfsensor
from ebpfsensor import (
    ConfigError,
    ExcludeCgroup,
    ExcludeExecutable,
    ExcludeName,
    ExcludePid,
    ExcludeUid,
    ProcessExec,
    ProcessExit,
)
from ebpfsensor.exclusions import cgroup2_root

pytestmark = pytest.mark.bpf

TRUE = os.path.realpath("/bin/true")


@pytest.fixture
def exe(tmp_path: Path) -> Path:
    """A private copy of true: its own inode, so excluding it touches nothing else."""
    path = tmp_path / "quiet-true"
    shutil.copy2(TRUE, path)
    return path


def run(argv: list[str | Path], **kw: object) -> int:
    p = subprocess.Popen([str(a) for a in argv], **kw)  # type: ignore[call-overload]
    p.wait()
    return int(p.pid)


def events_of(sensor: ebpfsensor.Sensor, pid: int, settle: float = 0.4) -> list[object]:
    """Everything the sensor reports for pid within settle seconds (after a marker)."""
    marker = run([TRUE, "marker"])
    wait_for(sensor, lambda e: isinstance(e, ProcessExit) and e.pid == marker)
    end = time.monotonic() + settle
    found = []
    while time.monotonic() < end:
        found += [e for e in sensor.poll(0.05) if e.pid == pid or getattr(e, "child_pid", 0) == pid]
    return found


def drain(sensor: ebpfsensor.Sensor, seconds: float) -> list[object]:
    end = time.monotonic() + seconds
    seen: list[object] = []
    while time.monotonic() < end:
        seen += sensor.poll(0.05)
    return seen


def hits(sensor: ebpfsensor.Sensor, rule_id: int) -> dict[str, int]:
    return next(r.hits for r in sensor.exclusions() if r.id == rule_id)


@pytest.fixture
def s(sensor: ebpfsensor.Sensor) -> Iterator[ebpfsensor.Sensor]:
    """The module's sensor (every kind; starting and closing one takes seconds,
    ~15 s under qemu), handed to each test without rules and left without."""
    assert sensor.exclusions() == []
    yield sensor
    for r in sensor.exclusions():
        sensor.remove_exclusion(r.id)


def test_executable_by_identity_symlink_and_rename(exe: Path, tmp_path: Path, s: ebpfsensor.Sensor) -> None:
    link = tmp_path / "via-link"
    link.symlink_to(exe)
    rid = s.exclude(ExcludeExecutable(str(link)))  # resolved to the target's identity
    pid = run([exe])
    assert not [e for e in events_of(s, pid) if not isinstance(e, ebpfsensor.ProcessFork)]
    pid = run([link])
    assert not [e for e in events_of(s, pid) if not isinstance(e, ebpfsensor.ProcessFork)]
    renamed = tmp_path / "renamed"
    exe.rename(renamed)
    pid = run([renamed])
    assert not [e for e in events_of(s, pid) if not isinstance(e, ebpfsensor.ProcessFork)]
    h = hits(s, rid)
    assert h["process_exec"] == 3 and h["process_exit"] == 3
    assert s.stats().kinds["process_exec"].filtered >= 3
    # the real true is not excluded
    other = run([TRUE, "other"])
    (e,) = wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == other)
    assert e.argv == [TRUE, "other"]
    # removed: reported again
    s.remove_exclusion(rid)
    pid = run([renamed])
    wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == pid)
    assert s.exclusions() == []


def test_name(exe: Path, s: ebpfsensor.Sensor) -> None:
    rid = s.exclude(ExcludeName("quiet-true"))
    pid = run([exe])
    assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]
    assert hits(s, rid)["process_exec"] == 1
    pid = run([TRUE])
    wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == pid)


def test_reused_rule_id_starts_from_zero(exe: Path) -> None:
    with ebpfsensor.Sensor(kinds={"process_exec"}) as s:
        rid = s.exclude(ExcludeExecutable(str(exe)))
        run([exe])
        assert hits(s, rid)["process_exec"] == 1
        s.remove_exclusion(rid)
        again = s.exclude(ExcludeName("unused-name"))
        assert again == rid  # the id is reused, its counters are not
        assert hits(s, again) == {}


@pytest.mark.parametrize("descendants", [True, False])
def test_pid_with_and_without_descendants(descendants: bool, s: ebpfsensor.Sensor) -> None:
    sh = subprocess.Popen(["sh", "-c", f"sleep 0.5; {TRUE} child; exit 3"])
    rid = s.exclude(ExcludePid(sh.pid, descendants=descendants))
    sh.wait()
    seen = drain(s, 1.0)
    assert not [e for e in seen if isinstance(e, ProcessExit) and e.pid == sh.pid]
    child_execs = [e for e in seen if isinstance(e, ProcessExec) and e.ppid == sh.pid and e.argv[-1] == "child"]
    if descendants:
        # true is excluded; sleep too, unless sh started it before the rule
        assert child_execs == [] and hits(s, rid).get("process_exec", 0) >= 1
    else:
        assert len(child_execs) == 1


def test_uid(s: ebpfsensor.Sensor) -> None:
    def become_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)

    rid = s.exclude(ExcludeUid(65534))
    pid = run([TRUE], preexec_fn=become_nobody, cwd="/")
    assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]
    # at least ours: any process of that user counts
    assert hits(s, rid)["process_exec"] >= 1
    mine = run([TRUE])
    wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == mine)


@pytest.fixture
def cgroup() -> Iterator[Path]:
    path = Path(cgroup2_root()) / f"ebpfsensor-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    for _ in range(50):
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)


def test_cgroup(cgroup: Path, s: ebpfsensor.Sensor) -> None:
    def enter() -> None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    rid = s.exclude(ExcludeCgroup(str(cgroup)))
    pid = run([TRUE], preexec_fn=enter)
    assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]
    assert hits(s, rid)["process_exec"] == 1


def test_from_configuration(exe: Path) -> None:
    with ebpfsensor.Sensor(exclusions=(ExcludeExecutable(str(exe)),)) as s:
        pid = run([exe])
        assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]
        assert [r.rule for r in s.exclusions()] == [ExcludeExecutable(str(exe))]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (ExcludeExecutable("bin/true"), "give an absolute path"),
        (ExcludeExecutable("/nonexistent/binary"), "the file must exist"),
        (ExcludeExecutable("/tmp"), "not a regular file"),
        (ExcludeName("a-name-longer-than-15"), "1 to 15 bytes"),
        (ExcludePid(2**22 + 7), "no such process"),
        (ExcludeCgroup("/no-such-cgroup-here"), "No such file"),
    ],
)
def test_invalid_rules_change_nothing(
    rule: ebpfsensor.Exclusion, message: str, exe: Path, s: ebpfsensor.Sensor
) -> None:
    s.exclude(ExcludeExecutable(str(exe)))
    before = s.exclusions()
    with pytest.raises(ConfigError, match=message):
        s.exclude(rule)
    assert s.exclusions() == before
    with pytest.raises(ConfigError, match=message):
        ebpfsensor.Sensor(exclusions=(rule,)).start()


def test_apply_exclusions_after_reload(exe: Path, s: ebpfsensor.Sensor) -> None:
    keep = s.exclude(ExcludeName("keep-me"))
    s.exclude(ExcludeUid(4242))
    s.apply_exclusions([ExcludeName("keep-me"), ExcludeExecutable(str(exe))])
    rules = {r.id: r.rule for r in s.exclusions()}
    assert rules[keep] == ExcludeName("keep-me") and set(rules.values()) == {
        ExcludeName("keep-me"),
        ExcludeExecutable(str(exe)),
    }
    before = s.exclusions()
    with pytest.raises(ConfigError):
        s.apply_exclusions([ExcludeExecutable("relative")])
    assert s.exclusions() == before
    pid = run([exe])
    assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]


def test_excluded_process_file_and_network_events(tmp_path: Path) -> None:
    import socket
    import sys

    script = (
        "import os, socket, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600); os.close(fd)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1); s.close()\n"
    )
    target = tmp_path / "touched"
    with ebpfsensor.Sensor(kinds={"file_open", "file_create", "net_bind", "net_listen", "process_exec"}) as s:
        # a private copy of the interpreter: excluding it touches nothing else
        python = tmp_path / "quiet-python"
        shutil.copy2(os.path.realpath(sys.executable), python)
        rid = s.exclude(ExcludeExecutable(str(python)))
        p = subprocess.Popen([str(python), "-c", script, str(target)])
        p.wait()
        assert p.returncode == 0
        seen = drain(s, 1.0)
        assert not [e for e in seen if getattr(e, "pid", 0) == p.pid]
        h = hits(s, rid)
        assert h.get("file_open", 0) + h.get("file_create", 0) >= 1
        assert h.get("net_bind", 0) == 1 and h.get("net_listen", 0) == 1
        # the same actions from this process are reported
        os.close(os.open(target, os.O_RDONLY))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
        mine = [e for e in drain(s, 1.0) if getattr(e, "pid", 0) == os.getpid()]
        assert {e.kind for e in mine} >= {"file_open", "net_bind"}  # type: ignore[attr-defined]
