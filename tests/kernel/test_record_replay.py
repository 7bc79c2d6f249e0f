# SPDX-License-Identifier: Apache-2.0
"""Recordings made by a real sensor replay to the same events and process lookups.

Also makes the recording kept in tests/data/recordings (as root):

    PYTHONPATH=python python3 -m tests.kernel.test_record_replay --write tests/data/recordings/format1-dropper.ebr
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import ebpfsensor
from ebpfsensor import RecordingError, ReplaySensor
from ebpfsensor.recording import EndFrame, EventsFrame, LossFrame, ProcessesFrame, RecordingReader, RecordingWriter

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "python")}

# a network server whose child looks around, writes an executable (a copy of
# /bin/true) and runs it
SERVER = r"""
import os, socket, sys
workdir = sys.argv[1]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
conn, _ = s.accept()
conn.recv(1)
pid = os.fork()
if pid == 0:
    os.system("id > /dev/null; uname -a > /dev/null")
    payload = os.path.join(workdir, "payload")
    with open("/bin/true", "rb") as src, open(payload, "wb") as dst:
        dst.write(src.read())
    os.chmod(payload, 0o755)
    os.execv(payload, [payload])
os.waitpid(pid, 0)
conn.sendall(b"k")
conn.close()
s.close()
"""


def run_dropper(workdir: str, drain: Callable[[], None]) -> int:
    """Run the server and connect to it; its pid. drain() is called while waiting."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, workdir], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    drain()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"x")
        assert conn.recv(1) == b"k"
    assert proc.wait(10) == 0
    proc.stdout.close()
    return proc.pid


def drain_until(sensor: Any, done: Callable[[], bool], batches: list[list[Any]], timeout: float = 10.0) -> None:
    """Poll the sensor, keeping its batches, until done() and a last quiet moment."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not done():
        batch = sensor.poll(0.05)
        if batch:
            batches.append(batch)
    assert done(), "the activity was not seen in time"
    for _ in range(3):
        batch = sensor.poll(0.1)
        if batch:
            batches.append(batch)


def table_of(sensor: Any) -> Any:
    try:
        return getattr(sensor, "processes", None)
    except ebpfsensor.EbpfSensorError:
        return None


def settled(entry: Any) -> Any:
    """An entry without what a table may fill in later, off the delivery path."""
    fields = msgspec.structs.asdict(entry) if isinstance(entry, msgspec.Struct) else dict(entry)
    for name in ("exe_hash", "exe_hash_reason"):
        fields.pop(name, None)
    return msgspec.to_builtins(fields)


def test_real_recording_replays_the_same_events_and_lookups(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    path = tmp_path / "real.ebr"
    batches: list[list[Any]] = []
    payload = str(tmp_path / "payload")
    with sensor.record(path) as recorder:
        sensor.poll(0)
        run_dropper(str(tmp_path), lambda: None)
        subprocess.run(["/bin/true"], check=True)
        drain_until(
            sensor,
            lambda: any(e.kind == "process_exec" and e.exe == payload for b in batches for e in b),
            batches,
        )
        table = table_of(sensor)
    # the table as the recorder's last (full) snapshot saw it; nothing has polled since
    live_table = {e.entity_id: (settled(e), table.exit_time_ns(e)) for e in table} if table is not None else None
    live = [e for b in batches for e in b]
    assert recorder.events_written >= len(live) > 0

    with ReplaySensor(path) as replay:
        replayed: list[list[Any]] = []
        while not replay.finished:
            batch = replay.poll()
            if batch:
                replayed.append(batch)
        health = replay.health()
        replay_table = replay.processes
        # the batches this test polled, field by field (the first poll may predate them)
        flat = [e for b in replayed for e in b]
        assert flat[len(flat) - len(live) :] == live
        assert replayed[len(replayed) - len(batches) :] == batches
        assert [type(e) for e in flat[-len(live) :]] == [type(e) for e in live]
        assert health.complete and health.recorded_provider == sensor.stats().provider
        assert replay.stats().delivered == recorder.events_written

        if table is None:
            assert replay_table is None
            return
        assert replay_table is not None and live_table is not None
        got = {e.entity_id: (settled(e), replay_table.exit_time_ns(e)) for e in replay_table}
        assert got == live_table
        for event in live:
            process = getattr(event, "process", None)
            if process is None:
                continue
            # what the events carry is what the table holds, and its ancestry the same
            mine = replay_table.find(process.entity_id)
            assert mine is not None and settled(mine) == settled(table.find(process.entity_id))
            assert [a.entity_id for a in replay_table.ancestors(mine)] == [
                a.entity_id for a in table.ancestors(table.find(process.entity_id))
            ]
            live_now = table.get(event.pid)
            replayed_now = replay_table.get(event.pid)
            assert (live_now is None) == (replayed_now is None)
            if live_now is not None:
                assert live_now.entity_id == replayed_now.entity_id


def test_the_example_agent_on_the_live_sensor_and_on_its_recording(sensor: ebpfsensor.Sensor, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples" / "dropper"))
    try:
        from dropper_agent import DropperDetector
    finally:
        sys.path.pop(0)
    path = tmp_path / "dropper.ebr"
    live = DropperDetector()
    sub = live.attach(sensor)
    batches: list[list[Any]] = []
    with sensor.record(path):
        sensor.poll(0)
        run_dropper(str(tmp_path), lambda: None)
        drain_until(sensor, lambda: bool(live.alerts), batches)
    sub.cancel()
    assert [a.path for a in live.alerts] == [str(tmp_path / "payload")]

    replayed = DropperDetector()
    with ReplaySensor(path) as replay:
        replayed.attach(replay)
        replay.run()
    assert replayed.alerts == live.alerts


def test_recording_a_sensor_before_it_starts(tmp_path: Path) -> None:
    """Its process table exists only once started: the recorder finds it then."""
    path = tmp_path / "early.ebr"
    s = ebpfsensor.Sensor(kinds={"process_exec", "process_exit"})
    recorder = s.record(path)
    batches: list[list[Any]] = []
    with s:
        subprocess.run(["/bin/true", "early"], check=True)
        drain_until(
            s, lambda: any(getattr(e, "argv", None) == ["/bin/true", "early"] for b in batches for e in b), batches
        )
        has_table = table_of(s) is not None
        recorder.close()
    with ReplaySensor(path) as replay:
        events = list(replay.events())
        assert (replay.processes is not None and len(replay.processes) > 0) == has_table
    assert events[-len([e for b in batches for e in b]) :] == [e for b in batches for e in b]


def start_recorder(path: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebpfsensor", "record", "--output", str(path), *args],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "recording from" in line, line + proc.stderr.read()
    return proc


def test_cli_record(tmp_path: Path) -> None:
    """Ctrl-C ends a recording cleanly: what was delivered is in the file,
    with its trailer."""
    path = tmp_path / "cli.ebr"
    proc = start_recorder(path, "--kinds", "process_exec,process_exit")
    try:
        subprocess.run(["/bin/true", "cli-record"], check=True)

        def recorded() -> bool:
            # batches are flushed as they are delivered; a frame being
            # written reads as truncated
            events = ebpfsensor.recording.read_events(path, allow_truncated=True)
            return any(e.kind == "process_exec" and e.argv == ["/bin/true", "cli-record"] for e in events)

        end = time.monotonic() + 60
        while not recorded():
            assert time.monotonic() < end, "the exec never reached the recording"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "bytes/event" in err
    with ReplaySensor(path) as replay:
        events = list(replay.events())
        assert replay.complete
        assert set(replay.header.kinds) >= {"process_exec", "process_exit"}
    assert any(e.kind == "process_exec" and e.argv == ["/bin/true", "cli-record"] for e in events)
    assert {e.kind for e in events} <= {"process_exec", "process_exit", "loss"}


def test_a_recorder_killed_by_sigkill_leaves_a_replayable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.ebr"
    proc = start_recorder(path, "--kinds", "process_exec")
    try:
        size = path.stat().st_size
        end = time.monotonic() + 20
        # batches are flushed as they are delivered: the file grows while the recorder runs
        while path.stat().st_size == size and time.monotonic() < end:
            subprocess.run(["/bin/true", "before-the-kill"], check=True)
            time.sleep(0.2)
        assert path.stat().st_size > size
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    try:
        events = list(ebpfsensor.recording.read_events(path))
    except RecordingError as exc:
        # killed in the middle of a write: everything before the frame is kept
        assert "truncated frame at offset" in str(exc) and exc.offset > 0
    with ReplaySensor(path, allow_truncated=True) as replay:
        events = list(replay.events())
        assert not replay.complete
    assert any(e.argv == ["/bin/true", "before-the-kill"] for e in events)


# --- the recording kept in the repository --------------------------------------------------------------


def keep_tree(src: Path, dst: Path, root_pid: int) -> int:
    """Rewrite a recording keeping only the events and table entries of
    root_pid and its descendants (what else ran on the machine stays out);
    the number of events kept."""
    tree = {root_pid}
    kept = 0
    with RecordingReader(src) as reader:
        writer = RecordingWriter(dst, reader.header, info=reader.info)
        try:
            for frame in reader:
                if isinstance(frame, EventsFrame):
                    events = []
                    for event in frame.events:
                        if event.kind == "process_fork" and event.pid in tree:
                            tree.add(event.child_pid)
                        if getattr(event, "pid", None) in tree:
                            events.append(event)
                    if events:
                        writer.write_events(frame.t_ns, events)
                        kept += len(events)
                elif isinstance(frame, ProcessesFrame):
                    rows = [(u, frame.exited[i] if frame.exited else None) for i, u in enumerate(frame.upsert)]
                    rows = [(u, gone) for u, gone in rows if u.get("pid") in tree]
                    mine = msgspec.structs.replace(
                        frame,
                        upsert=[u for u, _ in rows],
                        exited=[gone for _, gone in rows] if frame.exited else [],
                        remove=[],
                    )
                    if mine.full or mine.upsert:
                        writer.write_processes(mine)
                elif isinstance(frame, LossFrame):
                    writer.write_loss(frame)
                elif isinstance(frame, EndFrame):
                    writer.close(msgspec.structs.replace(frame, events=kept))
        finally:
            writer.close()
    return kept


def write_kept_recording(dst: Path) -> int:
    """Record the dropper with every kind on and keep its process tree."""
    with tempfile.TemporaryDirectory() as tmp, ebpfsensor.Sensor() as sensor:
        raw = Path(tmp) / "all.ebr"
        batches: list[list[Any]] = []
        payload = os.path.join(tmp, "payload")
        with sensor.record(raw):
            sensor.poll(0)
            pid = run_dropper(tmp, lambda: None)
            drain_until(
                sensor,
                lambda: any(e.kind == "process_exec" and e.exe == payload for b in batches for e in b),
                batches,
            )
        return keep_tree(raw, dst, pid)


def main() -> int:
    parser = argparse.ArgumentParser(description="make the recording kept in tests/data/recordings (as root)")
    parser.add_argument("--write", required=True, type=Path, help="where to write it")
    args = parser.parse_args()
    n = write_kept_recording(args.write)
    print(f"{args.write}: {n} events, {args.write.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
