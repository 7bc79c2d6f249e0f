# SPDX-License-Identifier: Apache-2.0
"""Exporters against real servers, started and stopped by the tests on
loopback, each bounded to seconds: NATS JetStream (nats-server -js) and
rsyslog (imtcp, plain and TLS), plus the CLI that drives them.

Faults: a server down at start, killed mid-stream and restarted, and a
stalled server (SIGSTOP) while events keep coming. The real-sensor tests
need root; the servers come from Debian (`nats-server`, `rsyslog`,
`rsyslog-gnutls`, `openssl`; `make deps` installs them) and nats-py from
PyPI (`pip install 'ebpfsensor[nats]'`). With EBPFSENSOR_REQUIRE_BPF=1 a
missing one fails the test instead of skipping it. The servers run on the
host only: under tools/vm/run.sh (VMTEST_KERNEL set) the module skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("EBPFSENSOR_REQUIRE_BPF") == "1"

pytestmark = pytest.mark.skipif(
    "VMTEST_KERNEL" in os.environ, reason="exporter servers run on the host only, not in the kernel guests"
)


def need(ok: bool, what: str) -> None:
    """Skip without what this test needs; fail instead under EBPFSENSOR_REQUIRE_BPF=1 (CI)."""
    if ok:
        return
    if REQUIRE:
        pytest.fail(f"{what}, and EBPFSENSOR_REQUIRE_BPF=1 forbids skipping")
    pytest.skip(what)


def need_binary(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    need(path is not None, f"needs {name} (apt package {package}; `make deps` installs it)")
    assert path is not None
    return path


def need_nats_py() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        need(False, "needs nats-py (pip install 'ebpfsensor[nats]'; `make deps` installs it)")


def need_root() -> None:
    need(os.geteuid() == 0, "needs root (a real Sensor)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 5.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _die_with_parent() -> None:
    """In the server's child: SIGKILL when the test process dies, so a run
    that is killed leaves no server behind."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Server:
    """A server process on 127.0.0.1:port, restartable."""

    def __init__(self, argv: list[str], port: int, log: Path, pidfile: Path | None = None) -> None:
        self.argv, self.port, self.log, self.pidfile = argv, port, log, pidfile
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)  # left by a kill
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
            )
        wait_port(self.port, proc=self.proc)
        return self

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(sig)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)


def nats_server(tmp: Path) -> Server:
    """nats-server with JetStream, its store in tmp (kept across restarts)."""
    binary = need_binary("nats-server", "nats-server")
    port = free_port()
    store = tmp / "jetstream"
    store.mkdir(exist_ok=True)
    return Server([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)], port, tmp / "nats.log")


def rsyslog(tmp: Path, tls: bool = False) -> tuple[Server, Path]:
    """rsyslogd in the foreground with its own configuration: imtcp on a free
    loopback port (octet-counted framing is on by default), each message's
    MSGID and MSG as a line of a file in tmp."""
    binary = need_binary("rsyslogd", "rsyslog")
    port = free_port()
    out = tmp / "syslog.out"
    work = tmp / "rsyslog"
    work.mkdir(exist_ok=True)
    tls_global = tls_module = ""
    if tls:
        need(
            bool(glob.glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")),
            "needs rsyslog's TLS driver (apt package rsyslog-gnutls)",
        )
        cert, key = make_cert(tmp)
        tls_global = (
            f' DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{cert}"'
            f' DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}"'
        )
        tls_module = ' StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"'
    conf = tmp / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}" maxMessageSize="256k"{tls_global})\n'
        f'module(load="imtcp"{tls_module})\n'
        f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
        'template(name="line" type="string" string="%hostname% %app-name% %procid% %msgid% %timereported:::'
        'date-rfc3339% %msg%\\n")\n'
        f'action(type="omfile" file="{out}" template="line")\n'
    )
    pidfile = tmp / "rsyslogd.pid"
    argv = [binary, "-n", "-f", str(conf), "-i", str(pidfile)]
    return Server(argv, port, tmp / "rsyslogd.log", pidfile), out


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (EC P-256: made in milliseconds)."""
    openssl = need_binary("openssl", "openssl")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    if not cert.exists():
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
    return cert, key


def syslog_lines(path: Path, expect: int = 0, timeout: float = 10.0) -> list[str]:
    """The output file's lines, waiting up to timeout for at least expect."""
    end = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= expect or time.monotonic() >= end:
            return lines
        time.sleep(0.05)


def syslog_docs(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(MSGID, the JSON document) of each line."""
    out = []
    for line in lines:
        _host, app, _procid, msgid, _ts, msg = line.split(" ", 5)
        assert app == "ebpfsensor"
        out.append((msgid, json.loads(msg)))
    return out


def read_stream(port: int, stream: str = "EBPFSENSOR") -> list[tuple[str, dict[str, str], bytes]]:
    """Every message of a stream: (subject, headers, payload)."""

    async def read() -> list[tuple[str, dict[str, str], bytes]]:
        import nats

        nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                out.append((msg.subject, dict(msg.headers or {}), msg.data or b""))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def samples(n: int) -> list[Any]:
    """n synthetic events of every kind, each with its own ts_ns (an identity)."""
    import msgspec
    from tests.unit.test_schema_validate import sample_events

    base = sample_events()
    return [msgspec.structs.replace(base[i % len(base)], ts_ns=10_000_000_000 + i) for i in range(n)]


def ours(batch: list[Any]) -> list[Any]:
    """The events of this process and its children: what other processes on
    the machine do meanwhile must not make the tests' volume."""
    me = os.getpid()
    return [e for e in batch if e.pid == me or e.ppid == me]


# --- NATS JetStream ----------------------------------------------------------------------


def test_nats_real_events_survive_a_server_kill(tmp_path: Path) -> None:
    """Real events from a real Sensor to JetStream; the server is killed
    (SIGKILL) mid-stream and restarted on its store: every event is in the
    stream exactly once, the ones made meanwhile buffered and re-sent."""
    need_root()
    need_nats_py()
    import ebpfsensor
    from ebpfsensor.exporters import NatsExporter

    server = nats_server(tmp_path)
    submitted: list[Any] = []
    with (
        contextlib.ExitStack() as stack,
        server,
        ebpfsensor.Sensor(kinds={"process_exec", "process_fork", "process_exit"}) as sensor,
    ):
        out = stack.enter_context(
            NatsExporter(f"nats://127.0.0.1:{server.port}", "ebpfsensor", format="native", batch_size=64)
        )

        def run(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                subprocess.run(["/bin/true"], check=True)
                batch = ours(sensor.poll(0))
                out.submit_batch(batch)
                submitted.extend(batch)

        run(0.7)
        assert out.flush(5), out.stats()
        before_kill = out.stats().delivered
        server.stop(signal.SIGKILL)
        killed_at = len(submitted)
        run(0.7)
        during_outage = len(submitted) - killed_at
        assert out.stats().delivered <= before_kill + 64, "delivered to a dead server"
        restart = time.monotonic()
        server.start()
        run(0.5)
        batch = ours(sensor.poll(0.2))
        out.submit_batch(batch)
        submitted.extend(batch)
        assert out.close(10), out.stats()
        caught_up = time.monotonic() - restart
        st = out.stats()
        stored = read_stream(server.port)
    assert during_outage > 10, "no events made while the server was down"
    assert (st.submitted, st.delivered, st.failed, st.dropped) == (len(submitted), len(submitted), 0, 0)
    assert st.retries > 0
    ids = [h["Nats-Msg-Id"] for _, h, _ in stored]
    assert len(ids) == len(set(ids)) == len(submitted), "lost or duplicated in the stream"
    got = sorted((subject, json.loads(data)["ts_ns"], json.loads(data)["pid"]) for subject, _, data in stored)
    assert got == sorted((f"ebpfsensor.{e.kind}", e.ts_ns, e.pid) for e in submitted)
    print(
        f"\nnats: {len(submitted)} real events, {during_outage} made while the server was down;"
        f" restart to all delivered {caught_up:.2f} s; {st.retries} retries; 0 lost, 0 duplicated"
    )


def test_nats_server_down_at_start(tmp_path: Path) -> None:
    need_nats_py()
    from ebpfsensor.exporters import NatsExporter

    server = nats_server(tmp_path)
    events = samples(500)
    out = NatsExporter(f"nats://127.0.0.1:{server.port}", "ebpfsensor", format="ocsf", retry_max=0.3)
    try:
        assert out.submit_batch(events) == 500
        time.sleep(0.5)
        st = out.stats()
        assert (st.delivered, st.connected) == (0, False) and st.retries > 0 and st.last_error
        with server:
            assert out.flush(10), out.stats()
            stored = read_stream(server.port)
    finally:
        out.close(1)
    assert len(stored) == 500
    assert {s for s, _, _ in stored} == {f"ebpfsensor.{e.kind}" for e in events}
    from tests.unit.test_schema_validate import validate_ocsf

    for _, _, data in stored[:60]:
        assert validate_ocsf(json.loads(data)) == []


def test_nats_stalled_server_never_blocks_the_caller(tmp_path: Path) -> None:
    """A server that stops answering (SIGSTOP): submit returns at once, the
    queue fills, the rest is dropped and counted; once the server is back
    everything queued is delivered."""
    need_nats_py()
    from ebpfsensor.exporters import NatsExporter

    events = samples(6000)
    with contextlib.ExitStack() as stack, nats_server(tmp_path) as server:
        out = stack.enter_context(NatsExporter(
            f"nats://127.0.0.1:{server.port}", "ebpfsensor", format="native", queue_size=1000, batch_size=200,
            timeout=1.0,
        ))  # fmt: skip
        out.submit_batch(events[:100])
        assert out.flush(5)
        server.send(signal.SIGSTOP)
        slowest = 0.0
        for i in range(100, 6000, 100):
            t = time.perf_counter()
            out.submit_batch(events[i : i + 100])
            slowest = max(slowest, time.perf_counter() - t)
        st = out.stats()
        assert slowest < 0.05, f"submit took {slowest:.3f} s"
        assert st.submitted + st.dropped == 6000 and st.dropped >= 6000 - 100 - 1000 - 200
        server.send(signal.SIGCONT)
        assert out.close(15), out.stats()
        st = out.stats()
        stored = read_stream(server.port)
    assert st.delivered == st.submitted == len(stored) and st.failed == 0
    print(
        f"\nnats stalled: {st.submitted} queued and delivered, {st.dropped} dropped (queue 1000),"
        f" slowest submit {slowest * 1e3:.2f} ms"
    )


# --- syslog ---------------------------------------------------------------------------------


def test_syslog_real_events_across_restarts(tmp_path: Path) -> None:
    """Real events from a real Sensor as ECS to rsyslog over TCP; rsyslog
    restarts cleanly (SIGTERM) mid-stream, then is killed (SIGKILL): after
    the clean restart nothing is missing; after the kill only what rsyslog
    had read and not yet written is (syslog has no acknowledgements), and
    everything made after it arrives."""
    need_root()
    from tests.unit.test_schema_validate import validate_ecs

    import ebpfsensor
    from ebpfsensor.exporters import SyslogExporter

    server, path = rsyslog(tmp_path)
    submitted: list[Any] = []
    with (
        contextlib.ExitStack() as stack,
        server,
        ebpfsensor.Sensor(kinds={"process_exec", "process_exit", "file_open"}) as sensor,
    ):
        out = stack.enter_context(SyslogExporter("127.0.0.1", server.port, format="ecs", batch_size=64, retry_max=0.5))

        def run(seconds: float) -> list[Any]:
            made: list[Any] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                subprocess.run(["/bin/true"], check=True)
                batch = ours(sensor.poll(0))
                out.submit_batch(batch)
                made.extend(batch)
            submitted.extend(made)
            return made

        run(0.5)
        assert out.flush(5)
        time.sleep(0.2)  # read by rsyslog: a clean stop drops what it has not read
        server.stop(signal.SIGTERM)
        run(0.3)
        server.start()
        run(0.5)
        assert out.flush(10), out.stats()
        clean = {_ecs_key_doc(d) for _, d in syslog_docs(syslog_lines(path, len(submitted)))}
        expected = {_ecs_key(e) for e in submitted}
        assert expected <= clean, f"{len(expected - clean)} events missing after a clean restart"
        server.stop(signal.SIGKILL)
        before_kill = len(submitted)
        run(0.3)
        server.start()
        after = run(0.5)
        assert out.close(10), out.stats()
        st = out.stats()
        docs = syslog_docs(syslog_lines(path, len(submitted)))
    got = [_ecs_key_doc(d) for _, d in docs]
    assert {_ecs_key(e) for e in after} <= set(got), "events made after the restart are missing"
    lost = {_ecs_key(e) for e in submitted} - set(got)
    duplicated = len(got) - len(set(got))
    assert lost <= {_ecs_key(e) for e in submitted[:before_kill]}, "lost events that were made after the kill"
    for msgid, d in docs[:200]:
        assert validate_ecs(d) == [] and d["event"]["action"] == msgid
    print(
        f"\nsyslog: {st.delivered} real events; clean restart: 0 lost; SIGKILL: {len(lost)} lost (read by rsyslog,"
        f" not yet written), {duplicated} duplicated; {st.retries} retries"
    )


def _ecs_key(e: Any) -> tuple[str, int, int]:
    return (e.kind, e.ts_ns, e.pid)


def _ecs_key_doc(d: dict[str, Any]) -> tuple[str, int, int]:
    # event.sequence is the event's ts_ns
    return (d["event"]["action"], d["event"]["sequence"], d["process"]["pid"])


def test_syslog_tls_down_at_start_and_stalled(tmp_path: Path) -> None:
    """TLS to rsyslog (gtls): down at start, then up; then stalled (SIGSTOP)
    with the caller never blocked; OCSF documents arrive whole and valid."""
    from tests.unit.test_schema_validate import validate_ocsf

    from ebpfsensor.exporters import SyslogExporter

    server, path = rsyslog(tmp_path, tls=True)
    cert, _ = make_cert(tmp_path)
    events = samples(3000)
    out = SyslogExporter(
        "127.0.0.1", server.port, tls=True, ca_file=str(cert), format="ocsf", queue_size=1000, retry_max=0.3,
        timeout=1.0,
    )  # fmt: skip
    try:
        out.submit_batch(events[:500])
        time.sleep(0.4)
        assert out.stats().delivered == 0 and out.stats().retries > 0
        with server:
            assert out.flush(10), out.stats()
            server.send(signal.SIGSTOP)
            slowest = 0.0
            for i in range(500, 3000, 100):
                t = time.perf_counter()
                out.submit_batch(events[i : i + 100])
                slowest = max(slowest, time.perf_counter() - t)
            assert slowest < 0.05
            server.send(signal.SIGCONT)
            assert out.close(10), out.stats()
            st = out.stats()
            lines = syslog_lines(path, st.delivered)
    finally:
        out.close(1)
    assert len(lines) == st.delivered == st.submitted and st.submitted + st.dropped == 3000
    for msgid, d in syslog_docs(lines)[:100]:
        # the MSGID is the kind; OCSF's event_code a login's audit record type
        assert validate_ocsf(d) == [] and msgid == (
            "user_login" if d["class_uid"] == 3002 else d["metadata"]["event_code"]
        )


# --- the CLI ----------------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'python'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "ebpfsensor", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@contextlib.contextmanager
def _activity() -> Iterator[None]:
    """Processes starting while the CLI runs."""
    proc = subprocess.Popen(["sh", "-c", "while :; do /bin/true; sleep 0.05; done"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def test_cli_stream_formats_to_stdout() -> None:
    """stdout has the data alone, stderr one banner line."""
    need_root()
    from tests.unit.test_schema_validate import validate_ecs, validate_ocsf

    with _activity():
        for fmt, validate in (("ecs", validate_ecs), ("ocsf", validate_ocsf)):
            r = _cli("stream", "--kinds", "process_exec,process_exit", "--format", fmt, "--duration", "1")
            assert r.returncode == 0, r.stderr
            assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"ebpfsensor: streaming {fmt} events"), r.stderr
            docs = [json.loads(line) for line in r.stdout.splitlines()]
            assert docs, "no events"
            for d in docs:
                assert validate(d) == []


def test_cli_stream_to_outputs(tmp_path: Path) -> None:
    need_root()
    need_nats_py()
    nats = nats_server(tmp_path)
    syslog, syslog_out = rsyslog(tmp_path)
    target = tmp_path / "events.jsonl"
    with nats, syslog, _activity():
        for url in (f"file:{target}", f"nats://127.0.0.1:{nats.port}/host1", f"syslog+tcp://127.0.0.1:{syslog.port}"):
            r = _cli("-v", "stream", "--kinds", "process_exec", "--format", "ecs", "--duration", "1", "--output", url)
            assert r.returncode == 0, r.stderr
            assert r.stdout == ""
            last = r.stderr.splitlines()[-1]
            assert f"{url}: delivered" in last and "dropped 0 (queue full), failed 0" in last, r.stderr
        stored = read_stream(nats.port)
    lines = target.read_text().splitlines()
    assert lines and all(json.loads(line)["event"]["action"] == "process_exec" for line in lines)
    assert stored and {s for s, _, _ in stored} == {"host1.process_exec"}
    assert syslog_lines(syslog_out, 1)


def test_cli_stream_output_down_reports_and_fails() -> None:
    """An output that never comes up: a warning while running, and at the
    end the events not delivered, one error line, exit status 2."""
    need_root()
    port = free_port()
    with _activity():
        r = _cli(
            "stream", "--kinds", "process_exec", "--duration", "1.5", "--flush-timeout", "0.5",
            "--output", f"syslog+tcp://127.0.0.1:{port}",
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert f"warning: syslog+tcp://127.0.0.1:{port}: ConnectionRefusedError" in r.stderr
    assert r.stderr.splitlines()[-1].startswith(f"ebpfsensor: error: syslog+tcp://127.0.0.1:{port}: ")


def test_cli_top(tmp_path: Path) -> None:
    """top for a few seconds with its output captured: one frame per
    second (not a terminal), then the same as JSON lines."""
    need_root()
    try:
        import rich  # noqa: F401
    except ImportError:
        need(False, "needs rich (pip install 'ebpfsensor[top]'; `make deps` installs it)")
    with _activity():
        r = _cli("top", "--duration", "2.5", "--kinds", "process_exec,process_exit,file_open")
        j = _cli("top", "--duration", "1.2", "--interval", "0.5", "--kinds", "process_exec,file_open", "--json")
    assert r.returncode == 0 and j.returncode == 0, r.stderr + j.stderr
    assert r.stdout.count("ebpfsensor top") == 2, r.stdout
    for text in ("events/s", "events per kind", "busiest processes", "busiest files", "process_exec", "CPU sensor"):
        assert text in r.stdout
    snaps = [json.loads(line) for line in j.stdout.splitlines()]
    assert len(snaps) == 2
    assert snaps[-1]["rates"].get("process_exec", 0) > 0 and snaps[-1]["processes"]
    assert {"dropped", "sensor_cpu_pct", "system_cpu_pct", "files"} <= set(snaps[-1])
