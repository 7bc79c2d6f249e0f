# SPDX-License-Identifier: Apache-2.0
"""Loss taint: the loss counters watched, the processes of a loss marked."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..events._base import LossWindow
from ..events.loss import EventLoss
from ._table import ProcessTable

__all__ = ["LossMonitor"]

#: how often the counters are read, and, while records keep being lost, how
#: often at most the processes are marked again: each marking walks the
#: table, so it waits at least ten times as long as the last one took
CHECK_NS = 100_000_000
BACKOFF_NS = 1_000_000_000
BACKOFF_FACTOR = 10


def _now() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class LossMonitor:
    """Watches a source's loss counters.

    Args:
        source: the provider's name, for the markers.
        counters: returns (every record lost so far, per kind).
        table: the process table to mark; None to mark nothing.
    """

    def __init__(
        self,
        source: str,
        counters: Callable[[], tuple[int, dict[str, int]]],
        table: ProcessTable | None,
        now_ns: int | None = None,
    ) -> None:
        self.source = source
        self._counters = counters
        self._table = table
        self._total, self._by_kind = counters()
        self._checked = _now() if now_ns is None else now_ns
        self._next = self._checked + CHECK_NS

    def check(self, now_ns: int | None = None) -> EventLoss | None:
        """A marker when the counters rose since the last check, else None
        (the counters are read at most every 100 ms; after a loss, at most
        every second, or ten times as long as marking took)."""
        now = _now() if now_ns is None else now_ns
        if now < self._next:
            return None
        total, by_kind = self._counters()
        start = self._checked
        self._checked = now
        if total == self._total:
            self._next = now + CHECK_NS
            return None
        lost = total - self._total
        diff = {k: v - self._by_kind.get(k, 0) for k, v in by_kind.items() if v != self._by_kind.get(k, 0)}
        self._total, self._by_kind = total, by_kind
        t = time.monotonic_ns()
        marked = self._table.mark_loss(LossWindow(start, now)) if self._table is not None else 0
        self._next = now + max(BACKOFF_NS, BACKOFF_FACTOR * (time.monotonic_ns() - t))
        return EventLoss(
            ts_ns=now,
            window_start_ns=start,
            window_end_ns=now,
            source=self.source,
            lost=lost,
            by_kind=diff,
            processes_marked=marked,
        )
