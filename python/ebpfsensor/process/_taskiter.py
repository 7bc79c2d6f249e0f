# SPDX-License-Identifier: Apache-2.0
"""The processes running now, from a BPF task iterator (iter.bpf.c).

The iterator's program is loaded, linked (``BPF_LINK_CREATE``,
``BPF_TRACE_ITER``), opened (``BPF_ITER_CREATE``) and read to its end, then
every fd is closed: nothing of it outlives :func:`read_records`. Each
process comes as one ``struct task_iter_record`` (bpf_src/events.h) and its
tail; :func:`snapshots` turns them into the :class:`ProcSnapshot` that the
/proc scan gives, with the exact start time the lifecycle records carry.

libbpf's link and iterator calls are not among the extension's, so the two
bpf(2) commands go through ``syscall(2)``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Any

from .._ffi import ffi, make_error
from .._text import fsdecode
from ..host.containers import CgroupResolver
from ..sources.ebpf.objects import BpfObject, LoadedObject, bpf_arch
from ._procfs import ProcSnapshot, read_process, ticks_of

__all__ = ["RECORD", "TaskIterRead", "load_iterator", "read_records", "snapshots"]

#: bpf(2)'s number per architecture (the kernel's BPF arch names)
_NR_BPF = {"x86": 321, "arm64": 280}
_BPF_LINK_CREATE, _BPF_ITER_CREATE, _BPF_TRACE_ITER = 28, 33, 28
_ATTR_SIZE = 64  # more than either command reads; the kernel wants the rest zero
_READ = 1 << 20


def _layout() -> tuple[struct.Struct, dict[str, int]]:
    """struct task_iter_record as cffi sees events.h: an unpacker and where
    each member lands in its tuple."""
    fmt, pos, names = "<", 0, {}
    for i, (name, field) in enumerate(ffi.typeof("struct task_iter_record").fields):
        t = field.type
        if field.offset != pos:
            raise AssertionError(f"task_iter_record.{name}: implicit padding before it")
        if t.kind == "array":
            fmt += f"{t.length}s"
            pos += t.length
        else:
            size = ffi.sizeof(t)
            fmt += {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
            pos += size
        names[name] = i
    layout = struct.Struct(fmt)
    if layout.size != ffi.sizeof("struct task_iter_record"):
        raise AssertionError("task_iter_record: padding at its end")
    return layout, names


RECORD, _AT = _layout()


class TaskIterRead:
    """What one run of the iterator gave.

    Attributes:
        data: the records, as read.
        variant: the program that ran: ``iter_s`` (argv copied from each
            process's memory) or ``iter`` (argv left to /proc).
        failures: why the variants before it did not load.
    """

    def __init__(self, data: bytes, variant: str, failures: list[str]) -> None:
        self.data = data
        self.variant = variant
        self.failures = failures


_syscall: Any = None


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    global _syscall
    if _syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _syscall = libc.syscall
        _syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(attr.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)
    fd = int(_syscall(_NR_BPF[bpf_arch()], cmd, buf, _ATTR_SIZE))
    if fd < 0:
        raise make_error(ctypes.get_errno() or errno.EINVAL, what, "iter.bpf.o:task")
    return fd


def load_iterator(btf_path: str | None = None) -> LoadedObject:
    """The iterator's object, loaded (not attached): what read_records runs.

    Raises:
        LibbpfError: the object could not be loaded at all.
    """
    return BpfObject.packaged("iter").load(hooks=["task"], btf_path=btf_path, attach=False)


def read_records(btf_path: str | None = None, loaded: LoadedObject | None = None) -> TaskIterRead:
    """Run the task iterator once and read all it writes.

    Args:
        btf_path: as for BpfObject.load.
        loaded: the iterator already loaded (load_iterator), which this
            then owns and closes; None to load it here.

    Raises:
        LibbpfError: no variant loads, or linking, opening or reading the
            iterator failed (PrivilegeError for want of privileges).
    """
    if loaded is None:
        loaded = load_iterator(btf_path)
    link = it = -1
    try:
        status = loaded.hooks["task"]
        if status.variant is None:
            if status.error is not None:
                raise status.error
            raise make_error(errno.ENOENT, "load", "iter.bpf.o:task", "; ".join(status.failures))
        prog = loaded.program_fd(f"handle_task_{status.variant}")
        # link_create: prog_fd, target_fd, attach_type, flags; no iter_info
        link = _bpf(_BPF_LINK_CREATE, struct.pack("<IIII", prog, 0, _BPF_TRACE_ITER, 0), "link")
        it = _bpf(_BPF_ITER_CREATE, struct.pack("<II", link, 0), "open")
        chunks = []
        while True:
            try:
                chunk = os.read(it, _READ)
            except OSError as exc:
                raise make_error(exc.errno or errno.EIO, "read", "iter.bpf.o:task") from None
            if not chunk:
                break
            chunks.append(chunk)
        return TaskIterRead(b"".join(chunks), status.variant, list(status.failures))
    finally:
        for fd in (it, link):
            if fd >= 0:
                os.close(fd)
        loaded.close()


def snapshots(data: bytes) -> tuple[dict[int, ProcSnapshot], int]:
    """The processes in the iterator's records, by pid, and how many of them
    had their argv read from /proc (the variant without argv, or a copy that
    failed). A process given more than once (its threads speaking for a
    leader that exited) is taken from the first record with an executable."""
    snaps: dict[int, ProcSnapshot] = {}
    resolver = CgroupResolver()
    containers: dict[int, str] = {}
    from_proc = 0
    at, size, off, end = _AT, RECORD.size, 0, len(data)
    while off + size <= end:
        r = RECORD.unpack_from(data, off)
        total = r[at["size"]]
        if total < size or off + total > end:
            raise ValueError(f"task iterator: a record of {total} bytes at offset {off} of {end}")
        pid = r[at["pid"]]
        tail = off + size
        exe_len, cwd_len, argv_len = r[at["exe_len"]], r[at["cwd_len"]], r[at["argv_len"]]
        held = snaps.get(pid)
        if held is not None and (held.exe or not exe_len):
            off += total
            continue
        exe = fsdecode(data[tail : tail + exe_len])
        cwd = fsdecode(data[tail + exe_len : tail + exe_len + cwd_len])
        start = r[at["start_time_ns"]]
        kthread = bool(r[at["kernel_thread"]])
        if kthread:
            argv: list[str] = []
        elif r[at["argv_read"]]:
            raw = data[tail + exe_len + cwd_len : tail + exe_len + cwd_len + argv_len]
            if r[at["argv_title"]]:
                # setproctitle(): the string at the start, NUL included, as /proc gives it
                raw = raw[: raw.find(b"\0") + 1 or None]
            argv = [fsdecode(a) for a in raw.removesuffix(b"\0").split(b"\0")] if raw else []
        else:
            found = read_process(pid, ticks_of(start))
            argv = found.argv if found is not None else []
            from_proc += 1
        cgroup_id = r[at["cgroup_id"]]
        cid = containers.get(cgroup_id)
        if cid is None:
            cid = containers[cgroup_id] = resolver.container_id(cgroup_id) or ""
        snaps[pid] = ProcSnapshot(
            pid=pid,
            start_ticks=ticks_of(start),
            ppid=r[at["ppid"]],
            sid=r[at["sid"]],
            tty_nr=0,
            comm=fsdecode(r[at["comm"]].split(b"\0", 1)[0]),
            exe=exe,
            argv=argv,
            cwd=cwd,
            uid=r[at["uid"]],
            euid=r[at["euid"]],
            gid=r[at["gid"]],
            egid=r[at["egid"]],
            loginuid=r[at["loginuid"]],
            sessionid=r[at["sessionid"]],
            cgroup_path="",
            container_id=cid,
            cgroup_id=cgroup_id,
            kernel_thread=kthread,
            start_ns=start,
            tty=fsdecode(r[at["tty"]].split(b"\0", 1)[0]),
            exited=bool(r[at["exited"]]),
            exe_memfd=bool(r[at["exe_memfd"]]),
            source="task_iter",
        )
        off += total
    if off != end:
        raise ValueError(f"task iterator: {end - off} bytes left over, less than a record")
    return snaps, from_proc
