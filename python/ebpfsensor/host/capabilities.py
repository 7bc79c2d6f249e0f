# SPDX-License-Identifier: Apache-2.0
"""The running system as the sensor sees it: the capability report inside
``Sensor.health()`` and ``probe()``."""

from __future__ import annotations

import os
import platform

import msgspec

from ..errors import EbpfSensorError
from . import btf, features, support
from .audit import audit_status_text
from .mounts import filesystem_mounted
from .paths import BPFFS


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


def _btf_source(btf_path: str | None, btf_dir: str) -> str:
    """``kernel (PATH)``, ``external (PATH; why that one)``, or ``none (why,
    where it was searched, what to do)``."""
    try:
        return btf.locate(btf_path, btf_dir).summary()
    except EbpfSensorError as exc:
        return f"none ({exc})"


def capabilities(btf_path: str | None = None, btf_dir: str = btf.DEFAULT_BTF_DIR) -> Capabilities:
    """Probe the running system; needs no privileges (reports less without).

    Args:
        btf_path: Config.btf_path.
        btf_dir: Config.btf_dir.
    """
    osr = support.read_os_release()
    uname = os.uname()
    return Capabilities(
        kernel_release=uname.release,
        machine=platform.machine(),
        distribution=osr.pretty_name or osr.name or osr.id,
        os_id=osr.id,
        os_version=osr.version_id,
        btf_source=_btf_source(btf_path, btf_dir),
        ring_buffer=features.ring_buffer().known,
        program_types={name: features.program_type(name).known for name in features.PROGRAM_TYPES},
        support=support.evaluate(osr, uname.release, uname.machine),
        audit=audit_status_text(),
        tracefs=filesystem_mounted("tracefs"),
        bpffs=filesystem_mounted("bpf", BPFFS),
    )
