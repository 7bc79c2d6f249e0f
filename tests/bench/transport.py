# SPDX-License-Identifier: Apache-2.0
"""The two transports side by side: BPF ring buffers (5.8) and perf event
arrays (``Config(transport="perf")``), measured in one run.

- delivery into Structs: fork and exec records (handle_fill_raw in
  bench.bpf.c and bench.perf.bpf.o, the same source built twice as the
  Makefile builds the sensor's objects) written at kernel speed with
  BPF_PROG_TEST_RUN, repeat = one record per run, then drained by the real
  consumer of each transport: RingBuffer over the ring, RingBuffer with
  perf_pages over the perf event array (the path the sensor opens in
  ``EbpfSource._open_perf``). A test run executes on the calling CPU and a
  perf record goes to that CPU's buffer: the filler pins itself to each CPU
  it may run on in turn and writes an equal share there, so every CPU buffer
  holds part of the fill; each CPU buffer is sized to hold its share whole
  (the ring the whole fill), so nothing is lost and nothing is drained before
  the clock starts. Timed: the drain (wall clock) and the process's CPU time
  around it (``time.process_time()``; nothing else runs meanwhile). The
  same-run baseline of each transport is a pure C consumer of the same
  buffers (cbench: ``ring_buffer__consume`` or ``perf_buffer__consume`` with a
  C callback that counts), so a kernel with one transport still gets a ratio.
- the sustained rate without loss of each transport (sustained.py with
  ``Sensor(transport=...)``), shorter than the sustained section's own
  (2 s probes, held 5 s, 3 s above the rate; --quick 1 s, 3 s, 2 s).

Counters must reconcile: every record written delivered, per kind
produced = delivered and nothing dropped during the fills; with perf event
arrays no lost-record report (``perf_lost``) during the fills, and lost =
dropped above the sustained rate.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

from ebpfsensor._ffi import check_ret, ffi, lib
from ebpfsensor.events import EventType
from ebpfsensor.host import features
from ebpfsensor.sources.ebpf.objects import BpfObject, LoadedObject
from ebpfsensor.sources.ebpf.ring import RingBuffer

from . import sustained

TRANSPORTS = ("ring", "perf")
PAGE = os.sysconf("SC_PAGE_SIZE")
# the wakeup watermark of a perf buffer, as Config.wakeup_bytes's default
WAKEUP_BYTES = 256 << 10
# the most a record of the fill takes in either transport: the record (the
# exec one's paths and argv under 128 bytes), a perf sample's or a ring
# record's header, and the padding to 8 bytes
_SLOT = {False: ffi.sizeof("struct fork_event") + 24, True: ffi.sizeof("struct exec_event") + 128 + 24}
_STATS = ffi.sizeof("struct kind_stats")


def available() -> dict[str, str]:
    """Per transport, "" where the kernel has it, else why not."""
    out = {}
    for name, probe in (("ring", features.ring_buffer), ("perf", features.perf_event_array)):
        f = probe()
        out[name] = "" if f.works else f"not available on this kernel ({f.name}: {f.outcome}, {f.min_kernel})"
    return out


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@contextlib.contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """This thread on one CPU, for the block."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


class _Fill:
    """handle_fill_raw loaded for one transport, and the consumers of its map."""

    def __init__(self, obj: BpfObject, transport: str, large: bool, n: int) -> None:
        self.transport = transport
        self.large = large
        self.n = n
        self.cpus = sorted(os.sched_getaffinity(0))
        self.share = -(-n // len(self.cpus))
        self.rtype = int(EventType.EXEC if large else EventType.FORK)
        sizes = {"lifecycle_events": _pow2(max(n * _SLOT[large], 1 << 20))} if transport == "ring" else {}
        self.loaded: LoadedObject = obj.load(
            config={"cfg_large": int(large)}, map_sizes=sizes, hooks={"fill"}, attach=False
        )
        self.fd = self.loaded.map_fd("lifecycle_events")
        self.stats_fd = self.loaded.map_fd("kind_stats")
        self.prog = self.loaded.program_fd("handle_fill_raw")
        # every CPU buffer holds its share of a fill, and one page more (the
        # buffer's control page is apart; this is headroom for the headers)
        self.pages = _pow2(-(-self.share * _SLOT[large] // PAGE) + 1)

    def close(self) -> None:
        self.loaded.close()

    def counters(self) -> tuple[int, int]:
        """The fill's kind: produced and dropped, summed over CPUs."""
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        values = ffi.new("struct kind_stats[]", ncpu)
        key = ffi.new("uint32_t *", self.rtype)
        check_ret(lib.bpf_map_lookup_elem(self.stats_fd, key, values), "read", "kind_stats")
        return sum(int(values[i].produced) for i in range(ncpu)), sum(int(values[i].dropped) for i in range(ncpu))

    def fill(self, cb: Any) -> None:
        """n records, an equal share from each CPU (the last share smaller)."""
        left = self.n
        for cpu in self.cpus:
            repeat = min(self.share, left)
            left -= repeat
            if repeat:
                with _pinned(cpu):
                    check_ret(cb.lib.bc_test_run(self.prog, repeat), "test run", "handle_fill_raw")

    def ours(self, cb: Any) -> dict[str, float]:
        """The real consumer: seconds and CPU seconds to drain a fill into Structs."""
        produced0, dropped0 = self.counters()
        perf_pages = [self.pages] if self.transport == "perf" else None
        with RingBuffer([self.fd], perf_pages=perf_pages, wakeup_bytes=WAKEUP_BYTES) as ring:
            self.fill(cb)
            got = 0
            t, cpu = time.perf_counter(), time.process_time()
            while batch := ring.poll(0):
                got += len(batch)
            elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
            lost = sum(ring.perf_lost())
            delivered = ring.delivered()[self.rtype]
        produced, dropped = self.counters()
        self._check("the consumer", got, delivered, produced - produced0, dropped - dropped0, lost)
        return {"s": elapsed, "cpu_s": cpu}

    def pure_c(self, cb: Any) -> dict[str, float]:
        """The pure C consumer of the same transport: seconds to drain a fill."""
        produced0, dropped0 = self.counters()
        d = cb.ffi.new("struct bc_drain *")
        if self.transport == "ring":
            self.fill(cb)
            cpu = time.process_time()
            check_ret(cb.lib.bc_drain(self.fd, d), "drain", "ring (C consumer)")
        else:
            pb = cb.lib.bc_perf_open(self.fd, self.pages, WAKEUP_BYTES, d)
            if pb == cb.ffi.NULL:
                raise SystemExit(f"bench: open perf buffers (C consumer): {os.strerror(cb.ffi.errno)}")
            try:
                self.fill(cb)
                cpu = time.process_time()
                check_ret(cb.lib.bc_perf_drain(pb, d), "drain", "perf buffers (C consumer)")
            finally:
                cb.lib.bc_perf_close(pb)
        cpu = time.process_time() - cpu
        produced, dropped = self.counters()
        got = int(d.records)
        self._check("the C consumer", got, got, produced - produced0, dropped - dropped0, int(d.lost))
        return {"s": d.ns / 1e9, "cpu_s": cpu}

    def _check(self, who: str, got: int, delivered: int, produced: int, dropped: int, lost: int) -> None:
        if got != self.n or delivered != self.n or produced != self.n or dropped or lost:
            raise SystemExit(
                f"bench: {self.transport} fill of {self.n} records: {who} got {got} ({delivered} counted delivered),"
                f" {produced} produced, {dropped} dropped, {lost} reported lost"
            )


def _delivery(objs: dict[str, BpfObject], cb: Any, large: bool, n: int, reps: int) -> dict[str, Any]:
    """One record kind through every transport the kernel has, repetitions
    alternating between the transports."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {t: {"ours": [], "c": []} for t in objs}
    fills: dict[str, _Fill] = {}
    with contextlib.ExitStack() as stack:
        for t, obj in objs.items():
            fills[t] = _Fill(obj, t, large, n)
            stack.callback(fills[t].close)
        # the order reversed every other repetition, so that a drift in the
        # machine's load falls on both transports alike
        order = list(fills)
        for _ in range(reps):
            for t in order:
                runs[t]["ours"].append(fills[t].ours(cb))
                runs[t]["c"].append(fills[t].pure_c(cb))
            order.reverse()
    out: dict[str, Any] = {"records": n, "record": "exec" if large else "fork"}
    for t, r in runs.items():
        s = statistics.median(x["s"] for x in r["ours"])
        cpu = statistics.median(x["cpu_s"] for x in r["ours"])
        c = statistics.median(x["s"] for x in r["c"])
        out[t] = {
            "ours_per_s": n / s,
            "c_per_s": n / c,
            "c_ratio": s / c,
            "cpu_s_per_m": cpu / n * 1e6,
            "per_cpu_buffer_bytes": fills[t].pages * PAGE if t == "perf" else None,
            "cpus_filled": len(fills[t].cpus),
        }
    if len(runs) == 2:
        out["perf_over_ring"] = out["perf"]["ours_per_s"] / out["ring"]["ours_per_s"]
        out["c_perf_over_ring"] = out["perf"]["c_per_s"] / out["ring"]["c_per_s"]
        out["cpu_perf_over_ring"] = out["perf"]["cpu_s_per_m"] / out["ring"]["cpu_s_per_m"]
    return out


def run(objs: dict[str, BpfObject], cb: Any, quick: bool, n: int, reps: int) -> dict[str, Any]:
    """Delivery of fork and exec records and the sustained rate, per
    transport the kernel has (objs: the bench object built for each)."""
    have = available()
    usable = {t: objs[t] for t in TRANSPORTS if not have[t]}
    if not usable:
        raise SystemExit(f"bench: no transport on this kernel: {have}")
    out: dict[str, Any] = {"available": have}
    out["fork"] = _delivery(usable, cb, False, n, reps)
    out["exec"] = _delivery(usable, cb, True, n, reps)
    timings = (1.0, 3.0, 2.0) if quick else (2.0, 5.0, 3.0)
    out["sustained"] = {t: sustained.sustained_rate(quick, obj, cb, t, timings) for t, obj in usable.items()}
    if len(usable) == 2:
        s = out["sustained"]
        out["sustained_perf_over_ring"] = s["perf"]["max_rate_without_loss"] / s["ring"]["max_rate_without_loss"]
    return out


def _row(label: str, values: dict[str, str], ratio: str = "") -> None:
    cells = " ".join(f"{values.get(t, 'n/a'):>16}" for t in TRANSPORTS)
    print(f"  {label:32} {cells} {ratio:>10}")


def report(r: dict[str, Any]) -> None:
    """The section's table: each transport's column, and perf / ring."""
    print(f"{'transports':34} {'ring buffer':>16} {'perf buffers':>16} {'perf/ring':>10}")
    for t in TRANSPORTS:
        if r["available"][t]:
            print(f"  {t}: {r['available'][t]}")
    for kind in ("fork", "exec"):
        d = r[kind]
        cols = [t for t in TRANSPORTS if t in d]

        def ratio(key: str, d: dict[str, Any] = d) -> str:
            return f"{d[key]:9.2f}x" if key in d else ""

        _row(f"{kind}: into Structs", {t: f"{d[t]['ours_per_s'] / 1e6:.2f} M/s" for t in cols}, ratio("perf_over_ring"))
        _row(
            f"{kind}: pure C consumer", {t: f"{d[t]['c_per_s'] / 1e6:.2f} M/s" for t in cols}, ratio("c_perf_over_ring")
        )
        _row(f"{kind}: C / ours", {t: f"{d[t]['c_ratio']:.1f}x" for t in cols})
        _row(
            f"{kind}: CPU s per M records",
            {t: f"{d[t]['cpu_s_per_m']:.3f}" for t in cols},
            ratio("cpu_perf_over_ring"),
        )
    s = r["sustained"]
    both = "sustained_perf_over_ring" in r
    _row(
        "sustained rate without loss",
        {t: f"{x['max_rate_without_loss'] / 1e6:.3f} M/s" for t, x in s.items()},
        f"{r['sustained_perf_over_ring']:9.2f}x" if both else "",
    )
    _row("  consumer thread CPU s per M", {t: f"{x['confirmed']['consumer_cpu_s_per_m']:.3f}" for t, x in s.items()})
    for t, x in s.items():
        c, a = x["confirmed"], x["above"]
        lost = f" ({a['perf_lost']} reported lost by the kernel)" if t == "perf" else ""
        print(
            f"  {t}: held {c['seconds']:.0f} s, {c['delivered']} delivered, 0 dropped; at 2x"
            f" ({a['target_per_s'] / 1e6:.3f} M/s target, {a['achieved_per_s'] / 1e6:.3f} M/s reached):"
            f" {a['attempted']} = {a['delivered']} delivered + {a['dropped']} dropped{lost};"
            f" lifecycle drops {a['lifecycle_dropped']}, {a['children_exec_received']}/{a['children']} execs received"
        )
