# SPDX-License-Identifier: Apache-2.0
"""Helpers for kernel tests: a running sensor and waiting for events."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ebpfsensor


def our_programs() -> list[str]:
    """Names of loaded BPF programs that are ebpfsensor's (handle_*)."""
    out = subprocess.run(["bpftool", "prog", "list"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if " name handle_" in line or " name path_resolve" in line]


def wait_for(
    sensor: ebpfsensor.Sensor, match: Callable[[Any], bool], timeout: float = 5.0, count: int = 1
) -> list[Any]:
    """Drain the sensor until `count` events satisfy `match`; fail on timeout."""
    found: list[Any] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for event in sensor.poll(0.05):
            if match(event):
                found.append(event)
                if len(found) >= count:
                    return found
    pytest.fail(f"timed out after {timeout}s waiting for {count} matching event(s); got {found}")


@pytest.fixture(scope="module")
def sensor() -> Iterator[ebpfsensor.Sensor]:
    """One sensor with every kind on, shared by a module's tests."""
    with ebpfsensor.Sensor() as s:
        yield s
