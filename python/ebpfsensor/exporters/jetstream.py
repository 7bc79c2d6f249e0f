# SPDX-License-Identifier: Apache-2.0
"""Events to NATS JetStream, acknowledged, a subject per kind (needs nats-py:
``pip install 'ebpfsensor[nats]'``)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..errors import EbpfSensorError
from ._base import Exporter, log

__all__ = ["NatsExporter"]

_MSG_ID = "Nats-Msg-Id"


class NatsExporter(Exporter):
    """Each event published to JetStream on ``SUBJECT.<kind>``
    (``ebpfsensor.process_exec``, ...) and delivered once the stream has
    acknowledged it.

    Every event carries a ``Nats-Msg-Id`` header unique to it, kept across
    retries: a batch sent again after a timeout or a server restart is
    stored once (JetStream drops the repeats within the stream's duplicate
    window, two minutes by default). While the server is away the client
    reconnects on its own and the batch waits, backing off; events keep
    queueing up to ``queue_size``, then are dropped and counted.

    Args:
        servers: ``nats://HOST:PORT`` (or several).
        subject: the subject prefix; the kind is appended.
        stream: a stream the subjects belong to, made (covering
            ``SUBJECT.>``, file storage) when it does not exist; None to
            leave streams to the operator.
        **options: those of :class:`Exporter` (``format``, ``queue_size``, ...).

    Raises:
        EbpfSensorError: nats-py is not installed.
        ValueError: a subject with spaces or wildcards.
    """

    name = "nats"

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        subject: str = "ebpfsensor",
        *,
        stream: str | None = "EBPFSENSOR",
        **options: Any,
    ) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise EbpfSensorError("the NATS exporter needs nats-py: pip install 'ebpfsensor[nats]'") from None
        subject = subject.strip(".")
        if not subject or any(c in subject for c in " \t*>") or ".." in subject:
            raise ValueError(f"not a NATS subject prefix: {subject!r}")
        super().__init__(**options)
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.subject = subject
        self.stream = stream
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._js: Any = None
        # message ids: this exporter's own prefix, then a sequence number
        self._id_prefix = uuid.uuid4().hex[:16]
        self._seq = 0

    # the exporter's thread runs the client's event loop: while it waits
    # (for events, or after a failure) the client keeps reading, answering
    # pings and reconnecting

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            super()._run()
        finally:
            loop, self._loop = self._loop, None
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _wait(self, seconds: float, event: threading.Event) -> None:
        loop = self._loop
        if loop is None:
            event.wait(seconds)
            return
        end = time.monotonic() + seconds
        while not event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            loop.run_until_complete(asyncio.sleep(min(left, 0.02)))

    def _prepare(self, events: Sequence[Any], payloads: list[bytes]) -> Any:
        msgs = []
        prefix = f"{self.subject}."
        for event, payload in zip(events, payloads, strict=True):
            msgs.append((prefix + event.kind, payload, {_MSG_ID: f"{self._id_prefix}-{self._seq}"}))
            self._seq += 1
        return msgs

    def _connect(self, timeout: float) -> None:
        assert self._loop is not None
        self._loop.run_until_complete(asyncio.wait_for(self._aconnect(timeout), timeout))

    async def _aconnect(self, timeout: float) -> None:
        import nats

        nc = self._nc
        if nc is not None and nc.is_closed:
            nc = self._nc = self._js = None
        if nc is None:
            nc = await nats.connect(
                servers=self.servers,
                name="ebpfsensor",
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=max(1, int(timeout)),
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
            self._nc = nc
            self._js = nc.jetstream(timeout=timeout)
        elif not nc.is_connected:
            raise ConnectionError("reconnecting to the NATS server")
        if self.stream:
            await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        import nats.js.errors

        try:
            await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(name=self.stream, subjects=[f"{self.subject}.>"])

    def _send(self, prepared: Any, timeout: float) -> None:
        assert self._loop is not None
        self._loop.run_until_complete(self._publish(prepared, timeout))

    async def _publish(self, msgs: list[tuple[str, bytes, dict[str, str]]], timeout: float) -> None:
        js = self._js
        futures: list[asyncio.Future[Any]] = []
        try:
            for subject, payload, headers in msgs:
                futures.append(await js.publish_async(subject, payload, headers=headers, wait_stall=timeout))
            await asyncio.wait_for(asyncio.gather(*futures), timeout)
        finally:
            # what was acknowledged is not sent again
            acked = [f.done() and not f.cancelled() and f.exception() is None for f in futures]
            for f in futures:
                f.cancel()
            msgs[:] = [m for m, ok in zip(msgs, acked + [False] * (len(msgs) - len(acked)), strict=True) if not ok]

    def _on_failure(self, exc: BaseException) -> None:
        # the client reconnects by itself: keep it unless it has given up
        self._connected = False
        if self._nc is None or self._nc.is_closed:
            self._disconnect_quietly()

    def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.run_until_complete(asyncio.wait_for(nc.close(), 2.0))
            except Exception as exc:
                log.debug("nats exporter: close: %s", exc)

    async def _on_error(self, exc: Exception) -> None:
        # the client's own attempts (connecting, reconnecting) count as retries too
        self._retries += 1
        self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _on_disconnected(self) -> None:
        log.debug("nats exporter: disconnected from %s", self.servers)

    async def _on_reconnected(self) -> None:
        log.debug("nats exporter: reconnected")
