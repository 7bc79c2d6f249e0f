# SPDX-License-Identifier: Apache-2.0
"""probe(): what this kernel supports and which provider would run, and why."""

from __future__ import annotations

import msgspec

from .host import features
from .host.capabilities import Capabilities, capabilities
from .sensor import Sensor
from .status import HookInfo, KindHealth

__all__ = ["ProbeReport", "probe"]


class ProbeReport(msgspec.Struct, frozen=True, kw_only=True):
    """probe(): the capabilities, the provider that would run and why, and
    for each kind whether it is live, through which hook variant, or why not."""

    capabilities: Capabilities
    provider: str
    reason: str
    kinds: dict[str, KindHealth]
    hooks: dict[str, HookInfo]


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
