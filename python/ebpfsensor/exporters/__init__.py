# SPDX-License-Identifier: Apache-2.0
"""Exporters: events to NATS JetStream, a syslog server or files, without
slowing the ring consumer.

    from ebpfsensor.exporters import NatsExporter

    with Sensor() as sensor, NatsExporter("nats://127.0.0.1:4222", "ebpfsensor", format="ocsf") as out:
        while running:
            out.submit_batch(sensor.poll(None))   # never blocks; a full queue drops and counts
        ...                                       # leaving the block: close(), which flushes
    print(out.stats())                            # submitted, delivered, failed, dropped, ...

Every exporter has the same contract (:class:`Exporter`): a bounded queue
filled by the caller's thread and drained by the exporter's own, batches,
retries with backoff over a new connection, ``close(timeout)`` that sends
what is queued, and counters (:class:`ExporterStats`). :func:`open_exporter`
makes one from a URL, as ``ebpfsensor stream --output`` does.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ._base import Exporter, ExporterStats
from .files import FileExporter
from .jetstream import NatsExporter
from .syslog import SyslogExporter

__all__ = ["Exporter", "ExporterStats", "FileExporter", "NatsExporter", "SyslogExporter", "open_exporter"]

#: the URL forms open_exporter understands
URL_FORMS = ("file:PATH", "nats://HOST:PORT/SUBJECT", "syslog+tcp://HOST:PORT", "syslog+tls://HOST:PORT")


def open_exporter(url: str, **options: Any) -> Exporter:
    """An exporter for a URL:

    - ``file:PATH``: :class:`FileExporter` (JSON lines, rotated by size);
    - ``nats://HOST:PORT/SUBJECT``: :class:`NatsExporter` publishing to
      ``SUBJECT.<kind>`` (SUBJECT defaults to ``ebpfsensor``);
    - ``syslog+tcp://HOST:PORT``, ``syslog+tls://HOST:PORT``:
      :class:`SyslogExporter` (ports default to 514 and 6514).

    Args:
        url: as above.
        **options: passed to the exporter (``format``, ``queue_size``, ...).

    Raises:
        ValueError: a URL of another form.
        EbpfSensorError: the exporter's package is missing (nats-py).
    """
    if url.startswith("file:"):
        path = url[len("file:") :]
        if path.startswith("//"):
            path = urllib.parse.urlsplit(url).path
        if not path:
            raise ValueError(f"{url!r}: no file name; use file:PATH")
        return FileExporter(path, **options)
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number") from None
    if parts.scheme == "nats" and parts.hostname:
        subject = parts.path.strip("/").replace("/", ".") or "ebpfsensor"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return NatsExporter(f"nats://{host}:{port or 4222}", subject, **options)
    if parts.scheme in ("syslog+tcp", "syslog+tls", "syslog") and parts.hostname:
        return SyslogExporter(parts.hostname, port, tls=parts.scheme == "syslog+tls", **options)
    raise ValueError(f"{url!r}: not an output; use one of {', '.join(URL_FORMS)}")
