# SPDX-License-Identifier: Apache-2.0
"""Process context: the host's processes, their ancestry, sessions and
executable hashes, on every event.

A :class:`ProcessTable` is kept from the lifecycle events (exec, fork,
exit) whichever source delivers them, seeded at start after the sources are
attached: by a BPF task iterator where eBPF runs and the kernel has one, from
/proc where not (``_seed``). Every event carries its process and its parent as
shared :class:`~ebpfsensor.events.ProcessInfo` snapshots, put there in C
for events that come through the eBPF rings (see ``_attach``). Executables
are hashed off the delivery path (:class:`Hasher`). When records are lost,
the processes alive then are marked ``context_incomplete`` and the stream
carries an :class:`~ebpfsensor.events.loss.EventLoss`.

``sensor.processes`` is the running sensor's table.
"""

from __future__ import annotations

from ..events._base import ExeHash, LossWindow, ProcessInfo
from ..events.loss import EventLoss
from ._entity import boot_id, entity_id
from ._hash import ALGORITHMS, Hasher
from ._loss import LossMonitor
from ._table import ProcessTable, SessionInfo

__all__ = [
    "ALGORITHMS",
    "EventLoss",
    "ExeHash",
    "Hasher",
    "LossMonitor",
    "LossWindow",
    "ProcessInfo",
    "ProcessTable",
    "SessionInfo",
    "boot_id",
    "entity_id",
]
