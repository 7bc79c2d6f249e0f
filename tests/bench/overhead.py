# SPDX-License-Identifier: Apache-2.0
"""Overhead on monitored workloads, footprint.

Configurations compared on the same workload binary, pinned to CPU 0:
nothing attached; ebpfsensor with every kind on; ebpfsensor with the
workload excluded; auditd with equivalent syscall rules; bpftrace printing
one line per equivalent syscall; ebpfsensor's audit provider (no eBPF) with
every kind on, its records drained by this process. Everything started here
is stopped, and audit rules and the audit enabled state are restored.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ebpfsensor
from ebpfsensor import ExcludeExecutable

WORKLOADS_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* usage: workload open|exec|rename N DIR; prints ns per operation */
int main(int argc, char **argv)
{
	const char *mode = argv[1], *dir = argv[3];
	int n = atoi(argv[2]);
	char a[4096], b[4096];
	struct timespec t0, t1;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	close(open(a, O_CREAT | O_WRONLY, 0644));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		if (!strcmp(mode, "open")) {
			int fd = openat(AT_FDCWD, a, O_RDONLY);
			close(fd);
		} else if (!strcmp(mode, "rename")) {
			rename(i & 1 ? b : a, i & 1 ? a : b);
		} else {
			pid_t pid = fork();
			if (pid == 0) {
				execl("/bin/true", "true", (char *)NULL);
				_exit(127);
			}
			waitpid(pid, NULL, 0);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%lld\n", ((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)) / n);
	return 0;
}
"""

OPS = {"open": 200_000, "rename": 100_000, "exec": 2_000}
AUDIT_KEY = "ebpfsensor-bench"
AUDIT_SYSCALLS = ["openat", "execve", "rename", "renameat", "renameat2"]
BPFTRACE = (
    "tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_execve, "
    "tracepoint:syscalls:sys_enter_rename, tracepoint:syscalls:sys_enter_renameat, "
    'tracepoint:syscalls:sys_enter_renameat2 { printf("%d %s\\n", pid, comm); }'
)


def build_workloads(out: Path) -> Path:
    src = out / "workloads.c"
    exe = out / "workloads"
    out.mkdir(parents=True, exist_ok=True)
    if not src.exists() or src.read_text() != WORKLOADS_C:
        src.write_text(WORKLOADS_C)
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


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


def run_workload(exe: Path, mode: str, n: int, during: Callable[[], None] | None = None) -> float:
    with tempfile.TemporaryDirectory(prefix="ebpfsensor-bench-") as d:
        p = subprocess.Popen([str(exe), mode, str(n), d], stdout=subprocess.PIPE, text=True)
        while p.poll() is None:
            if during:
                during()
            else:
                time.sleep(0.01)
        out = p.stdout.read() if p.stdout else ""
        if p.stdout:
            p.stdout.close()
        if p.returncode != 0:
            raise SystemExit(f"bench: workload {mode} failed ({p.returncode})")
        return float(out)


@contextlib.contextmanager
def config_nothing(exe: Path) -> Iterator[Callable[[], None] | None]:
    yield None


#: the audit provider's counters, per workload, from the last repetition
AUDIT_COUNTS: dict[str, dict[str, int]] = {}


def _sensor_config(
    exclude: Path | None, provider: str = "auto"
) -> Callable[[Path], contextlib.AbstractContextManager[Callable[[], None]]]:
    @contextlib.contextmanager
    def config(exe: Path) -> Iterator[Callable[[], None]]:
        rules = (ExcludeExecutable(str(exe)),) if exclude is not None else ()
        with ebpfsensor.Sensor(exclusions=rules, provider=provider, log_file=None) as s:
            if s.stats().provider != ("audit" if provider == "audit" else "ebpf"):
                raise SystemExit(f"bench: the sensor runs {s.stats().provider}, not {provider}")
            before = s.stats().delivered
            yield lambda: s.poll(0.01) and None
            # the audit provider's records wait in its socket: drain them all
            quiet = 0
            while quiet < 3:
                quiet = 0 if s.poll(0.05) else quiet + 1
            st = s.stats()
            if exclude is None and st.delivered == before:
                raise SystemExit("bench: the sensor delivered no event during the workload")
            if exclude is not None and not any(r.total for r in s.exclusions()):
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


@contextlib.contextmanager
def config_auditd(exe: Path) -> Iterator[None]:
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
def config_bpftrace(exe: Path) -> Iterator[None]:
    with tempfile.NamedTemporaryFile(prefix="ebpfsensor-bpftrace-", suffix=".out") as out:
        p = subprocess.Popen(["bpftrace", "-e", BPFTRACE], stdout=out, stderr=subprocess.PIPE, text=True)
        try:
            end = time.monotonic() + 60
            while time.monotonic() < end and b"Attaching" not in Path(out.name).read_bytes():
                if p.poll() is not None:
                    raise SystemExit(f"bench: bpftrace exited: {p.stderr.read() if p.stderr else ''}")
                time.sleep(0.1)
            yield None
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(30)
            if p.stderr:
                p.stderr.close()
        if Path(out.name).stat().st_size < 1000:
            raise SystemExit("bench: bpftrace printed nothing during the workload")


def overhead(exe_dir: Path, reps: int, quick: bool) -> dict[str, Any]:
    ensure_tools()
    exe = build_workloads(exe_dir)
    configs: dict[str, Callable[[Path], Any]] = {
        "nothing": config_nothing,
        "ebpfsensor": _sensor_config(None),
        "ebpfsensor, workload excluded": _sensor_config(exe),
        "auditd": config_auditd,
        "bpftrace": config_bpftrace,
        "audit provider": _sensor_config(None, provider="audit"),
    }
    results: dict[str, Any] = {}
    for mode, n in OPS.items():
        _MODE[0] = mode
        n = n // 10 if quick else n
        per: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(reps):
            for name, config in configs.items():
                with config(exe) as during:
                    per[name].append(run_workload(exe, mode, n, during))
        base = statistics.median(per["nothing"])
        results[mode] = {
            name: {"ns_per_op": statistics.median(v), "overhead_pct": 100 * (statistics.median(v) / base - 1)}
            for name, v in per.items()
        }
    results["audit provider counters"] = dict(AUDIT_COUNTS)
    return results


def footprint() -> dict[str, Any]:
    def rss_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    before = rss_kib()
    t = time.perf_counter()
    s = ebpfsensor.Sensor().start()
    load_s = time.perf_counter() - t
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
        return {
            "load_attach_s": load_s,
            "rss_added_kib": rss_kib() - before,
            "rss_kib": rss_kib(),
            "map_memory_bytes": kernel,
            "maps": len(ids),
        }
    finally:
        s.close()
