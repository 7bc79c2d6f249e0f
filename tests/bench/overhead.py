# SPDX-License-Identifier: Apache-2.0
"""Overhead on monitored workloads, footprint.

Configurations compared on the same loops (ebpfsensor.diagnostic_overhead's,
which `ebpfsensor diagnostic overhead` runs too), in one small process pinned
to CPU 0: nothing attached; the attach floor (programs that return at once
on exactly the hooks the sensor attached in this run); ebpfsensor with every
kind on (the default open policy: read-only opens of files not watched are
counted, not reported); on the open loops, the same with every open reported
(``read_opens="all"``); ebpfsensor with the workload excluded; auditd with equivalent
syscall rules; bpftrace printing one line per equivalent syscall;
ebpfsensor's audit provider (no eBPF) with every kind on, its records
drained by this process. Everything started here is stopped, and audit rules
and the audit enabled state are restored.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ebpfsensor
from ebpfsensor import ExcludePid, HookInfo
from ebpfsensor.diagnostic_overhead import OPERATIONS, AttachFloor, LoopProcess, floor_targets
from ebpfsensor.sources.audit_provider import STATE_PATH

OPS = {"open": 200_000, "open_write": 200_000, "rename": 100_000, "exec": 2_000}
#: configurations that only differ from "ebpfsensor" on some loops: run there only
ONLY_ON = {"ebpfsensor, read_opens=all": ("open", "open_write")}
AUDIT_KEY = "ebpfsensor-bench"
AUDIT_SYSCALLS = ["openat", "execve", "rename", "renameat", "renameat2"]
BPFTRACE = (
    "tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_execve, "
    "tracepoint:syscalls:sys_enter_rename, tracepoint:syscalls:sys_enter_renameat, "
    'tracepoint:syscalls:sys_enter_renameat2 { printf("%d %s\\n", pid, comm); }'
)


def ensure_tools() -> None:
    """auditd and bpftrace from Debian, installed when missing."""
    missing = [pkg for pkg, tool in (("auditd", "auditctl"), ("bpftrace", "bpftrace")) if not shutil.which(tool)]
    if missing:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )


def run_workload(loop: LoopProcess, mode: str, n: int, during: Callable[[], None] | None = None) -> tuple[float, float]:
    """Wall-clock and CPU ns per operation of n operations of mode, during() called meanwhile."""
    r = loop.run(mode, max_ops=n, during=during)
    if r.ops != n:
        raise SystemExit(f"bench: the {mode} loop did {r.ops} of {n} operations")
    return r.ns / n, r.cpu_ns / n


@contextlib.contextmanager
def config_nothing(loop: LoopProcess) -> Iterator[Callable[[], None] | None]:
    yield None


#: the hooks the sensor attached with every kind, on its first start in this
#: run; every later start must attach the same, and the floor mirrors them
SENSOR_HOOKS: dict[str, HookInfo] = {}


@contextlib.contextmanager
def config_floor(loop: LoopProcess) -> Iterator[None]:
    with AttachFloor(floor_targets(SENSOR_HOOKS)):
        yield None


#: the audit provider's counters, per workload, from the last repetition
AUDIT_COUNTS: dict[str, dict[str, int]] = {}


def _wait_audit_provider_free(timeout: float = 300.0) -> None:
    """Wait until no other process runs the audit provider (a test suite on
    the same machine): only one may run at a time, and the bench would get
    the process connector instead."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            fd = os.open(STATE_PATH, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(1.0)
        finally:
            os.close(fd)
    raise SystemExit(f"bench: another process has run the audit provider for {timeout:.0f} s ({STATE_PATH} locked)")


def _sensor_config(
    exclude: bool, provider: str = "auto", read_opens: str = "watched"
) -> Callable[[LoopProcess], contextlib.AbstractContextManager[Callable[[], None]]]:
    @contextlib.contextmanager
    def config(loop: LoopProcess) -> Iterator[Callable[[], None]]:
        # the loop process and its fork+exec children
        rules = (ExcludePid(loop.pid, descendants=True),) if exclude else ()
        if provider == "audit":
            _wait_audit_provider_free()
        with ebpfsensor.Sensor(exclusions=rules, provider=provider, log_file=None, read_opens=read_opens) as s:
            if s.stats().provider != ("audit" if provider == "audit" else "ebpf"):
                raise SystemExit(f"bench: the sensor runs {s.stats().provider}, not {provider}")
            attached = {h: i.variant for h, i in s.hooks().items() if i.variant}
            if (
                provider != "audit"
                and not exclude
                and attached != {h: i.variant for h, i in SENSOR_HOOKS.items() if i.variant}
            ):
                raise SystemExit("bench: the sensor attached other hooks than at its first start in this run")
            before = s.stats().delivered
            yield lambda: s.poll(0.01) and None
            # the audit provider's records wait in its socket: drain them all
            quiet = 0
            while quiet < 3:
                quiet = 0 if s.poll(0.05) else quiet + 1
            st = s.stats()
            # the read-only open loop's file is not watched: counted, not reported
            silent = _MODE[0] == "open" and read_opens == "watched" and provider != "audit"
            if not exclude and not silent and st.delivered == before:
                raise SystemExit("bench: the sensor delivered no event during the workload")
            if silent:
                UNWATCHED[_MODE[0]] = st.kinds["file_open"].unwatched
            if exclude and not any(r.total for r in s.exclusions()):
                raise SystemExit("bench: the exclusion was never hit")
            if st.audit_provider is not None:
                a = st.audit_provider
                AUDIT_COUNTS[_MODE[0]] = {
                    "delivered": a.delivered,
                    "kernel_lost": a.kernel_lost,
                    "serial_gaps": a.serial_gaps,
                    "backlog_wait_jiffies": a.backlog_wait_jiffies,
                }

    return config


# the workload being measured, for the counters above
_MODE = [""]
#: read-only opens counted, not reported, in the last repetition
UNWATCHED: dict[str, int] = {}


@contextlib.contextmanager
def config_auditd(loop: LoopProcess) -> Iterator[None]:
    status = subprocess.run(["auditctl", "-s"], capture_output=True, text=True, check=True).stdout
    enabled = re.search(r"enabled (\d)", status)
    was_enabled = enabled.group(1) if enabled else "0"
    daemon = subprocess.Popen(["auditd", "-f", "-n"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rule = ["-F", "arch=b64", *[arg for s in AUDIT_SYSCALLS for arg in ("-S", s)], "-k", AUDIT_KEY]
    try:
        time.sleep(1.0)
        subprocess.run(["auditctl", "-e", "1"], check=True, capture_output=True)
        subprocess.run(["auditctl", "-a", "always,exit", *rule], check=True, capture_output=True)
        listed = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=True).stdout
        if AUDIT_KEY not in listed:
            raise SystemExit("bench: the audit rule did not load")
        yield None
    finally:
        subprocess.run(["auditctl", "-d", "always,exit", *rule], capture_output=True)
        subprocess.run(["auditctl", "-e", was_enabled], capture_output=True)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)


@contextlib.contextmanager
def config_bpftrace(loop: LoopProcess) -> Iterator[None]:
    with tempfile.NamedTemporaryFile(prefix="ebpfsensor-bpftrace-", suffix=".out") as out:
        p = subprocess.Popen(["bpftrace", "-e", BPFTRACE], stdout=out, stderr=subprocess.PIPE, text=True)
        try:
            # "Attaching" comes before the probes are attached: wait for a
            # line of output, from an open of our own if need be
            end = time.monotonic() + 60
            while time.monotonic() < end and Path(out.name).read_bytes().count(b"\n") < 2:
                if p.poll() is not None:
                    raise SystemExit(f"bench: bpftrace exited: {p.stderr.read() if p.stderr else ''}")
                os.close(os.open("/dev/null", os.O_RDONLY))
                time.sleep(0.1)
            start = Path(out.name).stat().st_size
            yield None
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(30)
            err = p.stderr.read() if p.stderr else ""
            if p.stderr:
                p.stderr.close()
        if Path(out.name).stat().st_size - start < 1000:
            raise SystemExit(f"bench: bpftrace printed nothing during the workload (exit {p.returncode}: {err})")


def overhead(reps: int, quick: bool) -> dict[str, Any]:
    ensure_tools()
    # the sensor's hooks on this machine, in this run: what the floor mirrors
    with ebpfsensor.Sensor(log_file=None) as s:
        SENSOR_HOOKS.clear()
        SENSOR_HOOKS.update(s.hooks())
    floor = floor_targets(SENSOR_HOOKS)
    configs: dict[str, Callable[[LoopProcess], Any]] = {
        "nothing": config_nothing,
        "attach floor": config_floor,
        "ebpfsensor": _sensor_config(False),
        "ebpfsensor, read_opens=all": _sensor_config(False, read_opens="all"),
        "ebpfsensor, workload excluded": _sensor_config(True),
        "auditd": config_auditd,
        "bpftrace": config_bpftrace,
        "audit provider": _sensor_config(False, provider="audit"),
    }
    results: dict[str, Any] = {}
    with LoopProcess(cpu=0) as loop:
        for mode, n in OPS.items():
            _MODE[0] = mode
            n = n // 10 if quick else n
            # first forks and execs fault pages in and fill caches: not timed
            loop.run(mode, max_ops=max(1, n // 20))
            here = {name: c for name, c in configs.items() if mode in ONLY_ON.get(name, (mode,))}
            per: dict[str, list[tuple[float, float]]] = {name: [] for name in here}
            for _ in range(reps):
                for name, config in here.items():
                    with config(loop) as during:
                        per[name].append(run_workload(loop, mode, n, during))
            base = statistics.median(w for w, _ in per["nothing"])
            cpu_base = statistics.median(c for _, c in per["nothing"])
            results[mode] = {}
            for name, v in per.items():
                wall, cpu = statistics.median(w for w, _ in v), statistics.median(c for _, c in v)
                results[mode][name] = {
                    "ns_per_op": wall,
                    "ratio": wall / base,
                    "overhead_pct": 100 * (wall / base - 1),
                    # the loop process's and its children's user + system time
                    "cpu_ns_per_op": cpu,
                    "cpu_ratio": cpu / cpu_base,
                    "cpu_overhead_pct": 100 * (cpu / cpu_base - 1),
                }
            results[mode]["label"] = OPERATIONS[mode][0]
    results["audit provider counters"] = dict(AUDIT_COUNTS)
    results["unwatched read-only opens"] = dict(UNWATCHED)
    results["attach floor hooks"] = [t.section for t in floor]
    return results


def report(results: dict[str, Any]) -> None:
    """The overhead tables, wall-clock and CPU time: ns/op with nothing
    attached, then each configuration's overhead on it; then each sensor
    configuration against the attach floor, as ratios."""
    rows = {mode: per for mode, per in results.items() if mode in OPS}
    if not rows:
        return
    names = list(dict.fromkeys(name for per in rows.values() for name in per if name != "label"))
    width = [max(12, len(name)) for name in names]
    hooks = len(results.get("attach floor hooks", []))
    sensors = [n for n in names if n.startswith("ebpfsensor") and "excluded" not in n]
    for prefix, what in (("", "wall-clock"), ("cpu_", "CPU time of the loop process and its children")):
        print(
            f"overhead on monitored workloads, {what} (CPU 0; ns/op with nothing attached, then overhead vs"
            f" nothing; attach floor: return-at-once programs on the sensor's {hooks} hooks)"
        )
        head = "".join(f" {n:>{w}}" for n, w in zip(names, width, strict=True))
        print(f"  {'workload':20}{head}")
        for per in rows.values():
            cells = []
            for name, w in zip(names, width, strict=True):
                v = per.get(name)
                if v is None:
                    text = "-"
                elif name == "nothing":
                    text = f"{v[prefix + 'ns_per_op']:.0f} ns"
                else:
                    text = f"{v[prefix + 'overhead_pct']:+.0f}%"
                cells.append(f" {text:>{w}}")
            print(f"  {per['label']:20}" + "".join(cells))
        print(f"  against the attach floor ({what}): sensor ns/op / floor ns/op")
        head = "".join(f" {n:>{max(12, len(n))}}" for n in sensors)
        print(f"  {'workload':20} {'floor ns':>10}{head}")
        for per in rows.values():
            floor = per["attach floor"][prefix + "ns_per_op"]
            cells = []
            for name in sensors:
                v = per.get(name)
                text = "-" if v is None else f"{v[prefix + 'ns_per_op'] / floor:.3f}x"
                cells.append(f" {text:>{max(12, len(name))}}")
            print(f"  {per['label']:20} {floor:>7.0f} ns" + "".join(cells))
    counted = results.get("unwatched read-only opens")
    if counted:
        print(f"  read-only opens counted, not reported (KindStats.unwatched, last repetition): {counted}")


#: starts after the one measured for memory, whose median is load+attach
STARTS = 5
#: fresh processes whose memory added by a start gives the median reported:
#: one process's figure moves by steps of about 3 MiB from one process to
#: the next (the allocator's), more than commits differ by
FRESH = 5
_ROOT = Path(__file__).resolve().parents[2]
_FRESH = "from tests.bench.overhead import rss_added_by_start_kib; print(rss_added_by_start_kib())"


def _cpu_s() -> float:
    """This process's CPU time so far, all threads, user and system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_kib() -> tuple[int, int]:
    """(VmRSS, the part of it in BPF map mappings), KiB."""
    total = maps = 0
    in_map = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:
            in_map = line.rstrip().endswith("anon_inode:bpf-map")
        elif head and head[0] == "Rss:":
            total += int(head[1])
            maps += int(head[1]) if in_map else 0
    return total, maps


def rss_added_by_start_kib() -> int:
    """What a start (every kind) adds to this process's RSS besides the
    rings, KiB; run by each fresh process of the footprint."""
    before, _ = rss_kib()
    with ebpfsensor.Sensor(log_file=None):
        total, mapped = rss_kib()
    return total - mapped - before


def footprint() -> dict[str, Any]:
    """Load+attach time and memory. The time is the median of STARTS
    starts (each a ``Sensor().start()`` with every kind, closed before the
    next), after the one whose memory is measured, which is reported apart
    (the process's first start when the bench runs this section alone); the
    CPU time is the process's, all threads. The rings are kernel memory
    mapped into the consumer, each twice in a row (a record that wraps reads
    as one): VmRSS counts them twice, so they are reported apart, once, and
    the process's own memory is VmRSS without those mappings."""

    before, _ = rss_kib()
    t, cpu = time.perf_counter(), _cpu_s()
    s = ebpfsensor.Sensor().start()
    first_s, first_cpu_s = time.perf_counter() - t, _cpu_s() - cpu
    try:
        ids = set()
        for fd in os.listdir("/proc/self/fdinfo"):
            with contextlib.suppress(OSError):
                for line in Path("/proc/self/fdinfo", fd).read_text().splitlines():
                    if line.startswith("map_id:"):
                        ids.add(int(line.split()[1]))
        import json

        maps = json.loads(
            subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True, text=True, check=True).stdout
        )
        kernel = sum(m.get("bytes_memlock", 0) for m in maps if m["id"] in ids)
        total, mapped = rss_kib()
        cfg = s.config
        out: dict[str, Any] = {
            "load_attach_first_s": first_s,
            "load_attach_first_cpu_s": first_cpu_s,
            "rss_added_kib": total - mapped - before,
            "rss_kib": total,
            "ring_mapped_kib": mapped,
            "ring_bytes": cfg.lifecycle_ring_bytes + cfg.activity_ring_bytes,
            "map_memory_bytes": kernel,
            "maps": len(ids),
        }
    finally:
        s.close()
    walls, cpus = [], []
    for _ in range(STARTS):
        t, cpu = time.perf_counter(), _cpu_s()
        s = ebpfsensor.Sensor().start()
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu_s() - cpu)
        s.close()
    fresh = [
        int(
            subprocess.run([sys.executable, "-c", _FRESH], cwd=_ROOT, capture_output=True, text=True, check=True).stdout
        )
        for _ in range(FRESH)
    ]
    out.update(
        load_attach_s=statistics.median(walls),
        load_attach_cpu_s=statistics.median(cpus),
        load_attach_all_s=walls,
        rss_added_fresh_kib=fresh,
    )
    return out
