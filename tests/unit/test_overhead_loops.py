# SPDX-License-Identifier: Apache-2.0
"""The overhead diagnostic's parts that need no BPF: the loops, the floor's
targets, the command's arguments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpfsensor import EbpfSensorError, HookInfo
from ebpfsensor.cli import main
from ebpfsensor.diagnostic_overhead import LoopProcess, floor_targets
from ebpfsensor.sources.ebpf.objects import packaged_object_path


def test_loop_process_counts_and_fails_clearly(tmp_path: Path) -> None:
    with LoopProcess(workdir=str(tmp_path)) as loop:
        assert loop.run("rename", max_ops=101)[0] == 101
        assert sorted(os.listdir(tmp_path)) == ["b"]
        assert loop.run("exec", max_ops=3)[0] == 3
        r = loop.run("open", seconds=0.05)
        assert r.ops > 0 and r.ns >= 50_000_000
        # the loop's own CPU time, at most the time it took
        assert 0 < r.cpu_ns <= r.ns * 1.05
        # fork+exec: the children's CPU time counts, the parent mostly waits
        r = loop.run("exec", max_ops=20)
        assert r.cpu_ns > 0
        assert sorted(os.listdir(tmp_path)) == ["a"]
    with LoopProcess(workdir=str(tmp_path / "missing")) as loop:
        with pytest.raises(EbpfSensorError, match="the loop failed after 0 operations: No such file or directory"):
            loop.run("open", max_ops=10)
        # the process survives a failed loop
        assert loop.run("exec", max_ops=1)[0] == 1


def test_loop_process_is_pinned() -> None:
    cpu = max(os.sched_getaffinity(0))
    with LoopProcess(cpu=cpu) as loop:
        assert os.sched_getaffinity(loop.pid) == {cpu}


def test_floor_targets_follow_the_attached_variant() -> None:
    if not packaged_object_path("floor").exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    hooks = {
        "file_openat_enter": HookInfo("file_openat_enter", "tp", []),
        "exec": HookInfo("exec", "btf", []),
        "fork": HookInfo("fork", "raw", []),
        "exit": HookInfo("exit", None, ["tp: missing"]),
        "path_unlink": HookInfo("path_unlink", "lsm", []),
        "path_mkdir": HookInfo("path_mkdir", "fentry", []),
        "path_chmod": HookInfo("path_chmod", "kprobe", []),
    }
    got = {t.hook: (t.program, t.target) for t in floor_targets(hooks)}
    assert got == {
        "file_openat_enter": ("handle_floor_tp", "syscalls/sys_enter_openat"),
        "exec": ("handle_floor_btf", "sched_process_exec"),
        "fork": ("handle_floor_raw", "sched_process_fork"),
        "path_unlink": ("handle_floor_lsm", "path_unlink"),
        "path_mkdir": ("handle_floor_fentry", "security_path_mkdir"),
        "path_chmod": ("handle_floor_kprobe", "security_path_chmod"),
    }
    with pytest.raises(EbpfSensorError, match="no packaged program for hook nope variant tp"):
        floor_targets({"nope": HookInfo("nope", "tp", [])})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "--duration must be positive, not 0.0"),
        (["--duration", "-1"], "--duration must be positive, not -1.0"),
    ],
)
def test_bad_arguments_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnostic", "overhead", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"ebpfsensor: error: {message}\n"
