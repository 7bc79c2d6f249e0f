# SPDX-License-Identifier: Apache-2.0
"""Diagnostic statistics: who is noisy, and on what.

For a window of time, a separate BPF object (``diag.bpf.o``, never part of
the Sensor) counts every syscall by id and, for the syscalls an endpoint agent
monitors (:data:`MONITORED`), the executable that made it and the file it
names. Nothing of it stays loaded after the window.

    stats = ebpfsensor.diagnostic.ebpf_statistics(20, top=10)
    print(format_text(stats))

or, around a workload of your own::

    with Diagnostic() as d:
        run_workload()
        stats = d.stop()
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import sys
import time
from typing import Any

import msgspec

from ._ffi import check_ret, ffi, lib, map_items
from ._text import fsdecode
from .errors import ConfigError, EbpfSensorError, NotSupportedError
from .exclusions import ExcludeExecutable, user_dev
from .host import features
from .host.btf import resolve as resolve_btf
from .host.mounts import ensure_tracefs
from .host.paths import PACKAGE_DIR
from .host.syscalls import syscall_name, syscall_number
from .sources.ebpf.objects import BpfObject, HookStatus, LoadedObject, bpf_arch

__all__ = [
    "MONITORED",
    "Diagnostic",
    "DiagnosticCounters",
    "EbpfStatistics",
    "InitiatorCount",
    "PathCount",
    "SyscallCount",
    "ebpf_statistics",
    "format_text",
]

# (path_arg, dfd_arg, fd_arg): which argument names the file, -1 for none
_NONE = (-1, -1, -1)
_PATH0 = (0, -1, -1)  # a path in the first argument
_AT1 = (1, 0, -1)  # dirfd, path
_FD0 = (-1, -1, 0)  # an fd in the first argument

#: the opens' flags: (argument, 1 when it points to a struct open_how);
#: creat always has write intent
_OPEN_FLAGS = {"open": (1, 0), "openat": (2, 0), "openat2": (2, 1)}

#: The syscalls an endpoint agent monitors (file, network, process, privilege,
#: integrity), with the argument that names the file each acts on. Names an
#: architecture lacks (aarch64 has no ``open``) are skipped there.
MONITORED: dict[str, tuple[int, int, int]] = {
    # file: the object of the call (rename and link: the source name)
    "open": _PATH0,
    "openat": _AT1,
    "openat2": _AT1,
    "creat": _PATH0,
    "rename": _PATH0,
    "renameat": _AT1,
    "renameat2": _AT1,
    "unlink": _PATH0,
    "unlinkat": _AT1,
    "mkdir": _PATH0,
    "mkdirat": _AT1,
    "rmdir": _PATH0,
    "mknod": _PATH0,
    "mknodat": _AT1,
    "chmod": _PATH0,
    "fchmod": _FD0,
    "fchmodat": _AT1,
    "chown": _PATH0,
    "lchown": _PATH0,
    "fchown": _FD0,
    "fchownat": _AT1,
    "link": _PATH0,
    "linkat": _AT1,
    "symlink": (1, -1, -1),  # the link, not its target
    "symlinkat": (2, 1, -1),
    "truncate": _PATH0,
    "ftruncate": _FD0,
    "setxattr": _PATH0,
    "lsetxattr": _PATH0,
    "fsetxattr": _FD0,
    "removexattr": _PATH0,
    "lremovexattr": _PATH0,
    "fremovexattr": _FD0,
    # network
    "connect": _NONE,
    "accept": _NONE,
    "accept4": _NONE,
    "bind": _NONE,
    "listen": _NONE,
    # process
    "execve": _PATH0,
    "execveat": _AT1,
    "clone": _NONE,
    "clone3": _NONE,
    "fork": _NONE,
    "vfork": _NONE,
    "ptrace": _NONE,
    "kill": _NONE,
    "tkill": _NONE,
    "tgkill": _NONE,
    "setsid": _NONE,
    "unshare": _NONE,
    "setns": _NONE,
    # privilege
    "setuid": _NONE,
    "setgid": _NONE,
    "setreuid": _NONE,
    "setregid": _NONE,
    "setresuid": _NONE,
    "setresgid": _NONE,
    "setfsuid": _NONE,
    "setfsgid": _NONE,
    "setgroups": _NONE,
    "capset": _NONE,
    # integrity
    "init_module": _NONE,
    "finit_module": _FD0,
    "delete_module": _NONE,
    "kexec_load": _NONE,
    "kexec_file_load": _FD0,
    "bpf": _NONE,
    "memfd_create": _NONE,
    "mount": (1, -1, -1),  # the mount point
    "umount2": _PATH0,
    "pivot_root": _PATH0,
    "chroot": _PATH0,
}


class PathCount(msgspec.Struct, frozen=True):
    """A file path and how many monitored syscalls named it.

    ``truncated``: the path was longer than 255 bytes; these are its first
    255, and every longer path sharing them is counted here.
    """

    path: str
    count: int
    truncated: bool = False


class SyscallCount(msgspec.Struct, frozen=True):
    """A syscall id (this architecture's number), its name when known, its count."""

    nr: int
    name: str | None
    count: int
    monitored: bool = False


class InitiatorCount(msgspec.Struct, frozen=True):
    """An executable and how many monitored syscalls its processes made.

    ``dev`` and ``ino`` identify the executable file as ``os.stat`` reports
    it (``st_dev``, ``st_ino``); ``kernel_dev`` is the same device in the
    kernel's encoding (``major << 20 | minor``), as BPF programs see it.
    ``syscalls`` says which monitored syscalls they were, the most frequent
    first.
    """

    path: str
    count: int
    dev: int
    ino: int
    kernel_dev: int
    truncated: bool = False
    syscalls: list[SyscallCount] = msgspec.field(default_factory=list)


class DiagnosticCounters(msgspec.Struct, frozen=True):
    """Totals, and what could not be counted.

    Attributes:
        syscalls: every syscall entered during the window.
        syscalls_out_of_range: ids outside the table (x32 ids, -1).
        syscalls_compat: 32-bit syscalls (ia32 on x86_64, AArch32 on arm64;
            numbered in their own tables), counted only here.
        monitored: syscalls in the monitored set, each counted per initiator.
        initiators_full: monitored syscalls whose executable did not fit in
            the map (16384 executables).
        initiators_no_exe: monitored syscalls of tasks without an executable
            (kernel threads).
        initiator_syscalls_full: monitored syscalls not counted per
            executable and id (16384 pairs).
        paths: monitored syscalls that name a file.
        paths_full: of those, the ones whose path did not fit (16384 paths).
        paths_unreadable: of those, the ones whose name or fd could not be read.
        paths_truncated: of those, the ones whose path exceeded 255 bytes.
        read_only_opens: monitored opens without write intent, counted here
            only and not attributed to an executable or a file, as the
            sensor's open policy (``read_opens="watched"``) reports only
            those of watched files; 0 with ``read_opens="all"``.
    """

    syscalls: int = 0
    syscalls_out_of_range: int = 0
    syscalls_compat: int = 0
    monitored: int = 0
    initiators_full: int = 0
    initiators_no_exe: int = 0
    initiator_syscalls_full: int = 0
    paths: int = 0
    paths_full: int = 0
    paths_unreadable: int = 0
    paths_truncated: int = 0
    read_only_opens: int = 0


class EbpfStatistics(msgspec.Struct, frozen=True):
    """What a diagnostic window saw, the top entries of each list first."""

    duration_s: float
    arch: str
    variant: str
    top_file_paths: list[PathCount]
    top_initiators: list[InitiatorCount]
    top_syscalls: list[SyscallCount]
    counters: DiagnosticCounters

    def top_initiator_exclusion(self, *, descendants: bool = False, force: bool = False) -> ExcludeExecutable:
        """The rule that excludes the top initiator, by its executable's identity.

        Give it to ``Sensor.exclude`` (``Sensor.exclude_top_initiator`` does
        both) or to the managed configuration (``ebpfsensor exclusions add
        --top-initiator``).

        Args:
            descendants: also exclude every process it starts.
            force: exclude it even when it is a shared executable (an
                interpreter, a shell, a launcher: :func:`shared_executable`).

        Returns:
            ``ExcludeExecutable`` for its path, which still names the same
            file (device and inode) the window counted.

        Raises:
            ConfigError: the window saw no initiator; the top one is this
                process's own executable (the interpreter running the
                sensor: excluding it would silence the sensor's process and
                everything else it runs); it is a shared executable and
                ``force`` is not set (excluding ``/usr/bin/python3`` or
                ``/bin/bash`` silences every script, for every user); or
                its path no longer names the file counted (truncated,
                deleted, replaced, or seen in another mount namespace).
        """
        if not self.top_initiators:
            raise ConfigError("top initiator: the diagnostic window saw none; run it longer, under the noisy workload")
        top = self.top_initiators[0]
        what = f"top initiator {top.path} ({top.count} monitored syscalls)"
        if (top.dev, top.ino) in _own_executables():
            raise ConfigError(
                f"{what}: the executable of this process, the one running the sensor; "
                f"excluding it would silence the sensor's own process: {_NARROWER}"
            )
        shared = shared_executable(top.path)
        if shared and not force:
            raise ConfigError(
                f"{what}: {shared}; excluding it silences every script and program it runs, for every user: "
                f"{_NARROWER}, or force it (--force)"
            )
        if top.truncated:
            raise ConfigError(f"{what}: the path is truncated, it names no file; {_NARROWER}")
        try:
            st = os.stat(top.path)
        except OSError as exc:
            raise ConfigError(
                f"{what}: {exc.strerror}; it has no file here (deleted, or in another mount namespace): {_NARROWER}"
            ) from None
        if (st.st_dev, st.st_ino) != (top.dev, top.ino):
            raise ConfigError(
                f"{what}: the path now names another file (replaced since, or another mount namespace's); {_NARROWER}"
            )
        return ExcludeExecutable(top.path, descendants=descendants)


# the advice where the top initiator cannot be excluded by identity; names
# are left out on purpose: any process can take any name
_NARROWER = "exclude the noisy process by pid (while it runs), its cgroup or its script's path prefix instead"


@functools.cache
def _shared_names() -> tuple[str, ...]:
    data = json.loads((PACKAGE_DIR / "data" / "shared_executables.json").read_text())
    return tuple(data["names"])


def shared_executable(path: str) -> str | None:
    """Why an executable runs other people's code (an interpreter, a shell,
    a launcher: ``data/shared_executables.json``), or None.

    Its file name is matched, and that of the file it resolves to (a
    ``python3`` symlink to ``python3.11``).
    """
    for name in dict.fromkeys((os.path.basename(path), os.path.basename(os.path.realpath(path)))):
        for pattern in _shared_names():
            if fnmatch.fnmatchcase(name, pattern):
                return f"{name} is a shared executable (an interpreter, shell or launcher, like {pattern})"
    return None


def _own_executables() -> set[tuple[int, int]]:
    """(st_dev, st_ino) of this process's executable and interpreter."""
    own = set()
    for path in ("/proc/self/exe", sys.executable):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            continue
        own.add((st.st_dev, st.st_ino))
    return own


_COUNTER_FIELDS = tuple(DiagnosticCounters.__struct_fields__)


def _decode_path(buf: Any, length: int | None = None) -> str:
    raw = bytes(ffi.buffer(buf))
    raw = raw[:length] if length is not None else raw.split(b"\0", 1)[0]
    return fsdecode(raw)


class Diagnostic:
    """A diagnostic window: load and attach on start, detach and read on stop.

    Args:
        btf_path: kernel BTF file, for kernels without /sys/kernel/btf/vmlinux.
        variants: the hook variants allowed (``raw``, ``tp``); None for both,
            raw tracepoint first.
        max_initiators: executables (and executable, syscall pairs) counted;
            the monitored syscalls of more are counted in ``initiators_full``.
        max_paths: file paths counted; more are counted in ``paths_full``.
            Each entry takes about 300 bytes of kernel memory.

    Every monitored syscall is accounted for: ``monitored`` = the initiator
    counts + ``initiators_full`` + ``initiators_no_exe`` +
    ``read_only_opens``, and ``paths`` = the path counts + ``paths_full`` +
    ``paths_unreadable``. With ``read_opens="watched"`` (the sensor's
    default open policy) read-only opens are counted in ``read_only_opens``
    only, as the sensor counts rather than reports them; "all" attributes
    them as any monitored syscall.

    A context manager; :meth:`close` (or leaving the block) unloads
    everything, whether or not :meth:`stop` was called.

    Raises (from start):
        PrivilegeError: not allowed to load BPF programs.
        NotSupportedError: no BPF ring buffer (the object shares the
            sensor's maps, its rings among them), no BTF of the kernel's
            own (an external file does not serve this object), or no BTF
            found.
        EbpfSensorError: no variant of the syscall hook attaches.
    """

    def __init__(
        self,
        *,
        btf_path: str | None = None,
        variants: set[str] | frozenset[str] | None = None,
        max_initiators: int = lib.DIAG_MAX_INITIATORS,
        max_paths: int = lib.DIAG_MAX_PATHS,
        read_opens: str = "watched",
    ) -> None:
        if max_initiators < 1 or max_paths < 1:
            raise ValueError("max_initiators and max_paths must be at least 1")
        if read_opens not in ("watched", "all"):
            raise ValueError(f"read_opens: {read_opens!r} is not one of watched, all")
        self.read_opens = read_opens
        self.btf_path = btf_path
        self.variants = variants
        self.max_initiators = max_initiators
        self.max_paths = max_paths
        self.hook: HookStatus | None = None
        self._obj: LoadedObject | None = None
        self._started = 0.0
        self._arch = bpf_arch()

    def start(self) -> Diagnostic:
        """Load, fill the monitored set, attach; idempotent."""
        if self._obj is not None:
            return self
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        # the object carries the sensor's rings (task.bpf.h): a kernel
        # without them refuses the maps, said here rather than as EINVAL
        ring = features.ring_buffer()
        if ring.outcome == "not_supported":
            raise NotSupportedError(ring.name, ring.min_kernel, ring.detail)
        # a ring build: its path walk loads through BTF-typed pointers
        # (compat.bpf.h, ES_TASK_BTF), which an external BTF file cannot type
        own = features.own_btf()
        if not own.works:
            raise NotSupportedError("the diagnostic's object", detail=f"it needs {own.name}: {own.detail}")
        if self.variants is None or "tp" in self.variants:
            ensure_tracefs()
        # the BTF the sensor would use: the kernel's, or a file where it searches
        # lifetime: held open until the load returns; libbpf reads the checked file
        with resolve_btf(self.btf_path) as btf:
            self._load(btf.libbpf_path)

    def _load(self, btf_path: str | None) -> None:
        self._obj = BpfObject.packaged("diag").load(
            # the object shares task.bpf.h, rings included, with the sensor:
            # one page each, nothing is ever written to them here
            map_sizes={
                "lifecycle_events": 4096,
                "activity_events": 4096,
                "diag_initiators": self.max_initiators,
                "diag_initiator_syscalls": self.max_initiators,
                "diag_paths": self.max_paths,
            },
            config={"cfg_read_opens_all": int(self.read_opens == "all")},
            btf_path=btf_path,
            variants=self.variants,
            # the monitored set is in place before the first syscall is seen
            prepare=lambda map_fd: self._fill_monitored(map_fd("diag_monitored")),
        )
        self.hook = self._obj.hooks["diag"]
        if not self.hook.attached:
            raise EbpfSensorError(f"no syscall hook could be attached: {' / '.join(self.hook.failures)}")
        self._started = time.monotonic()

    def _fill_monitored(self, fd: int) -> None:
        key = ffi.new("uint32_t *")
        spec = ffi.new("struct diag_syscall_spec *")
        for name, (path_arg, dfd_arg, fd_arg) in MONITORED.items():
            nr = syscall_number(name, self._arch)
            if nr is None or nr >= lib.DIAG_MAX_SYSCALLS:
                continue
            key[0] = nr
            spec.monitored = 1
            spec.path_arg, spec.dfd_arg, spec.fd_arg = path_arg, dfd_arg, fd_arg
            spec.flags_arg, spec.flags_how = _OPEN_FLAGS.get(name, (-1, 0))
            check_ret(lib.bpf_map_update_elem(fd, key, spec, 0), "fill", "diag_monitored")

    def stop(self, top: int = 10) -> EbpfStatistics:
        """Detach, read the counts, unload; the top entries of each list.

        Args:
            top: entries per list (0: all).

        Raises:
            EbpfSensorError: the window was not started.
        """
        if self._obj is None:
            raise EbpfSensorError("the diagnostic is not started: use `with Diagnostic() as d:` or call start()")
        obj = self._obj
        # stop counting first: reading the maps makes monitored syscalls (bpf)
        obj.detach()
        duration = time.monotonic() - self._started
        try:
            result = self._read(obj, duration, top)
        finally:
            self.close()
        return result

    def _read(self, obj: LoadedObject, duration: float, top: int) -> EbpfStatistics:
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        limit = None if top <= 0 else top
        monitored = {n for name in MONITORED if (n := syscall_number(name, self._arch)) is not None}

        key = ffi.new("uint32_t *")
        percpu = ffi.new("uint64_t[]", ncpu)
        fd = obj.map_fd("diag_syscalls")
        syscalls = []
        for nr in range(lib.DIAG_MAX_SYSCALLS):
            key[0] = nr
            check_ret(lib.bpf_map_lookup_elem(fd, key, percpu), "read", "diag_syscalls")
            count = sum(percpu)
            if count:
                syscalls.append(SyscallCount(nr, syscall_name(nr, self._arch), count, nr in monitored))
        syscalls.sort(key=lambda s: (-s.count, s.nr))

        key[0] = 0
        values = ffi.new("struct diag_counters[]", ncpu)
        check_ret(lib.bpf_map_lookup_elem(obj.map_fd("diag_counters"), key, values), "read", "diag_counters")
        counters = DiagnosticCounters(**{f: sum(getattr(values[i], f) for i in range(ncpu)) for f in _COUNTER_FIELDS})

        per_initiator: dict[tuple[int, int], list[SyscallCount]] = {}
        fd = obj.map_fd("diag_initiator_syscalls")
        for sk, sval in map_items(fd, "struct diag_initiator_syscall_key", "uint64_t", "diag_initiator_syscalls"):
            per_initiator.setdefault((sk.dev, sk.ino), []).append(
                SyscallCount(sk.nr, syscall_name(sk.nr, self._arch), sval[0], True)
            )
        for counts in per_initiator.values():
            counts.sort(key=lambda s: (-s.count, s.nr))

        initiators = []
        fd = obj.map_fd("diag_initiators")
        for inext, ival in map_items(fd, "struct diag_initiator_key", "struct diag_initiator", "diag_initiators"):
            path = _decode_path(ival.path, min(ival.path_len, lib.DIAG_PATH_LEN - 1))
            initiators.append(
                InitiatorCount(
                    path,
                    ival.count,
                    user_dev(inext.dev),
                    inext.ino,
                    inext.dev,
                    bool(ival.truncated),
                    per_initiator.get((inext.dev, inext.ino), []),
                )
            )
        initiators.sort(key=lambda i: (-i.count, i.path))

        paths = []
        fd = obj.map_fd("diag_paths")
        for pk, pval in map_items(fd, "struct diag_path_key", "struct diag_path_count", "diag_paths"):
            paths.append(PathCount(_decode_path(pk.path), pval.count, bool(pval.truncated)))
        paths.sort(key=lambda p: (-p.count, p.path))

        return EbpfStatistics(
            duration_s=round(duration, 3),
            arch=self._arch,
            variant=self.hook.variant if self.hook and self.hook.variant else "",
            top_file_paths=paths[:limit],
            top_initiators=initiators[:limit],
            top_syscalls=syscalls[:limit],
            counters=counters,
        )

    def close(self) -> None:
        """Detach and unload everything; idempotent."""
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __enter__(self) -> Diagnostic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def ebpf_statistics(
    duration: float = 20.0,
    top: int = 10,
    *,
    btf_path: str | None = None,
    variants: set[str] | frozenset[str] | None = None,
    read_opens: str = "watched",
) -> EbpfStatistics:
    """Count syscalls, initiators and file paths for duration seconds.

    Args:
        duration: the window, in seconds.
        top: entries per list (0: all).
        btf_path: kernel BTF file, for kernels without /sys/kernel/btf/vmlinux.
        variants: the hook variants allowed (``raw``, ``tp``).
        read_opens: the sensor's open policy: "watched" leaves read-only
            opens out of the lists (counted apart), "all" attributes them.

    Returns:
        The counts, the largest first, with what could not be counted.

    Raises:
        PrivilegeError: not allowed to load BPF programs.
        EbpfSensorError: no variant of the syscall hook attaches.
    """
    with Diagnostic(btf_path=btf_path, variants=variants, read_opens=read_opens) as d:
        time.sleep(max(0.0, duration))
        return d.stop(top)


def _syscall_label(s: SyscallCount) -> str:
    return f"{s.nr} ({s.name})" if s.name else str(s.nr)


def format_text(stats: EbpfStatistics) -> str:
    """The reference agent's layout: id first, then the name when known.

    ::

        Monitor 20 seconds
        Top file paths:
        /var/log/app.log : 10
        Top initiator paths:
        /usr/bin/stress-ng : 50000
        Top syscall ids:
        82 (rename) : 1699333
    """
    lines = [f"Monitor {round(stats.duration_s, 1):g} seconds", "Top file paths:"]
    lines += [f"{p.path}{'...' if p.truncated else ''} : {p.count}" for p in stats.top_file_paths]
    lines.append("Top initiator paths:")
    lines += [f"{i.path}{'...' if i.truncated else ''} : {i.count}" for i in stats.top_initiators]
    lines.append("Top syscall ids:")
    lines += [f"{_syscall_label(s)} : {s.count}" for s in stats.top_syscalls]
    c = stats.counters
    lost = {
        "initiators not counted (map full)": c.initiators_full,
        "syscalls not counted per initiator (map full)": c.initiator_syscalls_full,
        "paths not counted (map full)": c.paths_full,
        "paths unreadable": c.paths_unreadable,
        "syscall ids out of range": c.syscalls_out_of_range,
        "32-bit syscalls, not counted per id": c.syscalls_compat,
        "read-only opens, not attributed (the open policy reports watched files only)": c.read_only_opens,
    }
    lines += [f"({what}: {n})" for what, n in lost.items() if n]
    return "\n".join(lines) + "\n"
