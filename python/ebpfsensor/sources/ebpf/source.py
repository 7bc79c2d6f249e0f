# SPDX-License-Identifier: Apache-2.0
"""The eBPF source: loads the objects a set of kinds needs, drains their rings."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import msgspec

from ... import watched
from ..._ffi import check_ret, ffi, lib, make_error
from ...config import Config
from ...errors import ConfigError, EbpfSensorError, NotSupportedError, VerifierError
from ...events import EVENT_CLASSES, KINDS, Event
from ...events._kinds import kind_of
from ...exclusions import user_dev
from ...host import features
from ...host.btf import ResolvedBtf
from ...host.btf import resolve as resolve_btf
from ...host.mounts import ensure_tracefs
from ...status import HookInfo, KindHealth, KindStats, SkippedExclusion
from .exclusion_maps import ExclusionTable
from .hooks import EXCLUSION_MAPS, KIND_HOOKS, SHARED_MAPS, hooks_for
from .objects import BpfObject, HookStatus, LoadedObject, detach_all, packaged_object_path
from .ring import RingBuffer

__all__ = ["EbpfSource", "EbpfStats"]

log = logging.getLogger("ebpfsensor")

#: the per-thread argument stashes (LRU hashes), sized by Config.stash_entries
STASHES = ("file_calls", "net_args", "priv_args")
#: the kernel counters of each kind (struct kind_stats), in order
STAT_FIELDS = ("produced", "dropped", "truncated", "filtered", "deduplicated", "unmatched", "unwatched")


class EbpfStats(msgspec.Struct, frozen=True):
    """The eBPF source's counters: per kind, and what the consumer could not
    decode; with perf event arrays, the records the kernel reported lost per
    array (lifecycle, activity), each also counted dropped under its kind by
    the program that could not submit it (from 5.4: before, the helper
    does not tell the program, and ``dropped`` is the kernel's count)."""

    kinds: dict[str, KindStats]
    undecodable: int
    perf_lost: list[int] = msgspec.field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(k.delivered for k in self.kinds.values())

    @property
    def dropped(self) -> int:
        # before 5.4 bpf_perf_event_output reports success for a record its
        # buffer had no room for: the kernel's count of lost records is then
        # the only one, and no kind can be told
        return max(sum(k.dropped for k in self.kinds.values()), sum(self.perf_lost))


class EbpfSource:
    """The sensor's BPF programs and the rings they fill.

    Args:
        kinds: the kinds to collect (each must be in :data:`KIND_HOOKS`).
        config: ring sizes, hook variants, BTF, exclusions and load-time settings.

    Raises:
        NotSupportedError: the kernel lacks BTF or BPF ring buffers.
        PrivilegeError: not allowed to load BPF programs.
        EbpfSensorError: no hook could be attached, or an object failed to load.
    """

    name = "ebpf"

    def __init__(self, kinds: frozenset[str], config: Config) -> None:
        self.kinds = kinds
        #: "ring" or "perf" (see Config.transport), once started
        self.transport = ""
        self._objects: list[LoadedObject] = []
        self._hooks: dict[str, HookStatus] = {}
        self._ring: RingBuffer | None = None
        self._stats_fd = -1
        self._watched_fd = -1
        self._watched_bits_fd = -1
        #: the watched files in the kernel's map: (kernel dev, inode) -> path
        self._watched: dict[tuple[int, int], str] = {}
        self._watched_at = 0.0
        self._btf: ResolvedBtf | None = None
        self.exclusions: ExclusionTable | None = None
        self.skipped_exclusions: list[SkippedExclusion] = []
        self._task_iter: LoadedObject | None = None
        try:
            self._start(config)
        except BaseException:
            self.close()
            raise

    def _start(self, cfg: Config) -> None:
        self._cfg = cfg
        # held open while the objects load: libbpf reads the file that was checked
        self._btf = btf = resolve_btf(cfg.btf_path, cfg.btf_dir)
        log.info("BTF: %s", btf.location.describe())
        access = features.bpf_access()
        if not access.works:
            # not_supported (no bpf(2)) or, most often, no privileges
            raise make_error(access.errno, "create", "a BPF map")
        self.transport = _transport(cfg.transport)
        suffix = ".perf" if self.transport == "perf" else ""
        old = self.transport == "perf" and _old_verifier(cfg.v419_objects)
        ensure_tracefs()
        shared: dict[str, int] = {}
        plan: list[tuple[str, BpfObject, set[str]]] = []
        for obj_name, hooks in hooks_for(self.kinds).items():
            build = obj_name + suffix
            if old and packaged_object_path(obj_name + ".v419").exists():
                build = obj_name + ".v419"
            obj = BpfObject.packaged(build)
            refused = _refused_whole(obj, btf.libbpf_path) if self.transport == "perf" else None
            if refused:
                # every program of the object fails alike: one verifier pass
                # said so, where loading it would retry each hook in turn
                log.warning("%s: not loaded on this kernel: %s", obj.name, refused)
                down = {h: HookStatus(h, None, [refused], object=obj.name) for h in hooks if h in obj.hooks}
                self._hooks.update(down)
                continue
            plan.append((obj_name, obj, hooks))
        if plan:
            self._load_all(plan, shared)
        btf.close()
        if not any(h.attached for h in self._hooks.values()):
            reasons = "; ".join(f"{h.hook}: {' / '.join(h.failures)}" for h in self._hooks.values())
            raise EbpfSensorError(f"no hook could be attached on this kernel: {reasons}")
        self._stats_fd = shared["kind_stats"]
        self.exclusions = ExclusionTable({name: shared[name] for name in EXCLUSION_MAPS})
        for rule in cfg.exclusions:
            try:
                self.exclusions.add(rule)
            except ConfigError as exc:
                # a rule that no longer resolves (its process exited, its
                # file or cgroup is gone) must not leave the host unwatched
                self.skipped_exclusions.append(SkippedExclusion(rule, str(exc)))
                log.warning("exclusion skipped: %s", exc)
        self.refresh_watched()
        # no record is made before the rules are in: nothing they exclude
        # (the sensor's own start-up, with exclude_self) is reported
        self._enable_kinds(shared["kind_enabled"])
        # lifecycle first: a batch drains it before the activity ring
        if self.transport == "ring":
            fds = [shared["lifecycle_events"], shared["activity_events"]]
            self._ring = RingBuffer(fds, batch_bytes=cfg.batch_bytes)

    def _load_all(self, plan: list[tuple[str, BpfObject, set[str]]], shared: dict[str, int]) -> None:
        """Load and attach the objects of plan side by side; fills shared
        with the fds of :data:`SHARED_MAPS`.

        The maps every object shares (each declares all of them) are made
        first, from the first object's definitions; then every object loads
        at once, reusing them (libbpf's relocations and the verifier run
        without the GIL), the largest first: the last to finish sets the
        time. The task iterator that seeds the process table loads meanwhile
        (see :meth:`take_task_iter`). Every load reads the one copy of the
        kernel's BTF parsed by the first (csrc/vmlinux_btf.c), freed when the
        last is done.
        """
        lib.es_vmlinux_btf_hold()
        try:
            self._load_side_by_side(plan, shared)
        finally:
            lib.es_vmlinux_btf_release()

    def _load_side_by_side(self, plan: list[tuple[str, BpfObject, set[str]]], shared: dict[str, int]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, min(len(plan), os.cpu_count() or 1))) as pool:
            # whether the seed runs it is found out there too: the first
            # start's look through the kernel's BTF overlaps the maps' creation
            iterator = pool.submit(self._load_task_iter) if self._cfg.process_context else None
            try:
                maps = plan[0][1].create_maps(SHARED_MAPS, map_sizes=self._map_sizes(), btf_path=self._btf_path())
                self._objects.append(maps)
                shared.update({name: maps.map_fd(name) for name in SHARED_MAPS})
                if self.transport == "perf":
                    # before any program is attached (see _open_perf)
                    self._open_perf(lambda name: shared[name])
                order = sorted(range(len(plan)), key=lambda i: -len(plan[i][1].data))
                futures = {i: pool.submit(self._load, plan[i][1], plan[i][2], dict(shared)) for i in order}
                wait(futures.values())
            finally:
                # held from here on, released by close() if no seed takes it
                self._task_iter = _result(iterator)
        errors = [f.exception() for f in futures.values() if f.exception() is not None]
        # in plan order, whatever order they finished in
        for i, (obj_name, _, _) in enumerate(plan):
            if futures[i].exception() is None:
                self._add_loaded(obj_name, futures[i].result(), shared)
        if errors:
            raise errors[0]  # type: ignore[misc]

    def _load_task_iter(self) -> LoadedObject | None:
        """The task iterator loaded for the seed, or None when that failed:
        the seed then loads it itself, and reports why it cannot; None too
        when the seed will not run it."""
        from ...process._taskiter import load_iterator

        if not _seeds_by_task_iter(self._cfg):
            return None
        try:
            return load_iterator(self._cfg.btf_path)
        except Exception as exc:
            log.debug("task iterator not loaded beside the objects: %s", exc)
            return None

    def take_task_iter(self) -> LoadedObject | None:
        """The task iterator (iter.bpf.o, loaded, not attached), loaded
        beside the objects for the seed of the process table, which then
        owns it (and closes it after its one run); None when it was not
        loaded (no process context, no task iterator here, or its load
        failed)."""
        loaded, self._task_iter = self._task_iter, None
        return loaded

    def _btf_path(self) -> str | None:
        assert self._btf is not None
        return self._btf.libbpf_path

    def _load(self, obj: BpfObject, hooks: set[str], shared: dict[str, int]) -> LoadedObject:
        """Load and attach one object's hooks, reusing the shared maps given."""
        cfg = self._cfg
        assert cfg is not None and self._btf is not None
        settings = {
            "cfg_wakeup_bytes": cfg.wakeup_bytes,
            "cfg_report_threads": int(cfg.report_threads),
            "cfg_file_dedup_ns": cfg.file_dedup_ms * 1_000_000,
            "cfg_read_opens_all": int(cfg.read_opens == "all"),
        }
        return obj.load(
            config={k: v for k, v in settings.items() if k in obj.settings},
            shared_maps=shared,
            map_sizes=self._map_sizes(),
            hooks=hooks,
            btf_path=self._btf.libbpf_path,
            variants=cfg.hook_variants,
        )

    def _map_sizes(self) -> dict[str, int]:
        """map name -> max_entries set by the configuration."""
        cfg = self._cfg
        sizes = {
            # a perf event array has a slot per CPU: libbpf sizes it
            **(
                {"lifecycle_events": cfg.lifecycle_ring_bytes, "activity_events": cfg.activity_ring_bytes}
                if self.transport == "ring"
                else {}
            ),
            **dict.fromkeys(STASHES, cfg.stash_entries),
        }
        if self.transport == "ring" and features.task_storage().works:
            # the ring build's file calls above the call slots wait in task
            # storage (file.bpf.c, CALL_STORE; the kernels with task storage
            # have the trusted current task it needs, both 5.11): the
            # file_calls hash, preallocated, is not used
            sizes["file_calls"] = 1
        return sizes

    def _add_loaded(self, obj_name: str, loaded: LoadedObject, shared: dict[str, int]) -> None:
        assert self._cfg is not None
        self._objects.append(loaded)
        self._hooks.update(loaded.hooks)
        if obj_name == "file" and self._cfg.read_opens == "watched":
            self._watched_fd = loaded.map_fd("watched_files")
            self._watched_bits_fd = loaded.map_fd("watched_bits")
        for name in SHARED_MAPS:
            if name not in shared:
                shared[name] = loaded.map_fd(name)

    def _open_perf(self, map_fd: Callable[[str], int]) -> None:
        """Open the perf buffers before any program is attached: a perf
        event array's slot holds nothing until the consumer's buffer for that
        CPU is in it, and a record written before then is lost (a ring
        buffer keeps it)."""
        cfg = self._cfg
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self._ring = RingBuffer(
            [map_fd("lifecycle_events"), map_fd("activity_events")],
            batch_bytes=cfg.batch_bytes,
            perf_pages=[perf_pages(cfg.lifecycle_ring_bytes), perf_pages(cfg.activity_ring_bytes)],
            wakeup_bytes=cfg.wakeup_bytes,
        )

    def _enable_kinds(self, fd: int) -> None:
        key = ffi.new("uint32_t *")
        on = ffi.new("uint32_t *", 1)
        for kind in self.kinds:
            key[0] = int(KINDS[kind].event_type)
            check_ret(lib.bpf_map_update_elem(fd, key, on, 0), "enable", kind)

    # --- the Source interface -------------------------------------------------------

    def fileno(self) -> int:
        """The rings' epoll fd."""
        return self._open_ring().epoll_fd

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Wait up to timeout seconds for a wakeup, then drain one batch."""
        ring = self._open_ring()
        if self._watched_fd >= 0 and time.monotonic() - self._watched_at >= watched.REFRESH_S:
            try:
                self.refresh_watched()
            except EbpfSensorError as exc:
                # the identities already in the map stay watched; the next
                # refresh tries again, and the consumer goes on
                log.warning("watched files not refreshed: %s", exc)
        return ring.poll(int(timeout * 1000))

    def stats(self) -> EbpfStats:
        """Per kind: produced = delivered + pending; every loss is in dropped or undecodable."""
        kinds: dict[str, KindStats] = {}
        ring = self._ring
        if ring is not None:
            kernel = self.kernel_stats()
            delivered_c = ring.delivered()
            for cls in EVENT_CLASSES:
                t = int(cls.event_type)
                produced, dropped, truncated, filtered, deduplicated, unmatched, unwatched = kernel.get(
                    t, (0,) * len(STAT_FIELDS)
                )
                delivered = delivered_c.get(t, 0)
                kinds[kind_of(cls)] = KindStats(
                    produced,
                    delivered,
                    max(0, produced - delivered),
                    dropped,
                    truncated,
                    filtered,
                    deduplicated,
                    unmatched,
                    unwatched,
                )
        if ring is None:
            return EbpfStats(kinds, 0)
        return EbpfStats(kinds, ring.undecodable, ring.perf_lost())

    def kind_health(self, kind: str) -> KindHealth:
        """Live through the variants attached for the kind's hooks, or why not."""
        hooks = [self._hooks[h] for h in KIND_HOOKS[kind][1] if h in self._hooks]
        # a syscall's enter program only stashes arguments: its exit reports
        up = sorted({h.variant for h in hooks if h.variant and not h.hook.endswith("_enter")})
        down = "; ".join(f"{h.hook}: {' / '.join(h.failures)}" for h in hooks if not h.variant)
        if up:
            return KindHealth(True, "ebpf:" + ",".join(up), f"partly unavailable: {down}" if down else "")
        return KindHealth(False, "", down or "hook not loaded")

    def close(self) -> None:
        """Detach every program, free every map and the consumer; idempotent."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._btf is not None:
            self._btf.close()
        if self._task_iter is not None:
            self._task_iter.close()
            self._task_iter = None
        detach_all(self._objects)
        for obj in reversed(self._objects):
            obj.close()
        self._objects = []
        self.exclusions = None
        self._hooks = {}
        self._stats_fd = -1
        self._watched_fd = -1
        self._watched_bits_fd = -1

    # --- beyond the interface ------------------------------------------------------------

    def refresh_watched(self) -> None:
        """Look the watched files up again (:mod:`ebpfsensor.watched`) and
        make the kernel's map hold exactly their identities now; a no-op
        unless read-only opens are decided by it (``read_opens="watched"``
        and ``file_open`` collected)."""
        if self._watched_fd < 0:
            return
        self._watched_at = time.monotonic()
        now = watched.resolve(self._cfg.watched_files)
        if now == self._watched:
            return
        fd = self._watched_fd
        key = ffi.new("struct watched_key *")
        one = ffi.new("uint32_t *", 1)
        added = now.keys() - self._watched.keys()
        removed = self._watched.keys() - now.keys()
        # an identity's bit is set before its key enters the map, and stays
        # set while the key is there: the kernel skips the lookup on a clear bit
        if added:
            self._write_watched_bits(now.keys() | self._watched.keys())
        for dev, ino in added:
            key.dev, key.ino = dev, ino
            check_ret(lib.bpf_map_update_elem(fd, key, one, 0), "watch", now[(dev, ino)])
        for dev, ino in removed:
            key.dev, key.ino = dev, ino
            lib.bpf_map_delete_elem(fd, key)
        if removed:
            self._write_watched_bits(now.keys())
        self._watched = now

    def _write_watched_bits(self, identities: Iterable[tuple[int, int]]) -> None:
        """Make the kernel's pre-filter of watched_files hold the bits of
        these identities (events.h, WATCHED_BITS_SHIFT)."""
        bits = ffi.new("uint64_t[]", lib.WATCHED_BITS_WORDS)
        for dev, ino in identities:
            bit = watched_bit(dev, ino)
            bits[bit // 64] |= 1 << (bit % 64)
        zero = ffi.new("uint32_t *", 0)
        check_ret(lib.bpf_map_update_elem(self._watched_bits_fd, zero, bits, 0), "watch", "the watched files' bits")

    def watched_files(self) -> dict[str, tuple[int, int]]:
        """The files watched now: path -> (st_dev as stat() gives it, inode);
        empty when read-only opens are not decided by identity."""
        out: dict[str, tuple[int, int]] = {}
        # a file entered under two devices (the superblock's beside stat()'s)
        # is listed under the first, stat()'s: watched.resolve enters it first
        for (dev, ino), path in self._watched.items():
            out.setdefault(path, (user_dev(dev), ino))
        return dict(sorted(out.items()))

    def hooks(self) -> dict[str, HookInfo]:
        """For each hook, the variant attached or why none is."""
        return {h: HookInfo(s.hook, s.variant, list(s.failures), s.object, s.program) for h, s in self._hooks.items()}

    def kernel_stats(self) -> dict[int, tuple[int, ...]]:
        """Per record type, the kernel's counters (:data:`STAT_FIELDS` in
        order) summed over CPUs."""
        if self._stats_fd < 0:
            return {}
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        values = ffi.new("struct kind_stats[]", ncpu)
        key = ffi.new("uint32_t *")
        out: dict[int, tuple[int, ...]] = {}
        for cls in EVENT_CLASSES:
            key[0] = int(cls.event_type)
            check_ret(lib.bpf_map_lookup_elem(self._stats_fd, key, values), "read", "kind_stats")
            out[key[0]] = tuple(sum(getattr(values[i], f) for i in range(ncpu)) for f in STAT_FIELDS)
        return out

    @property
    def ring(self) -> RingBuffer:
        """The consumer of the objects' rings (the process context attaches
        its cache to it).

        Raises:
            EbpfSensorError: the source is closed.
        """
        return self._open_ring()

    def _open_ring(self) -> RingBuffer:
        if self._ring is None:
            raise EbpfSensorError("the eBPF source is closed")
        return self._ring


def watched_bit(dev: int, ino: int) -> int:
    """The bit of a watched identity (the kernel's s_dev, inode) in the
    kernel's pre-filter, as file.bpf.c's is_watched() computes it."""
    h = ((ino ^ (dev << 32)) * int(lib.WATCHED_MIX)) & 0xFFFF_FFFF_FFFF_FFFF
    return h >> (64 - int(lib.WATCHED_BITS_SHIFT))


def _result(future: Future[LoadedObject | None] | None) -> LoadedObject | None:
    """What a finished load gave (None for none)."""
    return None if future is None else future.result()


def _seeds_by_task_iter(cfg: Config) -> bool:
    """Whether the process table's seed will run the task iterator (see
    ebpfsensor.process._seed)."""
    from ...process import _seed

    return cfg.process_context and _seed.USE_TASK_ITER and features.task_iter().works


def _transport(wanted: str) -> str:
    """The transport Config.transport asks for and the kernel has: "ring"
    (BPF ring buffers) or "perf" (perf event arrays, the objects built
    for kernels before 5.8).

    Raises:
        NotSupportedError: the kernel has neither (or not the one asked for).
    """
    ring = features.ring_buffer()
    if wanted == "ring" or (wanted == "auto" and ring.outcome != "not_supported"):
        if not ring.works:
            if ring.outcome == "probe_failed":
                raise make_error(ring.errno, "probe", "BPF ring buffer")
            raise NotSupportedError(ring.name, ring.min_kernel, ring.detail)
        own = features.own_btf()
        if own.works:
            return "ring"
        # the ring builds load through BTF-typed pointers (compat.bpf.h,
        # ES_TASK_BTF): only the perf builds relocate against an external
        # file alone
        if wanted == "ring":
            raise NotSupportedError(
                "the ring-buffer objects",
                detail=f"they need {own.name}: {own.detail}; set Config.transport to 'auto' or 'perf', "
                "whose objects load with an external BTF file alone",
            )
        log.info("perf event arrays, not ring buffers: %s is missing (%s)", own.name, own.detail)
    perf = features.perf_event_array()
    if not perf.works:
        if perf.outcome == "probe_failed":
            raise make_error(perf.errno, "probe", "BPF perf event array")
        raise NotSupportedError(perf.name, perf.min_kernel, perf.detail)
    return "perf"


def _old_verifier(choice: str) -> bool:
    """Whether objects with a v419 build load it (Config.v419_objects): the
    other builds need global data and bounded loops of the verifier."""
    if choice != "auto":
        return choice == "always"
    missing = [f for f in (features.global_data(), features.bounded_loops()) if f.known is False]
    if missing:
        log.info(
            "the v419 builds: this kernel's verifier lacks %s", ", ".join(f"{f.name} ({f.min_kernel})" for f in missing)
        )
    return bool(missing)


def perf_pages(ring_bytes: int) -> int:
    """Pages per CPU buffer for a ring of ring_bytes shared among the
    possible CPUs: a power of two, at least one page."""
    ncpu = max(1, int(check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")))
    pages = max(1, ring_bytes // ncpu // os.sysconf("SC_PAGE_SIZE"))
    return 1 << (pages.bit_length() - 1)


#: perf objects whose programs share one body that an older verifier refuses
#: whole (5.4's walks every call inline, 4.19's takes no loop): the hooks that decide
_TOO_LARGE_PROBE = {"file": ("file_openat_enter", "file_openat_exit")}


def _refused_whole(obj: BpfObject, btf_path: str | None) -> str | None:
    """Why none of a perf object's programs can load here, or None: its
    probe hook loaded alone (a verifier that refuses one file program, too
    large on 5.4, a loop on 4.19, refuses every one: each carries the same
    path and string code)."""
    probe = _TOO_LARGE_PROBE.get(obj.name.split(".")[0])
    if probe is None or probe[1] not in obj.hooks:
        return None
    loaded = obj.load(hooks=probe, btf_path=btf_path, attach=False)
    try:
        status = loaded.hooks[probe[1]]
    finally:
        loaded.close()
    if status.attached or not isinstance(status.error, VerifierError):
        return None
    return f"tp: the kernel's verifier refuses the object's programs ({status.failures[-1]})"
