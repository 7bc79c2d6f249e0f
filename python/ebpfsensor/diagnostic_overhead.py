# SPDX-License-Identifier: Apache-2.0
"""What the sensor costs the machine it watches: ``ebpfsensor diagnostic overhead``.

Four loops of monitored syscalls (openat+close of one file read-only, which
the default open policy counts rather than reports, and for writing, which
it reports; rename of one file back and forth; fork+exec of ``/bin/true``)
are timed in a small process
of their own, pinned to one CPU, in three modes:

- **nothing**: no program of ours attached;
- **floor**, the attach floor: programs that return at once, attached to
  exactly the hooks the sensor attached on this machine (``floor.bpf.o``):
  what any BPF program on those hooks costs, which the sensor cannot avoid;
- **sensor**: the sensor with its programs and its consumer (this process,
  draining the rings as an agent would).

Modes alternate in rounds (nothing, floor, sensor, then sensor, floor,
nothing, ...), and each figure is the median over the rounds, so that a
machine whose load drifts still gives a stable answer. The sensor's own CPU
time (this process, user and system) and its events delivered and dropped
are counted while the loops run.

    report = ebpfsensor.diagnostic_overhead.measure(10)
    print(format_text(report))

The bench (``tests/bench``) runs the same loops through :class:`LoopProcess`
and the same floor through :class:`AttachFloor`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from ._ffi import capture_libbpf_log, check_ptr, check_ret, ffi, lib, make_error
from .config import Config
from .errors import EbpfSensorError, LibbpfError, PrivilegeError
from .events import ProcessExec
from .events.file import FileOpen, FileRename
from .sources.ebpf.hooks import ALWAYS, KIND_HOOKS
from .sources.ebpf.objects import BpfObject, destroy_links
from .status import HookInfo

__all__ = [
    "MODES",
    "OPERATIONS",
    "AttachFloor",
    "ConsumerLoad",
    "FloorTarget",
    "LoopProcess",
    "LoopResult",
    "ModeTiming",
    "OperationOverhead",
    "OverheadReport",
    "floor_targets",
    "format_text",
    "measure",
    "variant_summary",
]

#: operation -> (what it does, the C loop's number)
#: (a read-only open of a file not watched is counted, not reported, under
#: the default open policy; an open for writing is reported)
OPERATIONS: dict[str, tuple[str, int]] = {
    "open": ("openat(r)+close", lib.ES_LOOP_OPEN),
    "open_write": ("openat(w)+close", lib.ES_LOOP_OPEN_WRITE),
    "rename": ("rename", lib.ES_LOOP_RENAME),
    "exec": ("fork+exec", lib.ES_LOOP_EXEC),
}
MODES = ("nothing", "floor", "sensor")

# the floor's program for each kind of section the sensor's programs use
_FLOOR_PROGRAM = {
    "tp": "handle_floor_tp",
    "tracepoint": "handle_floor_tp",
    "raw_tp": "handle_floor_raw",
    "raw_tracepoint": "handle_floor_raw",
    "tp_btf": "handle_floor_btf",
    "fentry": "handle_floor_fentry",
    "fexit": "handle_floor_fexit_fentry",
    "lsm": "handle_floor_lsm",
    "kprobe": "handle_floor_kprobe",
    "kretprobe": "handle_floor_kretprobe_kprobe",
}
# programs whose target the kernel fixes at load (BTF id): one load per target
_LOAD_PER_TARGET = frozenset(
    {"handle_floor_btf", "handle_floor_fentry", "handle_floor_fexit_fentry", "handle_floor_lsm"}
)


# --- the attach floor ----------------------------------------------------------------


class FloorTarget(msgspec.Struct, frozen=True):
    """One hook the sensor attached, as the floor attaches to it.

    Attributes:
        hook: the sensor's hook (``file_openat_enter``, ``exec``, ...).
        section: the section of the sensor's program attached there
            (``tp/syscalls/sys_enter_openat``, ``tp_btf/sched_process_exec``).
        program: the floor's program that mirrors it (``handle_floor_tp``).
        target: what that program is attached to (``syscalls/sys_enter_openat``,
            ``sched_process_exec``, ``path_unlink``).
    """

    hook: str
    section: str
    program: str
    target: str


def floor_targets(hooks: Mapping[str, HookInfo]) -> list[FloorTarget]:
    """The floor's targets for the hooks a sensor attached (``Sensor.hooks()``).

    Each attached hook's program section is read from the packaged object
    that holds it; hooks without a variant (not attached) are left out, and
    so is a hook that shares another's program and attachment (the open's
    hooks under fentry): the floor mirrors what the sensor attached.

    Raises:
        EbpfSensorError: a hook no packaged object has, or a section of a
            kind the floor has no program for.
    """
    sections: dict[str, dict[str, str]] = {}
    for name in sorted({obj for obj, _ in KIND_HOOKS.values()} | set(ALWAYS)):
        for hook, specs in BpfObject.packaged(name).hooks.items():
            for spec in specs:
                sections.setdefault(hook, {})[spec.variant] = spec.section
    out: list[FloorTarget] = []
    attached: set[str] = set()
    for hook, info in sorted(hooks.items()):
        if info.variant is None:
            continue
        section = sections.get(hook, {}).get(info.variant)
        if section is None:
            raise EbpfSensorError(f"attach floor: no packaged program for hook {hook} variant {info.variant}")
        kind, _, target = section.partition("/")
        program = _FLOOR_PROGRAM.get(kind)
        if program is None or not target or (kind in ("tp", "tracepoint") and target.count("/") != 1):
            raise EbpfSensorError(f"attach floor: no floor program for {hook}'s section {section}")
        if section in attached:
            continue
        attached.add(section)
        out.append(FloorTarget(hook, section, program, target))
    return out


class AttachFloor:
    """Programs that return at once, attached to the given targets.

    Classic and raw tracepoints and kprobes share one loaded program each;
    BTF-typed programs (tp_btf, fentry, fexit, lsm) are loaded once per
    target, as the kernel binds them to it at load.

    Args:
        targets: from :func:`floor_targets`.

    Raises:
        PrivilegeError: the caller may not load BPF.
        LibbpfError: a program did not load or a target did not attach;
            nothing stays attached.
    """

    def __init__(self, targets: Sequence[FloorTarget]) -> None:
        self.targets = list(targets)
        self._data = BpfObject.packaged("floor").data
        # lifetime: bpf_object pointers and the links, until close(); the
        # buffers libbpf keeps pointers into live as long as the objects
        self._objects: list[Any] = []
        self._links: list[Any] = []
        self._ids: list[int] = []
        self._keep: list[Any] = [ffi.from_buffer(self._data)]
        try:
            self._attach()
        except BaseException:
            self.close()
            raise

    def _open(self, load: str, target: str | None) -> Any:
        """A new bpf_object of floor.bpf.o with only ``load`` to load (bound
        to target when it takes one at load), loaded."""
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        name = ffi.new("char[]", b"floor")
        opts.object_name = name
        self._keep += [opts, name]
        obj = check_ptr(lib.bpf_object__open_mem(self._keep[0], len(self._data), opts), "open", "floor.bpf.o")
        self._objects.append(obj)
        prog = lib.bpf_object__next_program(obj, ffi.NULL)
        found = ffi.NULL
        while prog != ffi.NULL:
            wanted = ffi.string(lib.bpf_program__name(prog)).decode() == load
            check_ret(lib.bpf_program__set_autoload(prog, wanted), "configure", load)
            found = prog if wanted else found
            prog = lib.bpf_object__next_program(obj, prog)
        if found == ffi.NULL:
            raise LibbpfError(errno.ENOENT, "no such program", "open", f"floor.bpf.o:{load}")
        if target is not None:
            t = ffi.new("char[]", target.encode())
            self._keep.append(t)
            check_ret(lib.bpf_program__set_attach_target(found, 0, t), "target", f"{load} at {target}")
        with capture_libbpf_log() as lines:
            rc = lib.bpf_object__load(obj)
        if rc < 0:
            detail = "; ".join(line for line in lines if "error" in line.lower() or "failed" in line.lower())[-300:]
            err = make_error(rc, "load", f"floor.bpf.o:{load}" + (f" for {target}" if target else ""))
            if detail and not isinstance(err, PrivilegeError):
                err = LibbpfError(err.errno or errno.EINVAL, f"{err.strerror}: {detail}", err.op, err.target)
            raise err
        return found

    def _attach(self) -> None:
        shared: dict[str, Any] = {}
        for t in self.targets:
            what = f"{t.program} to {t.target} (the sensor's {t.section})"
            if t.program in _LOAD_PER_TARGET:
                prog = self._open(t.program, t.target)
                link = lib.bpf_program__attach(prog)
            else:
                if t.program not in shared:
                    shared[t.program] = self._open(t.program, None)
                prog = shared[t.program]
                if t.program == "handle_floor_tp":
                    category, _, name = t.target.partition("/")
                    link = lib.bpf_program__attach_tracepoint(prog, category.encode(), name.encode())
                elif t.program == "handle_floor_raw":
                    link = lib.bpf_program__attach_raw_tracepoint(prog, t.target.encode())
                else:
                    retprobe = t.program == "handle_floor_kretprobe_kprobe"
                    link = lib.bpf_program__attach_kprobe(prog, retprobe, t.target.encode())
            self._links.append(check_ptr(link, "attach", what))
            info = ffi.new("struct bpf_prog_info *")
            size = ffi.new("uint32_t *", ffi.sizeof("struct bpf_prog_info"))
            check_ret(lib.bpf_prog_get_info_by_fd(lib.bpf_program__fd(prog), info, size), "program info", what)
            self._ids.append(int(info.id))

    def programs(self) -> dict[int, int]:
        """Kernel id -> run count (counted while kernel.bpf_stats_enabled is
        1) of each of the floor's loaded programs."""
        out = {}
        for obj in self._objects:
            prog = lib.bpf_object__next_program(obj, ffi.NULL)
            while prog != ffi.NULL:
                fd = lib.bpf_program__fd(prog)
                if fd >= 0:
                    info = ffi.new("struct bpf_prog_info *")
                    size = ffi.new("uint32_t *", ffi.sizeof("struct bpf_prog_info"))
                    check_ret(lib.bpf_prog_get_info_by_fd(fd, info, size), "program info", "floor.bpf.o")
                    out[int(info.id)] = int(info.run_cnt)
                prog = lib.bpf_object__next_program(obj, prog)
        return out

    def program_of(self, target: FloorTarget) -> int:
        """The kernel id of the program attached to target (a classic or raw
        tracepoint's or kprobe's serves every target of its kind)."""
        return self._ids[self.targets.index(target)]

    @property
    def links(self) -> int:
        """How many attachments are in place."""
        return len(self._links)

    def close(self) -> None:
        """Detach and unload everything; idempotent."""
        destroy_links(self._links)
        self._links = []
        for obj in self._objects:
            lib.bpf_object__close(obj)
        self._objects = []
        self._keep = self._keep[:1]

    def __enter__(self) -> AttachFloor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the loops -----------------------------------------------------------------------

# The process that runs the loops: an interpreter that loads only the
# extension (no site, no ebpfsensor package), so that it stays small and its
# forks stay cheap, and runs one loop per request on its stdin.
_LOOP_PROCESS = r"""
import importlib.util, json, os, sys
sys.path.insert(0, sys.argv[2])
spec = importlib.util.spec_from_file_location("ebpfsensor._libbpf", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
ffi, lib = mod.ffi, mod.lib
if int(sys.argv[3]) >= 0:
    os.sched_setaffinity(0, {int(sys.argv[3])})
loop = ffi.new("struct es_loop *")
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    d, exe = ffi.new("char[]", req["dir"].encode()), ffi.new("char[]", req["exe"].encode())
    loop.op, loop.max_ops, loop.max_ns, loop.dir, loop.exe = req["op"], req["max_ops"], req["max_ns"], d, exe
    rc = lib.es_loop_run(loop)
    print(json.dumps([rc, loop.ops, loop.ns, loop.cpu_ns, loop.err]), flush=True)
"""


def true_program() -> str:
    """The program the fork+exec loop runs: ``/bin/true``, or ``true`` on PATH.

    Raises:
        EbpfSensorError: neither exists.
    """
    for path in ("/bin/true", shutil.which("true")):
        if path and os.access(path, os.X_OK):
            return path
    raise EbpfSensorError("no /bin/true to run in the fork+exec loop; install coreutils")


class LoopResult(NamedTuple):
    """What one loop did.

    Attributes:
        ops: operations done.
        ns: wall-clock time they took.
        cpu_ns: CPU time they took (user and system, of the loop process and
            of its fork+exec children): the loop's work, wherever and
            whenever the scheduler ran it, without that of other processes
            sharing the CPU.
    """

    ops: int
    ns: int
    cpu_ns: int


class LoopProcess:
    """A small process, pinned to one CPU, that runs the timed loops.

    Args:
        cpu: the CPU to pin it to; None: the first this process may use.
        workdir: where the open and rename loops make their files (default:
            a new temporary directory, removed on close).

    Attributes:
        pid: the process's pid (its fork+exec children are its children).
        cpu: the CPU it runs on.
    """

    def __init__(self, cpu: int | None = None, workdir: str | None = None) -> None:
        import _cffi_backend

        from . import _libbpf

        self.cpu = min(os.sched_getaffinity(0)) if cpu is None else cpu
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="ebpfsensor-overhead-")
        self.workdir = workdir if workdir is not None else self._tmp.name  # type: ignore[union-attr]
        self.exe = true_program()
        argv = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _LOOP_PROCESS,
            str(_libbpf.__file__),
            os.path.dirname(str(_cffi_backend.__file__)),
            str(self.cpu),
        ]
        self._p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self._p.pid
        try:
            assert self._p.stdout is not None
            line = self._p.stdout.readline()
            if line != "ready\n":
                raise EbpfSensorError(f"the loop process did not start (exit status {self._p.wait(10)})")
        except BaseException:
            self.close()
            raise

    def start(self, op: str, *, max_ops: int = 0, seconds: float = 0.0) -> None:
        """Start a loop of op (a key of :data:`OPERATIONS`) for max_ops
        operations or seconds, whichever comes first; :meth:`result` waits for it."""
        if not max_ops and seconds <= 0:
            raise ValueError("a loop needs max_ops or seconds")
        req = {
            "op": OPERATIONS[op][1],
            "max_ops": int(max_ops),
            "max_ns": int(seconds * 1e9),
            "dir": self.workdir,
            "exe": self.exe,
        }
        assert self._p.stdin is not None
        self._p.stdin.write(json.dumps(req) + "\n")
        self._p.stdin.flush()

    def done(self, timeout: float = 0.0) -> bool:
        """Whether the loop started last has finished (waiting up to timeout s)."""
        assert self._p.stdout is not None
        return bool(select.select([self._p.stdout], [], [], timeout)[0])

    def result(self) -> LoopResult:
        """What the loop started last did, once it is done.

        Raises:
            EbpfSensorError: the loop failed or the process died.
        """
        assert self._p.stdout is not None
        line = self._p.stdout.readline()
        if not line:
            raise EbpfSensorError(f"the loop process died (exit status {self._p.wait(10)})")
        rc, ops, ns, cpu_ns, err = json.loads(line)
        if rc < 0 or ops == 0:
            raise EbpfSensorError(
                f"the loop failed after {ops} operations: {os.strerror(err or -rc)} (in {self.workdir}, {self.exe})"
            )
        return LoopResult(int(ops), int(ns), int(cpu_ns))

    def run(
        self, op: str, *, max_ops: int = 0, seconds: float = 0.0, during: Callable[[], object] | None = None
    ) -> LoopResult:
        """Run a loop to its end, calling during() meanwhile (a consumer's
        poll, which should wait a little)."""
        self.start(op, max_ops=max_ops, seconds=seconds)
        while not self.done(0.0 if during else 1.0):
            if during:
                during()
        return self.result()

    def close(self) -> None:
        """End the process and remove the temporary directory; idempotent."""
        if self._p.stdin is not None and not self._p.stdin.closed:
            self._p.stdin.close()
        if self._p.returncode is None:
            try:
                self._p.wait(30)
            except subprocess.TimeoutExpired:
                self._p.kill()
                self._p.wait()
        if self._p.stdout is not None:
            self._p.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LoopProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the report ----------------------------------------------------------------------


class ModeTiming(msgspec.Struct, frozen=True):
    """An operation's cost in one mode.

    Costs are CPU time (user and system, of the loop process and of its
    fork+exec children), which is what a hook adds to the process that
    makes the call, and which other processes sharing the CPU do not
    inflate; the wall-clock figures are given beside them.

    Attributes:
        ns_per_op: CPU ns per operation, the median over the rounds.
        added_ns: ns_per_op minus that with nothing attached.
        ratio: ns_per_op over that with nothing attached.
        wall_ns_per_op: wall-clock ns per operation, the median over the rounds.
        wall_ratio: wall_ns_per_op over that with nothing attached.
        ops: operations timed, over every round.
        rounds: CPU ns per operation in each round, in order.
        wall_rounds: wall-clock ns per operation in each round.
    """

    ns_per_op: float
    added_ns: float
    ratio: float
    wall_ns_per_op: float
    wall_ratio: float
    ops: int
    rounds: list[float]
    wall_rounds: list[float]


class ConsumerLoad(msgspec.Struct, frozen=True):
    """What the sensor did while the loops ran with it.

    Attributes:
        seconds: wall-clock time the sensor ran the loops (and drained after them).
        cpu_user_s: this process's user CPU time meanwhile (the consumer,
            the process table, the hashing of executables).
        cpu_sys_s: its system CPU time.
        cpu_per_s: CPU seconds per second (user + system; 0.05 is 5% of one CPU).
        cpu_s_per_million_events: CPU seconds per million events delivered;
            None without events.
        delivered: events delivered (from every process on the machine).
        from_loop: events of the loop's own kind from the loop (file_open,
            file_rename from the loop process; process_exec of its children).
        dropped: records the kernel dropped (rings full).
    """

    seconds: float
    cpu_user_s: float
    cpu_sys_s: float
    cpu_per_s: float
    cpu_s_per_million_events: float | None
    delivered: int
    from_loop: int
    dropped: int


class OperationOverhead(msgspec.Struct, frozen=True):
    """One operation in every mode.

    Attributes:
        operation: the key (``open``, ``open_write``, ``rename``, ``exec``).
        label: what it does (``openat(r)+close``, ``openat(w)+close``,
            ``rename``, ``fork+exec``).
        nothing: with no program attached.
        floor: with the attach floor.
        sensor: with the sensor.
        noise_ns: half the spread of the rounds with nothing attached (CPU
            ns per operation): an added cost below it is not told apart from
            the machine's own variation.
        floor_share: the floor's added cost over the sensor's (0.25: a
            quarter of what the sensor adds is the hooks' own cost); None
            when the sensor adds no more than noise_ns.
        consumer: the sensor's side of the sensor mode.
    """

    operation: str
    label: str
    nothing: ModeTiming
    floor: ModeTiming
    sensor: ModeTiming
    noise_ns: float
    floor_share: float | None
    consumer: ConsumerLoad


class OverheadReport(msgspec.Struct, frozen=True):
    """The result of :func:`measure`.

    Attributes:
        machine: architecture, CPUs, kernel release.
        duration_s: the time asked for the loops.
        elapsed_s: the whole run, loading and unloading included.
        rounds: rounds of nothing, floor and sensor.
        cpu: the CPU the loops ran on.
        kinds: the kinds the sensor collected; None for all.
        floor: the hooks the floor attached to (those the sensor attached).
        operations: one per operation.
        consumer: the sensor's side, over every operation.
        hooks: every hook the sensor tried -> the variant it attached
            (``tp``, ``btf``, ``lsm``, ``fentry``, ``kprobe``, ...), or None
            where none works on this kernel: which tier was measured.
    """

    machine: str
    duration_s: float
    elapsed_s: float
    rounds: int
    cpu: int
    kinds: list[str] | None
    floor: list[FloorTarget]
    operations: list[OperationOverhead]
    consumer: ConsumerLoad
    hooks: dict[str, str | None]


# --- the measurement -----------------------------------------------------------------


class _Counts:
    """The sensor's side of the sensor mode, per operation."""

    def __init__(self) -> None:
        self.seconds = self.user = self.sys = 0.0
        self.delivered = self.from_loop = self.dropped = 0

    def load(self) -> ConsumerLoad:
        cpu = self.user + self.sys
        return ConsumerLoad(
            self.seconds,
            self.user,
            self.sys,
            cpu / self.seconds if self.seconds else 0.0,
            cpu / self.delivered * 1e6 if self.delivered else None,
            self.delivered,
            self.from_loop,
            self.dropped,
        )

    def add(self, other: _Counts) -> None:
        for name in ("seconds", "user", "sys", "delivered", "from_loop", "dropped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _is_from_loop(op: str, pid: int) -> Callable[[Any], bool]:
    if op in ("open", "open_write"):
        return lambda e: type(e) is FileOpen and e.pid == pid
    if op == "rename":
        return lambda e: type(e) is FileRename and e.pid == pid
    return lambda e: type(e) is ProcessExec and e.ppid == pid


def _sensor_slice(sensor: Any, loop: LoopProcess, op: str, seconds: float, counts: _Counts) -> LoopResult:
    """One loop with the sensor, its rings drained meanwhile and after, as an agent does."""
    mine = _is_from_loop(op, loop.pid)
    before = sensor.stats().dropped
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    # counting the loop's events is this diagnostic's work, not the sensor's
    own_ns = 0
    loop.start(op, seconds=seconds)
    quiet = 0
    finished = False
    while quiet < 3:
        # while the loop runs, as an agent polls; after it, until three
        # polls in a row find the rings empty
        batch = sensor.poll(0.01 if finished else None)
        c = time.thread_time_ns()
        counts.delivered += len(batch)
        counts.from_loop += sum(1 for e in batch if mine(e))
        own_ns += time.thread_time_ns() - c
        finished = finished or loop.done()
        quiet = quiet + 1 if finished and not batch else 0
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    counts.dropped += sensor.stats().dropped - before
    counts.seconds += t1 - t0
    counts.user += max(0.0, r1.ru_utime - r0.ru_utime - own_ns / 1e9)
    counts.sys += r1.ru_stime - r0.ru_stime
    return loop.result()


def _attached(hooks: Mapping[str, HookInfo]) -> dict[str, str]:
    return {h: info.variant for h, info in hooks.items() if info.variant}


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(
            errno.EPERM,
            "Permission denied",
            "run",
            "diagnostic overhead",
            "needs root: it loads the sensor and an attach floor of its own; run it with sudo",
        )


def measure(
    duration: float = 10.0,
    kinds: Iterable[str] | None = None,
    *,
    rounds: int | None = None,
    cpu: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> OverheadReport:
    """Time the loops with nothing, the attach floor and the sensor.

    Args:
        duration: seconds spent in the loops, over every mode and round
            (loading and unloading take a few seconds more).
        kinds: the sensor's kinds (default: all).
        rounds: rounds of the three modes (default: from duration, at least 3).
        cpu: the CPU the loops run on (default: the first this process may use).
        config: further Sensor settings (``Config`` fields).

    Raises:
        PrivilegeError: not root.
        ValueError: a duration that is not positive, or rounds below 1.
        EbpfSensorError: the sensor could not run eBPF, a loop failed, or the
            floor could not attach where the sensor did.
    """
    from .sensor import Sensor

    _require_root()
    if not duration > 0:
        raise ValueError(f"the duration must be positive, not {duration}")
    if rounds is None:
        rounds = max(3, min(11, int(duration / 2.7)))
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    wanted = None if kinds is None else frozenset(kinds)
    # the sensor's own log file stays as the administrator set it up
    settings = {"log_file": None, "provider": "ebpf", "fail_closed": True, **(config or {})}
    cfg = Config(kinds=wanted, **settings)
    slice_s = duration / (rounds * len(MODES) * len(OPERATIONS))
    t_start = time.monotonic()

    def sensor() -> Any:
        s = Sensor(cfg).start()
        if s.stats().provider != "ebpf":
            s.close()
            raise EbpfSensorError("the sensor does not run eBPF here: nothing to measure")
        return s

    timings: dict[tuple[str, str], list[LoopResult]] = {}
    counts = {op: _Counts() for op in OPERATIONS}
    # rounds alternate in order (sensor, floor, nothing, then nothing, floor,
    # sensor, ...): drift in the machine's load falls on every mode alike,
    # and the sensor of two rounds in a row is loaded once (an unload waits
    # for the kernel's grace periods, seconds on a busy machine)
    order = [m for r in range(rounds) for m in (reversed(MODES) if r % 2 == 0 else MODES)]
    hooks: dict[str, HookInfo] | None = None
    targets: list[FloorTarget] = []
    with LoopProcess(cpu) as loop:
        # first forks and execs fault pages in and fill caches: not timed
        for op in OPERATIONS:
            loop.run(op, seconds=min(0.05, slice_s))
        i = 0
        while i < len(order):
            mode, runs = order[i], 1
            while i + runs < len(order) and order[i + runs] == mode:
                runs += 1
            i += runs
            if mode == "sensor":
                with sensor() as s:
                    if hooks is None:
                        # the hooks the floor mirrors: this machine's, this run's
                        hooks = s.hooks()
                        targets = floor_targets(hooks)
                        if not targets:
                            raise EbpfSensorError("the sensor attached no hook: nothing to measure")
                    elif _attached(s.hooks()) != _attached(hooks):
                        raise EbpfSensorError("the sensor attached other hooks than at its first start")
                    for _ in range(runs):
                        for op in OPERATIONS:
                            timings.setdefault((mode, op), []).append(_sensor_slice(s, loop, op, slice_s, counts[op]))
                continue
            with AttachFloor(targets) if mode == "floor" else contextlib.nullcontext():
                for _ in range(runs):
                    for op in OPERATIONS:
                        timings.setdefault((mode, op), []).append(loop.run(op, seconds=slice_s))
        used_cpu = loop.cpu
    operations = []
    total = _Counts()
    for op, (label, _) in OPERATIONS.items():
        cpu_ns = {m: [r.cpu_ns / r.ops for r in timings[(m, op)]] for m in MODES}
        wall = {m: [r.ns / r.ops for r in timings[(m, op)]] for m in MODES}
        base, wall_base = statistics.median(cpu_ns["nothing"]), statistics.median(wall["nothing"])
        modes = {
            m: ModeTiming(
                statistics.median(cpu_ns[m]),
                statistics.median(cpu_ns[m]) - base,
                statistics.median(cpu_ns[m]) / base,
                statistics.median(wall[m]),
                statistics.median(wall[m]) / wall_base,
                sum(r.ops for r in timings[(m, op)]),
                cpu_ns[m],
                wall[m],
            )
            for m in MODES
        }
        noise = (max(cpu_ns["nothing"]) - min(cpu_ns["nothing"])) / 2
        added = modes["sensor"].added_ns
        share = modes["floor"].added_ns / added if added > max(noise, 0.0) else None
        operations.append(
            OperationOverhead(
                op, label, modes["nothing"], modes["floor"], modes["sensor"], noise, share, counts[op].load()
            )
        )
        total.add(counts[op])
    return OverheadReport(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        duration,
        time.monotonic() - t_start,
        rounds,
        used_cpu,
        None if wanted is None else sorted(wanted),
        targets,
        operations,
        total.load(),
        {h: info.variant for h, info in sorted((hooks or {}).items())},
    )


def _ns(v: float, us: bool, sign: bool = False) -> str:
    """ns, or µs for an operation that takes that long (one unit per row)."""
    plus = "+" if sign else ""
    return f"{v / 1000:{plus}.1f} µs" if us else f"{v:{plus}.0f} ns"


def variant_summary(hooks: Mapping[str, str | None], *, names: int = 4) -> str:
    """The hooks by variant, most used first, none last: ``tp 102, lsm 10
    (path_chmod, path_chown, path_link, path_mkdir, ...), btf 4 (exec,
    exit, fork, module_load)``.

    Args:
        hooks: hook -> the variant attached, or None (:attr:`OverheadReport.hooks`).
        names: how many hooks of a variant are named; a variant with more
            than a dozen (the syscall tracepoints) is only counted.
    """
    by: dict[str, list[str]] = {}
    for hook, variant in sorted(hooks.items()):
        by.setdefault(variant or "none", []).append(hook)
    parts = []
    for variant, hs in sorted(by.items(), key=lambda kv: (kv[0] == "none", -len(kv[1]), kv[0])):
        shown = ""
        if len(hs) <= 12:
            shown = " (" + ", ".join(hs[:names]) + (", ..." if len(hs) > names else "") + ")"
        parts.append(f"{variant} {len(hs)}{shown}")
    return ", ".join(parts)


def format_text(report: OverheadReport) -> str:
    """The report as a table for a terminal."""
    kinds = "all kinds" if report.kinds is None else ", ".join(report.kinds)
    lines = [
        f"ebpfsensor diagnostic overhead: {report.machine}; loops on CPU {report.cpu},"
        f" {report.rounds} rounds, {report.duration_s:g} s of loops ({report.elapsed_s:.0f} s in all)",
        f"sensor: {kinds}, default configuration; attach floor: programs that return at once on the"
        f" {len(report.floor)} hooks the sensor attached",
        f"hooks by variant: {variant_summary(report.hooks)}",
        "",
        "CPU time per operation (the loop's process and its children, user + system):",
        f"{'':14} {'nothing':^20}  {'attach floor':^29}  {'sensor':^29}  {'floor':>6}  {'wall-clock ratio':>16}",
        f"{'':14} {'ns/op':>10} {'noise':>9}  {'ns/op':>10} {'added':>11} {'ratio':>6}"
        f"  {'ns/op':>10} {'added':>11} {'ratio':>6}  {'share':>6}  {'floor':>7} {'sensor':>8}",
    ]
    for o in report.operations:
        us = o.nothing.ns_per_op >= 100_000
        cells = [f"{o.label:14} {_ns(o.nothing.ns_per_op, us):>10} {'±' + _ns(o.noise_ns, us):>9}"]
        for m in (o.floor, o.sensor):
            cells.append(f"{_ns(m.ns_per_op, us):>10} {_ns(m.added_ns, us, True):>11} {m.ratio:5.2f}x")
        cells.append(f"{'-' if o.floor_share is None else f'{100 * o.floor_share:.0f}%':>6}")
        cells.append(f"{o.floor.wall_ratio:6.2f}x {o.sensor.wall_ratio:7.2f}x")
        lines.append("  ".join(cells))
    lines += [
        "noise: half the spread of the rounds with nothing attached",
        "floor share: the part of what the sensor adds that any program on its hooks costs"
        " (-: the sensor adds no more than the noise)",
        "",
        "the sensor's process (consumer, process table, hashes) while the loops ran:",
        f"{'':14} {'CPU':>7} {'CPU s per':>10} {'events':>10} {'of them':>9} {'dropped':>8}",
        f"{'':14} {'':>7} {'M events':>10} {'delivered':>10} {'the loop':>9} {'':>8}",
    ]
    for label, c in [(o.label, o.consumer) for o in report.operations] + [("all", report.consumer)]:
        per_m = "-" if c.cpu_s_per_million_events is None else f"{c.cpu_s_per_million_events:.2f}"
        lines.append(
            f"{label:14} {100 * c.cpu_per_s:6.1f}% {per_m:>10} {c.delivered:>10} {c.from_loop:>9} {c.dropped:>8}"
        )
    lines.append("CPU: user + system time per second of loops (100% is one CPU)")
    return "\n".join(lines) + "\n"
