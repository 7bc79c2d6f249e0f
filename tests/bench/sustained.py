# SPDX-License-Identifier: Apache-2.0
"""Sustained rate without loss, and what happens above it, for either
transport (BPF ring buffers, or perf event arrays: ``Sensor(transport=...)``
with the bench object built the same way, bench.perf.bpf.o).

A sensor with the default ring sizes and only the process lifecycle kinds
attached drains its rings the way an agent does (``Sensor.poll(None)`` in a
loop). The bench's tc classifier (handle_flood_raw in bench.bpf.c) shares
the sensor's maps and submits file_open records into its activity ring (or
the activity perf event array, into the buffer of the CPU it runs on),
counted in the sensor's own kind_stats; a C thread (cbench.bc_produce)
drives it with BPF_PROG_TEST_RUN at a paced rate, K records per call.

A probe at a rate passes when the producer held the rate (at least
HIT_FRACTION of it) and nothing was dropped. The rate is halved until a
probe passes (an emulated guest's consumer is slow), doubled until a probe
fails, bisected between the last pass and the first failure, and the result
is held for 30 s (5 s with --quick; stepped down 10% when that fails, at
most CONFIRM_TRIES times). Above it, at twice the rate, the counters must
reconcile (attempted = produced + dropped, produced = delivered; with perf
event arrays the kernel's lost-record count equals dropped) and the
lifecycle ring must lose nothing while processes are started during the
flood.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Any

import ebpfsensor
from ebpfsensor._ffi import check_ret, ffi
from ebpfsensor.events import FileOpen, ProcessExec
from ebpfsensor.sources.ebpf.source import EbpfSource

HIT_FRACTION = 0.95
# producer threads for the search: half the CPUs, the consumer needs one.
# Above the rate twice as many, so that records drop rather than only the
# producers slowing down: every record submitted while the consumer is more
# than wakeup_bytes behind forces a wakeup, which costs the producer
THREADS = max(1, (os.cpu_count() or 2) // 2)
LIFECYCLE = frozenset({"process_exec", "process_fork", "process_exit"})
SHARED = ("activity_events", "lifecycle_events", "kind_stats", "kind_enabled")
# the search starts here, and gives up below the lowest rate
START_RATE = 125_000.0
LOWEST_RATE = 2_000.0
# a rate that held in a probe but not for the hold is stepped down 10% at a
# time, this many times at most (a loaded machine's consumer varies)
CONFIRM_TRIES = 8


def ebpf_source(sensor: ebpfsensor.Sensor) -> EbpfSource:
    """The sensor's eBPF source (its objects and its own counters)."""
    if sensor._ebpf is None:
        raise SystemExit("bench: the sensor runs no eBPF source")
    return sensor._ebpf


class _Flood:
    """The producer object loaded against a running sensor's maps."""

    def __init__(self, sensor: ebpfsensor.Sensor, producer_obj: Any, cb: Any) -> None:
        self.s = sensor
        self.cb = cb
        shared = {name: ebpf_source(sensor)._objects[0].map_fd(name) for name in SHARED}
        self.loaded = producer_obj.load(shared_maps=shared, hooks={"flood"}, attach=False)
        self.prog = self.loaded.program_fd("handle_flood_raw")
        self.record_bytes = 0
        self.perf = sensor.health().transport == "perf"

    def close(self) -> None:
        self.loaded.close()

    def counters(self) -> tuple[int, int, int]:
        k = self.s.stats().kinds["file_open"]
        return k.produced, k.dropped, k.delivered

    def lifecycle_dropped(self) -> int:
        return sum(k.dropped for name, k in self.s.stats().kinds.items() if name in LIFECYCLE)

    def perf_lost(self) -> list[int]:
        """The kernel's lost-record counts, lifecycle and activity ([0, 0] for
        rings): EbpfStats.perf_lost, which the sensor's own stats() leaves out."""
        return list(ebpf_source(self.s).stats().perf_lost) or [0, 0]

    def flush(self) -> int:
        """One record on each CPU this process may run on: a perf buffer
        reports the records it lost with the next record that fits, so after
        this every loss is in perf_lost. Returns the records written."""
        cpus = os.sched_getaffinity(0)
        try:
            for cpu in sorted(cpus):
                os.sched_setaffinity(0, {cpu})
                check_ret(self.cb.lib.bc_test_run(self.prog, 1), "test run", "handle_flood_raw")
        finally:
            os.sched_setaffinity(0, cpus)
        return len(cpus)

    def run(self, rate: float, seconds: float, threads: int = 1, children: int = 0) -> dict[str, Any]:
        """Produce at rate for seconds while draining; then drain the rest."""
        per_call = max(16, min(4096, int(rate / threads / 2000)))  # about 2000 calls/s per thread
        ps = []
        for _ in range(threads):
            p = self.cb.ffi.new("struct bc_produce *")
            p.prog_fd = self.prog
            p.per_call = per_call
            p.rate = rate / threads
            p.seconds = seconds
            ps.append(p)
        produced0, dropped0, delivered0 = self.counters()
        life0 = self.lifecycle_dropped()
        lost0 = self.perf_lost()
        workers = [threading.Thread(target=self.cb.lib.bc_produce, args=(p,)) for p in ps]
        pids: list[int] = []
        if children:
            # started from their own thread, spread over the flood
            def spawn() -> None:
                for _ in range(children):
                    with subprocess.Popen(["/bin/true"]) as child:
                        pids.append(child.pid)
                    time.sleep(seconds / (children + 1))

            workers.append(threading.Thread(target=spawn))
        opens = 0
        execs: set[int] = set()

        def take(batch: list[Any]) -> None:
            nonlocal opens
            for e in batch:
                if type(e) is FileOpen:
                    if not opens:
                        # the record's size in the ring: fixed part and both paths, 8-aligned
                        tail = len(e.path.encode()) + len(e.arg_path.encode())
                        self.record_bytes = (ffi.sizeof("struct file_open_event") + tail + 7) // 8 * 8
                    opens += 1
                elif type(e) is ProcessExec:
                    execs.add(e.pid)

        def settle() -> None:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                batch = self.s.poll(0.05)
                take(batch)
                if not batch and self.counters()[0] - produced0 == opens:
                    break

        # this thread's CPU time is the consumer's (the producers are threads of this process too)
        cpu0 = time.thread_time()
        for w in workers:
            w.start()
        try:
            while any(w.is_alive() for w in workers):
                take(self.s.poll(None))
        finally:
            for p in ps:
                p.stop = 1
            for w in workers:
                w.join()
        settle()
        consumer_cpu = time.thread_time() - cpu0
        flushed = 0
        if self.perf:
            flushed = self.flush()
            settle()
        errors = [p.err for p in ps if p.err]
        if errors:
            raise SystemExit(f"bench: the flood producer's test run failed: errno {errors[0]}")
        produced1, dropped1, delivered1 = self.counters()
        lost = [b - a for a, b in zip(lost0, self.perf_lost(), strict=True)]
        attempted = sum(int(p.records) for p in ps) + flushed
        elapsed = max(float(p.elapsed) for p in ps)
        r = {
            "target_per_s": rate,
            "seconds": elapsed,
            "threads": threads,
            "records_per_call": per_call,
            "attempted": attempted,
            "achieved_per_s": attempted / elapsed,
            "produced": produced1 - produced0,
            "dropped": dropped1 - dropped0,
            "delivered": delivered1 - delivered0,
            "received": opens,
            "lifecycle_dropped": self.lifecycle_dropped() - life0,
            "perf_lost": lost[1],
            "lifecycle_perf_lost": lost[0],
            "consumer_cpu_s": consumer_cpu,
            "consumer_cpu_s_per_m": consumer_cpu / max(1, opens) * 1e6,
        }
        if opens == 0:
            raise SystemExit(f"bench: the sensor delivered no flood record at {rate / 1e6:.3f} M/s")
        if attempted != r["produced"] + r["dropped"] or r["produced"] != r["delivered"] or opens != r["delivered"]:
            raise SystemExit(
                f"bench: the flood's counters do not reconcile: {attempted} attempted, {r['produced']} produced,"
                f" {r['dropped']} dropped, {r['delivered']} delivered (stats), {opens} received"
            )
        if self.perf and (lost[1] != r["dropped"] or lost[0] != r["lifecycle_dropped"]):
            raise SystemExit(
                f"bench: the perf buffers' lost counts do not reconcile: activity {lost[1]} lost,"
                f" {r['dropped']} dropped; lifecycle {lost[0]} lost, {r['lifecycle_dropped']} dropped"
            )
        if children:
            missing = [pid for pid in pids if pid not in execs]
            r["children"] = len(pids)
            r["children_exec_received"] = len(pids) - len(missing)
            if len(pids) != children or missing:
                raise SystemExit(f"bench: {len(missing)} of {children} execs started during the flood never arrived")
        return r


def _judge(r: dict[str, Any]) -> bool:
    """Pass or fail a run, noting why it failed: records dropped, or the
    producer fell short of its rate (a record submitted while more than
    wakeup_bytes wait forces a wakeup, which slows the producer when the
    consumer lags)."""
    short = r["achieved_per_s"] < HIT_FRACTION * r["target_per_s"]
    r["failed"] = ", ".join(why for why, bad in (("dropped", r["dropped"]), ("producer short", short)) if bad)
    passed = not r["failed"]
    r["passed"] = passed
    return passed


def sustained_rate(
    quick: bool,
    producer_obj: Any,
    cb: Any,
    transport: str = "ring",
    timings: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """The highest rate of file_open records delivered without a drop.

    Args:
        quick: the --quick timings (2 s probes, held 5 s, 3 s above).
        producer_obj: the bench object built for the transport (bench.bpf.o
            or bench.perf.bpf.o).
        cb: the cbench module.
        transport: the sensor's Config.transport, "ring" or "perf".
        timings: seconds of a probe, of the hold, and above the rate,
            instead of quick's or the full run's (4, 30, 10).
    """
    trial, confirm_s, above_s = timings or ((2.0, 5.0, 3.0) if quick else (4.0, 30.0, 10.0))
    probes: list[dict[str, Any]] = []
    with ebpfsensor.Sensor(kinds=LIFECYCLE, log_file=None, transport=transport) as s:
        flood = _Flood(s, producer_obj, cb)
        try:

            def probe(rate: float, seconds: float) -> bool:
                r = flood.run(rate, seconds, threads=THREADS)
                probes.append(r)
                return _judge(r)

            rate, bad = START_RATE, 0.0
            # halve until a probe passes, double until one fails, then
            # bisect between the last pass and the first failure
            while not probe(rate, trial):
                bad, rate = rate, rate / 2
                if rate < LOWEST_RATE:
                    raise SystemExit(f"bench: not even {2 * rate:.0f} records/s was sustained: {probes[-1]}")
            ok = rate
            while not bad:
                rate *= 2
                if rate > 256e6:
                    raise SystemExit("bench: no probe failed up to 256 M records/s; the flood is not reaching the ring")
                if probe(rate, trial):
                    ok = rate
                else:
                    bad = rate
            for _ in range(4):
                mid = (ok + bad) / 2
                if probe(mid, trial):
                    ok = mid
                else:
                    bad = mid
            confirmed = None
            for _ in range(CONFIRM_TRIES):
                c = flood.run(ok, confirm_s, threads=THREADS)
                if _judge(c):
                    confirmed = c
                    break
                probes.append(c)
                ok *= 0.9
            if confirmed is None:
                raise SystemExit(f"bench: no rate held for {confirm_s:.0f} s; last: {probes[-1]}")
            above = flood.run(2 * ok, above_s, threads=2 * THREADS, children=20)
            short = above["achieved_per_s"] < HIT_FRACTION * above["target_per_s"]
            above["behaviour"] = (
                ", ".join(
                    what
                    for what, seen in (
                        ("records dropped and counted", above["dropped"]),
                        ("producers slowed by forced wakeups", short),
                    )
                    if seen
                )
                or "kept up: the rate found was below the consumer's limit (a noisy machine?)"
            )
        finally:
            flood.close()
    return {
        "transport": transport,
        "record": f"file_open ({flood.record_bytes} B) into the activity "
        + ("ring" if transport == "ring" else "perf event array (one buffer per CPU)")
        + ", default ring sizes",
        "trial_seconds": trial,
        "max_rate_without_loss": ok,
        "confirm_seconds": confirm_s,
        "confirmed": confirmed,
        "above": above,
        "probes": probes,
        "failed_by": "; ".join(f"{p['target_per_s'] / 1e6:.3f} M/s: {p['failed']}" for p in probes if p["failed"]),
        "quick": quick,
    }
