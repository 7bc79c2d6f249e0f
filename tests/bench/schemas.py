# SPDX-License-Identifier: Apache-2.0
"""`make bench` section `schemas`: native msgspec JSON vs ECS vs OCSF over the
same list of real events, and the rate each exporter delivers them at.

The events are what a real Sensor delivers during a mixed workload (execs,
file opens, creates, renames and unlinks, TCP connects and accepts), with
the process context the sensor adds. Each format encodes the whole list
(``Encoder.encode_batch`` in chunks of 512, as the exporters do); its rate is
a median of `reps`, and its ratio is against native JSON in the same run. The
exporters (a file; NATS JetStream and rsyslog when `nats-server`, nats-py and
`rsyslogd` are installed, each started on loopback for the run) deliver the
same list, native and ECS: the rate is events over the time from the first
submit to ``close()`` returning with everything delivered.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ebpfsensor
from ebpfsensor import schema
from ebpfsensor.exporters import Exporter, FileExporter

CHUNK = 512


def capture(seconds: float, limit: int) -> list[Any]:
    """Events a real Sensor delivers from a mixed workload run by this process."""
    stop = threading.Event()

    def workload(tmp: str) -> None:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        i = 0
        while not stop.is_set():
            subprocess.run(["/bin/true"], check=False)
            for j in range(20):
                path = os.path.join(tmp, f"f{i}-{j}")
                with open(path, "w") as f:
                    f.write("x")
                os.rename(path, path + ".r")
                os.unlink(path + ".r")
            with open("/etc/hostname") as f:
                f.read()
            c = socket.create_connection(srv.getsockname())
            conn, _ = srv.accept()
            conn.close()
            c.close()
            i += 1
        srv.close()

    me = os.getpid()
    with tempfile.TemporaryDirectory() as tmp, ebpfsensor.Sensor(exclude_self=False) as sensor:
        worker = threading.Thread(target=workload, args=(tmp,))
        worker.start()
        events: list[Any] = []
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end and len(events) < limit:
                # the workload's own: the rest of the machine must not set the mix
                events += [e for e in sensor.poll(0.05) if e.pid == me or e.ppid == me]
        finally:
            stop.set()
            worker.join()
    if not events:
        raise RuntimeError("schemas: the sensor delivered no events")
    return events[:limit]


def median_rate(reps: int, n: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def formats(events: list[Any], reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fmt in schema.FORMATS:
        enc = schema.Encoder(fmt)
        enc.encode_batch(events[:CHUNK])  # warm up
        json_rate = median_rate(
            reps,
            len(events),
            lambda enc=enc: [enc.encode_batch(events[i : i + CHUNK]) for i in range(0, len(events), CHUNK)],
        )
        out[fmt] = {"json_per_s": json_rate}
    native = out["native"]["json_per_s"]
    for fmt in ("ecs", "ocsf"):
        mapper = schema.ecs_batch if fmt == "ecs" else schema.ocsf_batch
        # each chunk's documents dropped before the next, as the exporters do
        out[fmt]["dicts_per_s"] = median_rate(
            reps, len(events), lambda m=mapper: [len(m(events[i : i + CHUNK])) for i in range(0, len(events), CHUNK)]
        )
    for fmt in schema.FORMATS:
        out[fmt]["ratio_to_native"] = out[fmt]["json_per_s"] / native
    return out


def deliver(make: Callable[[str], Exporter], events: list[Any], fmt: str) -> dict[str, Any]:
    out = make(fmt)
    t = time.perf_counter()
    for i in range(0, len(events), CHUNK):
        out.submit_batch(events[i : i + CHUNK])
    ok = out.close(60)
    seconds = time.perf_counter() - t
    st = out.stats()
    if not ok or st.delivered != len(events):
        raise RuntimeError(f"schemas: {out.name} delivered {st.delivered} of {len(events)}: {st}")
    return {"delivered_per_s": len(events) / seconds, "retries": st.retries, "dropped": st.dropped}


def exporters(events: list[Any]) -> dict[str, Any]:
    from tests.kernel.test_exporters import Server, free_port, read_stream  # noqa: F401

    results: dict[str, Any] = {}
    options = {"queue_size": len(events) + 1}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        runs: dict[str, Callable[[str], Exporter]] = {
            "file": lambda fmt: FileExporter(base / f"events-{fmt}.jsonl", format=fmt, **options),
        }
        servers: list[Server] = []
        nats_bin = shutil.which("nats-server") or "/usr/sbin/nats-server"
        try:
            import nats  # noqa: F401

            have_nats = os.access(nats_bin, os.X_OK)
        except ImportError:
            have_nats = False
        if have_nats:
            from ebpfsensor.exporters import NatsExporter

            port = free_port()
            (base / "js").mkdir()
            servers.append(
                Server(
                    [nats_bin, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(base / "js")], port, base / "n.log"
                )
            )
            runs["nats"] = lambda fmt, port=port: NatsExporter(
                f"nats://127.0.0.1:{port}", f"bench.{fmt}", stream=f"BENCH_{fmt.upper()}", format=fmt, **options
            )
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        if os.access(rsyslogd, os.X_OK):
            from ebpfsensor.exporters import SyslogExporter

            port = free_port()
            conf = base / "rsyslog.conf"
            (base / "rs").mkdir()
            conf.write_text(
                f'global(workDirectory="{base / "rs"}" maxMessageSize="256k")\nmodule(load="imtcp")\n'
                f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
                f'action(type="omfile" file="{base / "syslog.out"}")\n'
            )
            servers.append(Server([rsyslogd, "-n", "-f", str(conf), "-i", str(base / "rs.pid")], port, base / "r.log"))
            runs["syslog"] = lambda fmt, port=port: SyslogExporter("127.0.0.1", port, format=fmt, **options)
        try:
            for server in servers:
                server.start()
            for name, make in runs.items():
                results[name] = {fmt: deliver(make, events, fmt) for fmt in ("native", "ecs")}
        finally:
            for server in servers:
                server.stop()
    return results


def schemas(quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 5
    events = capture(1.0 if quick else 3.0, 20_000 if quick else 60_000)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return {
        "events": len(events),
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "with_process_context": sum(getattr(e, "process", None) is not None for e in events),
        "formats": formats(events, reps),
        "exporters": exporters(events),
    }


def report(r: dict[str, Any]) -> None:
    top = ", ".join(f"{k} {v}" for k, v in list(r["kinds"].items())[:5])
    print(f"formats over {r['events']} real events ({top}, ...; {r['with_process_context']} with process context)")
    print(f"  {'format':8} {'JSON events/s':>14} {'vs native':>10} {'dicts events/s':>15}")
    for fmt, f in r["formats"].items():
        dicts = f"{f['dicts_per_s']:15,.0f}" if "dicts_per_s" in f else f"{'-':>15}"
        print(f"  {fmt:8} {f['json_per_s']:14,.0f} {f['ratio_to_native']:9.3f}x {dicts}")
    if r["exporters"]:
        print(f"  {'exporter':8} {'native delivered/s':>19} {'ECS delivered/s':>16} {'ECS/native':>11}")
        for name, per in r["exporters"].items():
            n, e = per["native"]["delivered_per_s"], per["ecs"]["delivered_per_s"]
            print(f"  {name:8} {n:19,.0f} {e:16,.0f} {e / n:10.3f}x")
