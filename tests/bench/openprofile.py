# SPDX-License-Identifier: Apache-2.0
"""Where an openat's nanoseconds go in the sensor's programs.

    sudo PYTHONPATH=python python3 -m tests.bench.openprofile [--ops N] [--reps R]

The kernel's BPF run-time statistics (``kernel.bpf_stats_enabled``, turned on
for the run through BPF_ENABLE_STATS) give each program's run time and run
count. The loops of ``diagnostic overhead`` (openat+close, pinned to one
CPU) run under sensor configurations that stop the same open at successive
points, so that differences between them split the sys_exit program's cost:

- read-only, not watched (the default policy): the decision alone (slot,
  file from the fd, one lookup by identity, a counter);
- write, deduplicated (``file_dedup_ms``): the stash lookup and the file
  and inode reads up to the dedup check, nothing built;
- write, excluded by a path prefix rule: the record built (task context,
  the path walk, the caller's string), matched against the rule, not sent;
- write, reported: the same, sent to the ring;
- write, process excluded: both programs return at the exclusion lookup;
- rename, reported: rename's own pair of programs (sys_enter_rename,
  sys_exit_rename), two strings checked and two paths built.

Each program's run time is per run, the median of R repetitions; the
enter program's (the stash) is given too. Every kind on, as a deployment.
Where the kernel runs the open's fentry variant (one fexit program on
do_filp_open, file.bpf.c), the open's "sys_exit" is that program and its
"sys_enter" is 0 (the enter hook runs the same program, once); ``--variants`` restricts the
variants (``Config.hook_variants``), e.g. ``--variants lsm,btf,raw,tp,kprobe``
for the tracepoint pairs in the same guest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

import ebpfsensor
from ebpfsensor import ExcludePathPrefix, ExcludePid
from ebpfsensor._ffi import check_ret, ffi, lib
from ebpfsensor.diagnostic_overhead import AttachFloor, LoopProcess, floor_targets

OPEN_PROGRAMS = ("file_openat_enter", "file_openat_exit")
RENAME_PROGRAMS = ("file_rename_enter", "file_rename_exit")


def programs_per_run(
    sensor: ebpfsensor.Sensor, programs: tuple[str, str], workload: Callable[[], None]
) -> tuple[float, float, int]:
    """ns per run of the (sys_enter, sys_exit) programs named by hook over
    the workload, and the sys_exit program's runs."""
    src: Any = sensor._ebpf  # the programs of this sensor, not another's
    obj = next(o for o in src._objects if programs[1] in o.hooks)
    names = [obj.hooks[h].program for h in programs]
    before = [obj.program_info(p) for p in names]
    workload()
    after = [obj.program_info(p) for p in names]
    per_run = [
        (a.run_time_ns - b.run_time_ns) / (a.run_cnt - b.run_cnt) if a.run_cnt > b.run_cnt else 0.0
        for a, b in zip(after, before, strict=True)
    ]
    if names[0] == names[1]:
        # one program for both hooks (the open's fentry variant): no enter
        per_run[0] = 0.0
    while sensor.poll(0.05):
        pass
    return per_run[0], per_run[1], after[1].run_cnt - before[1].run_cnt


def _per_run(
    sensor: ebpfsensor.Sensor, loop: LoopProcess, op: str, n: int, programs: tuple[str, str]
) -> tuple[float, float]:
    """ns per run of the (sys_enter, sys_exit) programs over n of the loop's op."""
    enter, exit_, _ = programs_per_run(
        sensor, programs, lambda: loop.run(op, max_ops=n, during=lambda: sensor.poll(0.01) and None)
    )
    return enter, exit_


def _floor_per_run(floor: AttachFloor, loop: LoopProcess, op: str, n: int) -> float:
    """ns per run of the floor's classic tracepoint program (return 0): what
    the run-time statistics themselves add to a program run."""

    def totals() -> tuple[int, int]:
        t = c = 0
        for obj in floor._objects:
            prog = lib.bpf_object__next_program(obj, ffi.NULL)
            while prog != ffi.NULL:
                fd = lib.bpf_program__fd(prog)
                if fd >= 0 and ffi.string(lib.bpf_program__name(prog)) == b"handle_floor_tp":
                    info = ffi.new("struct bpf_prog_info *")
                    size = ffi.new("uint32_t *", ffi.sizeof("struct bpf_prog_info"))
                    check_ret(lib.bpf_prog_get_info_by_fd(fd, info, size), "program info", "floor")
                    t, c = t + info.run_time_ns, c + info.run_cnt
                prog = lib.bpf_object__next_program(obj, prog)
        return t, c

    t0, c0 = totals()
    loop.run(op, max_ops=n)
    t1, c1 = totals()
    return (t1 - t0) / (c1 - c0) if c1 > c0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", help="the hook variants allowed, comma-separated (default: all)")
    args = ap.parse_args()
    variants = {"hook_variants": frozenset(args.variants.split(","))} if args.variants else {}
    stats_fd = check_ret(lib.bpf_enable_stats(lib.BPF_STATS_RUN_TIME), "enable", "BPF run-time statistics")
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="ebpfsensor-openprofile-") as work,
            LoopProcess(cpu=0, workdir=work) as loop,
        ):
            work = os.path.realpath(work)
            configs: dict[str, tuple[str, dict[str, Any], tuple[str, str]]] = {
                "read-only, not watched": ("open", {}, OPEN_PROGRAMS),
                "read-only, read_opens=all": ("open", {"read_opens": "all"}, OPEN_PROGRAMS),
                "write, deduplicated": ("open_write", {"file_dedup_ms": 3_600_000}, OPEN_PROGRAMS),
                "write, excluded by path prefix": (
                    "open_write",
                    {"exclusions": (ExcludePathPrefix(work),)},
                    OPEN_PROGRAMS,
                ),
                "write, reported": ("open_write", {}, OPEN_PROGRAMS),
                "write, process excluded": ("open_write", {"exclusions": (ExcludePid(loop.pid),)}, OPEN_PROGRAMS),
                "rename, reported": ("rename", {}, RENAME_PROGRAMS),
            }
            loop.run("open", max_ops=args.ops // 10)
            with ebpfsensor.Sensor(log_file=None, **variants) as s:
                targets = floor_targets(s.hooks())
                open_variant = s.hooks()["file_openat_exit"].variant
            floor_runs = []
            for _ in range(args.reps):
                for name, (op, cfg, programs) in configs.items():
                    with ebpfsensor.Sensor(log_file=None, **cfg, **variants) as s:
                        results.setdefault(name, []).append(_per_run(s, loop, op, args.ops, programs))
                with AttachFloor(targets) as floor:
                    floor_runs.append(_floor_per_run(floor, loop, "open", args.ops))
    finally:
        os.close(stats_fd)
    print(f"ns per program run, median of {args.reps} x {args.ops} openat+close or rename (CPU 0)")
    print(f"  the open's hooks: {open_variant}")
    print(f"  {'configuration':34} {'sys_enter':>10} {'sys_exit':>10} {'both':>10}")
    for name, runs in results.items():
        enter = statistics.median(r[0] for r in runs)
        exit_ = statistics.median(r[1] for r in runs)
        print(f"  {name:34} {enter:10.0f} {exit_:10.0f} {enter + exit_:10.0f}")
    floor = statistics.median(floor_runs)
    print(f"  {'attach floor (return 0)':34} {floor:10.0f} {floor:10.0f} {2 * floor:10.0f}")


if __name__ == "__main__":
    main()
