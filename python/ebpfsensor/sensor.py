# SPDX-License-Identifier: Apache-2.0
"""Sensor: chooses the provider, starts the sources, hands out Events."""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import _logfile
from ._ffi import release_heap
from .config import Config
from .errors import ConfigError, EbpfSensorError, NotSupportedError, PrivilegeError
from .events import BPF_KINDS, KINDS, Event, event_class
from .exclusions import Exclusion, RuleStatus
from .host import support
from .host.capabilities import capabilities
from .process import ProcessTable
from .process._context import SensorContext
from .sources import Source
from .sources.audit import AuditLoginSource
from .sources.audit_provider import AuditProvider
from .sources.ebpf import EbpfSource, EbpfStats
from .sources.ebpf.exclusion_maps import ExclusionTable
from .sources.proc_connector import ProcConnectorSource
from .status import (
    AuditProviderStats,
    AuditSourceStats,
    Health,
    HookInfo,
    KindHealth,
    KindStats,
    ProcConnectorStats,
    SensorStats,
    SkippedExclusion,
)

if TYPE_CHECKING:
    import os
    from typing import IO

    from .diagnostic import EbpfStatistics
    from .recording import Recorder

__all__ = ["Sensor", "Subscription"]

log = logging.getLogger("ebpfsensor")


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
        self._sources: list[Source] = []
        self._ebpf: EbpfSource | None = None
        self._subs: list[Subscription] = []
        self._provider = "none"
        self._provider_reason = ""
        self._unavailable: dict[str, str] = {}
        self._log_file: str | None = None
        self._started = False
        self._context: SensorContext | None = None
        #: eBPF switched off in the managed configuration (the reason health gives)
        self._ebpf_disabled = False
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
        audit provider (the process connector where kernel audit cannot
        run, or where the file asks for it); ``provider.failMode:
        "fail-closed"`` refuses to run without eBPF.

        Raises:
            ConfigError: the file cannot be used (it names the key and the fix).
        """
        from .managed_config import DEFAULT_PATH, load_managed_config

        managed = load_managed_config(path or DEFAULT_PATH)
        provider = managed.sensor.provider
        if not managed.ebpf_enabled and provider != "proc_connector":
            # as the reference agent does: eBPF disabled reverts to audit
            provider = "audit"
        config = msgspec.structs.replace(
            managed.sensor, provider=provider, fail_closed=managed.fail_closed or managed.sensor.fail_closed
        )
        sensor = cls(config)
        sensor._ebpf_disabled = not managed.ebpf_enabled
        return sensor

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> Sensor:
        """Load, attach and start consuming; idempotent."""
        if self._started:
            return self
        try:
            self._start()
            if self.config.process_context:
                # after every source is attached: the /proc snapshot misses nothing
                supplementary = [s for s in self._sources if not isinstance(s, AuditLoginSource)]
                # EbpfSource keeps its ring private; the context is wired to it here
                ring = self._ebpf.ring if self._ebpf is not None else None
                task_iter = self._ebpf.take_task_iter() if self._ebpf is not None else None
                self._context = SensorContext(self.config, supplementary, ring, task_iter)
            release_heap()
        except BaseException:
            self.close()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        cfg = self.config
        self._unavailable = {}
        self._log_file = _logfile.enable(cfg.log_file)
        bpf_kinds = cfg.enabled_kinds & BPF_KINDS
        use_ebpf, why = self._choose_provider()
        if use_ebpf and bpf_kinds:
            try:
                # the sensor's own process first (Config.exclude_self), then the configured rules
                self._ebpf = EbpfSource(bpf_kinds, msgspec.structs.replace(cfg, exclusions=cfg.active_exclusions))
                self._sources.append(self._ebpf)
                self._provider, self._provider_reason = "ebpf", why
                self._complete_ebpf(bpf_kinds)
            except (PrivilegeError, ConfigError):
                raise
            except EbpfSensorError as exc:
                if cfg.fail_closed or cfg.provider == "ebpf":
                    raise
                use_ebpf, why = False, f"eBPF failed to start: {exc}"
                log.warning("switching to the process connector: %s", why)
        if not use_ebpf and bpf_kinds:
            if cfg.fail_closed:
                raise EbpfSensorError(f"eBPF is not used ({why}) and fail-closed is set: refusing to start")
            # eBPF, then the audit provider, then the process connector; a
            # forced "ebpf" that cannot run changes no system audit setting
            if cfg.provider in ("auto", "audit"):
                why = self._start_audit(bpf_kinds, why)
            if self._provider != "audit":
                kinds = bpf_kinds & ProcConnectorSource.available_kinds
                for kind in sorted(bpf_kinds - kinds):
                    self._unavailable[kind] = "not provided without eBPF"
                self._sources.append(ProcConnectorSource(kinds, report_threads=cfg.report_threads).start())
                self._provider, self._provider_reason = "proc_connector", why
                log.warning("supplementary events from the netlink process connector, not eBPF: %s", why)
        # the audit provider delivers logins itself
        if "user_login" in cfg.enabled_kinds and self._provider != "audit":
            try:
                self._sources.append(AuditLoginSource().start())
            except (NotSupportedError, PrivilegeError) as exc:
                self._unavailable["user_login"] = str(exc)
                log.warning("login events unavailable: %s", exc)

    def _complete_ebpf(self, bpf_kinds: frozenset[str]) -> None:
        """Kinds the perf objects could not attach on this kernel (their file
        hooks on 5.4's verifier; exec, exit and the file kinds on 4.19's)
        from the audit provider beside eBPF, fork and exit from the process
        connector, under provider "auto"; listed unavailable otherwise."""
        assert self._ebpf is not None
        cfg = self.config
        # only on the perf tier, whose verifiers refuse whole objects: on the
        # ring tier a missing kind is a hook the kernel lacks (module_load's
        # tracepoint, say), and the audit provider would take kernel audit's
        # receiver role for it from every sensor on the machine
        if self._ebpf.transport != "perf" or cfg.provider != "auto":
            return
        missing = frozenset(k for k in bpf_kinds if not self._ebpf.kind_health(k).live)
        # fork and exit from the process connector, as beside the audit provider
        lifecycle = missing & ProcConnectorSource.available_kinds - AuditProvider.available_kinds
        if lifecycle:
            try:
                self._sources.insert(0, ProcConnectorSource(lifecycle, report_threads=cfg.report_threads).start())
                log.warning(
                    "%s from the process connector: their eBPF hooks cannot run here", ", ".join(sorted(lifecycle))
                )
            except (NotSupportedError, PrivilegeError) as exc:
                log.warning("the process connector cannot run: %s", exc)
        wanted = missing & AuditProvider.available_kinds
        if not wanted:
            return
        # the sensor's own process too (Config.exclude_self), as eBPF leaves it out
        audit = AuditProvider(
            wanted,
            exclusions=cfg.active_exclusions,
            rate_limit=cfg.audit_rate_limit,
            backlog_limit=cfg.audit_backlog_limit,
            read_opens=cfg.read_opens,
            watched_files=cfg.watched_files,
        )
        try:
            audit.start()
        except (EbpfSensorError, OSError) as exc:
            log.warning("kinds eBPF cannot serve here stay unavailable; the audit provider cannot run: %s", exc)
            # health names both causes: eBPF's refusal and audit's
            for kind in wanted:
                why = self._ebpf.kind_health(kind).reason
                self._unavailable[kind] = f"{why}; the audit provider beside eBPF cannot run: {exc}"
            return
        self._sources.append(audit)
        log.warning(
            "%s from the audit provider: their eBPF hooks cannot run on this kernel",
            ", ".join(sorted(audit.kinds)),
        )

    def _start_audit(self, bpf_kinds: frozenset[str], why: str) -> str:
        """The audit provider, with the process connector beside it for fork
        and exit; returns the reason to report when it cannot run."""
        cfg = self.config
        # logins too: the provider receives their records anyway
        audit = AuditProvider(
            cfg.enabled_kinds & AuditProvider.available_kinds,
            exclusions=cfg.active_exclusions,
            rate_limit=cfg.audit_rate_limit,
            backlog_limit=cfg.audit_backlog_limit,
            read_opens=cfg.read_opens,
            watched_files=cfg.watched_files,
        )
        try:
            audit.start()
        except ConfigError:
            raise
        except (EbpfSensorError, OSError) as exc:
            if isinstance(exc, PrivilegeError) and cfg.provider == "audit":
                raise
            log.warning("the audit provider cannot run: %s", exc)
            return f"{why}; the audit provider cannot run: {exc}"
        self._sources.append(audit)
        self._provider, self._provider_reason = "audit", why
        lifecycle = bpf_kinds & ProcConnectorSource.available_kinds - audit.kinds
        if lifecycle:
            try:
                # lifecycle sources first: poll() drains in this order
                self._sources.insert(0, ProcConnectorSource(lifecycle, report_threads=cfg.report_threads).start())
            except (NotSupportedError, PrivilegeError) as exc:
                for kind in lifecycle:
                    self._unavailable[kind] = f"the process connector cannot run: {exc}"
        for kind in sorted(bpf_kinds - audit.kinds - lifecycle):
            self._unavailable[kind] = "not provided by the audit provider"
        log.warning("supplementary events from kernel audit, not eBPF: %s", why)
        return why

    def _choose_provider(self) -> tuple[bool, str]:
        """eBPF or not, and why, before anything is loaded."""
        cfg = self.config
        if cfg.provider == "proc_connector" or self._ebpf_disabled:
            return False, "eBPF disabled by configuration"
        if cfg.provider == "audit":
            return False, "eBPF not used: the audit provider is chosen by configuration"
        verdict = support.host_verdict()
        if verdict.denied:
            return False, verdict.reason
        if not verdict.supported and cfg.provider != "ebpf":
            return False, verdict.reason
        return True, verdict.reason or "eBPF supported"

    def close(self) -> None:
        """Detach every program, free every map, close every source; idempotent."""
        sources, self._sources, self._ebpf = self._sources, [], None
        for src in sources:
            src.close()
        if self._context is not None:
            self._context.close()  # the table stays readable
        self._started = False

    def __enter__(self) -> Sensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # --- events ------------------------------------------------------------------

    def _running(self) -> list[Source]:
        if not self._sources:
            raise EbpfSensorError("the sensor is not started: use `with Sensor() as s:` or call start()")
        return self._sources

    def _fds(self) -> list[int]:
        return [src.fileno() for src in self._running()]

    def poll(self, timeout: float | None = 0.0) -> list[Event]:
        """Wait up to timeout seconds for events and return one batch.

        The batch is also passed to subscribers. None waits for at most the
        configured max_latency_ms.
        """
        sources = self._running()
        seconds = self.config.max_latency_ms / 1000 if timeout is None else max(0.0, timeout)
        ctx = self._context
        if ctx is not None:
            ctx.before_poll()
        if len(sources) == 1:
            batch = sources[0].poll(seconds)
            if ctx is not None:
                ctx.after_source(sources[0], batch)
        else:
            if seconds:
                select.select(self._fds(), [], [], seconds)
            batch = []
            # lifecycle sources first: they are listed in that order
            for src in sources:
                part = src.poll(0)
                if ctx is not None:
                    ctx.after_source(src, part)
                batch += part
        if ctx is not None:
            batch += ctx.markers()
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
            # the loss marker's kind too
            classes = frozenset(event_class(k) for k in kinds)
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

    def record(self, target: str | os.PathLike[str] | IO[bytes], **options: Any) -> Recorder:
        """Record what this sensor delivers from now on, with its losses and
        process table (docs/recording.md); ``with sensor.record("t.ebr"):
        sensor.run(60)``. Options (``kinds``, ...) are those of
        :class:`ebpfsensor.recording.Recorder`; ``ReplaySensor`` replays it.

        Raises:
            OSError: the file cannot be created.
        """
        from .recording import Recorder

        return Recorder(self, target, **options)

    @property
    def processes(self) -> ProcessTable:
        """The process table: lookups by pid or entity id, ancestors,
        children, sessions (kept while the sensor runs; readable after).

        Raises:
            EbpfSensorError: ``Config.process_context`` is off, or the
                sensor was never started.
        """
        if self._context is None:
            if not self.config.process_context:
                raise EbpfSensorError("the process table is off (Config.process_context=False)")
            raise EbpfSensorError("the sensor is not started: use `with Sensor() as s:` or call start()")
        return self._context.table

    # --- exclusions --------------------------------------------------------------

    def _table(self) -> ExclusionTable:
        table = self._ebpf.exclusions if self._ebpf is not None else None
        if table is None:
            if self._sources:
                raise EbpfSensorError(f"exclusions need the eBPF provider; this sensor runs {self._provider}")
            raise EbpfSensorError("the sensor is not started: use `with Sensor() as s:` or call start()")
        return table

    def exclude(self, rule: Exclusion) -> int:
        """Exclude processes (or, with ExcludePathPrefix, file events under a
        directory) in the kernel from now on; returns the rule id (the
        existing one for a rule already installed).

        Raises:
            ConfigError: an invalid rule (nothing changes).
        """
        rule_id = self._table().add(rule)
        self._rules_beside()
        return rule_id

    def remove_exclusion(self, rule_id: int) -> None:
        """Remove a rule installed by exclude() or configuration.

        Raises:
            KeyError: no rule with that id.
        """
        self._table().remove(rule_id)
        self._rules_beside()

    def _rules_beside(self) -> None:
        """The kernel's rules, in the audit provider beside eBPF too (the
        kinds eBPF cannot serve here), which applies them in user space."""
        audit = next((src for src in self._sources if isinstance(src, AuditProvider)), None)
        if audit is not None and self._ebpf is not None and self._ebpf.exclusions is not None:
            audit.set_exclusions(status.rule for status in self._ebpf.exclusions.list())

    def exclusions(self) -> list[RuleStatus]:
        """The installed rules with their hit counts per kind."""
        return self._table().list()

    def watched_files(self) -> dict[str, tuple[int, int]]:
        """The files whose read-only opens are reported, as last looked up
        (every second while the sensor polls): path -> (st_dev, inode).
        Empty unless eBPF collects ``file_open`` with ``read_opens="watched"``."""
        return self._ebpf.watched_files() if self._ebpf is not None else {}

    def exclude_top_initiator(
        self,
        stats: EbpfStatistics | None = None,
        *,
        duration: float = 20.0,
        descendants: bool = False,
        force: bool = False,
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
            force: exclude it even when it is an interpreter, a shell or a
                launcher (see ``EbpfStatistics.top_initiator_exclusion``).

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

            stats = ebpf_statistics(duration, top=1, btf_path=self.config.btf_path, read_opens=self.config.read_opens)
        rule_id = table.add(stats.top_initiator_exclusion(descendants=descendants, force=force))
        return next(status for status in table.list() if status.id == rule_id)

    def apply_exclusions(self, rules: Sequence[Exclusion]) -> None:
        """Make the installed rules exactly these (e.g. after a configuration
        reload): new ones are added, missing ones removed, the rest keep
        their ids and counters. All or nothing: on an invalid rule, or one
        the kernel's maps cannot take, nothing changes.

        The sensor's own process stays excluded while ``Config.exclude_self``
        is set: its rule is kept whatever ``rules`` says.

        Raises:
            ConfigError: an invalid rule, or more than MAX_RULES rules.
        """
        self._table().apply(msgspec.structs.replace(self.config, exclusions=tuple(rules)).active_exclusions)
        self._rules_beside()

    # --- state -------------------------------------------------------------------

    def hooks(self) -> dict[str, HookInfo]:
        """For each hook, the variant attached or why none is."""
        return self._ebpf.hooks() if self._ebpf is not None else {}

    def kernel_stats(self) -> dict[int, tuple[int, ...]]:
        """Per record type, (produced, dropped, truncated, filtered,
        deduplicated, unmatched) summed over CPUs."""
        return self._ebpf.kernel_stats() if self._ebpf is not None else {}

    def stats(self) -> SensorStats:
        """Counters that reconcile: for eBPF kinds produced = delivered + pending;
        every loss is in ``dropped`` (ring full, lost netlink messages) or
        ``undecodable``."""
        kinds: dict[str, KindStats] = {}
        perf_lost: list[int] = []
        delivered = dropped = undecodable = 0
        by_type: dict[type, Any] = {}
        for src in self._sources:
            st = src.stats()
            by_type[type(st)] = st
            delivered += st.delivered
            dropped += st.dropped
            undecodable += st.undecodable
            if isinstance(st, EbpfStats):
                kinds, perf_lost = st.kinds, st.perf_lost
        return SensorStats(
            kinds,
            delivered,
            dropped,
            undecodable,
            dropped + undecodable,
            self._provider,
            by_type.get(ProcConnectorStats),
            by_type.get(AuditSourceStats),
            by_type.get(AuditProviderStats),
            processes=self._context.stats() if self._context is not None else None,
            perf_lost=perf_lost,
        )

    def health(self) -> Health:
        """Which source runs, why, what each kind gets, and the counters."""
        # a kind eBPF cannot serve here may come from a source beside it:
        # the first source that delivers it speaks for it
        serving: dict[str, Any] = {}
        for src in self._sources:
            for kind in src.kinds:
                if kind not in serving or not serving[kind].kind_health(kind).live:
                    serving[kind] = src
        kinds: dict[str, KindHealth] = {}
        for kind in sorted(KINDS):
            if kind not in self.config.enabled_kinds:
                kinds[kind] = KindHealth(False, "", "not collected (configuration)")
            elif kind in self._unavailable:
                kinds[kind] = KindHealth(False, "", self._unavailable[kind])
            elif kind in serving:
                kinds[kind] = serving[kind].kind_health(kind)
            else:
                kinds[kind] = KindHealth(False, "", "the sensor is not started")
        return Health(
            supplementary_events_subsystem=self._provider,
            ebpf=self._provider == "ebpf",
            reason=self._provider_reason,
            kinds=kinds,
            counters=self.stats(),
            capabilities=capabilities(btf_path=self.config.btf_path, btf_dir=self.config.btf_dir),
            log_file=self._log_file,
            exclusions_skipped=self._skipped_exclusions(),
            process_context=self._context.health() if self._context is not None and self._started else None,
            transport=self._ebpf.transport if self._ebpf is not None else "",
            exclusions=self._rules_in_force(),
        )

    def _skipped_exclusions(self) -> list[SkippedExclusion]:
        """The configured rules each source left out, eBPF's first; a rule
        both left out (the audit provider beside eBPF) is named once."""
        skipped: list[SkippedExclusion] = []
        for src in ([self._ebpf] if self._ebpf is not None else []) + self._sources:
            for sk in getattr(src, "skipped_exclusions", ()):
                if all(sk.rule != s.rule for s in skipped):
                    skipped.append(sk)
        return skipped

    def _rules_in_force(self) -> list[RuleStatus]:
        if self._ebpf is not None and self._ebpf.exclusions is not None:
            return self._ebpf.exclusions.list()
        audit = next((src for src in self._sources if isinstance(src, AuditProvider)), None)
        return [RuleStatus(i, rule, {}, 0) for i, rule in enumerate(audit.exclusions)] if audit is not None else []
