# SPDX-License-Identifier: Apache-2.0
"""The examples' own tests pass, without privileges and without a kernel.

Each example directory under examples/ with tests is run by a pytest of its
own, loading the test kit's plugin with ``-p`` as a user of a checkout
would. As root, every capability is dropped first: BPF could not load, so a
test that needed the kernel would fail here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def example_dirs() -> list[Path]:
    return sorted({p.parent for p in EXAMPLES.glob("*/test_*.py")})


def unprivileged(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv to drop the capabilities")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *cmd]


def test_there_are_examples() -> None:
    assert [p.name for p in example_dirs()] == ["dropper"]


@pytest.mark.parametrize("example", example_dirs(), ids=lambda p: p.name)
def test_example(example: Path) -> None:
    cmd = unprivileged(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "ebpfsensor.testing.pytest_plugin",
            "-rs",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    env.pop("EBPFSENSOR_REQUIRE_BPF", None)
    run = subprocess.run([*cmd, str(example)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert " passed" in out and "skipped" not in out and "error" not in out.lower(), out
