# SPDX-License-Identifier: Apache-2.0
"""What every exporter shares: the bounded queue, the sending thread,
batching, retries with backoff, the flush on close, the counters."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from ..schema import Encoder

__all__ = ["Exporter", "ExporterStats"]

log = logging.getLogger("ebpfsensor.exporters")


class ExporterStats(msgspec.Struct, frozen=True):
    """An exporter's counters since it was made.

    ``submitted`` events were accepted into the queue; ``delivered`` reached
    the destination (acknowledged by JetStream; written to the syslog
    connection; written to the file); ``failed`` were given up: still
    undelivered when ``close`` ran out of time, or not encodable;
    ``dropped`` were refused because the queue was full (or the exporter
    closed), never queued; ``pending`` are queued or being sent
    (submitted = delivered + failed + pending). ``retries`` counts failed
    attempts to connect or send, each followed by a backoff; ``connected``
    says whether the destination is reachable now, ``last_error`` what went
    wrong last ("" if nothing).
    """

    submitted: int
    delivered: int
    failed: int
    dropped: int
    pending: int
    retries: int
    batches: int
    connected: bool
    last_error: str


class Exporter:
    """Events to a destination, from a bounded queue, by a thread of its own.

    Callers hand events over with :meth:`submit` or :meth:`submit_batch`
    (or register the exporter with ``Sensor.subscribe``): that never blocks
    and never does I/O. When the queue is full the events are dropped and
    counted. The exporter's thread takes batches of up to ``batch_size``
    events (waiting up to ``flush_interval`` seconds for a batch to fill),
    encodes them (``format``: ``native``, ``ecs`` or ``ocsf``) and sends
    them; a batch that fails is sent again after a backoff that doubles from
    ``retry_initial`` to ``retry_max`` seconds, over a new connection, until
    it is delivered or the exporter closes. :meth:`close` stops accepting
    events and sends what is queued, for at most ``timeout`` seconds.

    Subclasses implement ``_connect``, ``_send`` and ``_disconnect``, and
    may prepare a batch once for all its attempts (``_prepare``).

    Args:
        format: how events are encoded: ``native``, ``ecs`` or ``ocsf``.
        queue_size: events the queue holds.
        batch_size: events per batch.
        flush_interval: longest wait, seconds, for a batch to fill.
        retry_initial, retry_max: the backoff's bounds, seconds.
        timeout: the longest a connect or a send may take, seconds.

    Raises:
        ValueError: an unknown format, or a size or time that is not positive.
    """

    #: the destination's kind, for thread names and messages
    name = "exporter"

    def __init__(
        self,
        *,
        format: str = "ecs",
        queue_size: int = 65536,
        batch_size: int = 512,
        flush_interval: float = 0.1,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        if min(queue_size, batch_size) < 1 or min(flush_interval, retry_initial, retry_max, timeout) <= 0:
            raise ValueError("exporter sizes and times must be positive")
        self.format = format
        self._encoder = Encoder(format)
        self._queue: collections.deque[Any] = collections.deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._timeout = timeout
        # producers (submit) and the thread share only the deque (atomic
        # appends and pops) and these flags; each counter has one writer
        self._submit_lock = threading.Lock()
        self._wake = threading.Event()
        self._interrupt = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._closing = False
        self._deadline = 0.0
        self._submitted = 0
        self._dropped = 0
        self._delivered = 0
        self._failed = 0
        self._retries = 0
        self._batches = 0
        self._connected = False
        self._last_error = ""

    # --- the caller's side -----------------------------------------------------------

    def submit(self, event: Any) -> bool:
        """Queue one event; False (and counted as dropped) when the queue is
        full or the exporter is closed. Never blocks on I/O."""
        with self._submit_lock:
            if self._closed or len(self._queue) >= self._queue_size:
                self._dropped += 1
                return False
            self._queue.append(event)
            self._submitted += 1
        if self._thread is None:
            self._start()
        if len(self._queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    __call__ = submit

    def submit_batch(self, events: Iterable[Any]) -> int:
        """Queue events (a ``Sensor.poll`` batch); returns how many were
        accepted, the rest are counted as dropped. Never blocks on I/O."""
        batch = events if isinstance(events, list) else list(events)
        with self._submit_lock:
            room = 0 if self._closed else max(0, self._queue_size - len(self._queue))
            accepted = batch if room >= len(batch) else batch[:room]
            self._queue.extend(accepted)
            self._submitted += len(accepted)
            self._dropped += len(batch) - len(accepted)
        if self._thread is None and accepted:
            self._start()
        if len(self._queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()
        return len(accepted)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to timeout seconds until nothing is pending; True if so."""
        end = time.monotonic() + timeout
        self._wake.set()
        while self._pending() and time.monotonic() < end:
            time.sleep(0.005)
        return not self._pending()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting events, send what is queued for at most timeout
        seconds, give up the rest (counted as failed), and stop the thread;
        idempotent. True when everything submitted was delivered."""
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._deadline = time.monotonic() + max(0.0, timeout)
                self._closing = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            self._interrupt.set()
            thread.join(max(0.0, self._deadline - time.monotonic()) + self._timeout + 1.0)
        else:
            self._disconnect_quietly()
        return self._delivered == self._submitted

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> ExporterStats:
        """The counters now (see :class:`ExporterStats`)."""
        return ExporterStats(
            submitted=self._submitted,
            delivered=self._delivered,
            failed=self._failed,
            dropped=self._dropped,
            pending=self._pending(),
            retries=self._retries,
            batches=self._batches,
            connected=self._connected,
            last_error=self._last_error,
        )

    def _pending(self) -> int:
        return self._submitted - self._delivered - self._failed

    # --- the exporter's thread ----------------------------------------------------------

    def _start(self) -> None:
        with self._submit_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"ebpfsensor-export-{self.name}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        batch: list[Any] = []
        prepared: Any = None
        backoff = self._retry_initial
        while True:
            if self._closing and time.monotonic() >= self._deadline:
                self._give_up(batch)
                break
            if not batch:
                if len(self._queue) < self._batch_size and not self._closing:
                    self._wake.clear()
                    if len(self._queue) < self._batch_size:
                        self._wait(self._flush_interval, self._wake)
                batch = self._take()
                if not batch:
                    if self._closing:
                        break
                    continue
                batch, prepared = self._encode(batch)
                if not batch:
                    continue
            try:
                if not self._connected:
                    self._connect(self._op_timeout())
                    self._connected = True
                self._send(prepared, self._op_timeout())
            except Exception as exc:  # every failure is retried; the error is kept
                self._retries += 1
                self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.debug("%s exporter: %s; retrying in %.2f s", self.name, self._last_error, backoff)
                self._on_failure(exc)
                self._backoff(backoff)
                backoff = min(backoff * 2, self._retry_max)
                continue
            self._delivered += len(batch)
            self._batches += 1
            batch, prepared = [], None
            backoff = self._retry_initial
        self._disconnect_quietly()

    def _take(self) -> list[Any]:
        q = self._queue
        n = min(len(q), self._batch_size)
        return [q.popleft() for _ in range(n)]

    def _encode(self, batch: list[Any]) -> tuple[list[Any], Any]:
        """The batch's payloads, prepared for sending; events that cannot be
        encoded are counted as failed and left out."""
        try:
            payloads = self._encoder.encode_batch(batch)
        except Exception:  # one bad event must not sink the batch: find it
            kept, payloads = [], []
            for event in batch:
                try:
                    payloads += self._encoder.encode_batch([event])
                    kept.append(event)
                except Exception as exc:
                    self._failed += 1
                    self._last_error = f"cannot encode {type(event).__name__}: {exc}"
            batch = kept
        return batch, (self._prepare(batch, payloads) if batch else None)

    def _give_up(self, batch: list[Any]) -> None:
        lost = len(batch)
        while self._queue:
            self._queue.popleft()
            lost += 1
        self._failed += lost
        if lost:
            log.warning("%s exporter: %d events undelivered at close (%s)", self.name, lost, self._last_error)

    def _op_timeout(self) -> float:
        if self._closing:
            return max(0.05, min(self._timeout, self._deadline - time.monotonic()))
        return self._timeout

    def _backoff(self, seconds: float) -> None:
        if self._closing:
            # close() has set the interrupt: wait the backoff out, within the deadline
            self._wait(max(0.0, min(seconds, self._deadline - time.monotonic())), threading.Event())
        else:
            self._wait(seconds, self._interrupt)

    def _wait(self, seconds: float, event: threading.Event) -> None:
        """Wait until event is set or seconds pass (a subclass may keep its
        own I/O going meanwhile)."""
        event.wait(seconds)

    def _on_failure(self, exc: BaseException) -> None:
        self._disconnect_quietly()

    def _disconnect_quietly(self) -> None:
        self._connected = False
        try:
            self._disconnect()
        except Exception as exc:
            log.debug("%s exporter: disconnect: %s", self.name, exc)

    # --- what a destination implements ----------------------------------------------------

    def _prepare(self, events: Sequence[Any], payloads: list[bytes]) -> Any:
        """What _send gets for a batch, made once for all its attempts."""
        return payloads

    def _connect(self, timeout: float) -> None:
        """Open the connection (raise on failure)."""
        raise NotImplementedError

    def _send(self, prepared: Any, timeout: float) -> None:
        """Deliver a whole batch (raise on failure: it is sent again)."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Close the connection; idempotent."""
