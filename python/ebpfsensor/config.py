# SPDX-License-Identifier: Apache-2.0
"""Config: the sensor's settings, a msgspec Struct."""

from __future__ import annotations

import msgspec

from .errors import ConfigError
from .events import KINDS
from .exclusions import Exclusion
from .sources import PROVIDERS, VARIANT_ORDER

__all__ = ["Config"]

_PAGE = 4096
# the kernel takes ring sizes up to 2 GiB; more than 1 GiB of locked memory
# per ring is a typo, not a setting, and would fail at load
_MAX_RING = 1 << 30
# the consumer allocates this once; a batch never needs more than a ring
_MAX_BATCH = 1 << 30


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sensor settings; every field has a working default.

    Attributes:
        kinds: event kinds to collect (``"process_exec"``, ...); None for all.
            A kind not collected has no program attached for it.
        report_threads: also report thread creation and thread exits.
        lifecycle_ring_bytes: size of the process lifecycle ring (a power of
            two, at least one page).
        activity_ring_bytes: size of the ring of all other events.
        batch_bytes: the consumer's batch buffer.
        max_latency_ms: the longest a record waits in a ring before the
            consumer drains it (the consumer polls at this interval; a ring
            more than ``wakeup_bytes`` full wakes it at once).
        wakeup_bytes: ring fill level that forces an immediate wakeup.
        btf_path: kernel BTF file for kernels without /sys/kernel/btf/vmlinux.
        hook_variants: the hook variants allowed (``lsm``, ``fentry``, ``btf``,
            ``raw``, ``tp``, ``kprobe``); None for all, best first.
        exclusions: rules installed at start (see ebpfsensor.exclusions).
        provider: "auto" (eBPF where the kernel supports it and is not
            deny-listed, else the process connector), "ebpf" (eBPF even on
            kernels below the support matrix's minimums; never on
            deny-listed ones), "audit" (no eBPF: kernel audit with rules of
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
        stash_entries: how many threads may be inside monitored file and
            network syscalls at once before the oldest calls' arguments
            are evicted (those calls are then counted as
            ``KindStats.unmatched``, not reported); one small entry each.
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
    hook_variants: frozenset[str] | None = None
    exclusions: tuple[Exclusion, ...] = ()
    provider: str = "auto"
    fail_closed: bool = False
    log_file: str | None = "/var/log/ebpfsensor/ebpfsensor.log"
    file_dedup_ms: int = 0
    stash_entries: int = 16384
    audit_rate_limit: int = 100_000
    audit_backlog_limit: int = 8192

    def __post_init__(self) -> None:
        if self.kinds is not None:
            unknown = sorted(set(self.kinds) - set(KINDS))
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
        if not 64 <= self.stash_entries <= 1 << 20:
            raise ConfigError(f"stash_entries: {self.stash_entries} is outside 64..{1 << 20}")
        if not 0 <= self.audit_rate_limit <= 10_000_000:
            raise ConfigError(f"audit_rate_limit: {self.audit_rate_limit} is outside 0..10000000 (0: no cap)")
        if not 64 <= self.audit_backlog_limit <= 1 << 20:
            raise ConfigError(f"audit_backlog_limit: {self.audit_backlog_limit} is outside 64..{1 << 20}")
        if not 256 << 10 <= self.batch_bytes <= _MAX_BATCH:
            raise ConfigError(f"batch_bytes: {self.batch_bytes} is outside {256 << 10}..{_MAX_BATCH}")

        if self.provider == "fallback":
            # configuration files written for earlier releases name proc_connector "fallback"
            msgspec.structs.force_setattr(self, "provider", "proc_connector")
        choices = ("auto", *PROVIDERS)
        if self.provider not in choices:
            raise ConfigError(f"provider: {self.provider!r} is not one of {', '.join(choices)}")
        if self.hook_variants is not None:
            bad = sorted(set(self.hook_variants) - set(VARIANT_ORDER))
            if bad or not self.hook_variants:
                raise ConfigError(f"hook_variants: {bad or 'empty'} not among {', '.join(VARIANT_ORDER)}")

    @property
    def enabled_kinds(self) -> frozenset[str]:
        """The kinds to collect, with None resolved to all."""
        return frozenset(KINDS) if self.kinds is None else self.kinds
