# SPDX-License-Identifier: Apache-2.0
"""Seeding the process table with the processes running at start: from a
BPF task iterator where the kernel has one, from /proc where not.

Either runs after the event sources are attached, and both snapshots go
through the same merge (:meth:`ProcessTable.merge`): a process started or
ended meanwhile is in the snapshot, its events, or both, named by pid and
start time. The iterator reads each process from the kernel's own task in
one pass (the start time the lifecycle records carry, to the ns; the
executable from ``mm->exe_file``, whatever the process says of itself),
where the /proc scan opens some nine files per process, each of which may
see the process at another moment. The iterator runs only where eBPF does
(the sensor's own programs are loaded), so the process connector's
fallback never loads a program; every failure of it falls back to /proc,
with the reason in ``stats().processes.seeded`` and ``health()``.

:data:`USE_TASK_ITER` is an internal switch (for tests: the same process
seeded both ways must get the same entity id).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, NamedTuple

from ..errors import EbpfSensorError
from ..host import features
from . import _procfs
from ._table import ProcessTable

if TYPE_CHECKING:
    from ..sources.ebpf.objects import LoadedObject

__all__ = ["USE_TASK_ITER", "Seeding", "seed"]

log = logging.getLogger("ebpfsensor")

#: False: seed from /proc even where the task iterator works
USE_TASK_ITER = True


class Seeding(NamedTuple):
    """How the table was seeded.

    Attributes:
        source: ``task_iter`` or ``procfs``.
        processes: the processes in the snapshot.
        added: of which the table did not hold yet (the others it had
            learnt from their events already).
        from_proc: of which were read from /proc with the task iterator:
            /proc listed them, the iterator did not show them.
        reason: why the task iterator was not used ("" when it was).
        argv: where argv came from with the task iterator, when not from it.
        ms: how long the snapshot and the merge took.
    """

    source: str
    processes: int
    added: int
    from_proc: int
    reason: str
    argv: str
    ms: float

    def describe(self) -> str:
        """One line for stats and health."""
        if self.source == "procfs":
            return f"seeded by /proc scan ({self.processes} processes; {self.reason})"
        notes = [f"{self.processes} processes"]
        if self.argv:
            notes.append(self.argv)
        if self.from_proc:
            notes.append(f"{self.from_proc} only /proc listed")
        return f"seeded by task iterator ({'; '.join(notes)})"


def _why_not(ebpf: bool, provider: str) -> str:
    if not USE_TASK_ITER:
        return "the task iterator is switched off (ebpfsensor.process._seed.USE_TASK_ITER)"
    if not ebpf:
        return f"eBPF does not run ({provider} supplies the process events): no BPF program is loaded"
    status = features.task_iter()
    return "" if status.works else f"{status.name} ({status.min_kernel}) unavailable: {status.detail}"


def seed(
    table: ProcessTable,
    *,
    ebpf: bool,
    provider: str = "ebpf",
    btf_path: str | None = None,
    task_iter: LoadedObject | None = None,
) -> Seeding:
    """Seed table with the processes running now; sets ``table.seeded``.

    Args:
        table: the table, its sources attached.
        ebpf: eBPF runs (the task iterator may be loaded).
        provider: the source of the process events, for the reason given
            when eBPF does not run.
        btf_path: ``Config.btf_path``.
        task_iter: the task iterator loaded already (the eBPF source loads
            it beside its objects), which this then owns and closes.
    """
    t0 = time.perf_counter()
    reason = _why_not(ebpf, provider)
    if reason and task_iter is not None:
        task_iter.close()
    if not reason:
        # imported here: it loads the extension's BPF machinery, which the
        # process connector's fallback has no use for
        from ._taskiter import read_records, snapshots

        try:
            got = read_records(btf_path, task_iter)
            snaps, argv_from_proc = snapshots(got.data)
        except (EbpfSensorError, OSError, ValueError) as exc:
            reason = f"the task iterator failed: {exc}"
            log.warning("process table seeded from /proc: %s", reason)
        else:
            # what /proc lists and the iterator did not show: a process it
            # passed before it started, or one the host hides from BPF
            extra = _procfs.snapshot(set(_procfs.pids()) - snaps.keys())
            snaps.update(extra)
            table.procfs_reads += len(extra) + argv_from_proc
            added = table.merge(snaps)
            argv = ""
            if got.variant != "iter_s":
                why = "; ".join(got.failures) or "not loaded"
                argv = f"argv from /proc: the sleepable iterator (bpf_copy_from_user_task, 5.18) did not load: {why}"
            done = Seeding("task_iter", len(snaps), added, len(extra), "", argv, _ms(t0))
            table.seeded = done.describe()
            log.info("process table %s in %.1f ms", table.seeded, done.ms)
            return done
    snaps = _procfs.snapshot()
    table.procfs_reads += len(snaps)
    added = table.merge(snaps)
    done = Seeding("procfs", len(snaps), added, 0, reason, "", _ms(t0))
    table.seeded = done.describe()
    log.info("process table %s in %.1f ms", table.seeded, done.ms)
    return done


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3
