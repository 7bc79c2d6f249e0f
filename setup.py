# SPDX-License-Identifier: Apache-2.0
"""cffi_modules has no pyproject.toml key, hence this file; it also compiles
the BPF objects when building from a tree that has none (an sdist).

Environment (see build_ext.py): EBPFSENSOR_ARCH (x86 or arm64) picks the
target; EBPFSENSOR_DEPS an already built directory of static libraries.
"""

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPy(build_py):
    """build_py that first makes the target arch's .bpf.o files and MANIFEST."""

    def run(self) -> None:
        sys.path.insert(0, str(ROOT))
        from build_ext import ARCH, DEPS, arch, ensure_deps

        if not (ROOT / "python" / "ebpfsensor" / "bpf" / ARCH / "MANIFEST").exists():
            ensure_deps()  # the BPF programs include libbpf's bpf_helpers.h
            machine = arch.machine_of(ARCH)
            subprocess.run(
                ["make", "-C", str(ROOT), "objects", f"ARCH={machine}", f"DEPS={DEPS}", f"DEPS_READY={DEPS}/.stamp"],
                check=True,
            )
        super().run()


setup(
    cffi_modules=["build_ext.py:ffi"],
    cmdclass={"build_py": BuildPy},
    # the extension uses only the limited API: one wheel for CPython 3.11+
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
