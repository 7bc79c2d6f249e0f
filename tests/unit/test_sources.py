# SPDX-License-Identifier: Apache-2.0
"""Cheap checks of the sources. `/* lint-ignore */` silences one line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BPF = sorted((ROOT / "bpf_src").glob("*.bpf.c"))
CSRC = sorted((ROOT / "csrc").glob("*.[ch]"))  # the extension's C
PY = sorted((ROOT / "python" / "ebpfsensor").glob("*.py"))


def test_spdx_everywhere() -> None:
    for path in [*BPF, *(ROOT / "bpf_src").glob("*.h"), *CSRC, *PY, ROOT / "build_ext.py", ROOT / "setup.py"]:
        head = path.read_text().splitlines()[:2]
        assert any("SPDX-License-Identifier:" in line for line in head), path


def test_bpf_license() -> None:
    assert BPF
    for path in BPF:
        assert re.search(r'char LICENSE\[\] SEC\("license"\) = "(Dual BSD/GPL|GPL)', path.read_text()), path


def _functions(text: str) -> list[str]:
    """Top-level C function bodies, roughly: from a line ending in '{' at column 0 to the '}' at column 0."""
    return re.findall(r"^\S[^\n;]*\)\s*\n\{\n.*?^\}", text, re.S | re.M)


def test_every_reserve_is_submitted_or_discarded() -> None:
    for path in BPF:
        for body in _functions(path.read_text()):
            for line in body.splitlines():
                if "bpf_ringbuf_reserve(" in line and "lint-ignore" not in line:
                    assert "bpf_ringbuf_submit(" in body or "bpf_ringbuf_discard(" in body, (path, body[:80])


def test_no_ring_output_without_drop_count() -> None:
    # every way into a ring counts its failures
    for path in BPF:
        text = path.read_text()
        for body in _functions(text):
            if "bpf_ringbuf_output(" in body or "bpf_ringbuf_reserve(" in body:
                assert "STAT_DROPPED" in body, (path, body[:80])
