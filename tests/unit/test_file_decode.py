# SPDX-License-Identifier: Apache-2.0
"""File records on synthetic bytes: the Python decoder and the C transcoder
agree, strings come back faithfully, malformed records raise DecodeError."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import msgspec
import pytest

from ebpfsensor._ffi import ffi, lib
from ebpfsensor.errors import DecodeError
from ebpfsensor.events import (
    DirCreate,
    EventType,
    FileChmod,
    FileChown,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
    decode,
    to_json,
)
from ebpfsensor.events import file as file_events
from ebpfsensor.events._layout import RECORDS
from ebpfsensor.events.file import PathSource
from ebpfsensor.sources.ebpf.ring import BatchDecoder

FILE_CLASSES = (FileOpen, FileCreate, FileUnlink, DirCreate, FileRename, FileChmod, FileChown, FileLink, FileSymlink)

_HEADER = {
    "ts_ns": 123_456_789_012,
    "cgroup_id": 4242,
    "start_time_ns": 99_000_000,
    "pid": 4321,
    "tid": 4322,
    "ppid": 1,
    "uid": 1000,
    "gid": 100,
    "comm": "cat",
    "result": -13,
    "syscall_nr": 257,
}


def build(cls: type, tails: dict[str, bytes], **fields: Any) -> bytes:
    """A raw record of cls: header values, given fields (others zero) and
    the tail strings in the order of their _len members."""
    rec = ffi.new(f"struct {cls.record} *")
    rec.hdr.ts_ns = _HEADER["ts_ns"]
    rec.hdr.type = int(cls.event_type)
    for name in ("cgroup_id", "start_time_ns", "pid", "tid", "ppid", "uid", "gid"):
        setattr(rec.task, name, _HEADER[name])
    rec.task.comm = _HEADER["comm"].encode()
    rec.sys.result = _HEADER["result"]
    rec.sys.syscall_nr = _HEADER["syscall_nr"]
    for name, value in fields.items():
        setattr(rec, name, value)
    tail = b""
    for spec in RECORDS[int(cls.event_type)].fields:
        if spec.name in tails:
            setattr(rec, spec.name + "_len", len(tails[spec.name]))
            tail += tails[spec.name]
    rec.hdr.size = ffi.sizeof(rec[0]) + len(tail)
    return bytes(ffi.buffer(rec)) + tail


def tails_of(cls: type) -> list[str]:
    return [f.name for f in RECORDS[int(cls.event_type)].fields if f.name.endswith(("path", "target"))]


def both(raw: bytes) -> Any:
    """Decode with the reference decoder and the C transcoder; they must agree."""
    ev = decode(raw)
    (batched,) = BatchDecoder().transcode([raw])
    assert batched == ev
    assert type(batched) is type(ev)
    return ev


def test_every_file_kind_is_registered() -> None:
    for cls in FILE_CLASSES:
        assert RECORDS[int(cls.event_type)].cls is cls
        assert 10 <= int(cls.event_type) <= 29
    assert EventType.FILE_OPEN == 10 and EventType.FILE_SYMLINK == 18
    # FileOpen and FileCreate share one layout and differ by type only
    assert FileCreate.record == FileOpen.record


def test_open_record_round_trip() -> None:
    raw = build(
        FileOpen,
        {"path": b"/tmp/a b/c.txt", "arg_path": b"c.txt"},
        ino=987654321012,
        dev=0x801,
        flags=0o1101,
        mode=0o640,
        dirfd=-100,
        created=1,
        resolved=1,
        path_truncated=0,
        arg_path_truncated=1,
        path_source=1,
    )
    ev = both(raw)
    assert type(ev) is FileOpen
    want = dict(_HEADER, ino=987654321012, dev=0x801, flags=0o1101, mode=0o640, dirfd=-100, created=True)
    want |= {"resolved": True, "path_truncated": False, "arg_path_truncated": True, "path_source": 1}
    want |= {"path": "/tmp/a b/c.txt", "arg_path": "c.txt"}
    # process context is filled in by the consumer, not the record
    assert msgspec.structs.asdict(ev) == want | {"container_id": "", "process": None, "parent": None}
    assert ev.errno == 13
    doc = json.loads(to_json(ev))
    assert doc["kind"] == "file_open" and doc["path"] == "/tmp/a b/c.txt"


def test_create_shares_the_open_layout() -> None:
    raw = build(FileCreate, {"path": b"/x", "arg_path": b"/x"}, created=1, resolved=1)
    ev = both(raw)
    assert type(ev) is FileCreate and ev.created and ev.path == "/x"
    assert json.loads(to_json(ev))["kind"] == "file_create"


@pytest.mark.parametrize("cls", FILE_CLASSES, ids=lambda c: c.__name__)
def test_each_kind_decodes_every_field(cls: type, rng: Any) -> None:
    names = tails_of(cls)
    tails = {name: f"/{name}/{rng.randrange(1 << 30)}".encode() for name in names}
    fixed: dict[str, Any] = {}
    for spec in RECORDS[int(cls.event_type)].fields:
        if spec.name in _HEADER or spec.name in tails:
            continue
        if spec.size == 1:
            fixed[spec.name] = rng.randrange(2)
        elif spec.name.endswith("dirfd"):
            fixed[spec.name] = rng.choice([-100, 3, 1023])
        else:
            fixed[spec.name] = rng.randrange(1 << (8 * spec.size))
    ev = both(build(cls, tails, **fixed))
    assert type(ev) is cls
    for name, value in fixed.items():
        assert getattr(ev, name) == (bool(value) if isinstance(getattr(ev, name), bool) else value), name
    for name, value in tails.items():
        assert getattr(ev, name) == value.decode()
    for name, value in _HEADER.items():
        assert getattr(ev, name) == value


def test_empty_strings() -> None:
    ev = both(build(FileChmod, {"path": b"/etc/passwd", "arg_path": b""}, dirfd=5, mode=0o600))
    assert ev.arg_path == "" and ev.path == "/etc/passwd" and ev.dirfd == 5


@pytest.mark.parametrize(
    "name", [b"new\nline", b"bad-\xff\xfe", b"half \xe2\x82", b"nul-free \x01\x7f", b"\xc3\x28"], ids=repr
)
def test_names_are_faithful_and_escaped_in_json(name: bytes) -> None:
    path = b"/tmp/" + name
    raw = build(FileRename, {"path": path, "arg_path": name, "new_path": b"/tmp/ok", "new_arg_path": b"ok"})
    ev = both(raw)
    assert os.fsencode(ev.path) == path and os.fsencode(ev.arg_path) == name
    assert ev.new_path == "/tmp/ok"
    doc = to_json(ev)
    assert b"\n" not in doc and b"\xff" not in doc
    back = json.loads(doc)
    assert back["path"] == ev.path and back["kind"] == "file_rename"


def test_string_lengths_past_the_record_raise(caplog: pytest.LogCaptureFixture) -> None:
    raw = bytearray(build(FileUnlink, {"path": b"/a", "arg_path": b"a"}))
    off = ffi.offsetof("struct file_unlink_event", "arg_path_len")
    raw[off : off + 4] = (1000).to_bytes(4, "little")
    with pytest.raises(DecodeError) as exc:
        decode(bytes(raw))
    assert exc.value.record_type == int(EventType.FILE_UNLINK)
    # the transcoder hands it to the Python decoder, which counts it
    dec = BatchDecoder()
    with caplog.at_level(logging.ERROR, logger="ebpfsensor"):
        assert dec.transcode([bytes(raw)]) == []
    assert dec.undecodable == 1


def test_truncated_and_fuzzed_records_raise_only_decode_error(rng: Any) -> None:
    for cls in FILE_CLASSES:
        raw = build(cls, {name: b"/some/path" for name in tails_of(cls)})
        for cut in range(0, len(raw)):
            with pytest.raises(DecodeError):
                decode(raw[:cut])
        for _ in range(200):
            b = bytearray(raw)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(16, len(b))] = rng.randrange(256)
            try:
                decode(bytes(b))
            except DecodeError:
                pass


@pytest.mark.parametrize("cls", FILE_CLASSES, ids=lambda c: c.__name__)
def test_layout_matches_the_compiled_object(cls: type) -> None:
    from ebpfsensor._btf import read_object_btf
    from ebpfsensor.events._layout import c_members
    from ebpfsensor.sources.ebpf.objects import packaged_object_path

    path = packaged_object_path("file")
    if not path.exists():
        pytest.skip("file.bpf.o is not built: run `make bpf` first")
    found = read_object_btf(path.read_bytes()).struct(cls.record)
    assert found is not None, f"struct {cls.record} is not anchored in file.bpf.o"
    size, members = found
    assert size == ffi.sizeof(f"struct {cls.record}") and size % 8 == 0
    c_layout = [(n, o, ffi.sizeof(t)) for n, o, t in c_members(ffi.typeof(f"struct {cls.record}"))]
    assert [(m.name, m.offset, m.size) for m in members] == c_layout
    spec = RECORDS[int(cls.event_type)]
    assert spec.fixed_size == size
    for f in spec.fields:
        assert any(m.offset == f.offset and m.size == f.size for m in members), f.name


def test_path_sources_are_the_c_values() -> None:
    for source in PathSource:
        assert int(source) == getattr(lib, f"PATH_SOURCE_{source.name.replace('SYSCALL_', '')}")
    # the documented copy: strings of at most 102 bytes are kept whole
    assert lib.ARG_COPY_LEN - 2 == 102
    assert "at most 102 bytes" in " ".join((file_events.__doc__ or "").split())


SOURCES = {
    FileOpen: ("path_source",),
    FileCreate: ("path_source",),
    FileUnlink: ("path_source",),
    DirCreate: ("path_source",),
    FileRename: ("path_source", "new_path_source"),
    FileChmod: ("path_source",),
    FileChown: ("path_source",),
    FileLink: ("path_source", "new_path_source"),
    FileSymlink: ("path_source", "target_source"),
}


@pytest.mark.parametrize("cls", FILE_CLASSES, ids=lambda c: c.__name__)
def test_every_path_has_its_source(cls: type) -> None:
    """Each path of a record carries its own source; two-path records carry
    two, which can differ (one string rewritten, the other not)."""
    names = SOURCES[cls]
    assert [n for n in cls.__struct_fields__ if n.endswith("_source")] == list(names)
    for values in ((PathSource.SYSCALL_ARG_CHANGED, PathSource.SYSCALL_ARG), (PathSource.KERNEL, PathSource.NONE)):
        fields = dict(zip(names, map(int, values), strict=False))
        ev = both(build(cls, {name: b"/p" for name in tails_of(cls)}, **fields))
        assert {n: getattr(ev, n) for n in names} == fields
        assert PathSource(ev.path_source).name == values[0].name
