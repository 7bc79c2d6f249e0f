# SPDX-License-Identifier: Apache-2.0
"""Helpers for kernel tests: a running sensor and waiting for events."""

from __future__ import annotations

import collections
import os
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ebpfsensor


def our_programs() -> list[str]:
    """Names of loaded BPF programs that are ebpfsensor's (handle_*)."""
    out = subprocess.run(["bpftool", "prog", "list"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if " name handle_" in line or " name path_resolve" in line]


_backlog: weakref.WeakKeyDictionary[ebpfsensor.Sensor, collections.deque[Any]] = weakref.WeakKeyDictionary()


def wait_for(
    sensor: ebpfsensor.Sensor, match: Callable[[Any], bool], timeout: float = 5.0, count: int = 1
) -> list[Any]:
    """Drain the sensor until `count` events satisfy `match`; fail on timeout.

    Events that do not match are kept for the next call on the same sensor,
    so waiting for one event does not lose another from the same batch.
    """
    backlog = _backlog.setdefault(sensor, collections.deque(maxlen=100_000))
    found: list[Any] = []
    for event in list(backlog):
        if len(found) < count and match(event):
            found.append(event)
            backlog.remove(event)
    end = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < end:
        for event in sensor.poll(0.05):
            if len(found) < count and match(event):
                found.append(event)
            else:
                backlog.append(event)
    if len(found) >= count:
        return found
    pytest.fail(f"timed out after {timeout}s waiting for {count} matching event(s); got {found}")


def backlog(sensor: ebpfsensor.Sensor) -> list[Any]:
    """The events wait_for() drained from the sensor without taking them."""
    return list(_backlog.get(sensor, ()))


# "hook=variant" for every attached hook of the first module sensor, for
# pytest_terminal_summary: tools/vmtest.sh reports which variants a kernel got
# without starting (and closing: seconds under qemu) a sensor of its own
_hooks_seen: list[str] = []


@pytest.fixture(scope="module")
def sensor() -> Iterator[ebpfsensor.Sensor]:
    """One sensor with every kind on, shared by a module's tests. The tests
    make their events in this process, the sensor's: exclude_self is off."""
    with ebpfsensor.Sensor(exclude_self=False) as s:
        if not _hooks_seen:
            _hooks_seen.extend(f"{name}={info.variant}" for name, info in sorted(s.hooks().items()))
        yield s


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _hooks_seen and os.environ.get("EBPFSENSOR_REPORT_HOOKS") == "1":
        terminalreporter.write_line("HOOKS " + " ".join(_hooks_seen))
