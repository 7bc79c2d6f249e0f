# SPDX-License-Identifier: Apache-2.0
"""The process context's costs: delivery with and without it, the table's
memory per process, lifecycle events through the table, hashes per second.

- delivery: the same file_open records (handle_ctx_raw in bench.bpf.c, from
  1000 processes a process table holds, each with a parent) drained by the
  real consumer from the activity ring, with the context looked up and put
  on every event in C, and without; medians of alternating runs.
- memory: a process table with its C cache, filled through lifecycle events
  (a fork and an exec each, realistic argv) with 100,000 live processes
  (10,000 with --quick): bytes per process as tracemalloc counts them
  (every Python and cffi allocation), and the process's RSS growth.
- lifecycle: fork+exec+exit records through the table, per second (the
  table's Python work; nothing else runs per event).
- hashes: copies of /bin/sleep, each a distinct file, run and hashed through
  the real path (open /proc/PID/exe at the exec, the worker thread reads),
  per second; and the worker's bytes per second on one 64 MiB file.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from ebpfsensor.events import ProcessExec, ProcessExit, ProcessFork
from ebpfsensor.process import Hasher, ProcessTable
from ebpfsensor.process._attach import sample_event
from ebpfsensor.sources.ebpf.objects import BpfObject
from ebpfsensor.sources.ebpf.ring import BatchDecoder, RingBuffer

S = 1_000_000_000
BOOT = bytes(range(16))
HEADER = {"cgroup_id": 1, "uid": 1000, "gid": 1000, "tid": 0}
EXES = [f"/usr/lib/app/bin/tool{i}" for i in range(50)]
CWDS = [f"/srv/app/job{i}" for i in range(20)]


def _exec(pid: int, start: int, ppid: int, i: int) -> Any:
    exe = EXES[i % len(EXES)]
    return sample_event(
        ProcessExec,
        ts_ns=start + 1,
        pid=pid,
        start_time_ns=start,
        ppid=ppid,
        comm=os.path.basename(exe),
        exe=exe,
        argv=[os.path.basename(exe), "--job", f"task-{i}", "--config", "/etc/app/app.conf"],
        cwd=CWDS[i % len(CWDS)],
        euid=1000,
        egid=1000,
        loginuid=1000,
        sessionid=3,
        tty="",
        **HEADER,
    )


def _fork(parent: int, pstart: int, pid: int, start: int) -> Any:
    return sample_event(
        ProcessFork,
        ts_ns=start,
        pid=parent,
        start_time_ns=pstart,
        ppid=1 if parent != 1 else 0,
        comm="parent",
        child_pid=pid,
        child_tid=pid,
        child_start_time_ns=start,
        **HEADER,
    )


def _table(procs: int, first_pid: int = 1000) -> ProcessTable:
    """A table holding init and procs processes, first_pid on, started at
    1 s + pid (as handle_ctx_raw's records say), each a child of init."""
    table = ProcessTable(boot=BOOT, limit=max(procs * 2, 64))
    init_start = S + 1
    table.lifecycle([_exec(1, init_start, 0, 0)])
    for base in range(0, procs, 1000):
        batch = []
        for i in range(base, min(base + 1000, procs)):
            pid = first_pid + i
            batch += [_fork(1, init_start, pid, S + pid), _exec(pid, S + pid, 1, i)]
        table.lifecycle(batch)
    return table


def delivery(producer: BpfObject, n: int, reps: int) -> dict[str, Any]:
    """file_open records into Structs: with the context and without."""
    per_run = 2000
    procs = 1000
    with producer.load(
        config={"cfg_records": per_run, "cfg_procs": procs},
        map_sizes={"activity_events": 1 << 27, "lifecycle_events": 1 << 16},
        hooks={"ctx"},
        attach=False,
    ) as loaded:
        from ebpfsensor._ffi import check_ret, ffi, lib

        prog = loaded.program_fd("handle_ctx_raw")
        opts = ffi.new("struct bpf_test_run_opts *")
        opts.sz = ffi.sizeof("struct bpf_test_run_opts")
        ctx = ffi.new("uint64_t[1]")
        opts.ctx_in = ctx
        opts.ctx_size_in = 8

        def fill() -> None:
            for _ in range(n // per_run):
                check_ret(lib.bpf_prog_test_run_opts(prog, opts), "test run", "handle_ctx_raw")

        fds = [loaded.map_fd("lifecycle_events"), loaded.map_fd("activity_events")]

        def run(context: bool) -> tuple[float, int, int]:
            with RingBuffer(fds) as ring:
                table = None
                if context:
                    table = _table(procs)
                    table.bind(ring.set_context(table, learn=ProcessTable.LEARN_FROM))
                fill()
                got = with_context = 0
                t = time.perf_counter()
                while batch := ring.poll(0):
                    got += len(batch)
                    # one event a batch: the check costs the timing nothing
                    with_context += batch[-1].process is not None
                elapsed = time.perf_counter() - t
            if got != n:
                raise SystemExit(f"bench: the consumer delivered {got} records, {n} were produced")
            misses = table.misses if table is not None else 0
            return elapsed, with_context, misses

        plain: list[float] = []
        enriched: list[float] = []
        misses = 0
        for _ in range(reps):
            plain.append(run(False)[0])
            t, ok, misses = run(True)
            if ok < 1 or misses:
                raise SystemExit(f"bench: events came without their context ({misses} misses)")
            enriched.append(t)
    p, e = statistics.median(plain), statistics.median(enriched)
    return {
        "records": n,
        "processes": procs,
        "plain_per_s": n / p,
        "context_per_s": n / e,
        "ratio": p / e,
        "plain_ns_per_record": p / n * 1e9,
        "context_ns_per_record": e / n * 1e9,
    }


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _fill(procs: int) -> ProcessTable:
    """A table with its C cache and procs live processes, as lifecycle
    events make it (the events themselves dropped)."""
    table = ProcessTable(boot=BOOT, limit=procs + 1024)
    dec = BatchDecoder(batch_bytes=256 << 10, max_batch=16)
    table.bind(dec.enable_context(table))
    init_start = S + 1
    table.lifecycle([_exec(1, init_start, 0, 0)])
    for base_i in range(0, procs, 1000):
        batch = []
        for i in range(base_i, min(base_i + 1000, procs)):
            pid = 1000 + i
            batch += [_fork(1, init_start, pid, S + pid), _exec(pid, S + pid, 1, i)]
        table.lifecycle(batch)
    # the states before each exec are kept for the grace period: let it pass
    table.tick(S + procs + 2000 + table.grace_ns)
    if len(table) != procs + 1:
        raise SystemExit(f"bench: the table holds {len(table)} processes, {procs + 1} expected")
    return table


def memory(procs: int) -> dict[str, Any]:
    """Bytes per live process: the table with its C cache, as tracemalloc
    counts every allocation; then the RSS growth of a second table, filled
    without tracemalloc (whose own records would be counted)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    table = _fill(procs)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    cache = table.stats().cache_bytes
    del table
    gc.collect()
    rss0 = _rss_kib()
    kept = _fill(procs)
    gc.collect()
    rss = _rss_kib() - rss0
    del kept
    return {
        "processes": procs,
        "bytes_per_process": used / procs,
        "total_mib": used / 2**20,
        "cache_bytes_per_process": cache / procs,
        "rss_added_mib": rss / 1024,
    }


def lifecycle(procs: int) -> dict[str, Any]:
    """fork + exec + exit records through the table, per second."""
    table = ProcessTable(boot=BOOT, limit=3 * procs + 1024)
    dec = BatchDecoder(batch_bytes=256 << 10, max_batch=16)
    table.bind(dec.enable_context(table))
    init_start = S + 1
    table.lifecycle([_exec(1, init_start, 0, 0)])
    events = []
    for i in range(procs):
        pid = 1000 + i
        events += [
            _fork(1, init_start, pid, S + pid),
            _exec(pid, S + pid, 1, i),
            sample_event(ProcessExit, ts_ns=S + pid + 5, pid=pid, start_time_ns=S + pid, ppid=1, comm="x", **HEADER),
        ]
    t = time.perf_counter()
    for i in range(0, len(events), 3000):
        table.lifecycle(events[i : i + 3000])
    elapsed = time.perf_counter() - t
    return {"records": len(events), "per_s": len(events) / elapsed, "us_per_record": elapsed / len(events) * 1e6}


def hashes(files: int) -> dict[str, Any]:
    """Distinct executables run and hashed through the real path, and the
    worker's throughput on one large file."""
    tmp = Path(tempfile.mkdtemp(prefix="ebpfsensor-bench-hash-"))
    procs: list[subprocess.Popen[bytes]] = []
    h = Hasher(files_per_s=1_000_000, bytes_per_s=1 << 40)
    try:
        paths = []
        for i in range(files):
            p = tmp / f"sleep{i}"
            shutil.copy("/bin/sleep", p)
            with open(p, "ab") as f:
                f.write(i.to_bytes(4, "little"))
            paths.append(p)
        procs = [subprocess.Popen([p, "60"]) for p in paths]
        time.sleep(0.2)
        starts = {}
        for proc in procs:
            with open(f"/proc/{proc.pid}/stat", "rb") as f:
                starts[proc.pid] = int(f.read().rsplit(b")", 1)[1].split()[19])
        t = time.perf_counter()
        pending = 0
        for proc in procs:
            digest, reason = h.request(proc.pid, starts[proc.pid], sys.maxsize, proc.pid)
            pending += reason == "pending"
        done = 0
        while done < pending:
            done += len(h.results())
            time.sleep(0.0005)
        small_s = time.perf_counter() - t
        size = os.path.getsize(paths[0])
        big = tmp / "big"
        with open(big, "wb") as f:
            f.write(os.urandom(1 << 20) * 64)
        fd = os.open(big, os.O_RDONLY)
        try:
            from ebpfsensor.process._hash import Identity, _Job

            st = os.fstat(fd)
            job = _Job(fd, Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), 0)
            t = time.perf_counter()
            digest, _, nbytes = h._hash(job)
            big_s = time.perf_counter() - t
        finally:
            os.close(fd)
        if digest is None:
            raise SystemExit("bench: the large file was not hashed")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        h.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "files": files,
        "file_bytes": size,
        "files_per_s": pending / small_s,
        "large_file_mib_per_s": nbytes / big_s / 2**20,
    }


def run(producer: BpfObject, quick: bool, reps: int) -> dict[str, Any]:
    """Every measure of the section."""
    return {
        "delivery": delivery(producer, 50_000 if quick else 200_000, reps),
        "memory": memory(10_000 if quick else 100_000),
        "lifecycle": lifecycle(5_000 if quick else 20_000),
        "hashes": hashes(50 if quick else 200),
    }


def report(r: dict[str, Any]) -> None:
    """The section's lines of the summary."""
    d, m, life, h = r["delivery"], r["memory"], r["lifecycle"], r["hashes"]
    print(f"process context ({d['processes']} processes, file_open records, medians)")
    print(
        f"  delivery: {d['plain_per_s'] / 1e6:.2f} M/s without, {d['context_per_s'] / 1e6:.2f} M/s with"
        f" process and parent on every event: {d['ratio'] * 100:.0f}% of the rate"
        f" ({d['plain_ns_per_record']:.0f} -> {d['context_ns_per_record']:.0f} ns/record)"
    )
    print(
        f"  table: {m['bytes_per_process']:.0f} B per live process ({m['processes']} processes,"
        f" {m['total_mib']:.1f} MiB, of which C cache {m['cache_bytes_per_process']:.0f} B;"
        f" the process's RSS +{m['rss_added_mib']:.1f} MiB)"
    )
    print(f"  lifecycle records through the table: {life['per_s'] / 1e3:.0f} k/s ({life['us_per_record']:.1f} us each)")
    print(
        f"  hashes: {h['files_per_s']:.0f} executables/s ({h['files']} distinct files of {h['file_bytes']} B,"
        f" exec to hash), {h['large_file_mib_per_s']:.0f} MiB/s on one 64 MiB file (SHA-256)"
    )
