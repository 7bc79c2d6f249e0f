# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor diagnostic overhead` and its attach floor, on this kernel.

No timing is asserted: the machine may be busy. What is: every operation is
timed in every mode, the sensor delivered the loop's own events, the floor
sits on exactly the hooks the sensor attached and its programs run there,
and nothing stays loaded afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ebpfsensor
from ebpfsensor._ffi import check_ret, lib
from ebpfsensor.diagnostic_overhead import (
    MODES,
    OPERATIONS,
    AttachFloor,
    LoopProcess,
    floor_targets,
    variant_summary,
)
from ebpfsensor.sources.ebpf.objects import BpfObject

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
NOBODY = 65534


def held_programs(pid: int) -> set[int]:
    """The ids of the BPF programs a process holds an fd of."""
    ids = set()
    base = f"/proc/{pid}/fdinfo"
    try:
        fds = os.listdir(base)
    except OSError:
        return ids
    for fd in fds:
        try:
            text = Path(base, fd).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("prog_id:"):
                ids.add(int(line.split()[1]))
    return ids


def loaded_programs() -> dict[int, str]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {p["id"]: p.get("name", "") for p in json.loads(out or "[]")}


def test_command_times_every_operation_and_leaves_nothing() -> None:
    duration = 2.0
    p = subprocess.Popen(
        [sys.executable, "-m", "ebpfsensor", "diagnostic", "overhead", "--duration", str(duration), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    # every program the command held, and the names of those still loaded
    # when seen: the floor's among them
    held: dict[int, str] = {}
    while p.poll() is None:
        now = held_programs(p.pid)
        if now - held.keys():
            names = loaded_programs()
            held.update({i: names.get(i, "") for i in now - held.keys()})
        time.sleep(0.05)
    out, err = p.communicate()
    assert p.returncode == 0, err.decode()
    report = json.loads(out)

    # nothing of the command's stays loaded once it is done
    end = time.monotonic() + 10
    while (left := held.keys() & loaded_programs().keys()) and time.monotonic() < end:
        time.sleep(0.1)
    assert left == set()
    names = set(held.values())
    assert "handle_floor_tp" in names or "handle_floor_btf" in names
    assert any(n.startswith("handle_exec_") for n in names)

    assert report["duration_s"] == duration
    rounds = report["rounds"]
    assert rounds >= 3
    ops = {o["operation"]: o for o in report["operations"]}
    assert set(ops) == set(OPERATIONS)
    for name, o in ops.items():
        assert o["label"] == OPERATIONS[name][0]
        for mode in MODES:
            m = o[mode]
            assert m["ns_per_op"] > 0 and m["ops"] > 0, (name, mode, m)
            assert m["wall_ns_per_op"] > 0, (name, mode, m)
            assert len(m["rounds"]) == len(m["wall_rounds"]) == rounds
            assert all(r > 0 for r in m["rounds"] + m["wall_rounds"])
            assert m["ratio"] == pytest.approx(m["ns_per_op"] / o["nothing"]["ns_per_op"])
            assert m["added_ns"] == pytest.approx(m["ns_per_op"] - o["nothing"]["ns_per_op"])
            assert m["wall_ratio"] == pytest.approx(m["wall_ns_per_op"] / o["nothing"]["wall_ns_per_op"])
        nothing = o["nothing"]["rounds"]
        assert o["noise_ns"] == pytest.approx((max(nothing) - min(nothing)) / 2)
        if o["sensor"]["added_ns"] > o["noise_ns"]:
            assert o["floor_share"] == pytest.approx(o["floor"]["added_ns"] / o["sensor"]["added_ns"])
        else:
            assert o["floor_share"] is None
        c = o["consumer"]
        assert c["seconds"] > 0 and c["cpu_user_s"] + c["cpu_sys_s"] > 0
        assert c["delivered"] >= c["from_loop"] > 0
        # the sensor delivered the loop's own events, one per operation,
        # unless the rings overflowed (counted as dropped)
        timed = o["sensor"]["ops"]
        if name == "open":
            # read-only opens of a file not watched: counted, not reported;
            # each loop's set-up opens its file once (O_CREAT, existing)
            assert 0 < c["from_loop"] <= rounds
        elif name == "open_write":
            assert timed - c["dropped"] <= c["from_loop"] <= timed + rounds
        else:
            assert timed - c["dropped"] <= c["from_loop"] <= timed
    total = report["consumer"]
    assert total["delivered"] == sum(o["consumer"]["delivered"] for o in ops.values())

    # the report names the variant of every hook a sensor tries here, and
    # the floor sat on exactly the places it attaches programs, each once
    with ebpfsensor.Sensor(log_file=None) as s:
        variants = {h: info.variant for h, info in s.hooks().items()}
    assert report["hooks"] == variants
    sections = {_program_section(h, v) for h, v in variants.items() if v}
    assert sorted(t["section"] for t in report["floor"]) == sorted(sections)
    for t in report["floor"]:
        variant = variants[t["hook"]]
        assert variant is not None
        assert t["section"] == _program_section(t["hook"], variant)


def test_command_text_output() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ebpfsensor", "diagnostic", "overhead", "--duration", "1", "--kinds", "file_open"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "sensor: file_open," in lines[1]
    # the hooks such a sensor attaches here, by variant (exec, fork and
    # exit are always loaded)
    with ebpfsensor.Sensor(kinds={"file_open"}, log_file=None) as s:
        variants = {h: info.variant for h, info in s.hooks().items()}
    assert lines[2] == f"hooks by variant: {variant_summary(variants)}"
    for hook in ("exec", "fork", "exit", "file_openat_enter"):
        assert hook in variants and variants[hook] is not None
    for label in ("openat(r)+close", "openat(w)+close", "rename", "fork+exec"):
        assert sum(line.startswith(label) for line in lines) == 2, label  # timing and consumer rows


def test_not_root_is_one_line_and_exit_2() -> None:
    # the interpreter may live where uid 65534 cannot reach it (pyenv under
    # /root), so the command's modules are imported first, then the process
    # drops to uid 65534 and runs the command
    code = (
        "import os, sys\n"
        "from ebpfsensor.cli import build_parser, main\n"
        "import ebpfsensor.diagnostic_overhead\n"
        "build_parser()\n"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "sys.exit(main(['diagnostic', 'overhead', '--duration', '1']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("ebpfsensor: error: run diagnostic overhead: Permission denied (EPERM); needs root")


def _program_section(hook: str, variant: str) -> str:
    for name in ("process", "file", "net", "priv"):
        for spec in BpfObject.packaged(name).hooks.get(hook, []):
            if spec.variant == variant:
                return spec.section
    raise AssertionError(f"no program for {hook} {variant}")


def test_floor_mirrors_the_sensor_and_runs_there() -> None:
    with ebpfsensor.Sensor(kinds={"file_open", "process_exec"}, log_file=None) as s:
        hooks = s.hooks()
    targets = floor_targets(hooks)
    attached = {h: _program_section(h, info.variant) for h, info in hooks.items() if info.variant}
    # one target for each place the sensor attached a program (the open's
    # hooks under fentry share one program and one attachment)
    assert sorted(t.section for t in targets) == sorted(set(attached.values()))
    for t in targets:
        assert t.section == attached[t.hook]
        target = t.section.partition("/")[2]
        assert t.target == target
        assert t.program.startswith("handle_floor_")
    openat = next(t for t in targets if t.section == attached["file_openat_enter"])
    execs = next(t for t in targets if t.hook == "exec")

    stats = check_ret(lib.bpf_enable_stats(lib.BPF_STATS_RUN_TIME), "enable", "BPF run-time statistics")
    try:
        with LoopProcess() as loop, AttachFloor(targets) as floor:
            assert floor.links == len(targets)
            ids = set(floor.programs())
            assert ids <= loaded_programs().keys()
            before = floor.programs()
            loop.run("open", max_ops=2000)
            loop.run("exec", max_ops=20)
            after = floor.programs()
        for t, n in ((openat, 2000), (execs, 20)):
            prog = floor.program_of(t)
            assert after[prog] - before[prog] >= n, t
    finally:
        os.close(stats)
    end = time.monotonic() + 10
    while (left := ids & loaded_programs().keys()) and time.monotonic() < end:
        time.sleep(0.1)
    assert left == set()
