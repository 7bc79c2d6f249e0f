# SPDX-License-Identifier: Apache-2.0
"""Every kernel feature probe, in one place, cached.

Each probe names the feature and the first mainline kernel that has it, and
answers one of three outcomes: ``works``, ``not_supported`` (the kernel
lacks it) or ``probe_failed`` (the probe itself could not tell, most often
for want of privileges). Distributions backport BPF features, so nothing
here compares version numbers: the kernel is asked.

    status = features.ring_buffer()
    if not status.works:
        raise NotSupportedError(status.name, status.min_kernel, status.detail)
"""

from __future__ import annotations

import errno
import functools
import os
import struct
import threading
from typing import Literal

import msgspec

from .._ffi import ffi, lib
from ..errors import PRIVILEGE_HINT, EbpfSensorError
from . import btf
from .mounts import ensure_securityfs, tracefs_events
from .paths import BTF_VMLINUX, KPROBE_PMU, LSM_LIST

__all__ = [
    "PROGRAM_TYPES",
    "FeatureStatus",
    "bounded_loops",
    "bpf_access",
    "bpf_lsm_active",
    "clear_cache",
    "global_data",
    "kernel_btf",
    "kprobes",
    "perf_event_array",
    "program_type",
    "ring_buffer",
    "task_iter",
    "task_storage",
]

Outcome = Literal["works", "not_supported", "probe_failed"]


class FeatureStatus(msgspec.Struct, frozen=True):
    """The answer of one probe.

    Attributes:
        name: the feature, as messages name it ("BPF ring buffer").
        min_kernel: the first mainline kernel that has it ("5.8").
        outcome: works, not_supported or probe_failed.
        detail: why, when it does not work.
        errno: the error number the probe met, when it failed (else 0).
    """

    name: str
    min_kernel: str
    outcome: Outcome
    detail: str = ""
    errno: int = 0

    @property
    def works(self) -> bool:
        return self.outcome == "works"

    @property
    def known(self) -> bool | None:
        """True (works), False (not supported) or None (could not tell)."""
        return None if self.outcome == "probe_failed" else self.outcome == "works"


#: program types the sensor's hook variants use: name -> (BPF_PROG_TYPE_*, first kernel)
PROGRAM_TYPES = {
    "tracing": (lib.BPF_PROG_TYPE_TRACING, "5.5"),
    "raw_tracepoint": (lib.BPF_PROG_TYPE_RAW_TRACEPOINT, "4.17"),
    "tracepoint": (lib.BPF_PROG_TYPE_TRACEPOINT, "4.7"),
    "kprobe": (lib.BPF_PROG_TYPE_KPROBE, "4.1"),
    "lsm": (lib.BPF_PROG_TYPE_LSM, "5.7"),
    "cgroup_skb": (lib.BPF_PROG_TYPE_CGROUP_SKB, "4.10"),
}


def _from_libbpf(name: str, min_kernel: str, rc: int) -> FeatureStatus:
    """A libbpf probe's answer: 1 yes, 0 no, negative errno: could not tell."""
    if rc == 1:
        return FeatureStatus(name, min_kernel, "works")
    if rc == 0:
        return FeatureStatus(name, min_kernel, "not_supported", f"{name} is not supported by this kernel")
    if not bpf_access().works:
        return FeatureStatus(name, min_kernel, "probe_failed", bpf_access().detail, bpf_access().errno)
    return FeatureStatus(name, min_kernel, "probe_failed", f"probing {name} failed: {os.strerror(-rc)}", -rc)


@functools.cache
def bpf_access() -> FeatureStatus:
    """This process may use bpf(2) at all (creates one array map)."""
    fd = lib.bpf_map_create(lib.BPF_MAP_TYPE_ARRAY, ffi.NULL, 4, 4, 1, ffi.NULL)
    if fd >= 0:
        os.close(fd)
        return FeatureStatus("bpf(2)", "3.18", "works")
    err = -fd
    if err == errno.ENOSYS:
        return FeatureStatus("bpf(2)", "3.18", "not_supported", "this kernel has no bpf(2) (CONFIG_BPF_SYSCALL)", err)
    hint = f"; {PRIVILEGE_HINT}" if err in (errno.EPERM, errno.EACCES) else ""
    return FeatureStatus("bpf(2)", "3.18", "probe_failed", f"bpf(2): {os.strerror(err)}{hint}", err)


@functools.cache
def ring_buffer() -> FeatureStatus:
    """BPF_MAP_TYPE_RINGBUF (5.8)."""
    return _from_libbpf("BPF ring buffer", "5.8", lib.libbpf_probe_bpf_map_type(lib.BPF_MAP_TYPE_RINGBUF, ffi.NULL))


@functools.cache
def task_storage() -> FeatureStatus:
    """BPF_MAP_TYPE_TASK_STORAGE (5.11): the file calls' stash of threads
    above the call slots (file.bpf.c)."""
    return _from_libbpf(
        "BPF task storage", "5.11", lib.libbpf_probe_bpf_map_type(lib.BPF_MAP_TYPE_TASK_STORAGE, ffi.NULL)
    )


@functools.cache
def perf_event_array() -> FeatureStatus:
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY (4.3): the transport where ring buffers are missing."""
    return _from_libbpf(
        "BPF perf event array", "4.3", lib.libbpf_probe_bpf_map_type(lib.BPF_MAP_TYPE_PERF_EVENT_ARRAY, ffi.NULL)
    )


@functools.cache
def program_type(name: str) -> FeatureStatus:
    """A program type of :data:`PROGRAM_TYPES` loads at all (a type can
    load and still be refused for one attach point: hooks find that out by
    loading their programs)."""
    prog_type, min_kernel = PROGRAM_TYPES[name]
    return _from_libbpf(f"{name} programs", min_kernel, lib.libbpf_probe_bpf_prog_type(prog_type, ffi.NULL))


def kernel_btf(btf_path: str | None = None, btf_dir: str = btf.DEFAULT_BTF_DIR) -> FeatureStatus:
    """Type information to relocate against: the kernel's own
    (CONFIG_DEBUG_INFO_BTF, 5.4) or an external BTF file, as
    :func:`ebpfsensor.host.btf.resolve` finds it (Config.btf_path, then the
    kernel's, then Config.btf_dir, then where libbpf looks)."""
    try:
        found = btf.locate(btf_path, btf_dir)
    except EbpfSensorError as exc:
        # nothing found, or a file found and refused: the message says which and what to do
        return FeatureStatus("kernel BTF", "", "not_supported", str(exc))
    if not found.external:
        return FeatureStatus(f"kernel BTF ({found.path})", "5.4", "works")
    return FeatureStatus(f"external BTF ({found.path})", "", "works", found.reason)


def own_btf() -> FeatureStatus:
    """The kernel's own BTF (CONFIG_DEBUG_INFO_BTF, 5.4), readable at
    /sys/kernel/btf/vmlinux. The ring-buffer builds of the objects need it
    whatever file they are relocated against: their loads through
    BTF-typed pointers are typed by it, and libbpf resolves their kfunc
    against it. Not cached: it is one access check."""
    name = f"the kernel's own BTF ({BTF_VMLINUX})"
    if os.access(BTF_VMLINUX, os.R_OK) and os.path.getsize(BTF_VMLINUX) > 0:
        return FeatureStatus(name, "5.4", "works")
    if os.path.exists(BTF_VMLINUX) and not os.access(BTF_VMLINUX, os.R_OK):
        # there but not readable by this process: whether it works is not known
        why = f"cannot read {BTF_VMLINUX}: {os.strerror(errno.EACCES)} (run as root)"
        return FeatureStatus(name, "5.4", "probe_failed", why, errno.EACCES)
    return FeatureStatus(name, "5.4", "not_supported", "the kernel is built without CONFIG_DEBUG_INFO_BTF")


@functools.cache
def kprobes() -> FeatureStatus:
    """kprobes, through the kprobe PMU or legacy kprobe_events (what libbpf uses)."""
    events = tracefs_events()
    legacy = os.path.join(os.path.dirname(events), "kprobe_events") if events else None
    if os.path.exists(KPROBE_PMU) or (legacy and os.path.exists(legacy)):
        return FeatureStatus("kprobes", "4.1", "works")
    return FeatureStatus("kprobes", "4.1", "not_supported", "this kernel has no kprobes (CONFIG_KPROBES)")


@functools.cache
def bpf_lsm_active() -> FeatureStatus:
    """BPF LSM programs load and run: the program type is accepted and
    ``bpf`` is in the active LSM list (a BPF LSM program also loads and
    attaches where it is not, and then never runs)."""
    name, min_kernel = "BPF LSM", "5.7"
    loads = program_type("lsm")
    if not loads.works:
        return FeatureStatus(name, min_kernel, loads.outcome, f"the kernel refuses lsm programs here ({loads.detail})")
    why = ensure_securityfs()
    if why:
        return FeatureStatus(name, min_kernel, "probe_failed", f"cannot tell whether the BPF LSM is active: {why}")
    try:
        with open(LSM_LIST) as f:
            active = f.read().strip().split(",")
    except OSError as exc:
        return FeatureStatus(
            name, min_kernel, "probe_failed", f"cannot tell whether the BPF LSM is active: {LSM_LIST}: {exc.strerror}"
        )
    if "bpf" not in active:
        return FeatureStatus(
            name,
            min_kernel,
            "not_supported",
            f"the BPF LSM is not active (active: {','.join(active)}; boot with bpf in lsm=)",
        )
    return FeatureStatus(name, min_kernel, "works")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn (the registers' nibbles in little-endian order)."""
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


_EXIT = _insn(0x95)


def _verifier_takes(name: str, min_kernel: str, insns: bytes) -> FeatureStatus:
    """Whether the verifier accepts a socket filter of these instructions:
    EINVAL is its refusal, anything else means the probe could not tell."""
    fd = lib.bpf_prog_load(lib.BPF_PROG_TYPE_SOCKET_FILTER, ffi.NULL, b"GPL", insns, len(insns) // 8, ffi.NULL)
    if fd >= 0:
        os.close(fd)
        return FeatureStatus(name, min_kernel, "works")
    if -fd == errno.EINVAL:
        return FeatureStatus(name, min_kernel, "not_supported", f"{name} is not supported by this kernel's verifier")
    if not bpf_access().works:
        return FeatureStatus(name, min_kernel, "probe_failed", bpf_access().detail, bpf_access().errno)
    return FeatureStatus(name, min_kernel, "probe_failed", f"probing {name} failed: {os.strerror(-fd)}", -fd)


@functools.cache
def bounded_loops() -> FeatureStatus:
    """The verifier follows a loop that ends (5.3); before, any back-edge is
    refused. r0 counts to 4."""
    loop = _insn(0xB7, 0, imm=0) + _insn(0x07, 0, imm=1) + _insn(0xA5, 0, off=-2, imm=4) + _EXIT
    return _verifier_takes("bounded loops", "5.3", loop)


@functools.cache
def global_data() -> FeatureStatus:
    """A program reads a map's value by its address (BPF_PSEUDO_MAP_VALUE,
    5.2): what libbpf makes of global variables (.rodata, .data, .bss)."""
    name, min_kernel = "BPF global data", "5.2"
    fd = lib.bpf_map_create(lib.BPF_MAP_TYPE_ARRAY, ffi.NULL, 4, 4, 1, ffi.NULL)
    if fd < 0:
        return FeatureStatus(name, min_kernel, "probe_failed", f"probing {name} failed: {os.strerror(-fd)}", -fd)
    try:
        # r1 = &value (ld_imm64, src BPF_PSEUDO_MAP_VALUE, offset 0); r0 = *(u32 *)r1
        load = _insn(0x18, 1, 2, imm=fd) + _insn(0) + _insn(0x61, 0, 1) + _EXIT
        return _verifier_takes(name, min_kernel, load)
    finally:
        os.close(fd)


def clear_cache() -> None:
    """Forget every cached answer (after privileges or mounts changed)."""
    for probe in (
        bpf_access,
        ring_buffer,
        task_storage,
        perf_event_array,
        program_type,
        kprobes,
        bpf_lsm_active,
        task_iter,
        _read_kernel_btf_facts,
        bounded_loops,
        global_data,
    ):
        probe.cache_clear()


_BTF_HEADER = struct.Struct("=HBBIIIII")
_TRACE_PREFIX = b"btf_trace_"


# the start's threads ask at once (the task iterator's, the objects'): one reads
_FACTS_LOCK = threading.Lock()


def _kernel_btf_facts() -> tuple[frozenset[bytes], bool] | None:
    """See _read_kernel_btf_facts: found once."""
    with _FACTS_LOCK:
        return _read_kernel_btf_facts()


@functools.cache
def _read_kernel_btf_facts() -> tuple[frozenset[bytes], bool] | None:
    """What the start asks of the kernel's own BTF, from one read of it: the
    names of its ``btf_trace_<name>`` types, and whether it has ``struct
    bpf_iter__task``; None without it. Only the string table is searched
    (a name has NUL on both sides), and the file (5 MB and more) is not kept:
    a cache of it would stay in the process's memory for its lifetime."""
    try:
        with open(BTF_VMLINUX, "rb") as f:
            data = f.read()
    except OSError:
        return None
    strings = data
    if len(data) >= _BTF_HEADER.size:
        magic, _version, _flags, hdr_len, _type_off, _type_len, str_off, str_len = _BTF_HEADER.unpack_from(data)
        if magic == 0xEB9F and hdr_len + str_off + str_len <= len(data):
            strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
    del data
    names: set[bytes] = set()
    start = strings.find(_TRACE_PREFIX)
    while start > 0:
        end = strings.find(b"\0", start)
        if end < 0:
            break
        if strings[start - 1] == 0 and end > start + len(_TRACE_PREFIX):
            names.add(strings[start + len(_TRACE_PREFIX) : end])
        start = strings.find(_TRACE_PREFIX, end)
    return frozenset(names), b"\0bpf_iter__task\0" in strings


def raw_tracepoint_exists(name: str) -> bool | None:
    """Whether the kernel has the tracepoint raw_tp and tp_btf programs would
    attach to (its ``btf_trace_<name>`` type: every tracepoint has one, the
    ones without a tracefs event too); None where the kernel has no BTF of
    its own to tell."""
    names = _kernel_tracepoints()
    if names is None:
        return None
    return name.encode() in names


def _kernel_tracepoints() -> frozenset[bytes] | None:
    """The names of the kernel's ``btf_trace_<name>`` types; None without
    its BTF. Found once: a search of the whole BTF for each hook of each
    object costs a millisecond a hook at every start."""
    facts = _kernel_btf_facts()
    return None if facts is None else facts[0]


@functools.cache
def task_iter() -> FeatureStatus:
    """BPF task iterators (iter/task, 5.8), which seed the process table:
    the kernel's own BTF has their context type (``struct bpf_iter__task``),
    without which no iterator attaches. Whether the sleepable variant, which
    also copies argv (``bpf_copy_from_user_task``, 5.18), loads is found
    out by loading it."""
    name, min_kernel = "BPF task iterator", "5.8"
    btf = own_btf()
    if btf.outcome == "probe_failed":
        return FeatureStatus(name, min_kernel, "probe_failed", btf.detail, btf.errno)
    if not btf.works:
        return FeatureStatus(
            name,
            min_kernel,
            "not_supported",
            f"iterators need the kernel's own BTF ({BTF_VMLINUX}, CONFIG_DEBUG_INFO_BTF)",
        )
    # a name in BTF's string table: NUL on both sides
    facts = _kernel_btf_facts()
    if facts is None or not facts[1]:
        return FeatureStatus(
            name, min_kernel, "not_supported", "this kernel has no BPF task iterator (no bpf_iter__task in its BTF)"
        )
    if not bpf_access().works:
        return FeatureStatus(name, min_kernel, "probe_failed", bpf_access().detail, bpf_access().errno)
    return FeatureStatus(name, min_kernel, "works")
