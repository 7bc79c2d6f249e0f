# SPDX-License-Identifier: Apache-2.0
"""Loss markers: the stream says where it has a gap, produced by the sensor itself.

A sensor checks its loss counters (ring buffer drops, syscalls whose start
was not seen, undecodable records, lost netlink messages) as it delivers
events; when one has risen, it marks every process alive during the window
(``ProcessInfo.context_incomplete``) and puts an :class:`EventLoss` in the
stream where the gap was noticed. The marker is made by the sensor, not
collected from a source: it comes with every kind (``Config.kinds`` None)
or when ``Config.kinds`` names ``"loss"``; the losses are counted in
``Sensor.stats()`` and the processes marked either way.
"""

from __future__ import annotations

import msgspec

__all__ = ["EventLoss"]


class EventLoss(msgspec.Struct, frozen=True, gc=False, tag_field="kind", tag="loss"):
    """Records were lost between two checks of the loss counters.

    Events of the window may be missing, and so may lifecycle events: the
    process table's picture of the processes alive then may be incomplete,
    which their ``ProcessInfo.context_incomplete`` says.

    Attributes:
        ts_ns: when the loss was noticed, CLOCK_BOOTTIME ns.
        window_start_ns: the previous check, with no loss yet, CLOCK_BOOTTIME ns.
        window_end_ns: the check that found the loss, CLOCK_BOOTTIME ns
            (records were lost between the two).
        source: the provider that lost them (``ebpf``, ``proc_connector``).
        lost: records lost in the window, all kinds: dropped (ring full),
            unmatched (a syscall whose start was not seen), undecodable, or
            netlink messages lost.
        by_kind: the eBPF kinds' share of ``lost``, per kind (dropped and
            unmatched); empty for the process connector, whose losses name no
            kind.
        processes_marked: processes alive in the window, now marked
            ``context_incomplete``.
    """

    ts_ns: int
    window_start_ns: int
    window_end_ns: int
    source: str
    lost: int
    by_kind: dict[str, int]
    processes_marked: int

    @property
    def kind(self) -> str:
        """The event's kind, as tagged in JSON and msgspec: "loss"."""
        return "loss"
