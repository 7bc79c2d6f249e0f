# SPDX-License-Identifier: Apache-2.0
"""What several subcommands share."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..diagnostic import EbpfStatistics

__all__ = ["diagnostic_window", "parse_kinds"]


def parse_kinds(text: str | None) -> frozenset[str] | None:
    if not text:
        return None
    return frozenset(k.strip() for k in text.split(",") if k.strip())


def diagnostic_window(duration: float, top: int, variants: set[str] | None = None) -> EbpfStatistics:
    """The diagnostic's counts over duration seconds; Ctrl-C ends the window
    early (the counts so far are kept)."""
    from ..diagnostic import Diagnostic

    with Diagnostic(variants=variants) as diag:
        try:
            time.sleep(duration)
        except KeyboardInterrupt:
            pass
        return diag.stop(top)
