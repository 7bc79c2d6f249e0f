# SPDX-License-Identifier: Apache-2.0
"""Seeding the process table: the BPF task iterator against the /proc scan,
in the same run, on the same processes.

N sleeping processes (``sleep``, each its own exec) are started; then each
seeding fills a fresh table (no hashes), alternately, and the medians are
compared. The iterator's time counts everything it costs at a sensor's
start: loading and verifying its program, reading the records, turning
them into snapshots (argv included) and the merge; the scan's, reading some
nine /proc files per process and the same merge. Both must find every
sleeper, with the same entity ids.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any

from ebpfsensor.process import ProcessTable, _procfs, _seed, _taskiter
from ebpfsensor.sources.ebpf.objects import BpfObject


def _sleepers(n: int) -> list[subprocess.Popen[bytes]]:
    procs = [subprocess.Popen(["sleep", "3600"]) for _ in range(n)]
    # each one exec'd: its image is sleep's, not the forked Python's
    end = time.monotonic() + 60
    for p in procs:
        while _procfs.read_process(p.pid) is None or _procfs.read_process(p.pid).comm != "sleep":  # type: ignore[union-attr]
            if time.monotonic() > end:
                raise RuntimeError(f"sleeper {p.pid} did not exec")
            time.sleep(0.001)
    return procs


def _seeded(use_iter: bool) -> tuple[float, ProcessTable, _seed.Seeding]:
    _seed.USE_TASK_ITER = use_iter
    table = ProcessTable(boot=bytes(16))
    t = time.perf_counter()
    done = _seed.seed(table, ebpf=True)
    ms = (time.perf_counter() - t) * 1e3
    if done.source != ("task_iter" if use_iter else "procfs"):
        raise RuntimeError(f"seeded by {done.source}, not as asked: {done.describe()}")
    return ms, table, done


def _parts(reps: int) -> dict[str, float]:
    """The iterator's time, step by step (medians): loading and verifying
    its program alone, then a whole run (load, link, read), then the
    records made snapshots."""
    load, load_read, parse = [], [], []
    obj = BpfObject.packaged("iter")
    for _ in range(reps):
        t = time.perf_counter()
        obj.load(hooks=["task"], attach=False).close()
        t1 = time.perf_counter()
        got = _taskiter.read_records()
        t2 = time.perf_counter()
        _taskiter.snapshots(got.data)
        t3 = time.perf_counter()
        load.append((t1 - t) * 1e3)
        load_read.append((t2 - t1) * 1e3)
        parse.append((t3 - t2) * 1e3)
    return {
        "load_ms": statistics.median(load),
        "load_and_read_ms": statistics.median(load_read),
        "snapshots_ms": statistics.median(parse),
    }


def run(n: int, reps: int) -> dict[str, Any]:
    """Seed both ways with n sleepers running."""
    procs = _sleepers(n)
    saved = _seed.USE_TASK_ITER
    try:
        iters: list[float] = []
        scans: list[float] = []
        for _ in range(reps):
            ms, by_iter, seeding = _seeded(True)
            iters.append(ms)
            ms, by_proc, _ = _seeded(False)
            scans.append(ms)
        for p in procs:
            a, b = by_iter.get(p.pid), by_proc.get(p.pid)
            if a is None or b is None or a.entity_id != b.entity_id or (a.exe, a.argv) != (b.exe, b.argv):
                raise RuntimeError(f"sleeper {p.pid}: iterator {a}, /proc {b}")
        parts = _parts(reps)
    finally:
        _seed.USE_TASK_ITER = saved
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    it, scan = statistics.median(iters), statistics.median(scans)
    return {
        "sleepers": n,
        "processes": len(by_iter),
        "variant": "argv from the iterator" if not seeding.argv else seeding.argv,
        "task_iter_ms": it,
        "procfs_ms": scan,
        "ratio": scan / it,
        **parts,
    }


def report(r: dict[str, Any]) -> None:
    """The section's lines of the summary."""
    n = r["processes"]
    print(f"seeding the process table ({r['sleepers']} sleepers, {n} processes in all, medians)")
    print(
        f"  task iterator {r['task_iter_ms']:.1f} ms ({r['task_iter_ms'] * 1e3 / n:.0f} us/process),"
        f" /proc scan {r['procfs_ms']:.1f} ms ({r['procfs_ms'] * 1e3 / n:.0f} us/process):"
        f" the iterator {r['ratio']:.1f}x faster"
    )
    print(
        f"  the iterator's steps: program load {r['load_ms']:.1f} ms, load+link+read"
        f" {r['load_and_read_ms']:.1f} ms, records to snapshots {r['snapshots_ms']:.1f} ms"
    )
