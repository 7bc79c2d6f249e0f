# SPDX-License-Identifier: Apache-2.0
"""probe(): what this kernel supports and which provider would run, and why."""

from __future__ import annotations

import msgspec

from .host import features
from .host.capabilities import Capabilities, capabilities
from .sensor import Sensor
from .status import HookInfo, KindHealth

__all__ = ["ProbeReport", "probe", "tier_of"]


class ProbeReport(msgspec.Struct, frozen=True, kw_only=True):
    """probe(): the capabilities, the provider that would run and why, and
    for each kind whether it is live, through which hook variant, or why not.

    ``tier`` names what this machine gets, best first: ``ebpf-ring-buffer``
    (BPF ring buffers, 5.8), ``ebpf-perf-buffer`` (perf event arrays on
    older kernels; kinds whose programs the verifier refuses come from the
    audit provider beside it), ``audit``, ``proc_connector``.
    """

    capabilities: Capabilities
    provider: str
    reason: str
    kinds: dict[str, KindHealth]
    hooks: dict[str, HookInfo]
    tier: str = ""


def tier_of(provider: str, transport: str) -> str:
    """The support tier a provider and eBPF transport make, as ``probe`` and
    the support matrix name it."""
    if provider == "ebpf":
        return "ebpf-perf-buffer" if transport == "perf" else "ebpf-ring-buffer"
    return provider


def probe(load: bool = True) -> ProbeReport:
    """Report what this kernel supports and which provider would run.

    With load (and privileges), the real programs are loaded and attached
    once, then released: each kind's status comes from real loads, not
    version numbers.
    """
    caps = capabilities()
    if load and features.bpf_access().works:
        with Sensor(log_file=None) as sensor:
            h = sensor.health()
            return ProbeReport(
                capabilities=caps,
                provider=h.supplementary_events_subsystem,
                reason=h.reason,
                kinds=dict(h.kinds),
                hooks=dict(sensor.hooks()),
                tier=tier_of(h.supplementary_events_subsystem, h.transport),
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
    transport = "ring" if features.ring_buffer().works else "perf"
    return ProbeReport(
        capabilities=caps, provider=provider, reason=reason, kinds={}, hooks={}, tier=tier_of(provider, transport)
    )
