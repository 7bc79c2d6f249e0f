# SPDX-License-Identifier: Apache-2.0
"""Recordings: the format, replay through the Sensor's API, damaged and future files."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import socket
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

import ebpfsensor
from ebpfsensor import RecordingError, ReplaySensor
from ebpfsensor.cli import main
from ebpfsensor.events import FileOpen, ProcessExec, to_json
from ebpfsensor.recording import (
    FORMAT_VERSION,
    EndFrame,
    EventsFrame,
    LossFrame,
    ProcessesFrame,
    Recorder,
    RecordingReader,
    RecordingWriter,
    _format,
    new_header,
    read_events,
)
from ebpfsensor.testing import (
    Scenario,
    SyntheticSensor,
    make_exec,
    make_file_create,
    make_file_open,
    make_fork,
    make_net_accept,
    make_net_connect,
    use_scenario,
)

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "recordings"
FRAME = struct.Struct("<IBBHI")


def scenario_events(n_opens: int = 20) -> tuple[Scenario, list[Any]]:
    """A small story: a server accepts, forks a child that writes and runs a file."""
    sc = Scenario()
    with use_scenario(sc):
        make_exec(pid=100, exe="/usr/sbin/nginx")
        make_net_accept(pid=100, remote_address="203.0.113.9")
        child = make_fork(pid=100).child_pid
        for i in range(n_opens):
            make_file_open(pid=100, path=f"/var/www/{i}.html")
        # a file name that is not UTF-8 comes surrogate-escaped and must survive
        make_file_create(pid=child, path="/tmp/\udcff\udcfepayload")
        make_exec(pid=child, exe="/tmp/\udcff\udcfepayload")
    return sc, sc.events


def write(events_batches: list[list[Any]], **options: Any) -> bytes:
    buf = io.BytesIO()
    writer = RecordingWriter(buf, new_header(provider="synthetic"), **options)
    for i, batch in enumerate(events_batches):
        writer.write_events(i * 1_000_000, batch)
    writer.close(EndFrame(t_ns=len(events_batches) * 1_000_000, events=writer.events_written))
    return buf.getvalue()


def frames_of(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, total length) of each frame."""
    out = []
    offset = len(_format.MAGIC)
    while offset < len(data):
        length, ftype, *_ = FRAME.unpack_from(data, offset)
        out.append((offset, ftype, FRAME.size + length))
        offset += FRAME.size + length
    return out


def replay_all(data: bytes, **options: Any) -> list[Any]:
    with ReplaySensor(io.BytesIO(data), **options) as replay:
        return list(replay.events())


# --- the format ------------------------------------------------------------------------------


def test_round_trip_is_field_by_field_and_batch_by_batch() -> None:
    _, events = scenario_events()
    batches = [events[:3], events[3:10], events[10:]]
    data = write(batches)
    assert data.startswith(b"\x89EBR\r\n\x1a\n")
    with RecordingReader(io.BytesIO(data)) as reader:
        assert reader.header.version == FORMAT_VERSION
        assert reader.header.sensor_version == ebpfsensor.__version__
        assert reader.info.schema["process_exec"][:3] == ["euid", "egid", "suid"]
        frames = list(reader)
        assert reader.complete
    got = [f.events for f in frames if isinstance(f, EventsFrame)]
    assert got == batches
    assert [type(e) for b in got for e in b] == [type(e) for e in events]
    # the kernel's bytes come back
    assert got[-1][-1].exe == "/tmp/\udcff\udcfepayload"
    assert list(read_events(io.BytesIO(data))) == events


def test_shared_process_context_is_written_once_and_comes_back_shared() -> None:
    _, events = scenario_events(n_opens=200)
    if getattr(events[0], "process", None) is None:
        pytest.skip("events carry no process context in this version")
    data = write([events])
    got = list(read_events(io.BytesIO(data)))
    assert got == events
    opens = [e for e in got if isinstance(e, FileOpen)]
    assert len({id(e.process) for e in opens}) == 1
    assert opens[0].process == events[0].process
    # written once: 200 opens cost about as much as a few events with their context
    assert len(data) < 8000


def test_context_numbers_start_afresh_when_the_memo_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_format, "_CONTEXT_MEMO", 2)
    _, events = scenario_events()
    batches = [[e] for e in events]
    assert replay_all(write(batches)) == events


def test_uncompressed_recordings_read_the_same() -> None:
    _, events = scenario_events()
    plain = write([events], level=0)
    assert replay_all(plain) == events
    assert len(write([events])) < len(plain) / 3


def test_events_of_an_older_version_get_neutral_values_for_new_fields() -> None:
    """An event map missing a field this version has (an older writer), with
    one it does not know (a newer writer), and an unknown kind."""
    event = make_exec(pid=7, exe="/bin/true")
    old = msgspec.to_builtins(event)
    del old["tty"], old["exe_memfd"], old["argv"]
    old["added_later"] = 42
    if "process" in old:
        old["process"] = None
    future = {"kind": "quantum_entangle", "ts_ns": 1}
    payload = msgspec.msgpack.encode([0, [old, future, msgspec.to_builtins(event)]])
    buf = io.BytesIO()
    writer = RecordingWriter(buf, new_header())
    writer._frame(_format.FrameType.EVENTS, payload)
    writer.close()
    with ReplaySensor(io.BytesIO(buf.getvalue())) as replay:
        got = list(replay.events())
        assert replay.stats().undecodable == 1
    assert len(got) == 2 and got[1] == event
    assert isinstance(got[0], ProcessExec)
    assert (got[0].tty, got[0].exe_memfd, got[0].argv, got[0].exe) == ("", False, [], "/bin/true")


# --- damaged and future files ----------------------------------------------------------------------


def test_cut_off_mid_frame_names_the_offset() -> None:
    _, events = scenario_events()
    data = write([events[:5], events[5:10], events[10:]])
    frames = frames_of(data)
    offset, _, size = frames[-2]  # the last events frame, before the end frame
    for cut in (offset + 3, offset + FRAME.size, offset + size - 1):
        with pytest.raises(RecordingError) as info:
            replay_all(data[:cut])
        err = info.value
        assert err.offset == offset
        assert f"truncated frame at offset {offset}" in str(err)
        assert "allow_truncated=True" in str(err)
        with ReplaySensor(io.BytesIO(data[:cut]), allow_truncated=True) as replay:
            assert list(replay.events()) == events[:10]
            health = replay.health()
            assert health.truncated_at == offset and not health.complete


def test_cut_off_between_frames_replays_without_error() -> None:
    """What SIGKILL leaves: whole frames, no end frame."""
    _, events = scenario_events()
    data = write([events[:5], events[5:]])
    end_frame = frames_of(data)[-1][0]
    with ReplaySensor(io.BytesIO(data[:end_frame])) as replay:
        assert list(replay.events()) == events
        assert not replay.complete
        assert "cut off" in replay.health().reason


@pytest.mark.parametrize("where", ["payload", "length", "type", "flags"])
def test_corrupted_frame_names_the_offset(where: str) -> None:
    _, events = scenario_events()
    data = bytearray(write([events[:5], events[5:]]))
    offset, _, _ = frames_of(bytes(data))[2]  # header, sensor info, then the first events frame
    at = {"payload": offset + FRAME.size + 5, "length": offset + 1, "type": offset + 4, "flags": offset + 5}[where]
    data[at] ^= 0x20
    with pytest.raises(RecordingError) as info:
        replay_all(bytes(data))
    assert info.value.offset == offset
    assert f"frame at offset {offset}" in str(info.value)
    assert str(info.value).startswith("read ")


def test_garbage_after_a_good_prefix_is_refused_not_skipped(rng: Any) -> None:
    """Fuzzed tails raise RecordingError and nothing else."""
    _, events = scenario_events()
    data = write([events[:5], events[5:]])
    for _ in range(200):
        cut = rng.randrange(len(_format.MAGIC), len(data))
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            replay_all(data[:cut] + noise)
        except RecordingError as exc:
            assert exc.offset >= len(_format.MAGIC)


def test_not_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "x.ebr"
    path.write_bytes(b"hello world, not a recording")
    with pytest.raises(RecordingError, match=r"not an ebpfsensor recording") as info:
        ReplaySensor(path)
    assert info.value.path == str(path) and info.value.offset == 0
    path.write_bytes(b"")
    with pytest.raises(RecordingError, match="not an ebpfsensor recording"):
        ReplaySensor(path)
    path.write_bytes(_format.MAGIC)
    with pytest.raises(RecordingError, match="header frame is missing"):
        ReplaySensor(path)


def test_a_newer_format_is_refused_naming_both_versions() -> None:
    header = msgspec.to_builtins(new_header())
    header.update(version=FORMAT_VERSION + 1, sensor_version="9.9.9")
    payload = msgspec.msgpack.encode(header)
    tf = struct.pack("<BBH", _format.FrameType.HEADER, 0, 0)
    frame = FRAME.pack(len(payload), _format.FrameType.HEADER, 0, 0, zlib.crc32(payload, zlib.crc32(tf))) + payload
    with pytest.raises(RecordingError) as info:
        ReplaySensor(io.BytesIO(_format.MAGIC + frame + b"anything may follow"))
    text = str(info.value)
    assert info.value.version == FORMAT_VERSION + 1
    assert f"format version {FORMAT_VERSION + 1} is newer" in text
    assert f"versions 1 to {FORMAT_VERSION}" in text and "ebpfsensor 9.9.9" in text and "upgrade" in text


def test_unknown_ancillary_frames_are_skipped_and_required_ones_refused() -> None:
    _, events = scenario_events()
    buf = io.BytesIO()
    writer = RecordingWriter(buf, new_header())
    writer._frame(0xA0, b"\x80")  # a future ancillary frame, in the DEFLATE stream
    writer.write_events(0, events)
    writer._frame(0x20, b"\x80")  # a future required frame: needs a new version
    writer.close()
    got: list[Any] = []
    with pytest.raises(RecordingError, match="type 32 is not defined in format version 1") as info:
        with ReplaySensor(io.BytesIO(buf.getvalue())) as replay:
            got.extend(replay.events())
    assert got == events
    assert info.value.offset == frames_of(buf.getvalue())[-1][0]


def test_cli_replay_of_a_damaged_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, events = scenario_events()
    data = write([events])
    path = tmp_path / "cut.ebr"
    path.write_bytes(data[:-30])
    assert main(["replay", str(path), "--count"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ebpfsensor: error: read {path}: ") and "offset" in err[-1]
    assert "Traceback" not in "\n".join(err)


# --- ReplaySensor's API --------------------------------------------------------------------------


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, list[list[Any]]]:
    _, events = scenario_events()
    batches = [events[:3], events[3:8], events[8:]]
    path = tmp_path / "r.ebr"
    path.write_bytes(write(batches))
    return path, batches


def test_not_started_is_an_error(recording: tuple[Path, list[list[Any]]]) -> None:
    replay = ReplaySensor(recording[0])
    with pytest.raises(ebpfsensor.EbpfSensorError, match="not started"):
        replay.poll()
    replay.close()


def test_poll_hands_out_the_recorded_batches(recording: tuple[Path, list[list[Any]]]) -> None:
    path, batches = recording
    with ReplaySensor(path) as replay:
        got = [replay.poll(0) for _ in range(len(batches))]
        assert got == batches
        assert replay.poll(1.0) == [] and replay.finished


def test_subscribe_run_and_kinds(recording: tuple[Path, list[list[Any]]]) -> None:
    path, batches = recording
    flat = [e for b in batches for e in b]
    seen: list[Any] = []
    execs: list[Any] = []
    with ReplaySensor(path) as replay:
        replay.subscribe(seen.append)
        sub = replay.subscribe(execs.append, kinds={"process_exec"})
        replay.run()
        sub.cancel()
        sub.cancel()
    assert seen == flat
    assert execs == [e for e in flat if e.kind == "process_exec"]
    with ReplaySensor(path, kinds={"file_open"}) as replay:
        assert [e.kind for e in replay] == ["file_open"] * 20
        assert replay.health().kinds["process_exec"].reason == "not replayed"
    with pytest.raises(ValueError, match="unknown event kind"):
        ReplaySensor(path, kinds={"nonsense"})


def test_async_iteration(recording: tuple[Path, list[list[Any]]]) -> None:
    path, batches = recording

    async def collect() -> list[Any]:
        with ReplaySensor(path) as replay:
            return [e async for e in replay]

    assert asyncio.run(collect()) == [e for b in batches for e in b]


def test_recorded_pace(tmp_path: Path) -> None:
    _, events = scenario_events()
    buf = io.BytesIO()
    writer = RecordingWriter(buf, new_header())
    writer.write_events(0, events[:2])
    writer.write_events(300_000_000, events[2:])
    writer.close()
    with ReplaySensor(io.BytesIO(buf.getvalue()), speed=1.0) as replay:
        start = time.monotonic()
        assert replay.poll(0) == events[:2]
        assert replay.poll(0.05) == []  # not due yet
        assert replay.poll(1.0) == events[2:]
        assert 0.25 <= time.monotonic() - start < 1.0
    with ReplaySensor(io.BytesIO(buf.getvalue()), speed=3.0) as replay:
        start = time.monotonic()
        assert list(replay.events()) == events
        assert 0.08 <= time.monotonic() - start < 0.5
    with pytest.raises(ValueError, match="speed"):
        ReplaySensor(io.BytesIO(buf.getvalue()), speed=-1)


def test_restart_starts_over(recording: tuple[Path, list[list[Any]]]) -> None:
    path, _ = recording
    replay = ReplaySensor(path)
    with replay:
        first = list(replay.events())
    with replay:
        assert list(replay.events()) == first
        assert replay.stats().delivered == len(first)


def test_stats_and_health_report_recorded_losses() -> None:
    _, events = scenario_events()
    buf = io.BytesIO()
    writer = RecordingWriter(buf, new_header(provider="ebpf", kinds=["file_open", "process_exec"]))
    writer.write_events(0, events[:5])
    writer.write_loss(LossFrame(t_ns=1, dropped=7, undecodable=1, unmatched=2, kinds={"file_open": {"dropped": 7}}))
    writer.write_events(2, events[5:])
    writer.close(EndFrame(t_ns=3, events=len(events)))
    with ReplaySensor(io.BytesIO(buf.getvalue())) as replay:
        replay.poll()
        assert replay.stats().dropped == 0
        list(replay.events())
        st = replay.stats()
        health = replay.health()
    assert (st.provider, st.delivered, st.dropped, st.undecodable, st.lost) == ("replay", len(events), 7, 1, 8)
    assert st.kinds["file_open"].dropped == 7 and st.kinds["file_open"].delivered == 20
    assert health.supplementary_events_subsystem == "replay" and health.ebpf and health.complete
    assert health.kinds["file_open"].live and not health.kinds["mount"].live
    assert health.format_version == FORMAT_VERSION


# --- the recorder ----------------------------------------------------------------------------------


class Entry(msgspec.Struct, frozen=True):
    """A process table entry of a table that is not ebpfsensor's."""

    entity_id: str
    pid: int
    ppid: int
    parent_entity_id: str
    start_time_ns: int
    exe: str


class Table:
    """A minimal process table: iteration and exit times."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.exits: dict[str, int] = {}

    def __iter__(self) -> Any:
        return iter(list(self.entries.values()))

    def exit_time_ns(self, e: Entry) -> int | None:
        return self.exits.get(e.entity_id)

    def add(self, eid: str, pid: int, parent: str = "", exe: str = "/bin/sh") -> None:
        ppid = self.entries[parent].pid if parent else 0
        self.entries[eid] = Entry(eid, pid, ppid, parent, pid * 1000, exe)


class TableSensor(SyntheticSensor):
    """A synthetic sensor with a process table, as a live one has."""

    def __init__(self) -> None:
        super().__init__()
        self.table = Table()

    @property  # type: ignore[override]
    def processes(self) -> Table:
        return self.table

    @processes.setter
    def processes(self, value: Any) -> None:
        pass


def test_recorder_writes_batches_losses_and_table_changes(tmp_path: Path) -> None:
    sensor = TableSensor()
    sensor.table.add("init", 1)
    sensor.table.add("web", 100, "init", "/usr/sbin/nginx")
    path = tmp_path / "rec.ebr"
    _, events = scenario_events()
    with sensor, sensor.record(path, stats_interval=0, snapshot_interval=0) as rec:
        sensor.feed(events[:5])
        sensor.poll()
        sensor.table.add("child", 1000, "web", "/tmp/payload")
        sensor.lose(dropped=3, kinds={"file_open": {"dropped": 3}})
        sensor.feed(events[5:])
        sensor.run()
        sensor.table.exits["child"] = 123
    assert rec.closed and rec.events_written == len(events) and rec.bytes_written == path.stat().st_size
    with RecordingReader(path) as reader:
        frames = list(reader)
        assert reader.header.processes and reader.header.provider == "replay"
    kinds = [type(f).__name__ for f in frames]
    assert kinds[0] == "ProcessesFrame" and kinds[-1] == "EndFrame"
    assert kinds.count("EventsFrame") == 2
    loss = next(f for f in frames if isinstance(f, LossFrame))
    assert (loss.dropped, loss.kinds) == (3, {"file_open": {"dropped": 3}})
    snaps = [f for f in frames if isinstance(f, ProcessesFrame)]
    assert snaps[0].full and snaps[-1].full and snaps[0].key == ["entity_id"]
    assert any(not s.full and [u["entity_id"] for u in s.upsert] == ["child"] for s in snaps)

    with ReplaySensor(path) as replay:
        table = replay.processes
        assert table is not None and len(table) == 0
        assert list(replay.events()) == events
        assert replay.stats().dropped == 3
        assert len(table) == 3
        child = table.find("child")
        assert child.exe == "/tmp/payload" and child["pid"] == 1000
        assert [a.entity_id for a in table.ancestors(child)] == ["web", "init"]
        assert table.parent(1000) is None  # exited: no live process 1000
        assert table.get(1000, 1_000_000) == child and not table.is_alive(child)
        assert table.exit_time_ns(child) == 123
        assert [c.entity_id for c in table.children("web")] == ["child"]
        assert table.get(100).exe == "/usr/sbin/nginx"


def test_recorder_kinds_and_a_replay_recorded_again(recording: tuple[Path, list[list[Any]]], tmp_path: Path) -> None:
    path, batches = recording
    out = tmp_path / "cut.ebr"
    with ReplaySensor(path) as replay, replay.record(out, kinds={"process_exec"}):
        replay.run()
    with ReplaySensor(out) as replay:
        assert replay.header.kinds == ["loss", "process_exec"] or replay.header.kinds == ["process_exec"]
        assert [e for e in replay] == [e for b in batches for e in b if e.kind == "process_exec"]
    with pytest.raises(ValueError, match="unknown event kind"):
        Recorder(SyntheticSensor(), tmp_path / "x.ebr", kinds={"nonsense"})


def test_a_table_that_fails_stops_snapshots_not_the_recording(tmp_path: Path) -> None:
    class Broken(TableSensor):
        @property  # type: ignore[override]
        def processes(self) -> Any:
            raise RuntimeError("not yet")

        @processes.setter
        def processes(self, value: Any) -> None:
            pass

    sensor = Broken()
    _, events = scenario_events()
    with sensor, sensor.record(tmp_path / "b.ebr"):
        sensor.feed(events)
        sensor.run()
    with ReplaySensor(tmp_path / "b.ebr") as replay:
        assert not replay.processes and list(replay) == events


# --- the recordings kept in the repository -----------------------------------------------------------


def test_every_kept_recording_replays() -> None:
    paths = sorted(RECORDINGS.glob("*.ebr"))
    assert paths, f"no recordings in {RECORDINGS}"
    for path in paths:
        with ReplaySensor(path) as replay:
            events = list(replay.events())
            assert events and replay.complete, path
            assert replay.stats().undecodable == 0, path


def test_format1_recording() -> None:
    """The first format's recording, made by a real sensor on the development
    machine (tests/kernel/test_record_replay.py): a server's child writes an
    executable and runs it."""
    path = RECORDINGS / "format1-dropper.ebr"
    with ReplaySensor(path) as replay:
        assert replay.header.version == 1 and replay.header.provider == "ebpf"
        events = list(replay.events())
        st = replay.stats()
    assert 100 <= len(events) <= 2000
    assert st.delivered == len(events)
    kinds = {e.kind for e in events}
    assert {"process_exec", "process_fork", "net_accept", "file_create", "process_exit"} <= kinds
    payload = [e for e in events if e.kind == "process_exec" and e.exe.endswith("/payload")]
    assert len(payload) == 1
    assert all(e.ts_ns >= events[0].ts_ns for e in events)
    # its addresses were 16 bytes: they come back as this version's text
    (accept,) = [e for e in events if e.kind == "net_accept"]
    assert (accept.family, accept.local_addr, accept.remote_addr) == (socket.AF_INET, "127.0.0.1", "127.0.0.1")
    assert accept.remote_ip == ipaddress.IPv4Address("127.0.0.1") and accept.local_port > 0
    (bind,) = [e for e in events if e.kind == "net_bind"]
    assert (bind.local_addr, bind.remote_addr, bind.local_port) == ("127.0.0.1", "0.0.0.0", accept.local_port)
    unix = [e for e in events if e.kind == "net_connect"]
    assert unix and all((e.family, e.remote_addr, e.remote_ip) == (socket.AF_UNIX, "", None) for e in unix)
    assert json.loads(to_json(accept))["remote_addr"] == "127.0.0.1"


def test_older_address_bytes_are_read_as_text() -> None:
    from ebpfsensor.recording._format import event_from_builtins

    new = make_net_connect(remote_address="::ffff:192.0.2.7", local_address="2001:db8::5")
    old = msgspec.to_builtins(new)
    old["remote_addr"] = ipaddress.IPv6Address("::ffff:192.0.2.7").packed
    old["local_addr"] = ipaddress.IPv6Address("2001:db8::5").packed
    back = event_from_builtins(old)
    assert back == new and back.remote_addr == "::ffff:192.0.2.7" and back.local_addr == "2001:db8::5"


def test_cli_replay_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(RECORDINGS / "format1-dropper.ebr"), "--count"]) == 0
    err = capsys.readouterr().err
    assert "format 1" in err and "events/s" in err and "complete" in err
    assert main(["replay", str(RECORDINGS / "format1-dropper.ebr"), "--kinds", "net_accept"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all(msgspec.json.decode(line)["kind"] == "net_accept" for line in out)


def test_cli_record_arguments() -> None:
    from ebpfsensor.cli import build_parser

    args = build_parser().parse_args(["record", "--output", "x.ebr", "--kinds", "process_exec", "--duration", "3"])
    assert (args.command, args.output, args.kinds, args.duration, args.level) == (
        "record",
        "x.ebr",
        "process_exec",
        3.0,
        6,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["record"])
