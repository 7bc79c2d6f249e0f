#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The table of tools/vmbench.sh: `ebpfsensor diagnostic overhead --json`
reports, one per kernel, side by side as Markdown (for docs/benchmarks.md).

    tools/vmbench-table.py [--target PCT] KERNEL=REPORT.json ...

Every figure is a ratio against the same report's "nothing" (CPU time of the
loop process per operation, median over the rounds): guests are emulated, so
nanoseconds compare only within one kernel's run. The verdict is for the
reported openat+close (the write open, which the default open policy
reports) against --target (default 15%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

# the hooks the table names by themselves; path_* are counted together
SHOWN = ("exec", "fork", "exit", "file_openat_enter", "rename_target")


def _variants(hooks: dict[str, str | None]) -> str:
    """The variants of the hooks that tell the tier apart: ``exec/fork/exit
    btf; file_openat tp; rename_target lsm; path_* lsm 9``."""
    parts: list[str] = []
    lifecycle = {hooks.get(h) for h in ("exec", "fork", "exit")}
    if len(lifecycle) == 1:
        parts.append(f"exec/fork/exit {lifecycle.pop() or 'none'}")
    else:
        parts += [f"{h} {hooks.get(h) or 'none'}" for h in ("exec", "fork", "exit")]
    for h in SHOWN[3:]:
        if h in hooks:
            parts.append(f"{h.removesuffix('_enter')} {hooks[h] or 'none'}")
    paths: dict[str, int] = {}
    for h, v in hooks.items():
        if h.startswith("path_"):
            paths[v or "none"] = paths.get(v or "none", 0) + 1
    if paths:
        parts.append("path_* " + ", ".join(f"{v} {n}" for v, n in sorted(paths.items())))
    return "; ".join(parts)


def _ns(v: float) -> str:
    return f"{v / 1000:.1f} µs" if v >= 100_000 else f"{v:.0f} ns"


def _pct(ratio: float) -> str:
    return f"{100 * (ratio - 1):+.1f}%"


def per_round(o: dict[str, Any], mode: str) -> tuple[float, float, float]:
    """The mode's CPU time over nothing's round by round (the modes of a
    round run back to back, so drift in the machine's speed cancels): the
    median and quartiles of those ratios."""
    ratios = [m / n for m, n in zip(o[mode]["rounds"], o["nothing"]["rounds"], strict=True)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q2, q1, q3


def table(reports: list[tuple[str, dict[str, Any]]], target: float) -> str:
    """The Markdown: the runs, one row per kernel and operation, and the verdicts."""
    out = ["| kernel | run | hooks chosen |", "| --- | --- | --- |"]
    for name, r in reports:
        run = f"{r['machine']}; {r['rounds']} rounds, {r['duration_s']:g} s of loops ({r['elapsed_s']:.0f} s)"
        out.append(f"| {name} | {run} | {_variants(r.get('hooks') or {})} |")
    out += [
        "",
        "| kernel | operation | nothing (CPU ns/op ± noise) | attach floor | sensor | sensor / floor"
        " | floor share | sensor / nothing per round: median (quartiles) | wall-clock: floor / sensor"
        " | sensor CPU | dropped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for name, r in reports:
        for o in r["operations"]:
            nothing, floor, sensor = o["nothing"], o["floor"], o["sensor"]
            share = "-" if o["floor_share"] is None else f"{100 * o['floor_share']:.0f}%"
            over_floor = sensor["ns_per_op"] / floor["ns_per_op"]
            mid, q1, q3 = per_round(o, "sensor")
            out.append(
                f"| {name} | {o['label']} | {_ns(nothing['ns_per_op'])} ± {_ns(o['noise_ns'])}"
                f" | {_pct(floor['ratio'])} | **{_pct(sensor['ratio'])}** | {over_floor:.3f}x"
                f" | {share} | {_pct(mid)} ({_pct(q1)} to {_pct(q3)})"
                f" | {floor['wall_ratio']:.2f}x / {sensor['wall_ratio']:.2f}x"
                f" | {100 * o['consumer']['cpu_per_s']:.0f}% | {o['consumer']['dropped']} |"
            )
            if o["operation"] == "open_write":
                added = 100 * (sensor["ratio"] - 1)
                noise = 100 * o["noise_ns"] / nothing["ns_per_op"]
                ok = "within" if added <= target else "above"
                verdicts.append(
                    f"- {name}: reported openat+close {added:+.1f}% against nothing (noise ±{noise:.1f}%,"
                    f" round by round {_pct(q1)} to {_pct(q3)}): {ok} +{target:g}%; the floor {_pct(floor['ratio'])},"
                    f" the sensor over the floor {100 * (sensor['ratio'] - floor['ratio']):+.1f} points"
                    f" ({sensor['ns_per_op'] - floor['ns_per_op']:+.0f} ns)"
                )
    out += [
        "",
        "noise: half the spread of the rounds with nothing attached; floor share: the floor's added cost"
        " over the sensor's; sensor CPU: its own process (consumer) per second of loops",
        "",
        *verdicts,
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=15.0, help="the target for a reported openat+close, %% (15)")
    p.add_argument("reports", nargs="+", metavar="KERNEL=REPORT.json")
    args = p.parse_args(argv)
    reports = []
    for arg in args.reports:
        name, sep, path = arg.partition("=")
        if not sep:
            p.error(f"{arg}: give KERNEL=REPORT.json")
        try:
            with open(path, encoding="utf-8") as f:
                reports.append((name, json.load(f)))
        except (OSError, ValueError) as e:
            print(f"vmbench-table: {path}: {e}", file=sys.stderr)
            return 2
    sys.stdout.write(table(reports, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
