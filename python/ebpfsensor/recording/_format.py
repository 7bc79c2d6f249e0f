# SPDX-License-Identifier: Apache-2.0
"""The recording file format: frames, their writer and their reader.

The layout, the frame types and the versioning rules are in
docs/recording.md; this module is their one implementation.
"""

from __future__ import annotations

import enum
import logging
import os
import struct
import time
import typing
import zlib
from collections.abc import Iterator, Sequence
from functools import cache
from typing import IO, Any, Union

import msgspec
import msgspec.inspect as mi

from ..errors import RecordingError
from ..events import Event
from ..events._kinds import kind_of
from ..events.net import ip_text
from ..status import KindHealth

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAGIC",
    "EndFrame",
    "EventsFrame",
    "Frame",
    "FrameType",
    "LossFrame",
    "ProcessesFrame",
    "RecordingHeader",
    "RecordingReader",
    "RecordingWriter",
    "SensorInfo",
    "all_kinds",
    "current_schema",
    "read_events",
]

log = logging.getLogger("ebpfsensor")

#: the first 8 bytes of every recording: non-ASCII first, then CR LF, ^Z, LF,
#: so a transfer that rewrites line ends or stops at ^Z is caught at once
MAGIC = b"\x89EBR\r\n\x1a\n"
#: what the header's ``format`` says
FORMAT_NAME = "ebpfsensor-recording"
#: the newest format version this library writes and reads
FORMAT_VERSION = 1
#: a frame announcing more is corrupted, not large
MAX_FRAME_BYTES = 64 << 20
# nor does a frame's payload inflate to more
_MAX_INFLATED = 256 << 20

# length, type, flags, reserved, CRC-32 of type..reserved and the payload
_FRAME = struct.Struct("<IBBHI")
_FRAME_BYTES = _FRAME.size
_TYPE_FLAGS = struct.Struct("<BBH")
#: flags bit: the payload is the next part of the recording's DEFLATE stream
FLAG_DEFLATE = 0x01
#: frame types from here on are ancillary: a reader that does not know one skips it
ANCILLARY = 0x80
# a str that is not UTF-8 (a file name's raw bytes) travels as this msgpack extension
_EXT_RAW_STR = 1
# event fields holding process context shared between events: written once, then by reference
_CONTEXT_FIELDS = ("process", "parent")
# distinct contexts a writer remembers before it starts afresh (and tells readers to)
_CONTEXT_MEMO = 16384


class FrameType(enum.IntEnum):
    """Frame type numbers; they never change once released."""

    HEADER = 1
    EVENTS = 2
    PROCESSES = 3
    LOSS = 4
    END = 5
    #: ancillary: the event schema and the kinds' health, after the header
    SENSOR_INFO = 0x81


class RecordingHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What a recording says about itself (its first frame).

    Attributes:
        format: always ``"ebpfsensor-recording"``.
        version: the format version the file is written in.
        sensor_version: the ebpfsensor version that wrote it.
        created_ns: Unix time in ns when the recording started.
        boot_ns: CLOCK_BOOTTIME in ns at the same moment (the clock of the
            events' ``ts_ns``).
        host: the recording machine's ``sysname``, ``release`` and
            ``machine`` (uname).
        provider: the provider of the sensor recorded (``ebpf``,
            ``proc_connector``; ``synthetic`` for one made by the test kit).
        kinds: the kinds recorded.
        processes: the sensor had a process table: process snapshot frames
            follow.
        context_fields: the event fields whose values (shared process
            context) are written once and then referred to by number, in
            the order of each event's references.
    """

    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION
    sensor_version: str = ""
    created_ns: int = 0
    boot_ns: int = 0
    host: dict[str, str] = msgspec.field(default_factory=dict)
    provider: str = ""
    kinds: list[str] = msgspec.field(default_factory=list)
    processes: bool = False
    context_fields: list[str] = msgspec.field(default_factory=list)


class SensorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the writer said about its events and the sensor at the start
    (the ancillary frame after the header; empty when a recording lacks it).

    Attributes:
        schema: for each kind, the field names of its event in the writer's
            version, in order.
        kind_health: each kind's health when the recording started (live,
            source, or why not).
    """

    schema: dict[str, list[str]] = msgspec.field(default_factory=dict)
    kind_health: dict[str, KindHealth] = msgspec.field(default_factory=dict)


class EventsFrame(msgspec.Struct, frozen=True):
    """One batch of events, as the sensor delivered it.

    Attributes:
        t_ns: when the batch was delivered, ns since the recording started
            (monotonic clock).
        events: the events, in delivery order.
    """

    t_ns: int
    events: list[Event]


class LossFrame(msgspec.Struct, frozen=True, kw_only=True):
    """Events lost since the previous loss frame (the sensor's counters' increase).

    Attributes:
        t_ns: when the counters were read, ns since the recording started.
        dropped: records lost (ring full, lost netlink messages).
        undecodable: records that could not be decoded.
        unmatched: syscalls whose events were lost because their start was
            not seen (``KindStats.unmatched``).
        kinds: the same per kind where the sensor counts per kind:
            ``{"file_open": {"dropped": 3, "unmatched": 1}}``.
    """

    t_ns: int
    dropped: int = 0
    undecodable: int = 0
    unmatched: int = 0
    kinds: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)


class ProcessesFrame(msgspec.Struct, frozen=True, kw_only=True):
    """The sensor's process table, whole or as changes since the previous snapshot.

    Attributes:
        t_ns: when the table was read, ns since the recording started.
        full: the entries replace the whole table; else they update it.
        type: the entries' type as ``module:QualifiedName`` when it is a
            Struct of ebpfsensor's (replay rebuilds it), else "".
        key: the fields that identify an entry (``["entity_id"]``, or
            ``["pid", "start_time_ns"]``).
        upsert: entries added or changed, as maps of their fields.
        exited: for each entry of ``upsert``, when its process exited
            (CLOCK_BOOTTIME ns), None while it lives; empty when all live
            (or the table does not say).
        remove: keys of entries gone from the table (a key is the list of
            its fields' values).
    """

    t_ns: int
    full: bool = False
    type: str = ""
    key: list[str] = msgspec.field(default_factory=list)
    upsert: list[dict[str, Any]] = msgspec.field(default_factory=list)
    exited: list[int | None] = msgspec.field(default_factory=list)
    remove: list[Any] = msgspec.field(default_factory=list)


class EndFrame(msgspec.Struct, frozen=True, kw_only=True):
    """The last frame of a recording closed in order; a recording cut off
    (SIGKILL, a crash, a full disk) ends without it.

    Attributes:
        t_ns: when the recording ended, ns since it started.
        events: events written.
        stats: the sensor's counters at the end (``SensorStats`` as a map).
    """

    t_ns: int
    events: int = 0
    stats: dict[str, Any] = msgspec.field(default_factory=dict)


#: what a reader yields after the header
Frame = Union[EventsFrame, LossFrame, ProcessesFrame, EndFrame]


def sensor_version() -> str:
    """ebpfsensor.__version__, read late: this module loads while the package does."""
    import ebpfsensor

    return str(getattr(ebpfsensor, "__version__", ""))


@cache
def all_kinds() -> dict[str, type[Any]]:
    """Every kind a sensor may deliver (the ``Event`` union: the kinds one
    collects and the markers the sensor adds), name -> Struct."""
    return {kind_of(cls): cls for cls in typing.get_args(Event)}


def current_schema(kinds: Sequence[str] | None = None) -> dict[str, list[str]]:
    """For each kind (all by default), its Struct's field names, in order."""
    known = all_kinds()
    names = list(known) if kinds is None else [k for k in known if k in set(kinds)]
    return {kind: [f.name for f in msgspec.structs.fields(known[kind])] for kind in names}


@cache
def context_fields() -> tuple[str, ...]:
    """The shared process context fields events have in this version."""
    classes = typing.get_args(Event)
    return tuple(name for name in _CONTEXT_FIELDS if any(name in c.__struct_fields__ for c in classes))


@cache
def _context_type(name: str) -> type[Any] | None:
    """The Struct a context field holds (ProcessInfo), or None."""
    for cls in typing.get_args(Event):
        if name not in cls.__struct_fields__:
            continue
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            if f.name == name:
                for t in f.type.types if isinstance(f.type, mi.UnionType) else (f.type,):
                    if isinstance(t, mi.StructType):
                        return t.cls
    return None


def new_header(**fields: Any) -> RecordingHeader:
    """A header for a recording starting now, written by this library."""
    uname = os.uname()
    kinds = fields.pop("kinds", None)
    kinds = sorted(all_kinds()) if kinds is None else sorted(kinds)
    return RecordingHeader(
        sensor_version=sensor_version(),
        created_ns=time.time_ns(),
        boot_ns=time.clock_gettime_ns(time.CLOCK_BOOTTIME),
        host={"sysname": uname.sysname, "release": uname.release, "machine": uname.machine},
        kinds=kinds,
        context_fields=list(context_fields()),
        **fields,
    )


# --- event payloads ----------------------------------------------------------------


def _raw_strings(obj: Any) -> Any:
    """obj with every str that is not UTF-8 (surrogate escapes) as an extension."""
    if isinstance(obj, str):
        try:
            obj.encode()
        except UnicodeEncodeError:
            return msgspec.msgpack.Ext(_EXT_RAW_STR, obj.encode("utf-8", "surrogateescape"))
        return obj
    if isinstance(obj, dict):
        return {k: _raw_strings(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_raw_strings(v) for v in obj]
    return obj


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _EXT_RAW_STR:
        return bytes(data).decode("utf-8", "surrogateescape")
    return msgspec.msgpack.Ext(code, bytes(data))


class _EventsPayload(msgspec.Struct, frozen=True, array_like=True):
    """An events frame as stored: ``[t_ns, events, refs, contexts, reset]``,
    the last three only when an event has context (see docs/recording.md)."""

    t_ns: int
    events: list[Event]
    refs: list[list[int]] = []
    contexts: list[tuple[int, Any]] = []
    reset: bool = False


_encoder = msgspec.msgpack.Encoder()
_events_decoder = msgspec.msgpack.Decoder(_EventsPayload, ext_hook=_ext_hook)
_any_decoder = msgspec.msgpack.Decoder(ext_hook=_ext_hook)
_loss_decoder = msgspec.msgpack.Decoder(LossFrame)
_processes_decoder = msgspec.msgpack.Decoder(ProcessesFrame, ext_hook=_ext_hook)
_end_decoder = msgspec.msgpack.Decoder(EndFrame, ext_hook=_ext_hook)


def _sensor_info(payload: bytes) -> SensorInfo:
    """The sensor info frame; it informs, so what another version wrote
    differently (a kind's health in another shape) is left out, not refused."""
    raw = _any_decoder.decode(payload)
    if not isinstance(raw, dict):
        raise ValueError("the sensor info is not a map")
    schema = raw.get("schema")
    health: dict[str, KindHealth] = {}
    for kind, value in (raw.get("kind_health") or {}).items():
        try:
            health[kind] = convert_filled(value, KindHealth)
        except (ValueError, TypeError, AttributeError):
            continue
    try:
        return SensorInfo(schema=msgspec.convert(schema or {}, dict[str, list[str]]), kind_health=health)
    except msgspec.ValidationError:
        return SensorInfo(kind_health=health)


def _builtins(obj: Any) -> Any:
    return _raw_strings(msgspec.to_builtins(obj, builtin_types=(bytes, bytearray)))


def encode_portable(obj: Any) -> bytes:
    """msgpack of obj (Structs, builtins); strings that are not UTF-8 as raw bytes."""
    try:
        return _encoder.encode(obj)
    except UnicodeEncodeError:
        pass
    return _encoder.encode(_builtins(obj))


def _encode_payload(payload: _EventsPayload) -> bytes:
    """``[t_ns, events]``, or with the context parts when there are some."""
    parts: list[Any] = [payload.t_ns, payload.events]
    if payload.refs or payload.contexts or payload.reset:
        parts += [payload.refs, payload.contexts, payload.reset]
    try:
        return _encoder.encode(parts)
    except UnicodeEncodeError:
        # the contexts are encoded already (msgspec.Raw): only events remain
        parts[1] = [_builtins(e) for e in payload.events]
        return _encoder.encode(parts)


def _neutral(t: mi.Type) -> Any:
    """The value a field added after a recording was made gets on replay."""
    if isinstance(t, (mi.IntType, mi.FloatType)):
        return 0
    if isinstance(t, mi.StrType):
        return ""
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, (mi.BytesType, mi.ByteArrayType)):
        return b""
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return []
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.UnionType):
        if any(isinstance(m, mi.NoneType) for m in t.types):
            return None
        return _neutral(t.types[0])
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.EnumType):
        return next(iter(t.cls)).value
    if isinstance(t, mi.StructType):
        out = {f.name: _neutral(f.type) for f in t.fields if f.required}
        if t.tag_field is not None:
            out[t.tag_field] = t.tag
        return out
    return None


@cache
def _fill(cls: Any) -> dict[str, Any]:
    """Neutral values of cls's required fields."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return {f.name: _neutral(f.type) for f in info.fields if f.required}


def convert_filled(obj: dict[str, Any], cls: Any) -> Any:
    """cls from a map written by any version: a field this version added
    gets its type's neutral value (0, "", False, None, empty), one it does
    not know is ignored.

    Raises:
        ValueError: a field has a value of another type.
    """
    try:
        return msgspec.convert(obj, cls)
    except msgspec.ValidationError:
        pass
    try:
        return msgspec.convert({**_fill(cls), **obj}, cls)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{obj.get('kind', 'a map')} does not fit this version's {cls.__name__}: {exc}") from None


# kind -> fields whose value was written in an older form: IP addresses
# were 16 bytes (network order, IPv4 in the first 4) before they were text
_ADDRESS_FIELDS = ("local_addr", "remote_addr")
_OLDER_FORMS = dict.fromkeys(("net_connect", "net_accept", "net_bind", "net_listen"), _ADDRESS_FIELDS)


def _upgraded(obj: dict[str, Any]) -> dict[str, Any]:
    """obj with the values written in an older form in this version's."""
    for name in _OLDER_FORMS.get(obj.get("kind"), ()):  # type: ignore[arg-type]
        raw = obj.get(name)
        if isinstance(raw, bytes):
            family = obj.get("family")
            obj[name] = ip_text(family if isinstance(family, int) else 0, raw)
    return obj


def event_from_builtins(obj: Any) -> Event | None:
    """One event from its map, written by any version (see convert_filled);
    None for a kind this version does not know.

    Raises:
        ValueError: obj is not an event, or a field has a value of another type.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"an event is a map, not {type(obj).__name__}")
    cls = all_kinds().get(obj.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        return None
    return convert_filled(_upgraded(obj), cls)  # type: ignore[no-any-return]


def decode_events(payload: bytes) -> _EventsPayload:
    """An events frame's payload; an event of a kind this version does not
    know is None (its place keeps the references in step)."""
    try:
        return _events_decoder.decode(payload)
    except msgspec.ValidationError:
        # another version's schema, strings that are not UTF-8, or kinds unknown here
        pass
    raw = _any_decoder.decode(payload)
    if not (isinstance(raw, list) and 2 <= len(raw) <= 5 and isinstance(raw[0], int) and isinstance(raw[1], list)):
        raise ValueError("an events frame is [t_ns, [event, ...], ...]")
    events = [event_from_builtins(obj) for obj in raw[1]]
    try:
        rest = msgspec.convert([0, [], *raw[2:]], _EventsPayload)
    except msgspec.ValidationError as exc:
        raise ValueError(f"an events frame's references: {exc}") from None
    return _EventsPayload(raw[0], events, rest.refs, rest.contexts, rest.reset)  # type: ignore[arg-type]


class _ContextMemo:
    """The contexts a writer has written, by object and by content."""

    def __init__(self) -> None:
        # keyed by id(), holding the object: an id is not reused while it is here
        self.by_id: dict[int, tuple[Any, int]] = {}
        self.by_data: dict[bytes, int] = {}
        self.next = 1

    def ref(self, obj: Any, defined: list[tuple[int, msgspec.Raw]]) -> int:
        hit = self.by_id.get(id(obj))
        if hit is not None:
            return hit[1]
        data = encode_portable(obj)
        ref = self.by_data.get(data)
        if ref is None:
            ref = self.next
            self.next += 1
            self.by_data[data] = ref
            defined.append((ref, msgspec.Raw(data)))
        self.by_id[id(obj)] = (obj, ref)
        return ref

    def clear(self) -> None:
        self.by_id.clear()
        self.by_data.clear()


# --- writer --------------------------------------------------------------------------


class RecordingWriter:
    """Appends frames to a recording; each frame is written whole and flushed.

    Args:
        target: a file name (created or truncated) or a binary file open
            for writing (left open by close()).
        header: what the recording says about itself (``new_header()``).
        info: the event schema and the kinds' health (this version's
            schema by default).
        level: DEFLATE compression level (zlib's 1 to 9), 0 for none.

    Raises:
        OSError: the file cannot be created.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        header: RecordingHeader,
        *,
        info: SensorInfo | None = None,
        level: int = 6,
    ) -> None:
        if isinstance(target, (str, os.PathLike)):
            self.path = os.fspath(target)
            self._file: IO[bytes] = open(self.path, "wb")  # owned: closed by close()
            self._owned = True
        else:
            self.path = str(getattr(target, "name", ""))
            self._file = target
            self._owned = False
        self.header = header
        self.level = level
        self.events_written = 0
        self.bytes_written = 0
        # one stream for the whole file: a batch compresses against every one
        # before it, several times smaller than on its own
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15) if level else None
        self._memo = _ContextMemo()
        self._blanks: dict[type, dict[str, None]] = {}
        self._closed = False
        self._file.write(MAGIC)
        self.bytes_written += len(MAGIC)
        self._frame(FrameType.HEADER, _encoder.encode(header), compress=False)
        self._frame(FrameType.SENSOR_INFO, encode_portable(info or SensorInfo(schema=current_schema())))

    def _frame(self, ftype: int, payload: bytes, compress: bool = True) -> None:
        if self._closed:
            raise ValueError(f"write {self.path or 'recording'}: the recording is closed")
        flags = 0
        if compress and self._deflate is not None:
            # a sync flush ends the frame on a byte boundary with all its data out
            payload = self._deflate.compress(payload) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            flags = FLAG_DEFLATE
        if len(payload) > MAX_FRAME_BYTES:
            raise ValueError(f"write {self.path or 'recording'}: a frame of {len(payload)} bytes is over the limit")
        type_flags = _TYPE_FLAGS.pack(ftype, flags, 0)
        crc = zlib.crc32(payload, zlib.crc32(type_flags))
        # one write per frame: a process killed mid-recording leaves whole frames
        data = _FRAME.pack(len(payload), ftype, flags, 0, crc) + payload
        self._file.write(data)
        self._file.flush()
        self.bytes_written += len(data)

    def write_events(self, t_ns: int, events: Sequence[Event]) -> None:
        """Append one batch of events delivered at t_ns (ns since the start)."""
        self._frame(FrameType.EVENTS, _encode_payload(self._payload(t_ns, events)))
        self.events_written += len(events)

    def _payload(self, t_ns: int, events: Sequence[Event]) -> _EventsPayload:
        """The frame's contents: each context (a ProcessInfo several events
        share) is written once and referred to by number."""
        names = self.header.context_fields
        if not names:
            return _EventsPayload(t_ns, list(events))
        reset = len(self._memo.by_id) >= _CONTEXT_MEMO
        if reset:
            self._memo.clear()
        by_id = self._memo.by_id
        new_ref = self._memo.ref
        blanks = self._blanks
        none = [0] * len(names)
        refs: list[list[int]] = []
        defined: list[tuple[int, msgspec.Raw]] = []
        stripped: list[Event] = []
        shared = False
        # once per event, so kept plain: the lookups a known context costs are two dict gets
        for event in events:
            row = none
            for i, name in enumerate(names):
                value = getattr(event, name, None)
                if value is not None:
                    if row is none:
                        row = list(none)
                    hit = by_id.get(id(value))
                    row[i] = hit[1] if hit is not None else new_ref(value, defined)
            refs.append(row)
            if row is none:
                stripped.append(event)
                continue
            shared = True
            cls = type(event)
            blank = blanks.get(cls)
            if blank is None:
                blank = blanks[cls] = {name: None for name in names if name in cls.__struct_fields__}
            stripped.append(msgspec.structs.replace(event, **blank))
        if not shared:
            return _EventsPayload(t_ns, stripped, reset=reset)
        return _EventsPayload(t_ns, stripped, refs, defined, reset)

    def write_loss(self, frame: LossFrame) -> None:
        """Append a loss marker."""
        self._frame(FrameType.LOSS, _encoder.encode(frame))

    def write_processes(self, frame: ProcessesFrame) -> None:
        """Append a process table snapshot."""
        self._frame(FrameType.PROCESSES, encode_portable(frame))

    def close(self, end: EndFrame | None = None) -> None:
        """Append the end frame (unless ``end`` is None and the writer was
        closed before) and close the file if it was opened here; idempotent."""
        if self._closed:
            return
        try:
            if end is not None:
                self._frame(FrameType.END, encode_portable(end))
        finally:
            self._closed = True
            if self._owned:
                self._file.close()

    @property
    def closed(self) -> bool:
        """close() was called."""
        return self._closed


# --- reader --------------------------------------------------------------------------


class RecordingReader:
    """Reads a recording frame by frame; the header is read on opening.

    Args:
        source: a file name or a binary file open for reading.
        allow_truncated: a recording whose last frame is incomplete (cut
            off while a frame was written) ends quietly at the last whole
            frame, with ``truncated_at`` set; else that frame raises.

    Raises:
        RecordingError: not a recording, a format version newer than this
            library reads (the message names both), or a corrupted header.
        OSError: the file cannot be opened.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[bytes], *, allow_truncated: bool = False) -> None:
        if isinstance(source, (str, os.PathLike)):
            self.path = os.fspath(source)
            self._file: IO[bytes] = open(self.path, "rb")  # owned: closed by close()
            self._owned = True
        else:
            self.path = str(getattr(source, "name", ""))
            self._file = source
            self._owned = False
        self.allow_truncated = allow_truncated
        #: the offset of the next frame
        self.offset = 0
        #: the end frame was read: the recording was closed in order
        self.complete = False
        #: where an incomplete last frame starts (with allow_truncated)
        self.truncated_at: int | None = None
        #: events of kinds this version does not know, skipped
        self.skipped_events = 0
        #: the writer's event schema and the kinds' health at the start
        self.info = SensorInfo()
        self._pushback: tuple[int, int, bytes] | None = None
        self._inflate = zlib.decompressobj(-15)
        try:
            self.header = self._read_header()
            self._read_info()
        except BaseException:
            self.close()
            raise
        self._contexts: dict[int, Any] = {}
        # the header's context fields this version's events have, with their place in a reference
        self._context_fields = [(i, name) for i, name in enumerate(self.header.context_fields) if _context_type(name)]
        self._context_cls = _context_type(self._context_fields[0][1]) if self._context_fields else None

    def _error(self, offset: int, cause: str, version: int | None = None) -> RecordingError:
        return RecordingError(f"read {self.path or 'recording'}: {cause}", self.path, offset, version)

    def _read_header(self) -> RecordingHeader:
        magic = self._file.read(len(MAGIC))
        if magic != MAGIC:
            raise self._error(0, f"not an ebpfsensor recording: it starts with {magic[:8]!r}, not {MAGIC!r}")
        self.offset = len(MAGIC)
        got = self._read_frame()
        if got is None:
            raise self._error(self.offset, "truncated: the header frame is missing")
        offset, ftype, payload = got
        if ftype != FrameType.HEADER:
            raise self._error(offset, f"corrupted: the first frame has type {ftype}, not the header's")
        try:
            raw = _any_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise self._error(offset, f"corrupted header frame: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise self._error(offset, f"not an ebpfsensor recording: the header's format is not {FORMAT_NAME!r}")
        version = raw.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._error(offset, f"corrupted header frame: format version {version!r} is not a version")
        if version > FORMAT_VERSION:
            raise self._error(
                offset,
                f"format version {version} is newer than this ebpfsensor ({sensor_version()}) reads "
                f"(versions 1 to {FORMAT_VERSION}); written by ebpfsensor {raw.get('sensor_version', '?')}: "
                "upgrade ebpfsensor to replay it",
                version,
            )
        try:
            return msgspec.convert(raw, RecordingHeader)
        except msgspec.ValidationError as exc:
            raise self._error(offset, f"corrupted header frame: {exc}") from None

    def _read_info(self) -> None:
        """The sensor info frame, when it follows the header."""
        got = self._read_frame()
        if got is not None and got[1] == FrameType.SENSOR_INFO:
            try:
                self.info = _sensor_info(got[2])
            except (msgspec.DecodeError, ValueError) as exc:
                raise self._error(got[0], f"corrupted frame at offset {got[0]}: {exc}") from None
        else:
            self._pushback = got

    def _read_exact(self, size: int) -> bytes:
        data = self._file.read(size)
        if len(data) == size or not data:
            return data
        # a pipe or socket may return less than asked before its end
        parts = [data]
        got = len(data)
        while got < size:
            more = self._file.read(size - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _truncated(self, offset: int, cause: str) -> None:
        if not self.allow_truncated:
            raise self._error(
                offset,
                f"truncated frame at offset {offset}: {cause}; the recording was cut off "
                f"(allow_truncated=True replays it up to offset {offset})",
            )
        log.warning("%s: truncated frame at offset %d (%s): replayed up to it", self.path, offset, cause)
        self.truncated_at = offset

    def _read_frame(self) -> tuple[int, int, bytes] | None:
        """(offset, type, payload as stored, decompressed), or None at the end."""
        offset = self.offset
        head = self._read_exact(_FRAME_BYTES)
        if not head:
            return None
        if len(head) < _FRAME_BYTES:
            self._truncated(offset, f"{len(head)} of the frame header's {_FRAME_BYTES} bytes present")
            return None
        length, ftype, flags, reserved, crc = _FRAME.unpack(head)
        if length > MAX_FRAME_BYTES:
            raise self._error(offset, f"corrupted frame at offset {offset}: it announces {length} bytes")
        payload = self._read_exact(length)
        if len(payload) < length:
            self._truncated(offset, f"{len(payload)} of its {length} bytes present")
            return None
        actual = zlib.crc32(payload, zlib.crc32(head[4:8]))
        if actual != crc:
            raise self._error(
                offset, f"corrupted frame at offset {offset}: checksum {actual:#010x}, the frame says {crc:#010x}"
            )
        if flags & ~FLAG_DEFLATE or reserved:
            raise self._error(offset, f"corrupted frame at offset {offset}: unknown flags {flags:#x}/{reserved:#x}")
        self.offset = offset + _FRAME_BYTES + length
        if flags & FLAG_DEFLATE:
            if ftype == FrameType.HEADER:
                raise self._error(offset, f"corrupted frame at offset {offset}: a compressed header")
            try:
                payload = self._inflate.decompress(payload, _MAX_INFLATED)
                if self._inflate.unconsumed_tail or self._inflate.eof:
                    raise zlib.error(f"more than {_MAX_INFLATED} bytes, or the end of the stream")
            except zlib.error as exc:
                raise self._error(offset, f"corrupted frame at offset {offset}: {exc}") from None
        return offset, ftype, payload

    def __iter__(self) -> Iterator[Frame]:
        """The frames after the header, in order; unknown ancillary frames skipped.

        Raises:
            RecordingError: a truncated (unless allow_truncated) or
                corrupted frame, naming its offset.
        """
        while True:
            got, self._pushback = self._pushback or self._read_frame(), None
            if got is None:
                return
            offset, ftype, payload = got
            try:
                if ftype == FrameType.EVENTS:
                    yield self._events(decode_events(payload))
                elif ftype == FrameType.LOSS:
                    yield _loss_decoder.decode(payload)
                elif ftype == FrameType.PROCESSES:
                    yield _processes_decoder.decode(payload)
                elif ftype == FrameType.END:
                    self.complete = True
                    yield _end_decoder.decode(payload)
                elif ftype == FrameType.SENSOR_INFO:
                    self.info = _sensor_info(payload)
                elif ftype == FrameType.HEADER:
                    raise ValueError("a second header")
                elif ftype < ANCILLARY:
                    raise ValueError(f"type {ftype} is not defined in format version {self.header.version}")
            except (msgspec.DecodeError, ValueError) as exc:
                if isinstance(exc, RecordingError):
                    raise
                raise self._error(offset, f"corrupted frame at offset {offset}: {exc}") from None

    def _events(self, raw: _EventsPayload) -> EventsFrame:
        """The frame's events with their contexts back in place."""
        contexts = self._contexts
        if raw.reset:
            contexts.clear()
        for ref, value in raw.contexts:
            if not isinstance(value, dict):
                raise ValueError(f"context {ref} is not a map")
            # built once, then shared by every event that refers to it, as live
            contexts[ref] = convert_filled(value, self._context_cls) if self._context_cls else value
        events: list[Event | None] = list(raw.events)
        if raw.refs and self._context_fields:
            if len(raw.refs) != len(events):
                raise ValueError(f"{len(raw.refs)} context references for {len(events)} events")
            put = msgspec.structs.force_setattr
            fields = self._context_fields
            try:
                # once per event: plain lookups only
                for event, refs in zip(events, raw.refs, strict=True):
                    if event is not None:
                        for i, name in fields:
                            ref = refs[i]
                            if ref:
                                put(event, name, contexts[ref])
            except KeyError as exc:
                raise ValueError(f"context {exc} is used before it is written") from None
            except IndexError:
                raise ValueError("an event's context references are fewer than the header's fields") from None
            except AttributeError:
                # an event of a kind that has no such field in this version
                self._attach_checked(events, raw.refs)
        out = [e for e in events if e is not None]
        skipped = len(events) - len(out)
        if skipped:
            self.skipped_events += skipped
            log.warning("%s: %d events of kinds this version does not know skipped", self.path, skipped)
        return EventsFrame(raw.t_ns, out)

    def _attach_checked(self, events: list[Event | None], all_refs: list[list[int]]) -> None:
        for event, refs in zip(events, all_refs, strict=True):
            if event is not None:
                for i, name in self._context_fields:
                    if refs[i] and name in event.__struct_fields__:
                        msgspec.structs.force_setattr(event, name, self._contexts[refs[i]])

    def close(self) -> None:
        """Close the file if it was opened here; idempotent."""
        if self._owned:
            self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(source: str | os.PathLike[str] | IO[bytes], *, allow_truncated: bool = False) -> Iterator[Event]:
    """Every event of a recording, in order, as fast as it can be read.

    Raises:
        RecordingError: as RecordingReader does.
    """
    with RecordingReader(source, allow_truncated=allow_truncated) as reader:
        for frame in reader:
            if isinstance(frame, EventsFrame):
                yield from frame.events
