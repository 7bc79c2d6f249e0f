# SPDX-License-Identifier: Apache-2.0
"""The running system as the sensor sees it: the capability report inside
``Sensor.health()`` and ``probe()``."""

from __future__ import annotations

import os
import platform

import msgspec

from . import features, support
from .audit import audit_status_text
from .mounts import filesystem_mounted
from .paths import BPFFS, BTF_VMLINUX


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


def _btf_source(btf_path: str | None) -> str:
    works = features.kernel_btf(btf_path).works
    if btf_path:
        return f"external ({btf_path})" if works else f"none (external file {btf_path} missing)"
    return f"kernel ({BTF_VMLINUX})" if works else "none"


def capabilities(btf_path: str | None = None) -> Capabilities:
    """Probe the running system; needs no privileges (reports less without)."""
    osr = support.read_os_release()
    uname = os.uname()
    return Capabilities(
        kernel_release=uname.release,
        machine=platform.machine(),
        distribution=osr.pretty_name or osr.name or osr.id,
        os_id=osr.id,
        os_version=osr.version_id,
        btf_source=_btf_source(btf_path),
        ring_buffer=features.ring_buffer().known,
        program_types={name: features.program_type(name).known for name in features.PROGRAM_TYPES},
        support=support.evaluate(osr, uname.release, uname.machine),
        audit=audit_status_text(),
        tracefs=filesystem_mounted("tracefs"),
        bpffs=filesystem_mounted("bpf", BPFFS),
    )
