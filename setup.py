# SPDX-License-Identifier: Apache-2.0
"""cffi_modules has no pyproject.toml key: this is the whole of setup.py."""

from setuptools import setup

setup(
    cffi_modules=["build_ext.py:ffi"],
    # the extension uses only the limited API: one wheel for CPython 3.11+
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
