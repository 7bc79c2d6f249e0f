# SPDX-License-Identifier: Apache-2.0
"""Machine names (``uname -m``, wheel tags) and the kernel's BPF arch names.

The one place they are mapped: the package, ``build_ext.py`` and the
Makefile all ask this file (it imports nothing of the package, so the build
can run it before the package exists: ``python3 arch.py x86_64`` prints
``x86``).
"""

from __future__ import annotations

import platform
import sys

__all__ = ["BPF_ARCHES", "MACHINE_TO_BPF_ARCH", "bpf_arch_of", "machine_of"]

#: ``uname -m`` -> the kernel's BPF arch directory name (``__TARGET_ARCH_*``)
MACHINE_TO_BPF_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64"}
#: the BPF arches there are builds for, with the wheel's machine name
BPF_ARCHES = {"x86": "x86_64", "arm64": "aarch64"}


def bpf_arch_of(machine: str | None = None) -> str:
    """The BPF arch name of a machine (this one by default).

    Raises:
        ValueError: a machine there is no build for.
    """
    machine = machine or platform.machine()
    try:
        return MACHINE_TO_BPF_ARCH[machine]
    except KeyError:
        raise ValueError(
            f"unsupported architecture {machine}; ebpfsensor supports {' and '.join(BPF_ARCHES.values())}"
        ) from None


def machine_of(bpf_arch: str) -> str:
    """The machine (wheel) name of a BPF arch: ``arm64`` -> ``aarch64``."""
    return BPF_ARCHES[bpf_arch]


if __name__ == "__main__":
    try:
        print(bpf_arch_of(sys.argv[1] if len(sys.argv) > 1 else None))
    except ValueError as exc:
        sys.exit(str(exc))
