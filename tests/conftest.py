# SPDX-License-Identifier: Apache-2.0
"""Test tiers: unit tests run anywhere; tests marked `bpf` or `root` need root.

Unprivileged, the kernel tier skips with the reason. With
EBPFSENSOR_REQUIRE_BPF=1 (set by CI, which runs as root) a skip of a kernel
test is a failure: the tests that matter cannot pass by not running.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

REQUIRE_BPF = os.environ.get("EBPFSENSOR_REQUIRE_BPF") == "1"
_KERNEL_MARKS = ("bpf", "root")


def _is_kernel_test(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(m) for m in _KERNEL_MARKS)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _is_kernel_test(item) and os.geteuid() != 0:
        reason = "needs root or CAP_BPF" if item.get_closest_marker("bpf") else "needs root"
        if REQUIRE_BPF:
            pytest.fail(f"{reason}, and EBPFSENSOR_REQUIRE_BPF=1 forbids skipping")
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_BPF and report.skipped and _is_kernel_test(item):
        report.outcome = "failed"
        report.longrepr = f"kernel test skipped under EBPFSENSOR_REQUIRE_BPF=1: {report.longrepr}"


def require_kernel(version: str, feature: str, present: bool) -> None:
    """Skip when the kernel is older than version; fail when it is newer but
    the feature is missing (that is a bug, not an old kernel)."""
    release = os.uname().release.split("-")[0]
    have = tuple(int(x) for x in release.split(".")[:2])
    need = tuple(int(x) for x in version.split(".")[:2])
    if present:
        return
    if have < need:
        pytest.skip(f"{feature} needs Linux {version}; this is {os.uname().release}")
    pytest.fail(f"{feature} is missing on Linux {os.uname().release}, which should have it (since {version})")


class SeededRandom(random.Random):
    """random.Random whose repr shows the seed, to replay a failure."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def __repr__(self) -> str:
        return f"SeededRandom(seed={self.seed_value}; replay with EBPFSENSOR_SEED={self.seed_value})"


@pytest.fixture
def rng() -> SeededRandom:
    seed = int(os.environ.get("EBPFSENSOR_SEED") or random.SystemRandom().randrange(1 << 32))
    return SeededRandom(seed)


@pytest.fixture(scope="session", autouse=True)
def library_log_file() -> None:
    """The library's log file stays open for the life of the process, by
    design: open it before the first test so no test is blamed for it."""
    from ebpfsensor import _logfile
    from ebpfsensor.config import Config

    path = _logfile.enable(Config().log_file)
    if path:
        import logging

        logging.getLogger("ebpfsensor").warning("test session started")


def _open_fds() -> dict[int, str]:
    """This process's open fds and what each points to. The listing's own
    fd (the lowest free number while it ran) is closed by the time it is
    read back, and left out: counted as open, a test that leaks one fd would
    leak exactly that number and pass."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return fds


@pytest.fixture(autouse=True)
def no_fd_leak() -> Iterator[None]:
    """Every test closes the fds it opens (BPF objects, maps, links, rings).

    A sensor that outlives the test (a module's) holds an executable open
    while it hashes it, for any exec on the machine: such an fd closes within
    moments, a leaked one stays. So the fds still open after the test are
    looked at again for a few seconds before they count as leaked."""
    before = _open_fds()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [f"{fd} -> {target}" for fd, target in sorted(_open_fds().items()) if before.get(fd) != target]
        if not leaked or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test leaked file descriptors: {leaked}"
