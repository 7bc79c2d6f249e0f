# SPDX-License-Identifier: Apache-2.0
"""`make bench`: delivery throughput, the decode step (and network records' with
addresses as bytes and as text), exec overhead, overhead on monitored
workloads, the sustained rate without loss, ring buffers vs perf event arrays
(delivery and sustained rate per transport), the footprint, native JSON vs
ECS vs OCSF with the exporters' delivery rates, and seeding the process
table by task iterator vs /proc scan, as ratios measured in one run.

Benchmarks assert nothing about speed; they fail loudly when a configuration
did not actually run (no records delivered, no program runs counted, a
producer that never reached its rate, counters that do not reconcile).

    python -m tests.bench [--quick] [--only SECTIONS] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import ebpfsensor
from ebpfsensor._ffi import check_ret, ffi, lib
from ebpfsensor.events import Event, decode
from ebpfsensor.events._layout import ES_CSTR, ES_S, ES_TAIL_STR, ES_TAIL_STRLIST, ES_U, RECORDS
from ebpfsensor.sources.ebpf.objects import BpfObject, LoadedObject, bpf_arch
from ebpfsensor.sources.ebpf.ring import BatchDecoder, RingBuffer

from . import addresses, cbench, context, overhead, schemas, seed, sustained, transport

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "bench"

WORKLOAD_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* fork+exec of /bin/true, n times, pinned to CPU 0; prints ns per iteration */
int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	struct timespec a, b;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%lld\n", ((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
"""


def build(args: list[str], out: Path, sources: list[Path]) -> Path:
    if not out.exists() or any(s.stat().st_mtime > out.stat().st_mtime for s in sources):
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(args, check=True)
    return out


def producer(perf: bool = False) -> BpfObject:
    """The bench's BPF object, built as the Makefile builds the sensor's:
    bench.bpf.o, or with perf bench.perf.bpf.o (-DES_PERFBUF)."""
    arch = bpf_arch()
    src = ROOT / "tests" / "bench" / "bench.bpf.c"
    out = OUT / ("bench.perf.bpf.o" if perf else "bench.bpf.o")
    headers = list((ROOT / "bpf_src").glob("*.h"))
    build(
        [
            "clang",
            "-g",
            "-O2",
            "-Wall",
            "-Werror",
            "-target",
            "bpf",
            f"-D__TARGET_ARCH_{arch}",
            "-I",
            str(ROOT / "bpf_src"),
            "-I",
            str(ROOT / "vmlinux_headers" / arch),
            "-I",
            str(ROOT / "build" / "deps" / arch / "include"),
            *(["-DES_PERFBUF"] if perf else []),
            "-c",
            str(src),
            "-o",
            str(out),
        ],
        out,
        [src, *headers],
    )
    return BpfObject.open(out)


def workload() -> Path:
    src = OUT / "workload.c"
    OUT.mkdir(parents=True, exist_ok=True)
    if not src.exists() or src.read_text() != WORKLOAD_C:
        src.write_text(WORKLOAD_C)
    return build(["gcc", "-O2", "-o", str(OUT / "workload"), str(src)], OUT / "workload", [src])


def fill(loaded: LoadedObject, n: int, per_run: int) -> None:
    """Run the producer until n records are in the ring."""
    prog = loaded.program_fd("handle_bench_raw")
    ctx = ffi.new("uint64_t[1]")
    opts = ffi.new("struct bpf_test_run_opts *")
    opts.sz = ffi.sizeof("struct bpf_test_run_opts")
    opts.ctx_in = ctx
    opts.ctx_size_in = 8
    # raw tracepoint test runs take no repeat count
    for _ in range(n // per_run):
        check_ret(lib.bpf_prog_test_run_opts(prog, opts), "test run", "handle_bench_raw")


def drain_ours(fd: int, expect: int) -> float:
    """Seconds for the real consumer to turn expect records into Structs."""
    with RingBuffer([fd]) as ring:
        got = 0
        t = time.perf_counter()
        while batch := ring.poll(0):
            got += len(batch)
        elapsed = time.perf_counter() - t
    if got != expect:
        raise SystemExit(f"bench: the consumer delivered {got} records, {expect} were produced")
    return elapsed


def drain_callback(fd: int, expect: int) -> float:
    """Seconds for a Python callback per record (the usual approach) to do the same."""
    out: list[Any] = []

    @ffi.callback("int(void *, void *, size_t)")
    def on_record(ctx: Any, data: Any, size: int) -> int:
        out.append(decode(ffi.buffer(data, size)))
        return 0

    rb = lib.ring_buffer__new(fd, on_record, ffi.NULL, ffi.NULL)
    try:
        t = time.perf_counter()
        check_ret(lib.ring_buffer__consume(rb), "consume", "ring")
        elapsed = time.perf_counter() - t
    finally:
        lib.ring_buffer__free(rb)
    if len(out) != expect:
        raise SystemExit(f"bench: the callback consumer got {len(out)} records, {expect} were produced")
    return elapsed


def drain_c(cb: Any, fd: int, expect: int, copy: Any = None) -> tuple[float, Any]:
    """Seconds for a pure C consumer (a libbpf callback that counts and reads
    every cache line) to drain expect records: the practical limit. With a
    copy buffer, the raw records are copied out too (not timed for that)."""
    d = cb.ffi.new("struct bc_drain *")
    if copy is not None:
        d.copy = copy
        d.cap = len(copy)
    check_ret(cb.lib.bc_drain(fd, d), "drain", "ring (C consumer)")
    if d.records != expect:
        raise SystemExit(f"bench: the C consumer got {d.records} records, {expect} were produced")
    return d.ns / 1e9, d


def decode_step(cb: Any, copy: Any, length: int, n: int, reps: int) -> dict[str, Any]:
    """Per event: the C transcoder plus the batch decode (the real path minus
    the ring), versus msgspec alone decoding pre-built msgpack batches of the
    same events into the same Structs."""
    dec = BatchDecoder()
    # the shipped transcoder, called by address from the bench module's C loop
    fn = int(ffi.cast("uintptr_t", ffi.addressof(lib, "es_transcode")))
    consumer = int(ffi.cast("uintptr_t", dec._c))
    spent = cb.ffi.new("uint64_t *")
    batches: list[list[Any]] = []

    def ours() -> float:
        batches.clear()
        pos = 0
        t = time.perf_counter()
        while pos < length:
            lib.es_batch_begin(dec._c)
            pos = cb.lib.bc_transcode(fn, consumer, copy, length, pos, spent)
            size = lib.es_batch_end(dec._c)
            batches.append(dec._decode(size))
        return time.perf_counter() - t

    t_ours = median_of(reps, ours)
    if dec._c.raw or sum(map(len, batches)) != n:
        raise SystemExit(f"bench: the transcoder gave {sum(map(len, batches))} events of {n} ({dec._c.raw} raw)")
    # the transcoder's own share: C time over every repetition, per event
    transcode_ns = spent[0] / (reps * n)
    blobs = [msgspec.msgpack.encode(b) for b in batches]
    bare_decoder = msgspec.msgpack.Decoder(list[Event])
    bare: list[list[Any]] = []

    def msgspec_only() -> float:
        bare.clear()
        t = time.perf_counter()
        for blob in blobs:
            bare.append(bare_decoder.decode(blob))
        return time.perf_counter() - t

    t_bare = median_of(reps, msgspec_only)
    if bare != batches:
        raise SystemExit("bench: msgspec alone decoded other events than the transcoder's")
    return {
        "batches": len(batches),
        "ours_ns_per_event": t_ours / n * 1e9,
        "transcode_ns_per_event": transcode_ns,
        "msgspec_ns_per_event": t_bare / n * 1e9,
        "ratio": t_ours / t_bare,
    }


def vary(copy: Any, length: int) -> None:
    """Make every copied record unlike its neighbours: each string and each
    number of 4 bytes or more (cgroup_id left 0) gets the record's index, so
    the C build shares no value between records. Lengths stay as they are."""
    buf = ffi.buffer(copy, length)
    pos = i = 0
    while pos + 8 <= length:
        size = int.from_bytes(buf[pos : pos + 4], sys.byteorder)
        rec = pos + 8
        spec = RECORDS[int.from_bytes(buf[rec + 8 : rec + 12], sys.byteorder)]
        mark = f"{i:x}".encode()
        tail = rec + spec.fixed_size
        for f in spec.fields:
            at = rec + f.offset
            if f.kind in (ES_TAIL_STR, ES_TAIL_STRLIST):
                n = int.from_bytes(buf[at : at + 4], sys.byteorder)
                # the first item's first bytes: NULs (separators) stay
                k = min(len(mark), buf[tail : tail + n].find(b"\0") % (n + 1))
                buf[tail : tail + k] = mark[:k]
                tail += n
            elif f.kind == ES_CSTR:
                k = min(len(mark), f.size - 1)
                buf[at : at + k + 1] = mark[:k] + b"\0"
            elif f.kind in (ES_U, ES_S) and f.size >= 4 and f.name != "cgroup_id":
                buf[at : at + f.size] = (1000 + i).to_bytes(f.size, sys.byteorder)
        pos += 8 + ((size + 7) & ~7)
        i += 1


def median_of(reps: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(reps))


def bench_delivery(cb: Any, large: bool, n: int, reps: int) -> dict[str, Any]:
    obj = producer()
    per_run = 2000
    ring = 1 << 27
    with obj.load(
        config={"cfg_records": per_run, "cfg_large": int(large)},
        map_sizes={"lifecycle_events": ring},
        hooks={"bench"},
        attach=False,
    ) as loaded:
        fd = loaded.map_fd("lifecycle_events")

        def ours() -> float:
            fill(loaded, n, per_run)
            return drain_ours(fd, n)

        def baseline() -> float:
            fill(loaded, n, per_run)
            return drain_callback(fd, n)

        def pure_c() -> float:
            fill(loaded, n, per_run)
            return drain_c(cb, fd, n)[0]

        t_ours = median_of(reps, ours)
        t_base = median_of(reps, baseline)
        t_c = median_of(reps, pure_c)
        # the same records, copied out once, for the decode step on its own
        fill(loaded, n, per_run)
        copy = cb.ffi.new("uint8_t[]", n * (8 + (400 if large else 96)) + 4096)
        _, d = drain_c(cb, fd, n, copy)
        step = decode_step(cb, copy, d.len, n, reps)
        vary(copy, d.len)
        step_varied = decode_step(cb, copy, d.len, n, reps)
    return {
        "records": n,
        "record": f"{'exec' if large else 'fork'} ({d.bytes // n} B)",
        "ours_per_s": n / t_ours,
        "callback_per_s": n / t_base,
        "c_per_s": n / t_c,
        "ratio": t_base / t_ours,
        "c_ratio": t_ours / t_c,
        "ours_ns_per_record": t_ours / n * 1e9,
        "c_ns_per_record": t_c / n * 1e9,
        "decode_step": step,
        "decode_step_varied": step_varied,
    }


def prog_stats(sensor: ebpfsensor.Sensor, name: str) -> tuple[int, int]:
    # the object whose hook the program is (the first holds the shared maps only)
    loaded = next(o for o in sustained.ebpf_source(sensor)._objects if o.hooks and name in o._a.programs)
    info = loaded.program_info(name)
    return int(info.run_time_ns), int(info.run_cnt)


def bench_exec(n: int, reps: int) -> dict[str, Any]:
    exe = str(workload())

    def run() -> float:
        return float(subprocess.run([exe, str(n)], capture_output=True, text=True, check=True).stdout)

    base: list[float] = []
    attached: list[float] = []
    in_prog: list[float] = []
    stats_fd = check_ret(lib.bpf_enable_stats(lib.BPF_STATS_RUN_TIME), "enable", "BPF run-time statistics")
    try:
        for _ in range(reps):
            base.append(run())
            with ebpfsensor.Sensor() as s:
                t0, c0 = prog_stats(s, f"handle_exec_{s.hooks()['exec'].variant}")
                attached.append(run())
                t1, c1 = prog_stats(s, f"handle_exec_{s.hooks()['exec'].variant}")
                delivered = 0
                while batch := s.poll(0):
                    delivered += len(batch)
                if c1 - c0 < n or delivered < n:
                    raise SystemExit(f"bench: the exec program ran {c1 - c0} times, {delivered} events for {n} execs")
                in_prog.append((t1 - t0) / (c1 - c0))
    finally:
        os.close(stats_fd)
    b, a = statistics.median(base), statistics.median(attached)
    return {
        "execs": n,
        "nothing_ns_per_exec": b,
        "sensor_ns_per_exec": a,
        "ratio": a / b,
        "exec_program_ns": statistics.median(in_prog),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--quick", action="store_true", help="fewer records and repetitions")
    parser.add_argument("--json", type=Path, default=OUT / "results.json")
    parser.add_argument(
        "--only",
        default="delivery,addresses,exec,overhead,sustained,transport,footprint,schemas,context,seed",
        help="comma-separated sections to run",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if os.geteuid() != 0:
        print("bench: needs root (loads BPF programs)", file=sys.stderr)
        return 2
    reps = 3 if args.quick else 5
    n = 50_000 if args.quick else 200_000
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        "python": platform.python_version(),
    }
    cb = cbench.load(ROOT, OUT, bpf_arch()) if only & {"delivery", "addresses", "sustained", "transport"} else None
    sections: dict[str, Callable[[], None]] = {
        "delivery": lambda: results.update(
            delivery_small=bench_delivery(cb, False, n, reps), delivery_large=bench_delivery(cb, True, n, reps)
        ),
        "addresses": lambda: results.update(addresses=addresses.bench(cb, n, reps)),
        "exec": lambda: results.update(exec=bench_exec(500 if args.quick else 2000, reps)),
        "overhead": lambda: results.update(overhead=overhead.overhead(reps, args.quick)),
        "sustained": lambda: results.update(sustained=sustained.sustained_rate(args.quick, producer(), cb)),
        "transport": lambda: results.update(
            transport=transport.run({"ring": producer(), "perf": producer(perf=True)}, cb, args.quick, n, reps)
        ),
        "footprint": lambda: results.update(footprint=overhead.footprint()),
        "schemas": lambda: results.update(schemas=schemas.schemas(args.quick)),
        "context": lambda: results.update(context=context.run(producer(), args.quick, reps)),
        "seed": lambda: results.update(seed=seed.run(500 if args.quick else 2000, reps)),
    }
    unknown = only - set(sections)
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(sections)}")
    seconds: dict[str, float] = {}
    for name, run in sections.items():
        if name in only:
            t = time.monotonic()
            run()
            seconds[name] = round(time.monotonic() - t, 1)
    results["seconds"] = seconds
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"ebpfsensor bench, {results['date']}, {results['machine']}, Python {results['python']} (medians of {reps})")
    if "delivery_small" in results:
        print(
            f"{'delivery into Structs':34} {'ours':>14} {'callback/record':>16} {'ratio':>7}"
            f" {'pure C (limit)':>16} {'C/ours':>7}"
        )
        for key in ("delivery_small", "delivery_large"):
            r = results[key]
            print(
                f"  {r['record']:32} {r['ours_per_s'] / 1e6:10.2f} M/s"
                f" {r['callback_per_s'] / 1e6:12.2f} M/s {r['ratio']:6.1f}x"
                f" {r['c_per_s'] / 1e6:12.2f} M/s {r['c_ratio']:6.1f}x"
            )
        print(f"{'decode step, ns per event':34} {'ours':>14} {'(transcoder)':>16} {'msgspec alone':>16} {'ratio':>7}")
        for step in ("decode_step", "decode_step_varied"):
            for key in ("delivery_small", "delivery_large"):
                r, d = results[key], results[key][step]
                label = r["record"] + (", unlike neighbours" if step == "decode_step_varied" else "")
                print(
                    f"  {label:32} {d['ours_ns_per_event']:14.0f} {d['transcode_ns_per_event']:16.0f}"
                    f" {d['msgspec_ns_per_event']:16.0f} {d['ratio']:6.2f}x"
                )
    if "addresses" in results:
        addresses.report(results["addresses"])
    if "exec" in results:
        e = results["exec"]
        print(f"{'fork+exec of /bin/true (CPU 0)':34} {'nothing':>14} {'sensor':>16} {'ratio':>7}")
        print(
            f"  {'ns per exec':32} {e['nothing_ns_per_exec']:14.0f} {e['sensor_ns_per_exec']:16.0f} {e['ratio']:7.3f}"
        )
        print(f"  {'exec program, in-kernel ns/run':32} {'':14} {e['exec_program_ns']:16.0f}")
    if "overhead" in results:
        overhead.report(results["overhead"])
        counters = results["overhead"].get("audit provider counters", {})
        for mode, c in counters.items():
            print(
                f"  audit provider, {mode}: {c['delivered']} events delivered, {c['kernel_lost']} records dropped"
                f" by the kernel (rate limit), {c['serial_gaps']} events missing, tasks waited"
                f" {c['backlog_wait_jiffies']} jiffies for the backlog"
            )
    if "schemas" in results:
        schemas.report(results["schemas"])
    if "context" in results:
        context.report(results["context"])
    if "seed" in results:
        seed.report(results["seed"])
    if "sustained" in results:
        r = results["sustained"]
        c, a = r["confirmed"], r["above"]
        held = f"held {c['seconds']:.0f} s" + (" (--quick: not the full 30 s)" if r["quick"] else "")
        print(
            f"sustained rate without loss: {r['max_rate_without_loss'] / 1e6:.3f} M records/s, {held},"
            f" {c['delivered']} delivered, 0 dropped"
        )
        print(f"  {r['record']}; probes failed by: {r['failed_by']}")
        print(
            f"  at 2x ({a['target_per_s'] / 1e6:.3f} M/s target, {a['threads']} producer threads):"
            f" {a['achieved_per_s'] / 1e6:.3f} M/s reached; {a['attempted']} records = {a['delivered']} delivered"
            f" + {a['dropped']} dropped (file_open in stats); lifecycle drops {a['lifecycle_dropped']},"
            f" {a['children_exec_received']}/{a['children']} execs during the flood received"
        )
        print(f"  above the rate: {a['behaviour']}")
    if "transport" in results:
        transport.report(results["transport"])
    if "footprint" in results:
        f = results["footprint"]
        print(
            f"footprint: load+attach {f['load_attach_s'] * 1000:.0f} ms (median of {len(f['load_attach_all_s'])}"
            f" starts; CPU {f['load_attach_cpu_s'] * 1000:.0f} ms; the start measured for memory"
            f" {f['load_attach_first_s'] * 1000:.0f} ms, CPU {f['load_attach_first_cpu_s'] * 1000:.0f} ms),"
            f" RSS added {statistics.median(f['rss_added_fresh_kib']) / 1024:.1f} MiB besides the rings (median of"
            f" {len(f['rss_added_fresh_kib'])} fresh processes, {min(f['rss_added_fresh_kib']) / 1024:.1f} to"
            f" {max(f['rss_added_fresh_kib']) / 1024:.1f}; this process's {f['rss_added_kib'] / 1024:.1f};"
            f" {f['ring_bytes'] / 2**20:.0f} MiB of kernel memory mapped twice: VmRSS"
            f" {f['rss_kib'] / 1024:.1f} MiB counts {f['ring_mapped_kib'] / 1024:.0f} MiB for them),"
            f" {f['maps']} maps holding {f['map_memory_bytes'] / 2**20:.1f} MiB of kernel memory"
        )
    took = ", ".join(f"{name} {t:.0f} s" for name, t in seconds.items())
    print(f"took {sum(seconds.values()):.0f} s ({took}); results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
