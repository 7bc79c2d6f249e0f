# SPDX-License-Identifier: Apache-2.0
"""Bytes from the kernel as text, losslessly."""

from __future__ import annotations

__all__ = ["fsdecode"]


def fsdecode(raw: bytes) -> str:
    """Kernel bytes (file names, argv) as str; bytes that are not UTF-8 become
    surrogates, so ``os.fsencode`` gives back the kernel's exact bytes."""
    return raw.decode("utf-8", "surrogateescape")
