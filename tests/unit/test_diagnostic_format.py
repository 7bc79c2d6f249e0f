# SPDX-License-Identifier: Apache-2.0
"""The diagnostic's results without the kernel: text layout, JSON, device numbers."""

from __future__ import annotations

import os

import msgspec

from ebpfsensor.diagnostic import (
    DiagnosticCounters,
    EbpfStatistics,
    InitiatorCount,
    PathCount,
    SyscallCount,
    format_text,
    user_dev,
)


def sample(**counters: int) -> EbpfStatistics:
    return EbpfStatistics(
        duration_s=20.0,
        arch="x86",
        variant="raw",
        top_file_paths=[PathCount("/var/log/app.log", 10), PathCount("/tmp/" + "x" * 250, 3, truncated=True)],
        top_initiators=[
            InitiatorCount(
                "/usr/bin/stress-ng", 50000, 65024, 2170919, 266338304, syscalls=[SyscallCount(82, "rename", 50000)]
            )
        ],
        top_syscalls=[SyscallCount(82, "rename", 1699333, True), SyscallCount(1000, None, 7)],
        counters=DiagnosticCounters(**counters),
    )


def test_text_layout() -> None:
    assert format_text(sample()) == (
        "Monitor 20 seconds\n"
        "Top file paths:\n"
        "/var/log/app.log : 10\n"
        f"/tmp/{'x' * 250}... : 3\n"
        "Top initiator paths:\n"
        "/usr/bin/stress-ng : 50000\n"
        "Top syscall ids:\n"
        "82 (rename) : 1699333\n"
        "1000 : 7\n"
    )


def test_text_reports_what_did_not_fit() -> None:
    text = format_text(sample(paths_full=5, initiators_full=2, paths_unreadable=1))
    assert text.endswith(
        "(initiators not counted (map full): 2)\n(paths not counted (map full): 5)\n(paths unreadable: 1)\n"
    )


def test_fractional_duration() -> None:
    assert format_text(msgspec.structs.replace(sample(), duration_s=2.5)).startswith("Monitor 2.5 seconds\n")


def test_json_round_trip() -> None:
    stats = sample(syscalls=9)
    data = msgspec.json.decode(msgspec.json.encode(stats))
    assert data["top_syscalls"][0] == {"nr": 82, "name": "rename", "count": 1699333, "monitored": True}
    assert data["top_initiators"][0]["ino"] == 2170919 and data["counters"]["syscalls"] == 9
    assert msgspec.json.decode(msgspec.json.encode(stats), type=EbpfStatistics) == stats


def test_kernel_dev_to_stat_dev() -> None:
    # the kernel's 254:0 is 254 << 20; os.stat encodes it as makedev(254, 0)
    assert user_dev(254 << 20) == os.makedev(254, 0) == 65024
    assert user_dev((259 << 20) | 70000) == os.makedev(259, 70000)
    st = os.stat("/")
    assert user_dev((os.major(st.st_dev) << 20) | os.minor(st.st_dev)) == st.st_dev


def test_overhead_hooks_by_variant() -> None:
    from ebpfsensor.diagnostic_overhead import variant_summary

    hooks: dict[str, str | None] = {f"file_{n}_enter": "tp" for n in range(14)}
    hooks |= {"exec": "btf", "fork": "btf", "exit": "btf", "rename_target": None}
    hooks |= {f"path_{n}": "lsm" for n in ("chmod", "chown", "link", "mkdir", "mknod")}
    assert variant_summary(hooks) == (
        "tp 14, lsm 5 (path_chmod, path_chown, path_link, path_mkdir, ...), btf 3 (exec, exit, fork),"
        " none 1 (rename_target)"
    )
    assert variant_summary({}) == ""
