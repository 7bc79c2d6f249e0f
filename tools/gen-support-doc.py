#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the support matrix's tiers (python/ebpfsensor/data/support.json) into
docs/kernels.md (a row per kernel line, with why and where it was measured),
between its marker comments.

    PYTHONPATH=python python3 tools/gen-support-doc.py [--check]

A unit test (tests/unit/test_support.py) fails when it is stale; `make
docs` runs this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- support-tiers:begin (tools/gen-support-doc.py from data/support.json; run `make docs`) -->"
END = "<!-- support-tiers:end -->"


def kernels_table() -> str:
    """A row per kernel line of every distribution, with the reason and the
    kernel it was measured on."""
    from ebpfsensor.host.support import load_support_data

    out = ["| distribution | releases | kernel | tier | why | measured on |", "| --- | --- | --- | --- | --- | --- |"]
    for row in load_support_data().distributions:
        for t in row.tiers:
            why = t.why.replace("|", "\\|")
            out.append(
                f"| {row.name} | {t.releases} | {t.kernel} | `{t.tier}` | {why} | {t.tested_on or 'not booted here'} |"
            )
    return "\n".join(out)


def splice(text: str, table: str, name: str) -> str:
    """text with the part between the markers replaced by table.

    Raises:
        ValueError: the markers are missing.
    """
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{name}: the support-tiers markers are missing")
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def generate() -> dict[Path, str]:
    """Each file's whole new text."""
    out = {}
    for path, table in ((ROOT / "docs" / "kernels.md", kernels_table()),):
        out[path] = splice(path.read_text(), table, path.name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write support.json's tiers into docs/kernels.md.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale instead of writing it")
    args = parser.parse_args(argv)
    try:
        texts = generate()
    except ValueError as e:
        print(f"gen-support-doc: {e}", file=sys.stderr)
        return 1
    stale = [p for p, t in texts.items() if p.read_text() != t]
    if args.check:
        for p in stale:
            print(f"gen-support-doc: {p.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(texts[p])
    return 0


if __name__ == "__main__":
    sys.exit(main())
