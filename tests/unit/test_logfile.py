# SPDX-License-Identifier: Apache-2.0
"""The library's log file: created and checked as a daemon would, rotation included.

The attacks are real: symlinks and hard links to a victim file, directories
another user owns or can write, and (as root) an unprivileged process, run
with setpriv as uid/gid 65534, that plants a link where root will write.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpfsensor import _logfile

ATTACKER = 65534
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: the attacker is another uid, and the victim is what root would write"
)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the attacker (uid 65534) can reach, unlike pytest's tmp_path."""
    d = Path(tempfile.mkdtemp(prefix="ebpfsensor-logfile-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def victim(base: Path) -> Iterator[Path]:
    """A file root must not write to: its content and mtime are checked at the end."""
    (base / "victim").mkdir(mode=0o755)
    f = base / "victim" / "passwd"
    f.write_text("root:x:0:0:root:/root:/bin/bash\n")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    before = (f.read_bytes(), f.stat().st_mtime_ns)
    yield f
    assert (f.read_bytes(), f.stat().st_mtime_ns) == before, "the victim file was written"


@pytest.fixture
def enabled() -> Iterator[list[str]]:
    """Paths to disable after the test (the handler holds fds)."""
    paths: list[str] = []
    yield paths
    for p in paths:
        _logfile.disable(p)


def as_attacker(*argv: str) -> None:
    subprocess.run(
        ["setpriv", f"--reuid={ATTACKER}", f"--regid={ATTACKER}", "--clear-groups", *argv],
        check=True,
        capture_output=True,
    )


def refused(path: Path, enabled: list[str], caplog: pytest.LogCaptureFixture, *expected: str) -> str:
    """enable() refuses path with a warning naming the problem and the fix."""
    with caplog.at_level(logging.WARNING, logger="ebpfsensor"):
        got = _logfile.enable(str(path))
    if got is not None:
        enabled.append(got)
    assert got is None
    message = caplog.records[-1].getMessage()
    assert message.startswith(f"log file {path} unavailable: ")
    for text in expected:
        assert text in message
    # what root would log next goes nowhere near the victim
    logging.getLogger("ebpfsensor").warning("root writes this line")
    return message


def test_good_case(base: Path, enabled: list[str]) -> None:
    path = base / "log" / "ebpfsensor.log"
    assert _logfile.enable(str(path)) == str(path)
    enabled.append(str(path))
    assert _logfile.enable(str(path)) == str(path)  # once per path
    logging.getLogger("ebpfsensor").warning("hello from the sensor")
    assert path.read_text().endswith("WARNING ebpfsensor: hello from the sensor\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750 & ~_umask()


def test_an_existing_file_readable_by_others_is_tightened(base: Path, enabled: list[str]) -> None:
    (base / "log").mkdir(mode=0o750)
    path = base / "log" / "ebpfsensor.log"
    path.write_text("old line\n")
    os.chmod(path, 0o644)
    assert _logfile.enable(str(path)) == str(path)
    enabled.append(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    logging.getLogger("ebpfsensor").warning("appended")
    assert path.read_text().startswith("old line\n") and "appended" in path.read_text()


def test_symlink_at_the_log_path(
    base: Path, victim: Path, enabled: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    (base / "log").mkdir(mode=0o750)
    path = base / "log" / "ebpfsensor.log"
    path.symlink_to(victim)
    refused(path, enabled, caplog, f"it is a symlink (to {victim})", f"remove it (`rm {path}`)")
    assert path.is_symlink()


def test_dangling_symlink_creates_nothing(base: Path, enabled: list[str], caplog: pytest.LogCaptureFixture) -> None:
    (base / "log").mkdir(mode=0o750)
    path = base / "log" / "ebpfsensor.log"
    target = base / "victim-dir-file"
    path.symlink_to(target)
    refused(path, enabled, caplog, "it is a symlink")
    assert not target.exists()


def test_hard_link_to_another_file(
    base: Path, victim: Path, enabled: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    (base / "log").mkdir(mode=0o750)
    path = base / "log" / "ebpfsensor.log"
    os.link(victim, path)
    refused(path, enabled, caplog, "it has 2 links", f"remove it (`rm {path}`)")


@pytest.mark.parametrize("mode", [0o770, 0o757, 0o1777])
def test_directory_writable_by_others(
    base: Path, mode: int, enabled: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    (base / "log").mkdir()
    os.chmod(base / "log", mode)
    path = base / "log" / "ebpfsensor.log"
    refused(path, enabled, caplog, "is writable by group or others", f"run `chmod go-w {base / 'log'}`")
    assert not path.exists()


def test_group_writable_file(base: Path, enabled: list[str], caplog: pytest.LogCaptureFixture) -> None:
    (base / "log").mkdir(mode=0o750)
    path = base / "log" / "ebpfsensor.log"
    path.write_text("")
    os.chmod(path, 0o660)
    refused(path, enabled, caplog, "it is writable by group or others (mode 0660)", f"run `chmod go-w {path}`")
    assert path.read_text() == ""


def test_symlinked_directory(base: Path, enabled: list[str], caplog: pytest.LogCaptureFixture) -> None:
    (base / "elsewhere").mkdir(mode=0o750)
    (base / "log").symlink_to(base / "elsewhere")
    path = base / "log" / "ebpfsensor.log"
    refused(path, enabled, caplog, f"its directory {base / 'log'} is a symlink (to {base / 'elsewhere'})")
    assert os.listdir(base / "elsewhere") == []


@needs_root
def test_directory_owned_by_another_user(
    base: Path, victim: Path, enabled: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    (base / "log").mkdir(mode=0o755)
    os.chown(base / "log", ATTACKER, ATTACKER)
    path = base / "log" / "ebpfsensor.log"
    # the attacker, in their own directory, links the log's name to the victim
    as_attacker("ln", "-s", str(victim), str(path))
    refused(path, enabled, caplog, f"is owned by uid {ATTACKER}, not root", f"run `chown root {base / 'log'}`")


@needs_root
def test_file_owned_by_another_user(base: Path, enabled: list[str], caplog: pytest.LogCaptureFixture) -> None:
    (base / "log").mkdir(mode=0o750)
    path = base / "log" / "ebpfsensor.log"
    path.write_text("")
    os.chown(path, ATTACKER, ATTACKER)
    refused(path, enabled, caplog, f"it is owned by uid {ATTACKER}, not root")


@pytest.fixture
def var_log(base: Path) -> Path:
    """A /var/log as Ubuntu has it: root-owned, writable by a group (syslog there, the attacker's here)."""
    d = base / "var-log"
    d.mkdir()
    os.chown(d, 0, ATTACKER)
    os.chmod(d, 0o775)
    return d


@needs_root
def test_attacker_in_the_log_group_plants_a_directory_symlink(
    base: Path, var_log: Path, victim: Path, enabled: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # e.g. /var/log/ebpfsensor -> /etc/cron.d: root would create and fill a file there
    as_attacker("ln", "-s", str(victim.parent), str(var_log / "ebpfsensor"))
    path = var_log / "ebpfsensor" / "ebpfsensor.log"
    refused(path, enabled, caplog, "is a symlink")
    assert os.listdir(victim.parent) == ["passwd"]


@needs_root
def test_attacker_in_the_log_group_makes_the_directory(
    base: Path, var_log: Path, victim: Path, enabled: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    as_attacker("mkdir", "-m", "0755", str(var_log / "ebpfsensor"))
    as_attacker("ln", "-s", str(victim), str(var_log / "ebpfsensor" / "ebpfsensor.log"))
    refused(var_log / "ebpfsensor" / "ebpfsensor.log", enabled, caplog, f"owned by uid {ATTACKER}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _records(path: Path) -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines()]


def test_rotation(
    base: Path, enabled: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_logfile, "MAX_BYTES", 400)
    path = base / "log" / "ebpfsensor.log"
    assert _logfile.enable(str(path)) == str(path)
    enabled.append(str(path))
    sensor = logging.getLogger("ebpfsensor")
    for i in range(100):
        sensor.warning("record %d", i)
    names = sorted(os.listdir(path.parent))
    assert names == ["ebpfsensor.log"] + [f"ebpfsensor.log.{i}" for i in range(1, 6)]
    # the newest records in the live file, older ones in .1, .2, ... in order
    files = [path] + [path.parent / f"ebpfsensor.log.{i}" for i in range(1, 6)]
    got = [n for f in reversed(files) for n in _records(f)]
    assert got == list(range(got[0], 100))
    for f in files:
        st = f.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_nlink == 1 and st.st_size <= 400
    assert "Logging error" not in capsys.readouterr().err


@needs_root
def test_rotation_stays_in_the_checked_directory(
    base: Path, var_log: Path, victim: Path, enabled: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_logfile, "MAX_BYTES", 400)
    path = var_log / "ebpfsensor" / "ebpfsensor.log"
    assert _logfile.enable(str(path)) == str(path)
    enabled.append(str(path))
    sensor = logging.getLogger("ebpfsensor")
    sensor.warning("record 0")
    # the group may rename root's directory away and put a symlink in its place
    as_attacker("mv", str(var_log / "ebpfsensor"), str(var_log / "moved"))
    as_attacker("ln", "-s", str(victim.parent), str(var_log / "ebpfsensor"))
    for i in range(1, 30):
        sensor.warning("record %d", i)
    assert os.listdir(victim.parent) == ["passwd"]
    assert "ebpfsensor.log.1" in os.listdir(var_log / "moved")
    assert _records(var_log / "moved" / "ebpfsensor.log")[-1] == 29


def test_a_file_refused_at_rotation_stops_the_handler(
    base: Path,
    enabled: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(_logfile, "MAX_BYTES", 400)
    path = base / "log" / "ebpfsensor.log"
    assert _logfile.enable(str(path)) == str(path)
    enabled.append(str(path))

    def refuse(*_args: object) -> int:
        raise _logfile._Refused("it is a symlink (to /etc/shadow)", "remove it")

    monkeypatch.setattr(_logfile, "_open_file", refuse)
    with caplog.at_level(logging.WARNING, logger="ebpfsensor"):
        for i in range(30):
            logging.getLogger("ebpfsensor").warning("record %d", i)
    warnings = [r.getMessage() for r in caplog.records if "after rotation" in r.getMessage()]
    assert warnings == [f"log file {path} unavailable after rotation: it is a symlink (to /etc/shadow); remove it"]
    assert not path.exists()  # rotated away, and not reopened
    assert "Logging error" not in capsys.readouterr().err  # nothing on stderr behind the caller's back
    monkeypatch.undo()
    assert _logfile.enable(str(path)) == str(path)  # a later enable starts again
    logging.getLogger("ebpfsensor").warning("back")
    assert path.read_text().endswith("back\n")
