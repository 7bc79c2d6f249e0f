# SPDX-License-Identifier: Apache-2.0
"""Events in the schemas SIEMs and data lakes speak: ECS (Elastic) and OCSF.

    from ebpfsensor import schema

    schema.ecs(event)           # {"@timestamp": ..., "event": {...}, "process": {...}, ...}
    schema.ocsf(event)          # {"class_uid": 1007, "activity_id": 1, "process": {...}, ...}
    schema.ecs_batch(batch)     # a Sensor.poll() batch, the clock and host read once
    schema.Encoder("ocsf").encode_batch(batch)   # JSON bytes, one per event

Every kind maps (docs/schemas.md has the table per kind). Documents are
plain dicts of JSON types, fresh for each event. Timestamps are Unix time
(``boot_to_wall_ns`` of the events' CLOCK_BOOTTIME). ECS follows
:data:`ECS_VERSION`, OCSF :data:`OCSF_VERSION` with the ``host`` profile
(``container`` too for events from a container); ``metadata.product`` and
``agent`` name ebpfsensor and its version. Fields an event may carry for its
process and parent (``event.process``, ``event.parent``: image, arguments,
hashes) are used where present.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ._ecs import ECS_VERSION, ecs, ecs_batch
from ._ocsf import OCSF_VERSION, ocsf, ocsf_batch

__all__ = ["ECS_VERSION", "FORMATS", "OCSF_VERSION", "Encoder", "ecs", "ecs_batch", "ocsf", "ocsf_batch"]

#: the names Encoder (and ``ebpfsensor stream --format``) accepts
FORMATS = ("native", "ecs", "ocsf")

_CHUNK = 256

_BATCH: dict[str, Callable[[Sequence[Any]], list[Any]] | None] = {
    "native": None,
    "ecs": ecs_batch,
    "ocsf": ocsf_batch,
}


class Encoder:
    """Events to JSON bytes in one format: ``native`` (the Structs as they
    are, as :func:`ebpfsensor.to_json`), ``ecs`` or ``ocsf``.

    Strings that are not UTF-8 in the kernel (surrogate escapes) are written
    as ``\\udcXX`` escapes, as ``to_json`` does, so nothing is lost.

    Args:
        format: one of :data:`FORMATS`.

    Raises:
        ValueError: an unknown format.
    """

    def __init__(self, format: str = "ecs") -> None:
        if format not in _BATCH:
            raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
        self.format = format
        self._map = _BATCH[format]
        self._json = msgspec.json.Encoder()

    def documents(self, events: Sequence[Any]) -> list[Any]:
        """The events as what is encoded: dicts for ecs/ocsf, the events for native."""
        return list(events) if self._map is None else self._map(events)

    def encode(self, event: Any) -> bytes:
        """One event as JSON (no newline)."""
        return self.encode_batch([event])[0]

    def encode_batch(self, events: Sequence[Any]) -> list[bytes]:
        """The events as JSON, one bytes object each (no newlines)."""
        if self._map is None:
            return self._encode_each(events)
        out: list[bytes] = []
        # a chunk's documents are dropped once encoded: few dicts live at a
        # time, so the cyclic collector has little to walk
        for i in range(0, len(events), _CHUNK):
            out += self._encode_each(self._map(events[i : i + _CHUNK]))
        return out

    def encode_lines(self, events: Sequence[Any]) -> bytes:
        """The events as JSON lines (each ends with a newline)."""
        parts = []
        for i in range(0, len(events), _CHUNK):
            docs = self.documents(events[i : i + _CHUNK])
            try:
                parts.append(self._json.encode_lines(docs))
            except UnicodeEncodeError:
                parts.append(b"".join(line + b"\n" for line in self._encode_each(docs)))
        return b"".join(parts)

    def _encode_each(self, docs: Sequence[Any]) -> list[bytes]:
        enc = self._json.encode
        out = []
        for doc in docs:
            try:
                out.append(enc(doc))
            except UnicodeEncodeError:
                out.append(_escaped(doc))
        return out


def _escaped(doc: Any) -> bytes:
    return json.dumps(msgspec.to_builtins(doc), ensure_ascii=True, separators=(",", ":")).encode()
