# SPDX-License-Identifier: Apache-2.0
"""The process context of a running sensor: its table, its hasher, the
ring's C cache and the loss monitors, wired to whichever sources run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..events import Event, ProcessExec, ProcessExit, ProcessFork
from ..events._base import _Event
from ._attach import attacher
from ._hash import Hasher
from ._loss import LossMonitor
from ._seed import seed
from ._table import ProcessTable

if TYPE_CHECKING:
    from ..config import Config
    from ..sources import Source
    from ..sources.ebpf.objects import LoadedObject
    from ..sources.ebpf.ring import RingBuffer
    from ..status import ProcessContextHealth, ProcessTableStats

__all__ = ["SensorContext"]

_LIFECYCLE = (ProcessExec, ProcessFork, ProcessExit)

#: what the process connector cannot give the table
PROC_CONNECTOR_GAPS = [
    "exec-time context: exe, argv, cwd and credentials are read from /proc when the event is received,"
    " so a process that is gone by then has only what its events say",
    "start times to the clock tick (10 ms), not the ns: a pid reused within one tick gets an entity id"
    " from its ns start time",
    "credential and session changes between execs (no setuid or setsid events)",
    "the image before an exec for events before it (only exec, fork and exit events exist)",
    "loss windows per kind: lost netlink messages name no kind",
]


class SensorContext:
    """Everything the process context needs from a started sensor.

    Args:
        config: the sensor's settings (``process_*``, ``hash_*``).
        sources: the supplementary sources started, lifecycle first (not
            the login source: a lost login record leaves the process table
            whole).
        ring: the eBPF source's ring, which then looks events up in C;
            None when eBPF does not run.
        task_iter: the task iterator the eBPF source loaded for the seed
            (see ``EbpfSource.take_task_iter``), owned from here on.
    """

    def __init__(
        self,
        config: Config,
        sources: Sequence[Source],
        ring: RingBuffer | None,
        task_iter: LoadedObject | None = None,
    ) -> None:
        try:
            hasher = None
            if config.hash_algorithms:
                hasher = Hasher(
                    config.hash_algorithms,
                    max_file_bytes=config.hash_max_file_bytes,
                    files_per_s=config.hash_files_per_s,
                    bytes_per_s=config.hash_bytes_per_s,
                    cache_entries=config.hash_cache_entries,
                )
            self.table = ProcessTable(
                limit=config.process_table_entries,
                grace_ns=config.process_grace_ms * 1_000_000,
                max_depth=config.process_ancestry_depth,
                hasher=hasher,
            )
            self.source = sources[0].name if sources else "none"
            self._ring = ring
            if ring is not None:
                self.table.bind(ring.set_context(self.table, learn=ProcessTable.LEARN_FROM))
        except BaseException:
            # the seed owns the task iterator from here on
            if task_iter is not None:
                task_iter.close()
            raise
        # after the sources are attached: a process started since is in the
        # snapshot, its events, or both, which the table merges
        self.seeding = seed(
            self.table, ebpf=ring is not None, provider=self.source, btf_path=config.btf_path, task_iter=task_iter
        )
        self.monitors: list[LossMonitor] = []
        self.monitors = [LossMonitor(src.name, _counters(src), self.table) for src in sources]
        self._markers = config.loss_markers
        self._in_c = ring is not None

    def before_poll(self) -> None:
        """Hashes computed, grace periods, limits: between two polls."""
        self.table.tick()

    def after_source(self, src: Source, events: list[Event]) -> None:
        """The context of a source that does not put it on in C: in Python."""
        if not events or (self._in_c and src.name == "ebpf"):
            return
        self.table.lifecycle(e for e in events if type(e) in _LIFECYCLE)
        self.table.resolve(e for e in events if isinstance(e, _Event) and e.process is None)

    def markers(self) -> list[Event]:
        """Loss markers for the losses found since the last call (the
        processes are marked whether or not the markers are delivered)."""
        out: list[Event] = []
        for m in self.monitors:
            marker = m.check()
            if marker is not None and self._markers:
                out.append(marker)
        return out

    def health(self) -> ProcessContextHealth:
        from ..status import ProcessContextHealth

        gaps: list[str] = []
        native = self._in_c and attacher().native
        if self._in_c and not native:
            gaps.append(f"context put on events in C: {attacher().why_not}; set from Python instead")
        if self.source == "proc_connector":
            gaps += PROC_CONNECTOR_GAPS
        if self.table.hasher is None:
            gaps.append("executable hashes: Config.hash_algorithms is empty")
        return ProcessContextHealth(True, self.source, native, gaps, seeded=self.table.seeded)

    def stats(self) -> ProcessTableStats:
        st = self.table.stats()
        if self._ring is not None and self._ring.context_errors:
            st = msgspec.structs.replace(st, errors=self._ring.context_errors)
        return st

    def close(self) -> None:
        """Stop the hasher; the table stays readable."""
        self.table.close()


def _counters(src: Any) -> Callable[[], tuple[int, dict[str, int]]]:
    """Every record src lost so far, and per kind where it knows."""

    def read() -> tuple[int, dict[str, int]]:
        st = src.stats()
        kinds = getattr(st, "kinds", None) or {}
        by_kind = {name: k.dropped + k.unmatched for name, k in kinds.items() if hasattr(k, "unmatched")}
        total = sum(by_kind.values()) if by_kind else st.dropped
        return total + st.undecodable, by_kind

    return read
