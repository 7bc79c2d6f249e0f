# SPDX-License-Identifier: Apache-2.0
"""SyntheticSensor: the Sensor's API fed with events built in a test."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ..events import Event
from ..recording._format import EventsFrame, Frame, LossFrame, all_kinds, new_header
from ..recording.replay import ReplaySensor
from .builders import Scenario

__all__ = ["SyntheticSensor"]


class SyntheticSensor(ReplaySensor):
    """A :class:`~ebpfsensor.ReplaySensor` whose recording is written in the test.

    Each :meth:`feed` is one batch, handed out by the next ``poll()`` (or
    ``events()``, ``run()``, ``async for``, subscribers) as fast as asked;
    :meth:`lose` marks a loss, as a sensor's counters would. Iterating ends
    when everything fed has been handed out; feeding more starts it again.
    ``processes`` is None: a sensor without a process table (events carry
    their process context themselves).

        sensor = SyntheticSensor()
        with use_scenario(sensor.scenario):
            make_exec(pid=100, exe="/usr/sbin/nginx")
            make_net_accept(pid=100)
        sensor.feed()                      # what the scenario built, as one batch
        with sensor:
            agent.run(sensor)

    Args:
        events: a first batch.
        scenario: where the builders keep processes and the clock (a new
            one by default).
        kinds: hand out only these kinds.
    """

    def __init__(
        self, events: Iterable[Event] = (), *, scenario: Scenario | None = None, kinds: Iterable[str] | None = None
    ) -> None:
        self.scenario = scenario or Scenario()
        self._queue: deque[Frame] = deque()
        self._fed = 0
        super().__init__("", kinds=kinds)
        first = list(events)
        if first:
            self.feed(first)

    def _open(self) -> None:
        self.path = ""
        self._kind_health = {}
        self._setup(new_header(provider="synthetic", kinds=sorted(all_kinds())))
        self._is_open = True

    def _pull(self) -> Frame | None:
        return self._queue.popleft() if self._queue else None

    def feed(self, *events: Event | Iterable[Event]) -> None:
        """Queue one batch: the events given (events or lists of them), or
        with none given, the events the scenario built since the last feed."""
        batch: list[Event] = []
        for item in events:
            if isinstance(item, Iterable):
                batch.extend(item)
            else:
                batch.append(item)
        if not events:
            batch = self.scenario.events[self._fed :]
        self._fed = len(self.scenario.events)
        if batch:
            self._queue.append(EventsFrame(0, batch))

    def lose(
        self, dropped: int = 0, undecodable: int = 0, unmatched: int = 0, kinds: dict[str, dict[str, int]] | None = None
    ) -> None:
        """Queue a loss marker: what the sensor's counters would say was lost
        here (``stats()`` counts it once handed out); ``kinds`` per kind,
        e.g. ``{"file_open": {"dropped": 3}}``."""
        frame = LossFrame(t_ns=0, dropped=dropped, undecodable=undecodable, unmatched=unmatched, kinds=kinds or {})
        self._queue.append(frame)

    @property
    def pending(self) -> int:
        """Batches fed and not handed out yet."""
        return len(self._queue) + (self._next is not None)

    def __repr__(self) -> str:
        return f"SyntheticSensor({self.pending} batches pending)"

    def __getstate__(self) -> Any:
        raise TypeError("a SyntheticSensor is not picklable")
