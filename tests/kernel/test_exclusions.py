# SPDX-License-Identifier: Apache-2.0
"""Exclusions of every type, with real processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.kernel.conftest import backlog, wait_for

import ebpfsensor
from ebpfsensor import (
    ConfigError,
    ExcludeCgroup,
    ExcludeExecutable,
    ExcludeName,
    ExcludePathPrefix,
    ExcludePid,
    ExcludeUid,
    ProcessExec,
    ProcessExit,
)
from ebpfsensor.events import FileCreate, FileOpen
from ebpfsensor.exclusions import MAX_RULES, ExcludeSelf, cgroup2_root

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

    own_comm = Path("/proc/self/comm").read_text().strip()

    def of_pid(e: object) -> bool:
        # not the fork's own calls before it execs, still this process's
        # image (Python's child lists /proc/self/fd where close_range, 5.9, is missing)
        if getattr(e, "pid", 0) == pid and getattr(e, "comm", "") == own_comm and not isinstance(e, ProcessExec):
            return False
        return getattr(e, "pid", 0) == pid or getattr(e, "child_pid", 0) == pid

    # drained with the marker's exit, ahead of it: kept by wait_for
    found = [e for e in backlog(sensor) if of_pid(e)]
    while time.monotonic() < end:
        # a loss marker (a busy machine) has no pid
        found += [e for e in sensor.poll(0.05) if of_pid(e)]
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


def test_two_names_of_one_executable_are_one_rule(exe: Path, tmp_path: Path, s: ebpfsensor.Sensor) -> None:
    hard = tmp_path / "hard-link"
    os.link(exe, hard)
    rid = s.exclude(ExcludeExecutable(str(exe)))
    assert s.exclude(ExcludeExecutable(str(hard))) == rid  # the same file: the same rule
    with pytest.raises(ConfigError, match=f"rule {rid} .* remove that rule first"):
        s.exclude(ExcludeExecutable(str(hard), descendants=True))
    assert [r.rule for r in s.exclusions()] == [ExcludeExecutable(str(exe))]
    pid = run([hard])
    assert not [e for e in events_of(s, pid) if not isinstance(e, ebpfsensor.ProcessFork)]
    # one removal releases both names
    s.remove_exclusion(rid)
    pid = run([hard])
    wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == pid)


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[Path]:
    """An overlay mount whose upper layer is another filesystem (a tmpfs) than
    its lower one: stat(2) then reports a per-layer pseudo device for lower
    files, not the overlay's own, which the kernel's inodes carry."""
    lower, upper, merged = tmp_path / "lower", tmp_path / "upper", tmp_path / "merged"
    for d in (lower, upper, merged):
        d.mkdir()
    shutil.copy2(TRUE, lower / "layered-true")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(upper)], check=True)
    try:
        (upper / "u").mkdir()
        (upper / "w").mkdir()
        opts = f"lowerdir={lower},upperdir={upper}/u,workdir={upper}/w"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
        try:
            yield merged
        finally:
            subprocess.run(["umount", str(merged)], check=True)
    finally:
        subprocess.run(["umount", str(upper)], check=True)


def test_executable_on_overlayfs(overlay: Path, s: ebpfsensor.Sensor) -> None:
    from ebpfsensor.exclusions import superblock_dev

    path = overlay / "layered-true"
    assert superblock_dev(str(path)) != os.stat(path).st_dev  # the case this test is about
    rid = s.exclude(ExcludeExecutable(str(path)))
    pid = run([path])
    assert not [e for e in events_of(s, pid) if not isinstance(e, ebpfsensor.ProcessFork)]
    assert hits(s, rid)["process_exec"] == 1
    s.remove_exclusion(rid)  # both identities go
    pid = run([path])
    (e,) = wait_for(s, lambda e: isinstance(e, ProcessExec) and e.pid == pid)
    assert e.exe == str(path)


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


INVALID_RULES: list[tuple[ebpfsensor.Exclusion, str]] = [
    (ExcludeExecutable("bin/true"), "give an absolute path"),
    (ExcludeExecutable("/nonexistent/binary"), "the file must exist"),
    (ExcludeExecutable("/tmp"), "not a regular file"),
    (ExcludeName("a-name-longer-than-15"), "1 to 15 bytes"),
    (ExcludePid(2**22 + 7), "no such process"),
    (ExcludeCgroup("/no-such-cgroup-here"), "No such file"),
    (ExcludePathPrefix("var/log"), "not absolute"),
    (ExcludePathPrefix(""), "empty"),
    (ExcludePathPrefix("/var/log/../etc"), "'..' component"),
    (ExcludePathPrefix("/var//log"), "not normalised"),
    (ExcludePathPrefix("/var/./log"), "not normalised"),
    (ExcludePathPrefix("/var/\0log"), "NUL byte"),
    (ExcludePathPrefix("/" + "d" * 255), "256 bytes; the kernel matches prefixes of at most 255 bytes"),
]


@pytest.mark.parametrize(("rule", "message"), INVALID_RULES)
def test_invalid_rules_change_nothing(
    rule: ebpfsensor.Exclusion, message: str, exe: Path, s: ebpfsensor.Sensor
) -> None:
    s.exclude(ExcludeExecutable(str(exe)))
    before = s.exclusions()
    with pytest.raises(ConfigError, match=message):
        s.exclude(rule)
    assert s.exclusions() == before


def test_from_configuration_invalid_rules_skipped_and_reported(exe: Path) -> None:
    # configured, a valid rule is installed behind the sensor's own process
    # and works; each invalid one never stops the sensor: it is skipped and
    # reported with its reason, in the order given. (One start for all of
    # them: a start takes seconds under qemu.)
    valid = ExcludeExecutable(str(exe))
    invalid = [rule for rule, _ in INVALID_RULES]
    with ebpfsensor.Sensor(exclusions=(*invalid[:5], valid, *invalid[5:])) as s:
        pid = run([exe])
        assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]
        # the sensor's own process first (Config.exclude_self, on by default)
        assert [r.rule for r in s.exclusions()] == [ExcludeSelf(), valid]
        skipped = s.health().exclusions_skipped
        assert [sk.rule for sk in skipped] == invalid
        for sk, (_, message) in zip(skipped, INVALID_RULES, strict=True):
            assert re.search(message, sk.reason), sk


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
    kinds = {"file_open", "file_create", "net_bind", "net_listen", "process_exec"}
    with ebpfsensor.Sensor(kinds=kinds, exclude_self=False) as s:
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


# a child that acts on files, one action per argument: create:P, mkdir:P,
# chmod:P, unlink:P, rename:P:Q, link:P:Q, symlink:TARGET:P; an optional
# first argument cd:DIR changes its cwd first
FILE_ACTIONS = """
import os, sys
for arg in sys.argv[1:]:
    op, *a = arg.split(":")
    if op == "cd":
        os.chdir(a[0])
    elif op == "create":
        os.close(os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif op == "mkdir":
        os.mkdir(a[0])
    elif op == "chmod":
        os.chmod(a[0], 0o700)
    elif op == "unlink":
        os.unlink(a[0])
    else:
        getattr(os, op)(a[0], a[1])
"""

FILE_KINDS = {
    "file_open",
    "file_create",
    "dir_create",
    "file_chmod",
    "file_unlink",
    "file_rename",
    "file_link",
    "file_symlink",
    "process_exec",
    "process_exit",
}


def file_actions(sensor: ebpfsensor.Sensor, under: Path, *actions: str) -> tuple[int, list[object]]:
    """Run FILE_ACTIONS as a child; its pid and the file events reported for
    it on paths under `under` (its start-up opens libraries elsewhere)."""
    import sys

    subprocess.run([sys.executable, "-I", "-S", "-c", FILE_ACTIONS, *actions], check=True, timeout=60)
    seen = drain(sensor, 0.6)
    execs = [e for e in seen if isinstance(e, ProcessExec) and e.argv[-len(actions) :] == list(actions)]
    assert len(execs) == 1, execs
    pid = execs[0].pid
    return pid, [
        e
        for e in seen
        if getattr(e, "pid", 0) == pid and getattr(e, "path", "").startswith(f"{under}/")  # type: ignore[attr-defined]
    ]


def suppressed(sensor: ebpfsensor.Sensor, rule_id: int) -> dict[str, int]:
    return hits(sensor, rule_id)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/x with log/ (to be excluded), logs/ and other/ beside it."""
    base = tmp_path / "x"
    for d in ("log", "logs", "other"):
        (base / d).mkdir(parents=True)
    return base


def test_path_prefix_only_events_outside_arrive(tree: Path) -> None:
    log, logs = tree / "log", tree / "logs"
    with ebpfsensor.Sensor(kinds=FILE_KINDS, exclude_self=False) as s:
        rid = s.exclude(ExcludePathPrefix(str(log)))
        assert [r.rule for r in s.exclusions()] == [ExcludePathPrefix(str(log))]
        filtered_before = {k: v.filtered for k, v in s.stats().kinds.items()}
        pid, events = file_actions(
            s,
            tree,
            f"create:{log}/a",
            f"create:{log}/b",
            f"create:{logs}/c",  # /x/logs is not under /x/log
            f"create:{tree}/log.1",
            f"mkdir:{log}/sub",
            f"create:{log}/sub/deep",
            f"chmod:{log}",  # the directory itself
            f"chmod:{logs}",
            f"unlink:{log}/a",
            f"unlink:{logs}/c",
        )
        got = [(e.kind, e.path) for e in events]  # type: ignore[attr-defined]
        # an open that creates is one event, a FileCreate
        assert got == [
            ("file_create", f"{logs}/c"),
            ("file_create", f"{tree}/log.1"),
            ("file_chmod", str(logs)),
            ("file_unlink", f"{logs}/c"),
        ]
        opened = [e for e in events if isinstance(e, (FileOpen, FileCreate))]
        for e in opened:
            assert e.arg_path == e.path and e.result >= 0 and e.created and e.resolved
            assert e.flags & os.O_CREAT and e.mode == 0o600 and e.ino and not e.path_truncated
        chmod = events[2]
        assert chmod.mode == 0o700 and chmod.result == 0 and chmod.arg_path == str(logs)  # type: ignore[attr-defined]
        # exactly what the child did under the prefix, and nothing else
        expected = {"file_open": 0, "file_create": 3, "dir_create": 1, "file_chmod": 1, "file_unlink": 1}
        assert suppressed(s, rid) == {k: n for k, n in expected.items() if n}
        after = s.stats().kinds
        assert {k: after[k].filtered - filtered_before[k] for k in expected} == expected
        assert pid > 0
        # removed: reported again
        s.remove_exclusion(rid)
        _pid, events = file_actions(s, tree, f"create:{log}/after")
        assert [(e.kind, e.path) for e in events] == [("file_create", f"{log}/after")]  # type: ignore[attr-defined]
        assert s.exclusions() == []


def test_path_prefix_two_paths_need_both_excluded(tree: Path) -> None:
    log, logs = tree / "log", tree / "logs"
    for name in ("a", "b", "c", "s"):
        (log / name).touch()
    (logs / "in").touch()
    with ebpfsensor.Sensor(kinds=FILE_KINDS) as s:
        rid = s.exclude(ExcludePathPrefix(f"{log}/"))  # a trailing '/' is the same rule
        assert s.exclude(ExcludePathPrefix(str(log))) == rid
        _pid, events = file_actions(
            s,
            tree,
            f"rename:{log}/a:{log}/a2",  # within: excluded
            f"rename:{log}/b:{logs}/b",  # out of the excluded directory: reported
            f"rename:{logs}/in:{log}/in",  # into it: reported
            f"link:{log}/c:{log}/c.link",  # within: excluded
            f"link:{log}/c:{logs}/c.link",  # out: reported
            f"symlink:{log}/s:{log}/s.abs",  # absolute target inside: excluded
            "symlink:s:" + f"{log}/s.rel",  # relative target: reported
            f"symlink:/etc/passwd:{log}/s.etc",  # target outside: reported
        )
        got = [(e.kind, e.path, getattr(e, "new_path", None) or getattr(e, "target", None)) for e in events]  # type: ignore[attr-defined]
        assert got == [
            ("file_rename", f"{log}/b", f"{logs}/b"),
            ("file_rename", f"{logs}/in", f"{log}/in"),
            ("file_link", f"{log}/c", f"{logs}/c.link"),
            ("file_symlink", f"{log}/s.rel", "s"),
            ("file_symlink", f"{log}/s.etc", "/etc/passwd"),
        ]
        for e in events:
            assert e.result == 0 and e.arg_path == e.path  # type: ignore[attr-defined]
        assert suppressed(s, rid) == {"file_rename": 1, "file_link": 1, "file_symlink": 1}


def test_path_prefix_dotdot_and_nested_rules(tree: Path) -> None:
    log, logs, other = tree / "log", tree / "logs", tree / "other"
    (logs / "z").touch()
    (other / "y").touch()
    (log / "sub").mkdir()
    deep = [f"{'d' * (70 + k)}/../../logs/z" for k in range(12)]
    for rel in deep:
        (log / rel.split("/")[0]).mkdir()
    with ebpfsensor.Sensor(kinds=FILE_KINDS) as s:
        rid = s.exclude(ExcludePathPrefix(str(log)))
        # from inside the excluded directory, ".." leads out of it: reported
        long_name = "n" * 250  # the path is longer than an LPM key: its first 256 bytes are matched
        _pid, events = file_actions(
            s, tree, f"cd:{log}", "chmod:../logs/z", "unlink:../other/y", "create:./here", f"create:{long_name}"
        )
        got = [(e.kind, e.path, e.arg_path) for e in events]  # type: ignore[attr-defined]
        # where the kernel's path checks are hooked, paths are the kernel's: ".." resolved
        kernel_paths = s.hooks()["path_chmod"].variant is not None
        assert got == [
            ("file_chmod", f"{logs}/z" if kernel_paths else f"{log}/../logs/z", "../logs/z"),
            ("file_unlink", f"{other}/y" if kernel_paths else f"{log}/../other/y", "../other/y"),
        ]
        # "./here" and the long name stay inside: their creating opens are excluded
        assert len(f"{log}/{long_name}") > 256
        assert suppressed(s, rid) == {"file_create": 2}
        # ".." found wherever it lies: past the first reads of the scan, and
        # at each offset around the edge of one call's 80 bytes
        _pid, events = file_actions(s, tree, f"cd:{log}", *(f"chmod:{rel}" for rel in deep))
        want = [(f"{logs}/z" if kernel_paths else f"{log}/{rel}", rel) for rel in deep]
        assert [(e.path, e.arg_path) for e in events] == want  # type: ignore[attr-defined]
        # a longer prefix beside a shorter one: the longest covering rule counts
        inner = s.exclude(ExcludePathPrefix(f"{log}/sub"))
        _pid, events = file_actions(s, tree, f"create:{log}/sub/q", f"create:{log}/r")
        assert events == []
        assert suppressed(s, inner) == {"file_create": 1}
        assert suppressed(s, rid) == {"file_create": 3}


def test_path_prefix_from_configuration(tree: Path) -> None:
    log = tree / "log"
    with ebpfsensor.Sensor(kinds=FILE_KINDS, exclusions=(ExcludePathPrefix(str(log)),), exclude_self=False) as s:
        _pid, events = file_actions(s, tree, f"create:{log}/a", f"create:{tree}/other/a")
        assert [(e.kind, e.path) for e in events] == [("file_create", f"{tree}/other/a")]  # type: ignore[attr-defined]
        (status,) = s.exclusions()
        assert status.rule == ExcludePathPrefix(str(log)) and status.total == 1


@pytest.fixture
def rename_loop(tmp_path: Path) -> Path:
    """A static C loop renaming a <-> b in its cwd (test_diagnostic's)."""
    from tests.kernel.test_diagnostic import RENAME_LOOP_C

    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (make deps installs it)")
    src, exe = tmp_path / "rename_loop.c", tmp_path / "rename_loop"
    src.write_text(RENAME_LOOP_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(exe), str(src)], check=True, timeout=120)
    return exe


def noisy(exe: Path, work: Path, n: int) -> subprocess.Popen[bytes]:
    work.mkdir(exist_ok=True)
    (work / "a").touch()
    (work / "b").unlink(missing_ok=True)
    return subprocess.Popen([str(exe), str(n)], cwd=work)


def test_exclude_top_initiator_in_one_call(rename_loop: Path, tmp_path: Path) -> None:
    """The rename loop tops a diagnostic window, run while it renames; one
    call excludes it by identity; its next run reaches the sensor with
    nothing, and every one of its events is a hit of that rule. The window
    is global: the run is repeated while other work outranks the loop."""
    work = tmp_path / "work"
    with ebpfsensor.Sensor(kinds={"file_rename", "process_exec", "process_exit"}, exclude_self=False) as s:
        outranked = []
        for _attempt in range(5):
            loop = noisy(rename_loop, work, 2_000_000)
            try:
                status = s.exclude_top_initiator(duration=0.5)
            except ConfigError as exc:  # e.g. an interpreter topped the window
                status, why = None, str(exc)
            else:
                why = f"{status.rule}"
            time.sleep(0.3)  # still renaming, now excluded
            loop.kill()
            loop.wait()
            drain(s, 0.3)
            if status is not None and status.rule == ExcludeExecutable(str(rename_loop)):
                break
            if status is not None:
                s.remove_exclusion(status.id)
            outranked.append(why)
            time.sleep(1)
        else:
            pytest.fail(f"other work outran the rename loop in every window: {outranked}")
        assert [r.rule for r in s.exclusions()] == [ExcludeExecutable(str(rename_loop))]
        # the loop was running when the rule came: excluded from then on
        before = hits(s, status.id)
        assert before["file_rename"] > 0
        n = 5000
        loop = noisy(rename_loop, work, n)
        assert loop.wait(timeout=60) == 0
        assert not [e for e in drain(s, 1.0) if getattr(e, "pid", 0) == loop.pid]
        after = hits(s, status.id)
        grew = {k: after[k] - before.get(k, 0) for k in after}
        assert grew == {"file_rename": n, "process_exec": 1, "process_exit": 1}


def test_cli_adds_the_top_initiator_to_the_configuration(
    rename_loop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ebpfsensor.cli import main
    from ebpfsensor.managed_config import load_managed_config

    cfg = tmp_path / "etc" / "config.json"
    cfg.parent.mkdir(mode=0o700)
    outranked = []
    for _attempt in range(5):
        loop = noisy(rename_loop, tmp_path / "work", 2_000_000)
        try:
            rc = main(["exclusions", "add", "--top-initiator", "--duration", "0.5", "--config", str(cfg)])
        finally:
            loop.kill()
            loop.wait()
        out, err = capsys.readouterr()
        if rc == 0 and str(rename_loop) in out:
            break
        outranked.append(out + err)
        if cfg.exists():
            cfg.unlink()
        time.sleep(1)
    else:
        pytest.fail(f"other work outran the rename loop in every window: {outranked}")
    rule = ExcludeExecutable(str(rename_loop))
    lines = out.splitlines()
    assert re.fullmatch(rf"top initiator: {re.escape(str(rename_loop))} : \d+ monitored syscalls in [\d.]+ s", lines[0])
    assert lines[1] == f'added {{"type":"executable","path":"{rename_loop}","descendants":false}} to {cfg}'
    assert load_managed_config(str(cfg)).sensor.exclusions == (rule,)


def test_apply_exclusions_is_all_or_nothing(exe: Path, s: ebpfsensor.Sensor) -> None:
    """A rule set the maps cannot take leaves the rules as they were (old
    rules were removed first, and a failure left a partial set)."""
    s.exclude(ExcludeExecutable(str(exe)))
    s.exclude(ExcludeUid(4242))
    before = s.exclusions()
    too_many = [ExcludeUid(10_000 + i) for i in range(MAX_RULES + 1)]
    with pytest.raises(ConfigError, match=f"at most {MAX_RULES}"):
        s.apply_exclusions(too_many)
    assert s.exclusions() == before
    # a rule that fails half-way (the executable again through a link, with
    # other options): the rules added before it are taken back out
    link = exe.parent / "link-to-exe"
    link.symlink_to(exe)
    s.exclude(ExcludeUid(20_000))
    before = s.exclusions()
    with pytest.raises(ConfigError, match="already excludes, with other options"):
        s.apply_exclusions(
            [ExcludeUid(4242), ExcludeUid(50_000), ExcludeExecutable(str(exe)), ExcludeExecutable(str(link), True)]
        )
    assert s.exclusions() == before
    pid = run([exe])
    assert not [e for e in events_of(s, pid) if isinstance(e, (ProcessExec, ProcessExit))]
