# SPDX-License-Identifier: Apache-2.0
"""Sensor: loads the probes, drains the rings, hands out Events."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import _logfile, support
from ._audit import AuditLoginSource, AuditSourceStats
from ._ffi import check_ret, ffi, lib
from ._mounts import ensure_tracefs
from ._proc_connector import ProcConnectorProvider, ProcConnectorStats
from .config import Config
from .errors import ConfigError, EbpfSensorError, NotSupportedError, PrivilegeError
from .events import BPF_KINDS, EVENT_CLASSES, KINDS, Event
from .exclusions import Exclusion, ExclusionTable, RuleStatus
from .exclusions import resolve as resolve_exclusion
from .health import Capabilities
from .objects import BpfObject, HookStatus, LoadedObject, detach_all
from .ringbuf import RingBuffer

if TYPE_CHECKING:
    from .diagnostic import EbpfStatistics

__all__ = ["Health", "HookInfo", "KindHealth", "KindStats", "Sensor", "SensorStats", "Subscription"]

log = logging.getLogger("ebpfsensor")


def _file_hooks(*syscalls: str) -> tuple[str, ...]:
    """The hooks of file.bpf.o for these syscalls: an enter/exit pair each.
    Calls an architecture lacks (arm64 has no open, unlink, ...) have no
    program in its object and are left out when loading."""
    return tuple(f"file_{name}_{side}" for name in syscalls for side in ("enter", "exit"))


_OPEN_HOOKS = _file_hooks("open", "creat", "openat", "openat2")

# hooks loaded whatever kinds are collected: they keep exclusion state (and
# the kinds they produce are switched on and off in kind_enabled)
_ALWAYS: dict[str, set[str]] = {"process": {"exec", "fork", "exit"}}
# which object and hooks produce each kind; a hook that serves several kinds
# is loaded when any of them is enabled (the program checks kind_enabled)
_KIND_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "process_exec": ("process", ("exec",)),
    "process_fork": ("process", ("fork",)),
    "process_exit": ("process", ("exit",)),
    "file_open": ("file", _OPEN_HOOKS),
    "file_create": ("file", (*_OPEN_HOOKS, *_file_hooks("mknod", "mknodat"))),
    "file_unlink": ("file", _file_hooks("unlink", "unlinkat", "rmdir")),
    "dir_create": ("file", _file_hooks("mkdir", "mkdirat")),
    # rename_target tells whether a rename replaced a file (lsm/fentry/kprobe)
    "file_rename": ("file", (*_file_hooks("rename", "renameat", "renameat2"), "rename_target")),
    "file_chmod": ("file", _file_hooks("chmod", "fchmod", "fchmodat", "fchmodat2")),
    "file_chown": ("file", _file_hooks("chown", "lchown", "fchown", "fchownat")),
    "file_link": ("file", _file_hooks("link", "linkat")),
    "file_symlink": ("file", _file_hooks("symlink", "symlinkat")),
    "net_connect": ("net", ("connect_enter", "connect_exit")),
    "net_accept": ("net", ("accept_enter", "accept_exit", "accept4_enter", "accept4_exit")),
    "net_bind": ("net", ("bind_enter", "bind_exit")),
    "net_listen": ("net", ("listen_enter", "listen_exit")),
    "cred_change": (
        "priv",
        tuple(
            f"{call}_{end}"
            for call in (
                "setuid",
                "setgid",
                "setreuid",
                "setregid",
                "setresuid",
                "setresgid",
                "setfsuid",
                "setfsgid",
                "capset",
            )
            for end in ("enter", "exit")
        ),
    ),
    "kill": ("priv", ("kill_enter", "kill_exit", "tkill_enter", "tkill_exit", "tgkill_enter", "tgkill_exit")),
    "setsid": ("priv", ("setsid_enter", "setsid_exit")),
    "ptrace": ("priv", ("ptrace_enter", "ptrace_exit")),
    "memfd_create": ("priv", ("memfd_create_enter", "memfd_create_exit")),
    "bpf_call": ("priv", ("bpf_enter", "bpf_exit")),
    "module_load": (
        "priv",
        ("init_module_enter", "init_module_exit", "finit_module_enter", "finit_module_exit", "module_load"),
    ),
    "mount": ("priv", ("mount_enter", "mount_exit")),
    "umount": ("priv", ("umount_enter", "umount_exit")),
}
# maps every object shares: the first object loaded creates them
_EXCLUSION_MAPS = (
    "excl_active",
    "excluded_tgids",
    "excl_exe",
    "excl_comm",
    "excl_cgroup",
    "excl_uid",
    "excl_path",
    "excl_hits",
)
_SHARED_MAPS = ("lifecycle_events", "activity_events", "kind_stats", "kind_enabled", *_EXCLUSION_MAPS)
_BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
_STAT_FIELDS = ("produced", "dropped", "truncated", "filtered", "deduplicated")


class KindStats(msgspec.Struct, frozen=True):
    """Counters of one event kind since the sensor started.

    ``produced`` records were submitted by the kernel; ``delivered`` reached
    the caller; ``pending`` are in a ring, not yet drained. ``dropped`` were
    lost because a ring was full, ``truncated`` were delivered with a
    truncated field, ``filtered`` were suppressed on purpose (threads when
    not reported), ``deduplicated`` were suppressed as repeats within the
    dedup window (file opens, ``Config.file_dedup_ms``).
    """

    produced: int
    delivered: int
    pending: int
    dropped: int
    truncated: int
    filtered: int
    deduplicated: int = 0


class SensorStats(msgspec.Struct, frozen=True):
    """Counters of a running sensor; ``lost`` = dropped + undecodable.

    ``kinds`` has the eBPF kinds' kernel counters; ``fallback`` and ``audit``
    the counters of the process connector and the audit login source when
    they run; ``provider`` says which supplies process events.
    """

    kinds: dict[str, KindStats]
    delivered: int
    dropped: int
    undecodable: int
    lost: int
    provider: str = "none"
    fallback: ProcConnectorStats | None = None
    audit: AuditSourceStats | None = None


class KindHealth(msgspec.Struct, frozen=True):
    """Whether a kind is live, from which source (``ebpf:<variant>``,
    ``proc_connector``, ``audit``), or why not."""

    live: bool
    source: str
    reason: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The health report: which supplementary event subsystem runs and why."""

    supplementary_events_subsystem: str
    ebpf: bool
    reason: str
    kinds: dict[str, KindHealth]
    counters: SensorStats
    capabilities: Capabilities
    log_file: str | None


class HookInfo(msgspec.Struct, frozen=True):
    """Which variant of a hook runs, or why none does."""

    hook: str
    variant: str | None
    failures: list[str]


class Subscription:
    """A callback registered with :meth:`Sensor.subscribe`."""

    def __init__(self, sensor: Sensor, callback: Callable[[Event], Any], kinds: frozenset[type] | None) -> None:
        self._sensor = sensor
        self.callback = callback
        self.classes = kinds

    def cancel(self) -> None:
        """Stop receiving events; idempotent."""
        if self in self._sensor._subs:
            self._sensor._subs.remove(self)


class Sensor:
    """The eBPF event sensor.

    Args:
        config: settings; defaults when omitted.
        **overrides: Config fields to override, e.g. ``kinds={"process_exec"}``.

    Use as a context manager (or call :meth:`start` and :meth:`close`). Events
    come from :meth:`events`, ``async for``, :meth:`poll`, or callbacks
    registered with :meth:`subscribe` and driven by any of those or by
    :meth:`run`. A Sensor is used from one thread at a time.

    Raises (from start):
        PrivilegeError: not allowed to load BPF programs.
        NotSupportedError: the kernel lacks BPF ring buffers or BTF.
        LibbpfError: the programs could not be loaded.
    """

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        self._objects: list[LoadedObject] = []
        self._ring: RingBuffer | None = None
        self._subs: list[Subscription] = []
        self._stats_fd = -1
        self._hooks: dict[str, HookStatus] = {}
        self._exclusions: ExclusionTable | None = None
        self._fallback: ProcConnectorProvider | None = None
        self._audit: AuditLoginSource | None = None
        self._provider = "none"
        self._provider_reason = ""
        self._unavailable: dict[str, str] = {}
        self._log_file: str | None = None
        self._started = False
        if overrides:
            for key in ("kinds", "hook_variants"):
                if overrides.get(key) is not None:
                    overrides[key] = frozenset(overrides[key])
            config = msgspec.structs.replace(config or Config(), **overrides)
        self.config = config or Config()

    @classmethod
    def from_managed_config(cls, path: str | None = None) -> Sensor:
        """A sensor configured by the managed configuration file.

        ``features.ebpfSupplementaryEventProvider: "disabled"`` selects the
        fallback provider; ``provider.failMode: "fail-closed"`` refuses to
        run without eBPF.

        Raises:
            ConfigError: the file cannot be used (it names the key and the fix).
        """
        from .managed_config import DEFAULT_PATH, load_managed_config

        managed = load_managed_config(path or DEFAULT_PATH)
        config = msgspec.structs.replace(
            managed.sensor,
            provider=managed.sensor.provider if managed.ebpf_enabled else "fallback",
            fail_closed=managed.fail_closed or managed.sensor.fail_closed,
        )
        return cls(config)

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> Sensor:
        """Load, attach and start consuming; idempotent."""
        if self._started:
            return self
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        cfg = self.config
        # invalid exclusions are a configuration error, whatever the provider
        for rule in cfg.exclusions:
            resolve_exclusion(rule)
        self._log_file = _logfile.enable(cfg.log_file)
        bpf_kinds = cfg.enabled_kinds & BPF_KINDS
        use_ebpf, why = self._choose_provider()
        if use_ebpf and bpf_kinds:
            try:
                self._start_ebpf(bpf_kinds)
                self._provider, self._provider_reason = "ebpf", why
            except (PrivilegeError, ConfigError):
                raise
            except EbpfSensorError as exc:
                self._close_ebpf()
                if cfg.fail_closed or cfg.provider == "ebpf":
                    raise
                use_ebpf, why = False, f"eBPF failed to start: {exc}"
                log.warning("switching to the fallback provider: %s", why)
        if not use_ebpf and bpf_kinds:
            if cfg.fail_closed:
                raise EbpfSensorError(f"eBPF is not used ({why}) and fail-closed is set: refusing to start")
            kinds = bpf_kinds & ProcConnectorProvider.available_kinds
            for kind in sorted(bpf_kinds - kinds):
                self._unavailable[kind] = "not provided without eBPF"
            self._fallback = ProcConnectorProvider(kinds, report_threads=cfg.report_threads).start()
            self._provider, self._provider_reason = "proc_connector", why
            log.warning("supplementary events from the netlink process connector, not eBPF: %s", why)
        if "user_login" in cfg.enabled_kinds:
            try:
                self._audit = AuditLoginSource().start()
            except (NotSupportedError, PrivilegeError) as exc:
                self._unavailable["user_login"] = str(exc)
                log.warning("login events unavailable: %s", exc)

    def _choose_provider(self) -> tuple[bool, str]:
        """eBPF or not, and why, before anything is loaded."""
        cfg = self.config
        if cfg.provider == "fallback":
            return False, "eBPF disabled by configuration"
        verdict = support.host_verdict()
        if verdict.denied:
            return False, verdict.reason
        if not verdict.supported and cfg.provider != "ebpf":
            return False, verdict.reason
        return True, verdict.reason or "eBPF supported"

    def _start_ebpf(self, kinds: frozenset[str]) -> None:
        cfg = self.config
        btf = cfg.btf_path
        if btf is None and not os.path.exists(_BTF_VMLINUX):
            raise NotSupportedError(
                "kernel BTF (/sys/kernel/btf/vmlinux)", "5.4", "set Config.btf_path to a BTF file for this kernel"
            )
        if btf is not None and not os.path.exists(btf):
            raise NotSupportedError("kernel BTF", "5.4", f"the BTF file {btf} does not exist")
        # feature probes answer "no" when the caller may not use bpf() at all
        fd = check_ret(lib.bpf_map_create(lib.BPF_MAP_TYPE_ARRAY, ffi.NULL, 4, 4, 1, ffi.NULL), "create", "a BPF map")
        os.close(fd)
        has_ring = check_ret(
            lib.libbpf_probe_bpf_map_type(lib.BPF_MAP_TYPE_RINGBUF, ffi.NULL), "probe", "BPF ring buffer"
        )
        if not has_ring:
            raise NotSupportedError("BPF ring buffer", "5.8")
        ensure_tracefs()
        wanted: dict[str, set[str]] = {name: set(hooks) for name, hooks in _ALWAYS.items()}
        for kind in sorted(kinds):
            obj_name, hooks = _KIND_SOURCES[kind]
            wanted.setdefault(obj_name, set()).update(hooks)
        shared: dict[str, int] = {}
        for obj_name, hooks in wanted.items():
            obj = BpfObject.packaged(obj_name)
            settings = {
                "cfg_wakeup_bytes": cfg.wakeup_bytes,
                "cfg_report_threads": int(cfg.report_threads),
                "cfg_file_dedup_ns": cfg.file_dedup_ms * 1_000_000,
            }
            loaded = obj.load(
                config={k: v for k, v in settings.items() if k in obj.rodata},
                shared_maps=shared,
                map_sizes={"lifecycle_events": cfg.lifecycle_ring_bytes, "activity_events": cfg.activity_ring_bytes},
                hooks=hooks,
                btf_path=btf,
                variants=cfg.hook_variants,
            )
            self._objects.append(loaded)
            self._hooks.update(loaded.hooks)
            for name in _SHARED_MAPS:
                if name not in shared:
                    shared[name] = loaded.map_fd(name)
        if not any(h.attached for h in self._hooks.values()):
            reasons = "; ".join(f"{h.hook}: {' / '.join(h.failures)}" for h in self._hooks.values())
            raise EbpfSensorError(f"no hook could be attached on this kernel: {reasons}")
        self._stats_fd = shared["kind_stats"]
        self._enable_kinds(shared["kind_enabled"], kinds)
        self._exclusions = ExclusionTable({name: shared[name] for name in _EXCLUSION_MAPS})
        for rule in cfg.exclusions:
            self._exclusions.add(rule)
        # lifecycle first: a batch drains it before the activity ring
        self._ring = RingBuffer([shared["lifecycle_events"], shared["activity_events"]], batch_bytes=cfg.batch_bytes)

    def _close_ebpf(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        detach_all(self._objects)
        for obj in reversed(self._objects):
            obj.close()
        self._objects = []
        self._exclusions = None
        self._hooks = {}
        self._stats_fd = -1

    @staticmethod
    def _enable_kinds(fd: int, kinds: frozenset[str]) -> None:
        key = ffi.new("uint32_t *")
        on = ffi.new("uint32_t *", 1)
        for kind in kinds:
            key[0] = int(KINDS[kind].event_type)
            check_ret(lib.bpf_map_update_elem(fd, key, on, 0), "enable", kind)

    def close(self) -> None:
        """Detach every program, free every map, close every source; idempotent."""
        self._close_ebpf()
        for src in (self._fallback, self._audit):
            if src is not None:
                src.close()
        self._fallback = self._audit = None
        self._started = False

    def __enter__(self) -> Sensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # --- events ------------------------------------------------------------------

    def _sources(self) -> list[Any]:
        sources = [src for src in (self._ring, self._fallback, self._audit) if src is not None]
        if not sources:
            raise EbpfSensorError("the sensor is not started: use `with Sensor() as s:` or call start()")
        return sources

    def _fds(self) -> list[int]:
        return [src.epoll_fd if src is self._ring else src.fileno() for src in self._sources()]

    def poll(self, timeout: float | None = 0.0) -> list[Event]:
        """Wait up to timeout seconds for events and return one batch.

        The batch is also passed to subscribers. None waits for at most the
        configured max_latency_ms.
        """
        sources = self._sources()
        seconds = self.config.max_latency_ms / 1000 if timeout is None else max(0.0, timeout)
        ring = self._ring
        if ring is not None and len(sources) == 1:
            batch: list[Event] = ring.poll(int(seconds * 1000))
        else:
            if seconds:
                select.select(self._fds(), [], [], seconds)
            batch = ring.poll(0) if ring is not None else []
            if self._fallback is not None:
                batch += self._fallback.poll(0)
            if self._audit is not None:
                batch += self._audit.poll(0)
        if batch and self._subs:
            self._dispatch(batch)
        return batch

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Iterate over events as they arrive.

        Args:
            timeout: stop after this many seconds without an event; None
                never stops (until the sensor is closed).
        """
        interval = self.config.max_latency_ms / 1000
        last = time.monotonic()
        while self._started:
            wait = interval if timeout is None else max(0.0, min(interval, last + timeout - time.monotonic()))
            batch = self.poll(wait)
            if batch:
                last = time.monotonic()
                yield from batch
            elif timeout is not None and time.monotonic() - last >= timeout:
                return

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    async def __aiter__(self) -> AsyncIterator[Event]:
        """``async for event in sensor``: woken by the sources' fds, and at
        least every max_latency_ms; no thread, no busy loop."""
        fds = self._fds()
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        for fd in fds:
            loop.add_reader(fd, ready.set)
        interval = self.config.max_latency_ms / 1000
        try:
            while self._started:
                batch = self.poll(0)
                if batch:
                    for event in batch:
                        yield event
                    continue
                ready.clear()
                try:
                    await asyncio.wait_for(ready.wait(), interval)
                except TimeoutError:
                    pass
        finally:
            for fd in fds:
                loop.remove_reader(fd)

    def subscribe(self, callback: Callable[[Event], Any], kinds: Iterable[str] | None = None) -> Subscription:
        """Call callback(event) for every event (of the given kinds).

        Callbacks run in whichever call drains the rings (events(), poll(),
        run(), async iteration). An exception in a callback propagates to
        that call.

        Raises:
            ValueError: an unknown kind.
        """
        classes = None
        if kinds is not None:
            classes = frozenset(KINDS[k] if k in KINDS else _unknown_kind(k) for k in kinds)
        sub = Subscription(self, callback, classes)
        self._subs.append(sub)
        return sub

    def _dispatch(self, batch: list[Event]) -> None:
        for sub in list(self._subs):
            if sub.classes is None:
                for event in batch:
                    sub.callback(event)
            else:
                for event in batch:
                    if type(event) in sub.classes:
                        sub.callback(event)

    def run(self, duration: float | None = None) -> None:
        """Drain the rings into subscribers for duration seconds (None: until closed)."""
        end = None if duration is None else time.monotonic() + duration
        while self._started and (end is None or time.monotonic() < end):
            wait = None if end is None else max(0.0, min(self.config.max_latency_ms / 1000, end - time.monotonic()))
            self.poll(wait)

    # --- exclusions --------------------------------------------------------------

    def _table(self) -> ExclusionTable:
        if self._exclusions is None:
            raise EbpfSensorError("the sensor is not started: use `with Sensor() as s:` or call start()")
        return self._exclusions

    def exclude(self, rule: Exclusion) -> int:
        """Exclude processes (or, with ExcludePathPrefix, file events under a
        directory) in the kernel from now on; returns the rule id (the
        existing one for a rule already installed).

        Raises:
            ConfigError: an invalid rule (nothing changes).
        """
        return self._table().add(rule)

    def remove_exclusion(self, rule_id: int) -> None:
        """Remove a rule installed by exclude() or configuration.

        Raises:
            KeyError: no rule with that id.
        """
        self._table().remove(rule_id)

    def exclusions(self) -> list[RuleStatus]:
        """The installed rules with their hit counts per kind."""
        return self._table().list()

    def exclude_top_initiator(
        self, stats: EbpfStatistics | None = None, *, duration: float = 20.0, descendants: bool = False
    ) -> RuleStatus:
        """Exclude the noisiest executable: the top initiator of a diagnostic.

        One call from "top talker" to "excluded": the executable that made the
        most monitored syscalls (``ebpf-statistics``' top initiator) is
        excluded by its identity, as ``ExcludeExecutable`` does; processes
        already running it are excluded at once.

        Args:
            stats: the result of a diagnostic window
                (:func:`ebpfsensor.diagnostic.ebpf_statistics`); None runs
                one for ``duration`` seconds first, with the noise going on.
            duration: the window's length when ``stats`` is None.
            descendants: also exclude every process it starts.

        Returns:
            The rule added (or the same rule already installed): its id,
            the ``ExcludeExecutable`` and its hits.

        Raises:
            ConfigError: no initiator seen; the top one is this process's
                own executable or interpreter; or its file cannot be
                resolved (see ``EbpfStatistics.top_initiator_exclusion``).
                Nothing changes.
            PrivilegeError, EbpfSensorError: the diagnostic cannot run.
        """
        table = self._table()
        if stats is None:
            from .diagnostic import ebpf_statistics

            stats = ebpf_statistics(duration, top=1, btf_path=self.config.btf_path)
        rule_id = table.add(stats.top_initiator_exclusion(descendants=descendants))
        return next(status for status in table.list() if status.id == rule_id)

    def apply_exclusions(self, rules: Sequence[Exclusion]) -> None:
        """Make the installed rules exactly these (e.g. after a configuration
        reload): new ones are added, missing ones removed, the rest keep
        their ids and counters. All are checked first; on an invalid rule
        nothing changes.

        Raises:
            ConfigError: an invalid rule.
        """
        table = self._table()
        for rule in rules:
            resolve_exclusion(rule)
        for status in table.list():
            if status.rule not in rules:
                table.remove(status.id)
        for rule in rules:
            table.add(rule)

    # --- state -------------------------------------------------------------------

    def hooks(self) -> dict[str, HookInfo]:
        """For each hook, the variant attached or why none is."""
        return {h: HookInfo(s.hook, s.variant, list(s.failures)) for h, s in self._hooks.items()}

    def kernel_stats(self) -> dict[int, tuple[int, int, int, int, int]]:
        """Per record type, (produced, dropped, truncated, filtered, deduplicated) summed over CPUs."""
        if self._stats_fd < 0:
            return {}
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        values = ffi.new("struct kind_stats[]", ncpu)
        key = ffi.new("uint32_t *")
        out = {}
        for cls in EVENT_CLASSES:
            key[0] = int(cls.event_type)
            check_ret(lib.bpf_map_lookup_elem(self._stats_fd, key, values), "read", "kind_stats")
            out[key[0]] = tuple(sum(getattr(values[i], f) for i in range(ncpu)) for f in _STAT_FIELDS)
        return out  # type: ignore[return-value]

    def stats(self) -> SensorStats:
        """Counters that reconcile: for eBPF kinds produced = delivered + pending;
        every loss is in ``dropped`` (ring full, lost netlink messages) or
        ``undecodable``."""
        kinds: dict[str, KindStats] = {}
        if self._ring is not None:
            kernel = self.kernel_stats()
            delivered_c = self._ring.delivered()
            for cls in EVENT_CLASSES:
                t = int(cls.event_type)
                produced, dropped, truncated, filtered, deduplicated = kernel.get(t, (0, 0, 0, 0, 0))
                delivered = delivered_c.get(t, 0)
                kinds[cls.__struct_config__.tag] = KindStats(  # type: ignore[index]
                    produced, delivered, max(0, produced - delivered), dropped, truncated, filtered, deduplicated
                )
        delivered_all = sum(k.delivered for k in kinds.values())
        dropped_all = sum(k.dropped for k in kinds.values())
        undecodable = self._ring.undecodable if self._ring else 0
        fallback = self._fallback.stats() if self._fallback is not None else None
        audit = self._audit.stats() if self._audit is not None else None
        if fallback is not None:
            delivered_all += fallback.delivered
            # each overrun lost at least one message; gaps count them exactly
            dropped_all += max(fallback.lost, fallback.overruns)
            undecodable += fallback.undecodable
        if audit is not None:
            delivered_all += audit.delivered
            dropped_all += audit.overruns
            undecodable += audit.undecodable
        return SensorStats(
            kinds, delivered_all, dropped_all, undecodable, dropped_all + undecodable, self._provider, fallback, audit
        )

    def health(self) -> Health:
        """Which source runs, why, what each kind gets, and the counters."""
        from .health import capabilities

        kinds: dict[str, KindHealth] = {}
        for kind in sorted(KINDS):
            if kind not in self.config.enabled_kinds:
                kinds[kind] = KindHealth(False, "", "not collected (configuration)")
            elif kind in self._unavailable:
                kinds[kind] = KindHealth(False, "", self._unavailable[kind])
            elif kind == "user_login":
                status = self._audit.status() if self._audit else "the audit source is not running"
                kinds[kind] = KindHealth(self._audit is not None and "audit is enabled" in status, "audit", status)
            elif self._provider == "ebpf":
                hooks = [self._hooks[h] for h in _KIND_SOURCES[kind][1] if h in self._hooks]
                up = sorted({h.variant for h in hooks if h.variant})
                down = "; ".join(f"{h.hook}: {' / '.join(h.failures)}" for h in hooks if not h.variant)
                if up:
                    kinds[kind] = KindHealth(
                        True, "ebpf:" + ",".join(up), f"partly unavailable: {down}" if down else ""
                    )
                else:
                    kinds[kind] = KindHealth(False, "", down or "hook not loaded")
            elif self._provider == "proc_connector":
                kinds[kind] = KindHealth(True, "proc_connector", "")
            else:
                kinds[kind] = KindHealth(False, "", "the sensor is not started")
        return Health(
            supplementary_events_subsystem=self._provider,
            ebpf=self._provider == "ebpf",
            reason=self._provider_reason,
            kinds=kinds,
            counters=self.stats(),
            capabilities=capabilities(btf_path=self.config.btf_path),
            log_file=self._log_file,
        )


def _unknown_kind(kind: str) -> type:
    raise ValueError(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
