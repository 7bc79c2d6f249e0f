# SPDX-License-Identifier: Apache-2.0
"""What a thread's first file call costs in the kernel, against its later ones.

    sudo PYTHONPATH=python python3 -m tests.bench.firstcall [--threads N] [--reps R]

A file call of a thread above the call slots (thread id 32768 and up) waits
from sys_enter to sys_exit in the thread's task storage where the kernel has
it (file.bpf.c, CALL_STORE): the thread's first call allocates that storage,
its later ones find it. Thread ids are aimed above 32768 (``pid_max`` raised,
``ns_last_pid`` set; both restored). Two workloads, N write opens each (a new
file each, so nothing is deduplicated), alternated R times:

- first calls: N threads, one open each;
- later calls: one thread, N opens.

Printed: the open's sys_enter and sys_exit programs' ns per run (the kernel's
BPF run-time statistics), medians of R. Every kind on, the sensor's own
process not excluded (its threads are the workload). The machine's other
opens run the same programs: the run counts are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import ebpfsensor
from ebpfsensor._ffi import check_ret, lib
from tests.bench.openprofile import OPEN_PROGRAMS, programs_per_run

PID_MAX = Path("/proc/sys/kernel/pid_max")
NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")
ABOVE = 100_000


def _measure(sensor: ebpfsensor.Sensor, workload: Callable[[], None]) -> tuple[float, float, int]:
    """(sys_enter ns/run, sys_exit ns/run, runs) over one workload, its
    threads' ids above 32768."""
    NS_LAST_PID.write_text(str(ABOVE))
    return programs_per_run(sensor, OPEN_PROGRAMS, workload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    pid_max = PID_MAX.read_text().strip()
    stats_fd = check_ret(lib.bpf_enable_stats(lib.BPF_STATS_RUN_TIME), "enable", "BPF run-time statistics")
    results: dict[str, list[tuple[float, float, int]]] = {"first calls": [], "later calls": []}
    try:
        PID_MAX.write_text(str(1 << 22))
        with (
            tempfile.TemporaryDirectory(prefix="ebpfsensor-firstcall-") as work,
            ebpfsensor.Sensor(log_file=None, exclude_self=False) as s,
        ):

            def opens(prefix: str, count: int) -> None:
                for i in range(count):
                    os.close(os.open(f"{work}/{prefix}{i}", os.O_WRONLY | os.O_CREAT, 0o600))
                    if i % 64 == 0:
                        s.poll(0)

            for rep in range(args.reps):

                def first(rep: int = rep) -> None:
                    for i in range(args.threads):
                        t = threading.Thread(target=opens, args=(f"a{rep}.{i}.", 1))
                        t.start()
                        t.join()
                        if i % 64 == 0:
                            s.poll(0)

                def later(rep: int = rep) -> None:
                    t = threading.Thread(target=opens, args=(f"b{rep}.", args.threads))
                    t.start()
                    t.join()

                results["first calls"].append(_measure(s, first))
                results["later calls"].append(_measure(s, later))
    finally:
        PID_MAX.write_text(pid_max)
        os.close(stats_fd)
    print(f"ns per program run, median of {args.reps} x {args.threads} write opens, thread ids above 32768")
    print(f"  {'workload':14} {'sys_enter':>10} {'sys_exit':>10} {'runs':>8}")
    for name, runs in results.items():
        enter = statistics.median(r[0] for r in runs)
        exit_ = statistics.median(r[1] for r in runs)
        count = statistics.median(r[2] for r in runs)
        print(f"  {name:14} {enter:10.0f} {exit_:10.0f} {count:8.0f}")


if __name__ == "__main__":
    main()
