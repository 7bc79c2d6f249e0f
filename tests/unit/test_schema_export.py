# SPDX-License-Identifier: Apache-2.0
"""The exporters' shared contract on a fake destination (queue, batches,
retries, close, counters), the file exporter's rotation, syslog framing,
output URLs, and the CLI's options for formats, outputs and top."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.unit.test_schema_validate import sample_events, validate_ecs

from ebpfsensor.cli import build_parser
from ebpfsensor.errors import EbpfSensorError
from ebpfsensor.exporters import Exporter, FileExporter, NatsExporter, SyslogExporter, open_exporter

EVENTS = [msgspec.structs.replace(e, ts_ns=10_000_000_000 + i) for i, e in enumerate(sample_events() * 4)]


class Fake(Exporter):
    """A destination that fails the first `failures` sends, and can be held."""

    name = "fake"

    def __init__(self, failures: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self.failures = failures
        self.sent: list[bytes] = []
        self.connects = 0
        self.release = threading.Event()
        self.release.set()

    def _connect(self, timeout: float) -> None:
        self.connects += 1

    def _send(self, prepared: Any, timeout: float) -> None:
        if not self.release.wait(timeout):
            raise TimeoutError("held")
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("reset by the fake")
        self.sent += prepared

    def _disconnect(self) -> None:
        pass


def test_everything_submitted_is_delivered_in_order() -> None:
    out = Fake(format="native", batch_size=16)
    assert out.submit_batch(EVENTS[:100]) == 100
    for e in EVENTS[100:]:
        assert out.submit(e)
    assert out.close(5)
    st = out.stats()
    assert (st.submitted, st.delivered, st.failed, st.dropped, st.pending) == (len(EVENTS), len(EVENTS), 0, 0, 0)
    assert [json.loads(p)["ts_ns"] for p in out.sent] == [e.ts_ns for e in EVENTS]
    assert st.batches >= len(EVENTS) // 16


def test_failures_are_retried_over_a_new_connection() -> None:
    out = Fake(failures=3, format="ecs", retry_initial=0.01, retry_max=0.02)
    out.submit_batch(EVENTS[:10])
    assert out.flush(5)
    st = out.stats()
    assert (st.delivered, st.retries, st.last_error) == (10, 3, "ConnectionResetError: reset by the fake")
    assert out.connects == 4
    assert all(validate_ecs(json.loads(p)) == [] for p in out.sent)
    out.close()


def test_close_gives_up_after_its_timeout_and_counts() -> None:
    out = Fake(failures=10**9, retry_initial=0.01, retry_max=0.05)
    out.submit_batch(EVENTS[:50])
    t = time.monotonic()
    assert not out.close(0.3)
    assert time.monotonic() - t < 2
    st = out.stats()
    assert (st.submitted, st.delivered, st.failed, st.pending) == (50, 0, 50, 0)
    assert not out.submit(EVENTS[0]) and out.stats().dropped == 1


def test_a_full_queue_drops_and_never_blocks() -> None:
    out = Fake(queue_size=100, batch_size=10, timeout=5)
    out.release.clear()  # the destination hangs
    slowest = 0.0
    for i in range(0, len(EVENTS), 7):
        t = time.perf_counter()
        out.submit_batch(EVENTS[i : i + 7])
        slowest = max(slowest, time.perf_counter() - t)
    st = out.stats()
    assert slowest < 0.05
    assert st.submitted + st.dropped == len(EVENTS) and st.submitted <= 110 and st.dropped > 0
    out.release.set()
    assert out.close(5)
    assert out.stats().delivered == st.submitted


def test_an_event_that_cannot_be_encoded_fails_alone() -> None:
    out = Fake(format="ocsf")
    out.submit_batch([*EVENTS[:5], object(), *EVENTS[5:10]])
    assert out.close(5) is False
    st = out.stats()
    assert (st.delivered, st.failed) == (10, 1) and "cannot encode object" in st.last_error


def test_sizes_and_times_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Fake(queue_size=0)
    with pytest.raises(ValueError, match="unknown format"):
        Fake(format="xml")


def test_file_rotation_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    out = FileExporter(path, max_bytes=20_000, backups=2, format="ecs", batch_size=50)
    out.submit_batch(EVENTS)
    assert out.close(5)
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    for f in files:
        assert f.stat().st_size <= 20_000
        assert f.stat().st_mode & 0o777 == 0o600
    kept = [json.loads(line) for f in reversed(files) for line in f.read_text().splitlines()]
    # the newest events survive, in order, whole
    assert [d["event"]["sequence"] for d in kept] == [e.ts_ns for e in EVENTS[-len(kept) :]]
    # appending to an existing file continues it
    again = FileExporter(path, max_bytes=10**9, format="native")
    again.submit(EVENTS[0])
    assert again.close(5)
    assert json.loads(path.read_text().splitlines()[-1])["ts_ns"] == EVENTS[0].ts_ns


def test_syslog_messages_are_rfc5424_and_octet_counted() -> None:
    out = SyslogExporter("127.0.0.1", 1, format="ecs", hostname="host one", facility=4, severity=5)
    frames = out._prepare(EVENTS[:3], out._encoder.encode_batch(EVENTS[:3]))
    for event, frame in zip(EVENTS[:3], frames, strict=True):
        length, _, msg = frame.partition(b" ")
        assert int(length) == len(msg)
        pri_ver, ts, host, app, procid, msgid, sd, body = msg.split(b" ", 7)
        assert (pri_ver, host, app, msgid, sd) == (b"<37>1", b"hostone", b"ebpfsensor", event.kind.encode(), b"-")
        assert int(procid) > 0 and ts.endswith(b"Z")
        doc = json.loads(body)
        assert ts.decode() == doc["@timestamp"] and validate_ecs(doc) == []
    out.close()
    with pytest.raises(ValueError):
        SyslogExporter(facility=24)


def test_output_urls(tmp_path: Path) -> None:
    f = open_exporter(f"file:{tmp_path}/x.jsonl", format="ocsf")
    assert isinstance(f, FileExporter) and f.path == f"{tmp_path}/x.jsonl" and f.format == "ocsf"
    s = open_exporter("syslog+tls://logs.example:6000")
    assert isinstance(s, SyslogExporter) and (s.host, s.port, s.tls) == ("logs.example", 6000, True)
    s = open_exporter("syslog+tcp://127.0.0.1")
    assert (s.port, s.tls) == (514, False)
    for bad in ("http://x", "file:", "syslog+tcp://h:port", "kafka://h:1/t"):
        with pytest.raises(ValueError):
            open_exporter(bad)
    for out in (f, s):
        out.close()


def test_nats_url_and_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nats")
    n = open_exporter("nats://10.0.0.1:4333/site.a")
    assert isinstance(n, NatsExporter) and (n.servers, n.subject) == (["nats://10.0.0.1:4333"], "site.a")
    assert open_exporter("nats://[::1]").servers == ["nats://[::1]:4222"]
    with pytest.raises(ValueError, match="not a NATS subject prefix"):
        NatsExporter(subject="a.*")
    monkeypatch.setitem(sys.modules, "nats", None)
    with pytest.raises(EbpfSensorError, match=r"pip install 'ebpfsensor\[nats\]'"):
        open_exporter("nats://127.0.0.1:4222/x")


def test_cli_options() -> None:
    args = build_parser().parse_args(
        ["stream", "--format", "ocsf", "--output", "nats://h:1/s", "--kinds", "process_exec", "--flush-timeout", "3"]
    )
    assert (args.format, args.output, args.flush_timeout) == ("ocsf", "nats://h:1/s", 3.0)
    assert build_parser().parse_args(["stream"]).format == "native"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stream", "--format", "xml"])
    assert build_parser().parse_args(["probe", "--json"]).json
    args = build_parser().parse_args(["top", "--duration", "2", "--json", "--top", "5"])
    assert (args.duration, args.json, args.top, args.interval) == (2.0, True, 5, 1.0)


def test_top_renders_a_snapshot() -> None:
    pytest.importorskip("rich")
    from rich.console import Console

    from ebpfsensor.cli.top import Counts, render
    from ebpfsensor.status import SensorStats

    counts = Counts(top=3)
    counts.add(EVENTS)
    snap = counts.snapshot(SensorStats({}, 100, 2, 0, 2, "ebpf"))
    assert snap.totals["file_open"] == sum(e.kind == "file_open" for e in EVENTS)
    assert len(snap.processes) <= 3 and snap.files[0].path
    assert msgspec.json.decode(msgspec.json.encode(snap))["dropped"] == 2
    buf = io.StringIO()
    Console(file=buf, width=160).print(render(snap))
    text = buf.getvalue()
    for want in ("ebpfsensor top", "events/s", "events per kind", "busiest processes", "busiest files", "file_open"):
        assert want in text
