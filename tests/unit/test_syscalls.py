# SPDX-License-Identifier: Apache-2.0
"""The syscall tables: generated from the kernel headers, spot-checked against known numbers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ebpfsensor.diagnostic import MONITORED
from ebpfsensor.host.syscalls import ARCHES, syscall_name, syscall_number, syscall_table

ROOT = Path(__file__).resolve().parents[2]

# numbers fixed by the kernel ABI
KNOWN = {
    "x86": {
        0: "read",
        2: "open",
        59: "execve",
        82: "rename",
        257: "openat",
        264: "renameat",
        316: "renameat2",
        321: "bpf",
        435: "clone3",
        437: "openat2",
    },
    "arm64": {
        25: "fcntl",
        35: "unlinkat",
        56: "openat",
        63: "read",
        79: "newfstatat",
        221: "execve",
        276: "renameat2",
        280: "bpf",
        435: "clone3",
        437: "openat2",
    },
}


@pytest.mark.parametrize("arch", ARCHES)
def test_known_numbers(arch: str) -> None:
    table = syscall_table(arch)
    for nr, name in KNOWN[arch].items():
        assert table[nr] == name
        assert syscall_name(nr, arch) == name
        assert syscall_number(name, arch) == nr
    assert len(table) > 300 and max(table) < 1024


def test_aarch64_lacks_legacy_calls() -> None:
    for name in ("open", "rename", "fork", "unlink", "mkdir", "creat"):
        assert syscall_number(name, "arm64") is None
        assert syscall_number(name, "x86") is not None


def test_unknown() -> None:
    assert syscall_name(1023, "x86") is None
    with pytest.raises(ValueError, match="no syscall table for 'mips'"):
        syscall_table("mips")


def test_monitored_names_exist() -> None:
    # every monitored name is a syscall on at least one architecture
    for name in MONITORED:
        assert any(syscall_number(name, arch) is not None for arch in ARCHES), name
    assert syscall_number("renameat2", "arm64") is not None


def test_table_matches_headers() -> None:
    if not (shutil.which("gcc") and shutil.which("aarch64-linux-gnu-gcc")):
        pytest.skip("needs gcc and gcc-aarch64-linux-gnu to read the headers")
    gen = ROOT / "tools" / "gen-syscalls.py"
    out = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitored_specs_are_consistent() -> None:
    for name, (path_arg, dfd_arg, fd_arg) in MONITORED.items():
        assert -1 <= path_arg < 6 and -1 <= dfd_arg < 6 and -1 <= fd_arg < 6, name
        # a directory fd only qualifies a path; a call names its file one way
        assert dfd_arg == -1 or path_arg != -1, name
        assert path_arg == -1 or fd_arg == -1, name
        if (name.endswith("at") and name != "creat") or name in ("openat2", "renameat2"):
            assert dfd_arg != -1 or path_arg == -1, name
