# SPDX-License-Identifier: Apache-2.0
"""What this kernel supports and which provider would run: probe() and the
capability report inside Sensor.health()."""

from __future__ import annotations

import os
import platform

import msgspec

from . import support
from ._audit import audit_status_text
from ._ffi import ffi, lib

__all__ = ["Capabilities", "ProbeReport", "capabilities", "probe"]

_BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
# program types, as libbpf's feature probes see them (a type can exist and
# still be refused for an attach point: see the hooks for real loads)
_PROG_TYPES = {
    "tracing": 26,
    "raw_tracepoint": 17,
    "tracepoint": 5,
    "kprobe": 2,
    "lsm": 29,
    "cgroup_skb": 8,
}


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """The running system as the sensor sees it.

    ``ring_buffer`` and ``program_types`` are None where probing needs
    privileges the caller lacks.
    """

    kernel_release: str
    machine: str
    distribution: str
    os_id: str
    os_version: str
    btf_source: str
    ring_buffer: bool | None
    program_types: dict[str, bool | None]
    support: support.SupportVerdict
    audit: str
    tracefs: bool
    bpffs: bool


def _privileged() -> bool:
    fd = lib.bpf_map_create(2, ffi.NULL, 4, 4, 1, ffi.NULL)
    if fd < 0:
        return False
    os.close(fd)
    return True


def _mounted(fstype: str) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[2] == fstype for line in f)
    except OSError:
        return False


def capabilities(btf_path: str | None = None) -> Capabilities:
    """Probe the running system; needs no privileges (reports less without)."""
    osr = support.read_os_release()
    uname = os.uname()
    if btf_path:
        btf = f"external ({btf_path})" if os.path.exists(btf_path) else f"none (external file {btf_path} missing)"
    else:
        btf = f"kernel ({_BTF_VMLINUX})" if os.path.exists(_BTF_VMLINUX) else "none"
    privileged = _privileged()
    ring = lib.libbpf_probe_bpf_map_type(lib.BPF_MAP_TYPE_RINGBUF, ffi.NULL) == 1 if privileged else None
    types = {
        name: (lib.libbpf_probe_bpf_prog_type(t, ffi.NULL) == 1 if privileged else None)
        for name, t in _PROG_TYPES.items()
    }
    return Capabilities(
        kernel_release=uname.release,
        machine=platform.machine(),
        distribution=osr.pretty_name or osr.name or osr.id,
        os_id=osr.id,
        os_version=osr.version_id,
        btf_source=btf,
        ring_buffer=ring,
        program_types=types,
        support=support.evaluate(osr, uname.release, uname.machine),
        audit=audit_status_text(),
        tracefs=_mounted("tracefs"),
        bpffs=_mounted("bpf"),
    )


class ProbeReport(msgspec.Struct, frozen=True, kw_only=True):
    """probe(): the capabilities, the provider that would run and why, and
    for each kind whether it is live, through which hook variant, or why not."""

    capabilities: Capabilities
    provider: str
    reason: str
    kinds: dict[str, object]
    hooks: dict[str, object]


def probe(load: bool = True) -> ProbeReport:
    """Report what this kernel supports and which provider would run.

    With load (and privileges), the real programs are loaded and attached
    once, then released: each kind's status comes from real loads, not
    version numbers.
    """
    from .sensor import Sensor

    caps = capabilities()
    if load and _privileged():
        with Sensor(log_file=None) as sensor:
            h = sensor.health()
            return ProbeReport(
                capabilities=caps,
                provider=h.supplementary_events_subsystem,
                reason=h.reason,
                kinds=dict(h.kinds),
                hooks=dict(sensor.hooks()),
            )
    verdict = caps.support
    if verdict.denied or not verdict.supported:
        provider, reason = "proc_connector", verdict.reason
    elif caps.btf_source.startswith("none"):
        provider, reason = "proc_connector", "no kernel BTF"
    else:
        provider, reason = (
            "ebpf",
            verdict.reason
            or "eBPF supported (not loaded: " + ("load=False)" if not load else "needs root or CAP_BPF)"),
        )
    return ProbeReport(capabilities=caps, provider=provider, reason=reason, kinds={}, hooks={})
