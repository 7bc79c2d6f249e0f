# SPDX-License-Identifier: Apache-2.0
"""Config: the sensor's settings, a msgspec Struct."""

from __future__ import annotations

import msgspec

from .errors import ConfigError
from .events import KINDS
from .events._kinds import MARKER_KINDS
from .exclusions import ExcludeSelf, Exclusion
from .host.btf import DEFAULT_BTF_DIR
from .sources import PROVIDERS, VARIANT_ORDER
from .watched import check_patterns

__all__ = ["Config"]

_PAGE = 4096
# the kernel takes ring sizes up to 2 GiB; more than 1 GiB of locked memory
# per ring is a typo, not a setting, and would fail at load
_MAX_RING = 1 << 30
# the consumer allocates this once; a batch never needs more than a ring
_MAX_BATCH = 1 << 30
# the executable digests (process._hash.ALGORITHMS)
_HASHES = ("sha256", "sha1", "md5")


#: Config.transport's choices
TRANSPORTS = ("auto", "ring", "perf")
#: Config.v419_objects's choices
V419_OBJECTS = ("auto", "always", "never")
#: Config.read_opens's choices
READ_OPENS = ("watched", "all")


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sensor settings; every field has a working default.

    Attributes:
        kinds: event kinds to collect (``"process_exec"``, ...); None for all.
            A kind not collected has no program attached for it. ``"loss"``
            (the sensor's loss markers) comes with None, or when named.
        report_threads: also report thread creation and thread exits.
        lifecycle_ring_bytes: size of the process lifecycle ring (a power of
            two, at least one page).
        activity_ring_bytes: size of the ring of all other events.
        batch_bytes: the consumer's batch buffer.
        max_latency_ms: the longest a record waits in a ring before the
            consumer drains it (the consumer polls at this interval; a ring
            more than ``wakeup_bytes`` full wakes it at once).
        wakeup_bytes: ring fill level that forces an immediate wakeup.
        btf_path: the BTF file to relocate against, instead of searching
            (for kernels without /sys/kernel/btf/vmlinux).
        btf_dir: where kernels without /sys/kernel/btf/vmlinux find their
            BTF file: ``<release>.btf``, or BTFHub's
            ``<ID>/<VERSION_ID>/<arch>/<release>.btf[.tar.xz]``. Files and
            directories here must be root's and not writable by group or
            others. The whole search: docs/kernels.md, "External BTF".
        transport: how records leave the kernel: "auto" (BPF ring buffers
            where the kernel has them, 5.8, and its own BTF, else perf event
            arrays), "ring"
            or "perf" (the objects built for kernels without ring buffers;
            per CPU buffers of the ring sizes divided among the CPUs).
        v419_objects: on the perf transport, whether objects that have a
            build for verifiers before 5.3 (``process.v419.bpf.o``: no
            global data, no loops, 4096 instructions a program) load it:
            "auto" where the kernel's verifier refuses global data (5.2) or
            bounded loops (5.3), both probed; "always" (with
            ``transport="perf"``) or "never".
        hook_variants: the hook variants allowed (``lsm``, ``fentry``, ``btf``,
            ``raw``, ``tp``, ``kprobe``); None for all, best first.
        exclusions: rules installed at start (see ebpfsensor.exclusions).
        exclude_self: leave out the events of the sensor's own process,
            every thread of it (its reads of /proc, its sockets to an
            exporter, its bpf() calls), which would otherwise feed back into
            the stream: an ``ExcludeSelf`` rule installed before the others
            and listed with them. The processes the sensor starts are
            reported. False reports the sensor's own events too.
        provider: "auto" (eBPF where the kernel supports it and is not
            deny-listed and eBPF starts, else the audit provider where audit
            can run, else the process connector), "ebpf" (eBPF even on
            kernels below the support matrix's minimums; never on
            deny-listed ones, where the process connector runs), "audit"
            (no eBPF: kernel audit with rules of
            its own for every syscall kind, the process connector beside it
            for fork and exit; the process connector alone where audit
            cannot run) or "proc_connector" (the netlink process connector,
            no eBPF). "fallback" is read as "proc_connector".
        fail_closed: refuse to start rather than run without eBPF.
        log_file: rotating log file of the ``ebpfsensor`` logger; None for none.
        file_dedup_ms: per-process open dedup window: a process opening the
            same file with the same access again within this many ms is
            counted (``KindStats.deduplicated``), not reported; failed
            opens are always reported. 0 (default) reports every open.
        read_opens: which read-only opens are reported: "watched" (the
            default) reports an open with write intent (O_WRONLY, O_RDWR,
            O_CREAT, O_TRUNC) always, and a read-only one only when the file
            it opened is watched (``ebpfsensor.watched.DEFAULT_WATCHED``
            and ``watched_files``, matched by identity) or the kernel
            refused it (EACCES, EPERM); other read-only opens are counted
            (``KindStats.unwatched``), not reported. "all" reports every
            open.
        watched_files: files watched besides the defaults: absolute paths
            or glob patterns (``/srv/app/secrets/*``); a path that does not
            exist yet is watched once it does (looked up again every
            second).
        stash_entries: how many threads may be inside monitored file and
            network syscalls at once before the oldest calls' arguments
            are evicted (those calls are then counted as
            ``KindStats.unmatched``, not reported); one small entry each.
        process_context: keep a process table (``Sensor.processes``) and
            put each event's process and parent on it (``event.process``,
            ``event.parent``), hash executables, and mark the processes
            alive when records are lost; False turns all of it off.
        process_table_entries: most processes the table holds (live, and
            exited ones in their grace period); beyond it the least
            recently active go, exited ones first (counted).
        process_grace_ms: how long an exited process stays in the table, so
            that its late events still find it.
        process_ancestry_depth: the longest ancestor chain
            ``Sensor.processes.ancestors()`` walks.
        hash_algorithms: executable digests to compute (``sha256``,
            ``sha1``, ``md5``); empty for none.
        hash_max_file_bytes: a larger executable is not hashed
            (``too_large``).
        hash_files_per_s: executables read per second, at most; beyond it
            a hash is refused (``budget``).
        hash_bytes_per_s: bytes read per second for hashes, at most.
        hash_cache_entries: hashes kept by file identity (device, inode,
            size, mtime, ctime).
        audit_rate_limit: the audit provider, while it is the audit daemon:
            the most records per second the kernel sends (AUDIT_SET
            rate_limit); above it the kernel drops records and counts them
            (``AuditProviderStats.kernel_lost``) rather than let audited
            syscalls wait for a consumer that cannot keep up. An event is
            about five records. 0 removes the cap. Beside an audit daemon
            the daemon's setting is left alone.
        audit_backlog_limit: the audit provider, while it is the audit
            daemon: the kernel's backlog of records waiting to be sent is
            raised to at least this (AUDIT_SET backlog_limit).
    """

    kinds: frozenset[str] | None = None
    report_threads: bool = False
    lifecycle_ring_bytes: int = 4 << 20
    activity_ring_bytes: int = 16 << 20
    batch_bytes: int = 4 << 20
    max_latency_ms: int = 100
    wakeup_bytes: int = 256 << 10
    btf_path: str | None = None
    btf_dir: str = DEFAULT_BTF_DIR
    transport: str = "auto"
    v419_objects: str = "auto"
    hook_variants: frozenset[str] | None = None
    exclusions: tuple[Exclusion, ...] = ()
    exclude_self: bool = True
    provider: str = "auto"
    fail_closed: bool = False
    log_file: str | None = "/var/log/ebpfsensor/ebpfsensor.log"
    file_dedup_ms: int = 0
    read_opens: str = "watched"
    watched_files: tuple[str, ...] = ()
    stash_entries: int = 16384
    process_context: bool = True
    process_table_entries: int = 131072
    process_grace_ms: int = 30_000
    process_ancestry_depth: int = 64
    hash_algorithms: tuple[str, ...] = ("sha256",)
    hash_max_file_bytes: int = 128 << 20
    hash_files_per_s: int = 100
    hash_bytes_per_s: int = 256 << 20
    hash_cache_entries: int = 8192
    audit_rate_limit: int = 100_000
    audit_backlog_limit: int = 8192

    def __post_init__(self) -> None:
        if self.kinds is not None:
            if isinstance(self.kinds, str):
                raise ConfigError(f"kinds: a collection of kind names, not the string {self.kinds!r}")
            if not isinstance(self.kinds, frozenset):
                # a list or set given in code: kept as the frozenset the field is
                msgspec.structs.force_setattr(self, "kinds", frozenset(self.kinds))
            unknown = sorted(set(self.kinds) - set(KINDS) - set(MARKER_KINDS))
            if unknown:
                raise ConfigError(
                    f"kinds: unknown event kind(s) {', '.join(unknown)}; known: {', '.join(sorted(KINDS))}"
                )
        for name in ("lifecycle_ring_bytes", "activity_ring_bytes"):
            size = getattr(self, name)
            if not _PAGE <= size <= _MAX_RING or size & (size - 1):
                raise ConfigError(
                    f"{name}: {size} is not a power of two from {_PAGE} to {_MAX_RING}; use e.g. {4 << 20}"
                )
        ring = min(self.lifecycle_ring_bytes, self.activity_ring_bytes)
        if not 1 <= self.max_latency_ms <= 60_000:
            raise ConfigError(f"max_latency_ms: {self.max_latency_ms} is outside 1..60000")
        if not _PAGE <= self.wakeup_bytes <= ring:
            raise ConfigError(
                f"wakeup_bytes: {self.wakeup_bytes} must be between {_PAGE} and the smaller ring size ({ring})"
            )
        if not 0 <= self.file_dedup_ms <= 3_600_000:
            raise ConfigError(f"file_dedup_ms: {self.file_dedup_ms} is outside 0..3600000 (0 turns dedup off)")
        if self.read_opens not in READ_OPENS:
            raise ConfigError(
                f"read_opens: {self.read_opens!r} is not one of {', '.join(READ_OPENS)} "
                "(watched: read-only opens of watched files only; all: every open)"
            )
        check_patterns(self.watched_files)
        if not 64 <= self.stash_entries <= 1 << 20:
            raise ConfigError(f"stash_entries: {self.stash_entries} is outside 64..{1 << 20}")
        if not 0 <= self.audit_rate_limit <= 10_000_000:
            raise ConfigError(f"audit_rate_limit: {self.audit_rate_limit} is outside 0..10000000 (0: no cap)")
        if not 64 <= self.audit_backlog_limit <= 1 << 20:
            raise ConfigError(f"audit_backlog_limit: {self.audit_backlog_limit} is outside 64..{1 << 20}")
        if not 256 << 10 <= self.batch_bytes <= _MAX_BATCH:
            raise ConfigError(f"batch_bytes: {self.batch_bytes} is outside {256 << 10}..{_MAX_BATCH}")
        self._check_process_context()
        self._check_btf()

        if self.provider == "fallback":
            # configuration files written for earlier releases name proc_connector "fallback"
            msgspec.structs.force_setattr(self, "provider", "proc_connector")
        choices = ("auto", *PROVIDERS)
        if self.provider not in choices:
            raise ConfigError(f"provider: {self.provider!r} is not one of {', '.join(choices)}")
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"transport: {self.transport!r} is not one of {', '.join(TRANSPORTS)}")
        if self.v419_objects not in V419_OBJECTS:
            raise ConfigError(f"v419_objects: {self.v419_objects!r} is not one of {', '.join(V419_OBJECTS)}")
        if self.v419_objects == "always" and self.transport != "perf":
            raise ConfigError('v419_objects: "always" needs transport="perf" (the v419 builds use perf event arrays)')
        if self.hook_variants is not None:
            bad = sorted(set(self.hook_variants) - set(VARIANT_ORDER))
            if bad or not self.hook_variants:
                raise ConfigError(f"hook_variants: {bad or 'empty'} not among {', '.join(VARIANT_ORDER)}")

    def _check_process_context(self) -> None:
        for name, low, high in (
            ("process_table_entries", 64, 1 << 24),
            ("process_grace_ms", 0, 3_600_000),
            ("process_ancestry_depth", 1, 4096),
            ("hash_max_file_bytes", 0, 1 << 40),
            ("hash_files_per_s", 1, 1_000_000),
            ("hash_bytes_per_s", 1 << 20, 1 << 40),
            ("hash_cache_entries", 16, 1 << 24),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"{name}: {value} is outside {low}..{high}")
        bad = sorted(set(self.hash_algorithms) - set(_HASHES))
        if bad:
            raise ConfigError(f"hash_algorithms: {', '.join(bad)} not among {', '.join(_HASHES)} (empty: no hashes)")

    def _check_btf(self) -> None:
        if self.btf_path is not None and (not self.btf_path or "\0" in self.btf_path):
            raise ConfigError(f"btf_path: {self.btf_path!r} is not a file name; null (None) searches for the BTF")
        if not self.btf_dir.startswith("/") or "\0" in self.btf_dir:
            raise ConfigError(f"btf_dir: {self.btf_dir!r} is not an absolute path; the default is {DEFAULT_BTF_DIR}")

    @property
    def enabled_kinds(self) -> frozenset[str]:
        """The kinds to collect, with None resolved to all."""
        return frozenset(KINDS) if self.kinds is None else self.kinds

    @property
    def active_exclusions(self) -> tuple[Exclusion, ...]:
        """The rules to install: ``exclusions``, after ``ExcludeSelf()`` when
        ``exclude_self`` is set."""
        if not self.exclude_self or ExcludeSelf() in self.exclusions:
            return self.exclusions
        return (ExcludeSelf(), *self.exclusions)

    @property
    def loss_markers(self) -> bool:
        """Whether the stream carries loss markers (kind ``loss``)."""
        return self.kinds is None or "loss" in self.kinds
