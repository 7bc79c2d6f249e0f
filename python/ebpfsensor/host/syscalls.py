# SPDX-License-Identifier: Apache-2.0
"""Syscall numbers and names for x86_64 and aarch64.

The table is generated from the kernel's UAPI headers by
``tools/gen-syscalls.py`` into ``data/syscalls.json`` (the header package and
version are recorded in the file). Syscalls newer than those headers have a
number but no name here.
"""

from __future__ import annotations

import json
from functools import cache

from .arch import bpf_arch_of
from .paths import PACKAGE_DIR

__all__ = ["ARCHES", "syscall_name", "syscall_number", "syscall_table"]

#: Architectures with a table, under their kernel BPF names.
ARCHES = ("x86", "arm64")


@cache
def _data() -> dict[str, dict[str, str]]:
    text = (PACKAGE_DIR / "data" / "syscalls.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


@cache
def syscall_table(arch: str | None = None) -> dict[int, str]:
    """Number -> name for one architecture (default: this machine's).

    Raises:
        ValueError: no table for that architecture.
    """
    arch = arch or bpf_arch_of()
    if arch not in ARCHES:
        raise ValueError(f"no syscall table for {arch!r}; known: {', '.join(ARCHES)}")
    return {int(nr): name for nr, name in _data()[arch].items()}


@cache
def _numbers(arch: str) -> dict[str, int]:
    return {name: nr for nr, name in syscall_table(arch).items()}


def syscall_name(nr: int, arch: str | None = None) -> str | None:
    """The name of a syscall number, or None when the table does not know it."""
    return syscall_table(arch).get(nr)


def syscall_number(name: str, arch: str | None = None) -> int | None:
    """The number of a syscall by name, or None when the architecture lacks it
    (aarch64 has no ``open``, ``rename``, ``fork``...)."""
    return _numbers(arch or bpf_arch_of()).get(name)
