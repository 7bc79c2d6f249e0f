# SPDX-License-Identifier: Apache-2.0
"""Command-line arguments and the commands that need no kernel."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ebpfsensor.cli import build_parser, main
from ebpfsensor.exclusions import ExcludeExecutable, ExcludeName, ExcludePathPrefix
from ebpfsensor.managed_config import load_managed_config
from ebpfsensor.sources.ebpf.objects import packaged_object_path


def test_parser() -> None:
    args = build_parser().parse_args(["stream", "--kinds", "process_exec,process_exit", "--duration", "2"])
    assert (args.command, args.kinds, args.duration) == ("stream", "process_exec,process_exit", 2.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["nonsense"])


def test_check_packaged(capsys: pytest.CaptureFixture[str]) -> None:
    if not packaged_object_path("process").exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "hook exec: btf" in out and "record exec_event: 200 bytes, layout matches" in out
    # a hook that runs another hook's program says whose, and counts its
    # instructions (file.bpf.o and its perf build)
    lines = out.splitlines()
    shared = [x for x in lines if x.startswith("  hook file_fchmod_exit: ")]
    own = [x for x in lines if x.startswith("  hook file_fchmodat_exit: ")]
    assert len(shared) == len(own) >= 1
    for line, mine in zip(shared, own, strict=True):
        m = re.fullmatch(r"  hook file_fchmod_exit: tp \(([1-9][0-9]*) insns, shares (\w+)\)", line)
        assert m and m[2] == "handle_file_fchmodat_exit_tp", line
        assert mine == f"  hook file_fchmodat_exit: tp ({m[1]} insns)"


def test_unknown_kind_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "--kinds", "process_exec,bogus", "--duration", "0"]) == 2
    assert "unknown event kind(s) bogus" in capsys.readouterr().err


def test_exclusions_in_managed_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(tmp_path / "etc" / "config.json")
    (tmp_path / "etc").mkdir(mode=0o700)
    assert main(["exclusions", "add", "--executable", "/bin/sh", "--config", cfg]) == 0
    before = Path(cfg).read_text()
    # anyone can name a process so: a name rule must not reach what it starts
    assert main(["exclusions", "add", "--name", "noisy", "--descendants", "--config", cfg]) == 2
    assert "anyone can name a process so" in capsys.readouterr().err
    assert Path(cfg).read_text() == before
    assert main(["exclusions", "add", "--name", "noisy", "--config", cfg]) == 0
    before = Path(cfg).read_text()
    assert main(["exclusions", "add", "--executable", "relative/path", "--config", cfg]) == 2
    assert "give an absolute path" in capsys.readouterr().err
    assert Path(cfg).read_text() == before
    rules = load_managed_config(cfg).sensor.exclusions
    assert rules == (ExcludeExecutable("/bin/sh"), ExcludeName("noisy"))
    assert main(["exclusions", "remove", "0", "--config", cfg]) == 0
    assert load_managed_config(cfg).sensor.exclusions == (ExcludeName("noisy"),)
    assert main(["exclusions", "remove", "5", "--config", cfg]) == 2


def test_diagnostic_parser() -> None:
    args = build_parser().parse_args(["diagnostic", "ebpf-statistics"])
    assert (args.command, args.diagnostic, args.duration, args.top, args.json) == (
        "diagnostic",
        "ebpf-statistics",
        20.0,
        10,
        False,
    )
    args = build_parser().parse_args(["diagnostic", "ebpf-statistics", "--duration", "2.5", "--top", "3", "--json"])
    assert (args.duration, args.top, args.json) == (2.5, 3, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["diagnostic"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["diagnostic", "ebpf-statistics", "--variant", "kprobe"])


def test_diagnostic_negative_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnostic", "ebpf-statistics", "--duration", "-1"]) == 2
    assert "must not be negative" in capsys.readouterr().err


def test_path_prefix_exclusions_in_managed_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(tmp_path / "etc" / "config.json")
    (tmp_path / "etc").mkdir(mode=0o700)
    assert main(["exclusions", "add", "--path-prefix", "/var/log/app/", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert f'added {{"type":"path_prefix","prefix":"/var/log/app/"}} to {cfg}' in out
    assert '0: {"type":"path_prefix","prefix":"/var/log/app/"}' in out
    before = Path(cfg).read_text()
    for bad, message in [("var/log", "not absolute"), ("/var/log/../x", "'..' component"), ("/a" * 128, "255")]:
        assert main(["exclusions", "add", "--path-prefix", bad, "--config", cfg]) == 2
        assert message in capsys.readouterr().err
    assert Path(cfg).read_text() == before
    assert load_managed_config(cfg).sensor.exclusions == (ExcludePathPrefix("/var/log/app/"),)
    # --duration belongs to --top-initiator
    assert main(["exclusions", "add", "--path-prefix", "/proc", "--duration", "3", "--config", cfg]) == 2
    assert "--duration goes with --top-initiator" in capsys.readouterr().err


def test_top_initiator_parser() -> None:
    args = build_parser().parse_args(["exclusions", "add", "--top-initiator", "--duration", "5", "--descendants"])
    assert (args.top_initiator, args.duration, args.descendants) == (True, 5.0, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["exclusions", "add", "--top-initiator", "--executable", "/bin/sh"])


def test_pid_exclusions_are_not_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "etc" / "config.json"
    (tmp_path / "etc").mkdir(mode=0o700)
    assert main(["exclusions", "add", "--pid", str(os.getpid()), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ebpfsensor: error: managed config {cfg}: sensor.exclusions[0]: ")
    assert "a pid names one process of one boot" in err and "Sensor.exclude(ExcludePid(...))" in err
    assert not cfg.exists()
    # a file that has one (written by hand, or by an older version) is refused the same way
    cfg.write_text(f'{{"sensor": {{"exclusions": [{{"type": "pid", "pid": {os.getpid()}}}]}}}}')
    assert main(["exclusions", "list", "--config", str(cfg)]) == 2
    assert "a pid names one process of one boot" in capsys.readouterr().err


def test_os_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ordinary OS error (a configuration directory that cannot be made)
    printed a traceback; the CLI prints one line and exits 2."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = str(blocker / "etc" / "config.json")  # a directory under a file: ENOTDIR
    assert main(["config", "ebpf-supplementary-event-provider", "--value", "disabled", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ebpfsensor: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
