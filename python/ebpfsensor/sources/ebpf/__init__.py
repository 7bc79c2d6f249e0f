# SPDX-License-Identifier: Apache-2.0
"""The eBPF source: compiled objects (:mod:`.objects`), their hook wiring
(:mod:`.hooks`), the C-drained ring buffers (:mod:`.ring`) and the
exclusion maps (:mod:`.exclusion_maps`)."""

from __future__ import annotations

from .source import EbpfSource, EbpfStats

__all__ = ["EbpfSource", "EbpfStats"]
