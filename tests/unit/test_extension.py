# SPDX-License-Identifier: Apache-2.0
"""The compiled extension: what it links against, and its fmemopen."""

from __future__ import annotations

import re

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from ebpfsensor import _libbpf
from ebpfsensor._ffi import ffi, lib

# manylinux2014: what the wheel's tag promises (see docs/wheels.md)
MAX_GLIBC = (2, 17)


def _read(data: bytes) -> bytes:
    out = ffi.new("char[]", max(len(data), 1) + 16)
    n = lib.es_memfile_read(data, len(data), out, len(data) + 16)
    assert n >= 0, f"fmemopen failed: errno {-n}"
    return ffi.buffer(out, n)[:]


def test_fmemopen_reads_back() -> None:
    kconfig = b"CONFIG_BPF=y\nCONFIG_HZ=250\n# comment\n" * 200
    assert _read(kconfig) == kconfig
    assert _read(b"") == b""


def test_only_glibc_up_to_2_17() -> None:
    with open(_libbpf.__file__, "rb") as f:
        elf = ELFFile(f)
        dyn = next(s for s in elf.iter_sections() if isinstance(s, DynamicSection))
        needed = sorted(t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED")
        assert all(n == "libc.so.6" or re.fullmatch(r"ld-linux-[\w-]+\.so\.\d", n) for n in needed), needed
        assert not [t for t in dyn.iter_tags() if t.entry.d_tag in ("DT_RPATH", "DT_RUNPATH")]
        verneed = next(s for s in elf.iter_sections() if isinstance(s, GNUVerNeedSection))
        versions = [aux.name for _, auxs in verneed.iter_versions() for aux in auxs]
    glibc = [
        tuple(int(x) for x in v.removeprefix("GLIBC_").split(".")[:2]) for v in versions if v.startswith("GLIBC_2")
    ]
    assert max(glibc) <= MAX_GLIBC, sorted(set(versions))
