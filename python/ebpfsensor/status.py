# SPDX-License-Identifier: Apache-2.0
"""What a running sensor reports about itself: counters, health, hooks."""

from __future__ import annotations

import msgspec

from .exclusions import Exclusion, RuleStatus
from .host.capabilities import Capabilities

__all__ = [
    "AuditKindStats",
    "AuditProviderStats",
    "AuditSourceStats",
    "HashStats",
    "Health",
    "HookInfo",
    "KindHealth",
    "KindStats",
    "ProcConnectorStats",
    "ProcessContextHealth",
    "ProcessTableStats",
    "SensorStats",
    "SkippedExclusion",
]


class AuditSourceStats(msgspec.Struct, frozen=True):
    """Counters since start: ``delivered`` events, ``filtered`` login records
    not delivered (types not asked for, successful USER_AUTH), ``overruns``
    of the receive buffer (ENOBUFS: at least one record lost each time),
    ``undecodable`` records."""

    delivered: int
    filtered: int
    overruns: int
    undecodable: int

    @property
    def dropped(self) -> int:
        """Records lost: each overrun lost at least one."""
        return self.overruns


class AuditKindStats(msgspec.Struct, frozen=True):
    """Counters of one event kind of the audit provider since it started.

    Attributes:
        delivered: events returned.
        filtered: events suppressed on purpose, as the eBPF path suppresses
            them (failed execs, signals to the caller's own process, ptrace
            reads, read-only opens the open policy does not report).
        excluded: events dropped by an exclusion rule in user space (those
            excluded by the audit rules in the kernel are not counted).
    """

    delivered: int
    filtered: int
    excluded: int


class AuditProviderStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the audit provider since it started.

    Attributes:
        mode: ``receiver`` (registered as the audit daemon) or ``multicast``
            (reading beside an audit daemon); "" when stopped.
        kinds: per event kind, what was delivered, filtered and excluded.
        delivered: events returned.
        filtered: events and records suppressed on purpose (see
            :class:`AuditKindStats`), and records of syscalls not asked for
            (an administrator's rules).
        excluded: events dropped by an exclusion rule in user space.
        kernel_lost: records the kernel dropped since start (its ``lost``
            counter: rate limit, full backlog, no memory; kernel-wide, so
            beside an audit daemon the daemon's losses count too).
        serial_gaps: events whose serial number never arrived: lost
            between the kernel and this provider.
        overruns: receive buffer overflows (ENOBUFS), each losing at least
            one record.
        incomplete: events delivered without their end-of-event record
            (after waiting for it; some of their records may be missing).
        undecodable: records or events that could not be read.
        backlog_wait_jiffies: how long, in kernel jiffies, audited tasks
            waited because the kernel's backlog was full (0 before Linux 5.10).
    """

    mode: str
    kinds: dict[str, AuditKindStats]
    delivered: int
    filtered: int
    excluded: int
    kernel_lost: int
    serial_gaps: int
    overruns: int
    incomplete: int
    undecodable: int
    backlog_wait_jiffies: int

    @property
    def dropped(self) -> int:
        """Losses: the largest of the kernel's count, the serial gaps and the
        overruns (they overlap: a record the kernel dropped leaves a gap)."""
        return max(self.kernel_lost, self.serial_gaps, self.overruns)


class ProcConnectorStats(msgspec.Struct, frozen=True):
    """Counters since start.

    ``delivered`` events were returned; ``filtered`` were thread forks and
    exits suppressed because threads are not reported; ``lost`` messages are
    missing from the kernel's sequence numbers; ``overruns`` counts receive
    buffer overflows (ENOBUFS), each of which lost at least one message;
    ``undecodable`` messages were malformed; ``incomplete`` events were
    delivered with neutral values because /proc no longer had the process.
    """

    delivered: int
    filtered: int
    lost: int
    overruns: int
    undecodable: int
    incomplete: int

    @property
    def dropped(self) -> int:
        """Messages lost: gaps count them exactly, and each overrun lost at least one."""
        return max(self.lost, self.overruns)


class KindStats(msgspec.Struct, frozen=True):
    """Counters of one event kind since the sensor started.

    ``produced`` records were submitted by the kernel; ``delivered`` reached
    the caller; ``pending`` are in a ring, not yet drained. ``dropped`` were
    lost because a ring was full, ``truncated`` were delivered with a
    truncated field, ``filtered`` were suppressed on purpose (threads when
    not reported), ``deduplicated`` were suppressed as repeats within the
    dedup window (file opens, ``Config.file_dedup_ms``). ``unmatched``
    syscalls ended without the arguments stashed at their start: they were
    in flight when the sensor started, or their stash entry was evicted
    (more threads inside monitored syscalls at once than the stash holds);
    their events are lost. ``unwatched`` read-only opens were counted,
    not reported, by the open policy (``Config.read_opens``): the file they
    opened is not watched (``file_open`` only).
    """

    produced: int
    delivered: int
    pending: int
    dropped: int
    truncated: int
    filtered: int
    deduplicated: int = 0
    unmatched: int = 0
    unwatched: int = 0


class SensorStats(msgspec.Struct, frozen=True):
    """Counters of a running sensor; ``lost`` = dropped + undecodable.

    ``kinds`` has the eBPF kinds' kernel counters; ``proc_connector`` and ``audit``
    the counters of the process connector and the audit login source when
    they run, ``audit_provider`` those of the audit provider; ``provider``
    says which supplies the syscall events. ``perf_lost``: on the perf-buffer
    tier, the records the kernel reported lost per array (lifecycle,
    activity), each also in ``dropped`` under its kind; empty with ring
    buffers.
    """

    kinds: dict[str, KindStats]
    delivered: int
    dropped: int
    undecodable: int
    lost: int
    provider: str = "none"
    proc_connector: ProcConnectorStats | None = None
    audit: AuditSourceStats | None = None
    audit_provider: AuditProviderStats | None = None
    processes: ProcessTableStats | None = None
    perf_lost: list[int] = msgspec.field(default_factory=list)


class KindHealth(msgspec.Struct, frozen=True):
    """Whether a kind is live, from which source (``ebpf:<variant>``,
    ``proc_connector``, ``audit``), or why not."""

    live: bool
    source: str
    reason: str


class SkippedExclusion(msgspec.Struct, frozen=True):
    """A configured exclusion that could not be installed, and why (its
    pid, executable or cgroup is gone, or the rule is refused)."""

    rule: Exclusion
    reason: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The health report: which supplementary event subsystem runs and why,
    what each kind gets, the counters, the exclusions in force
    (``exclusions``: the sensor's own process first while
    ``Config.exclude_self`` is set; hits are counted by the eBPF provider
    only) and the configured exclusions that could not be installed (a
    rule that no longer resolves never stops the sensor: it is skipped,
    logged and listed here).

    ``transport`` is how eBPF records leave the kernel: ``ring`` (BPF ring
    buffers, 5.8), ``perf`` (perf event arrays, on older kernels), or empty
    without eBPF. Kinds the perf objects cannot serve on a kernel (their
    hooks refused) come from the audit provider beside it where it runs:
    their ``kinds`` entry names the source.
    """

    supplementary_events_subsystem: str
    ebpf: bool
    reason: str
    kinds: dict[str, KindHealth]
    counters: SensorStats
    capabilities: Capabilities
    log_file: str | None
    exclusions_skipped: list[SkippedExclusion] = msgspec.field(default_factory=list)
    process_context: ProcessContextHealth | None = None
    exclusions: list[RuleStatus] = msgspec.field(default_factory=list)
    transport: str = ""


class HookInfo(msgspec.Struct, frozen=True):
    """Which variant of a hook runs, or why none does, the object file its
    programs come from (``process.v419.bpf.o``: the build for verifiers
    before 5.3), and the program that runs it (the name ``bpftool prog``
    shows; the exit hooks of one operation's calls share one program, and
    so do the open's hooks under ``fentry``)."""

    hook: str
    variant: str | None
    failures: list[str]
    object: str = ""
    program: str | None = None


class HashStats(msgspec.Struct, frozen=True):
    """The executable hasher's counters since start.

    ``hashed`` files were read and hashed (``bytes`` in all), ``cached``
    requests were answered from the cache of hashes by file identity,
    ``refused`` counts the requests left without a hash, per reason
    (``too_large``, ``budget``, ``gone``, ``replaced``, ``memfd``,
    ``unreadable``); ``cache_entries`` are held (at most
    ``Config.hash_cache_entries``), ``cache_evictions`` were dropped to stay
    within it, ``queued`` files wait for the worker thread.
    """

    hashed: int
    bytes: int
    cached: int
    refused: dict[str, int]
    cache_entries: int
    cache_evictions: int
    queued: int


class ProcessTableStats(msgspec.Struct, frozen=True):
    """The process table's counters.

    ``tracked`` processes are held (``live`` ones and ``exited`` ones kept
    for their grace period), at most ``limit``; ``expired`` exited ones were
    dropped after the grace period, ``evicted_exited`` and ``evicted_live``
    to stay within the limit (least recently active first). ``misses`` are
    events the C cache had no context for (handled in Python), of which
    ``unknown`` found none (the process was gone before it could be read);
    ``procfs_reads`` processes were read from /proc (the start-up snapshot
    included), ``reparented`` processes changed parent. ``loss_markers``
    losses were found, ``marked`` process states marked
    ``context_incomplete`` for them. ``cache_bytes`` is the C cache's size;
    ``hashes`` the hasher's counters (None when hashing is off); ``errors``
    counts the batches whose context failed (logged with the cause: their
    events were delivered without it). ``seeded`` says how the table learnt
    the processes running at start: "seeded by task iterator (N processes)"
    or "seeded by /proc scan (N processes; why not by the iterator)".
    """

    tracked: int
    live: int
    exited: int
    limit: int
    expired: int
    evicted_exited: int
    evicted_live: int
    misses: int
    unknown: int
    procfs_reads: int
    reparented: int
    loss_markers: int
    marked: int
    cache_bytes: int
    hashes: HashStats | None = None
    errors: int = 0
    seeded: str = ""


class ProcessContextHealth(msgspec.Struct, frozen=True):
    """Whether events carry their process context, and what is missing.

    ``live``: the process table runs (fed by ``source``); ``native``: the
    context is put on events in C (else from Python: slower, the same
    events); ``unavailable`` lists what this provider cannot give, each
    with the reason; ``seeded``, how the processes running at start were
    learnt (see ``ProcessTableStats.seeded``).
    """

    live: bool
    source: str
    native: bool
    unavailable: list[str]
    seeded: str = ""
