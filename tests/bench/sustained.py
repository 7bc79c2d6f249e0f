# SPDX-License-Identifier: Apache-2.0
"""Sustained rate without loss, and what happens above it.

A sensor with the default ring sizes and only the process lifecycle kinds
attached drains its rings the way an agent does (``Sensor.poll(None)`` in a
loop). The bench's socket filter (handle_flood_raw in bench.bpf.c) shares
the sensor's maps and submits file_open records into its activity ring,
counted in the sensor's own kind_stats; a C thread (cbench.bc_produce)
drives it with BPF_PROG_TEST_RUN at a paced rate, K records per call.

A probe at a rate passes when the producer held the rate (at least
HIT_FRACTION of it) and nothing was dropped. The rate is doubled until a
probe fails, bisected between the last pass and the first failure, and the
result is held for 30 s (5 s with --quick; stepped down 10% when that
fails). Above it, at twice the rate, the counters must reconcile
(attempted = produced + dropped, produced = delivered) and the lifecycle
ring must lose nothing while processes are started during the flood.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Any

import ebpfsensor
from ebpfsensor._ffi import ffi
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

    def close(self) -> None:
        self.loaded.close()

    def counters(self) -> tuple[int, int, int]:
        k = self.s.stats().kinds["file_open"]
        return k.produced, k.dropped, k.delivered

    def lifecycle_dropped(self) -> int:
        return sum(k.dropped for name, k in self.s.stats().kinds.items() if name in LIFECYCLE)

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
        end = time.monotonic() + 10
        while time.monotonic() < end:
            batch = self.s.poll(0.05)
            take(batch)
            if not batch and self.counters()[0] - produced0 == opens:
                break
        errors = [p.err for p in ps if p.err]
        if errors:
            raise SystemExit(f"bench: the flood producer's test run failed: errno {errors[0]}")
        produced1, dropped1, delivered1 = self.counters()
        attempted = sum(int(p.records) for p in ps)
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
        }
        if opens == 0:
            raise SystemExit(f"bench: the sensor delivered no flood record at {rate / 1e6:.3f} M/s")
        if attempted != r["produced"] + r["dropped"] or r["produced"] != r["delivered"] or opens != r["delivered"]:
            raise SystemExit(
                f"bench: the flood's counters do not reconcile: {attempted} attempted, {r['produced']} produced,"
                f" {r['dropped']} dropped, {r['delivered']} delivered (stats), {opens} received"
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


def sustained_rate(quick: bool, producer_obj: Any, cb: Any) -> dict[str, Any]:
    """The highest rate of file_open records delivered without a drop."""
    trial = 2.0 if quick else 4.0
    confirm_s = 5.0 if quick else 30.0
    above_s = 3.0 if quick else 10.0
    probes: list[dict[str, Any]] = []
    with ebpfsensor.Sensor(kinds=LIFECYCLE, log_file=None) as s:
        flood = _Flood(s, producer_obj, cb)
        try:

            def probe(rate: float, seconds: float) -> bool:
                r = flood.run(rate, seconds, threads=THREADS)
                probes.append(r)
                return _judge(r)

            rate, ok, bad = 125_000.0, 0.0, 0.0
            if not probe(rate, trial):
                raise SystemExit(f"bench: even {rate / 1e6:.3f} M records/s was not sustained: {probes[-1]}")
            # double until a probe fails, then bisect between the last pass and the first failure
            while not bad:
                ok, rate = rate, rate * 2
                if rate > 256e6:
                    raise SystemExit("bench: no probe failed up to 256 M records/s; the flood is not reaching the ring")
                if not probe(rate, trial):
                    bad = rate
            for _ in range(4):
                mid = (ok + bad) / 2
                if probe(mid, trial):
                    ok = mid
                else:
                    bad = mid
            confirmed = None
            for _ in range(4):
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
        "record": f"file_open ({flood.record_bytes} B) into the activity ring, default ring sizes",
        "max_rate_without_loss": ok,
        "confirm_seconds": confirm_s,
        "confirmed": confirmed,
        "above": above,
        "probes": probes,
        "failed_by": "; ".join(f"{p['target_per_s'] / 1e6:.3f} M/s: {p['failed']}" for p in probes if p["failed"]),
        "quick": quick,
    }
