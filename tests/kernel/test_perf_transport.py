# SPDX-License-Identifier: Apache-2.0
"""The perf event array transport (the objects built for kernels without BPF
ring buffers), forced on a kernel that has both: the same events, field by
field, and every record the kernel could not write counted under its kind."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest
from _sysevents import Header, check_header, nr, start_time_ns

import ebpfsensor
from conftest import wait_for
from ebpfsensor import Config
from ebpfsensor.events import Kill, NetConnect, ProcessExec, ProcessExit

pytestmark = pytest.mark.bpf

KINDS = frozenset({"process_exec", "process_fork", "process_exit", "net_connect", "kill"})


@pytest.fixture(scope="module")
def perf_sensor() -> Any:
    with ebpfsensor.Sensor(Config(transport="perf", kinds=KINDS, log_file=None, exclude_self=False)) as s:
        yield s


def test_health_names_the_transport(perf_sensor: Any) -> None:
    health = perf_sensor.health()
    assert health.transport == "perf"
    assert health.supplementary_events_subsystem == "ebpf"
    for kind in KINDS:
        assert health.kinds[kind].live, (kind, health.kinds[kind])
        assert health.kinds[kind].source.startswith("ebpf:")


def test_exec_and_exit(perf_sensor: Any, tmp_path: Any) -> None:
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    child = subprocess.Popen(["/bin/sleep", "0.2"], cwd=tmp_path)
    child_start = start_time_ns(child.pid)
    child.wait()
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    (ex,) = wait_for(perf_sensor, lambda e: isinstance(e, ProcessExec) and e.pid == child.pid)
    assert ex.argv == ["/bin/sleep", "0.2"]
    assert ex.exe == os.path.realpath("/bin/sleep")
    assert ex.cwd == str(tmp_path)
    assert ex.ppid == os.getpid()
    assert ex.uid == os.getuid() and ex.euid == os.geteuid()
    assert ex.comm == "sleep"
    # stamped CLOCK_MONOTONIC in the kernel, reported CLOCK_BOOTTIME like the ring's
    assert before <= ex.ts_ns <= after
    assert abs(ex.start_time_ns - child_start) < 1_000_000_000 // os.sysconf("SC_CLK_TCK") + 1
    (xt,) = wait_for(perf_sensor, lambda e: isinstance(e, ProcessExit) and e.pid == child.pid)
    assert xt.exit_code == 0 and xt.exit_signal == 0
    assert ex.ts_ns < xt.ts_ns <= after
    # the duration is the kernel's: at least the sleep, at most the whole run
    assert 200_000_000 <= xt.duration_ns <= after - before


def test_connect(perf_sensor: Any) -> None:
    h = Header()
    with socket.socket() as srv, socket.socket() as cli:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        cli.connect(("127.0.0.1", port))
        fd = cli.fileno()
        (ev,) = wait_for(perf_sensor, lambda e: isinstance(e, NetConnect) and e.pid == h.pid and e.remote_port == port)
    check_header(ev, h, "connect", 0)
    assert ev.fd == fd
    assert ev.family == socket.AF_INET and ev.remote_port == port
    assert ev.remote_addr == "127.0.0.1"
    assert ev.remote_ip == ipaddress.IPv4Address("127.0.0.1")


def test_losses_counted_per_kind_and_reconciled() -> None:
    """A flood into the smallest per-CPU buffers while nothing drains: the
    records the programs could not submit are counted dropped under their
    kind, and the kernel's own count of lost records for the array agrees
    (it reports a loss with the next record written to that CPU's buffer:
    the test stays on one CPU and writes one more after draining)."""
    cfg = Config(
        transport="perf",
        kinds=frozenset({"kill"}),
        activity_ring_bytes=4096,
        lifecycle_ring_bytes=4096,
        wakeup_bytes=4096,
        process_context=False,
        log_file=None,
        exclude_self=False,
    )
    cpus = os.sched_getaffinity(0)
    target = subprocess.Popen(["/bin/sleep", "60"])
    try:
        os.sched_setaffinity(0, {min(cpus)})
        with ebpfsensor.Sensor(cfg) as s:
            for _ in range(20_000):
                os.kill(target.pid, signal.SIGCONT)
            got = drain(s, target.pid)
            os.kill(target.pid, signal.SIGCONT)
            got += drain(s, target.pid)
            sensor_stats = s.stats()
            stats = sensor_stats.kinds["kill"]
            lost = sensor_stats.perf_lost
    finally:
        os.sched_setaffinity(0, cpus)
        target.kill()
        target.wait()
    assert len(got) == stats.delivered >= 2
    assert got[0].syscall_nr == nr("kill") and got[0].signal == signal.SIGCONT
    assert stats.dropped > 0, stats
    assert stats.produced + stats.dropped == 20_001
    assert stats.delivered == stats.produced
    assert lost == [0, stats.dropped], (lost, stats)


def drain(sensor: Any, pid: int) -> list[Any]:
    """Every kill of pid waiting in the buffers."""
    got: list[Any] = []
    for _ in range(50):
        batch = sensor.poll(0.05)
        got += [e for e in batch if isinstance(e, Kill) and e.target_pid == pid]
        if not batch:
            break
    return got


def test_probe_names_the_tier() -> None:
    from ebpfsensor.host import features
    from ebpfsensor.probe import probe

    report = probe()
    want = "ebpf-ring-buffer" if features.ring_buffer().works else "ebpf-perf-buffer"
    assert report.provider == "ebpf" and report.tier == want
