# SPDX-License-Identifier: Apache-2.0
"""Where the kernel exposes what the sensor reads: each path named once."""

from __future__ import annotations

from pathlib import Path

#: the installed package (its compiled objects under bpf/, its data under data/)
PACKAGE_DIR = Path(__file__).resolve().parent.parent

#: the running kernel's BTF (CONFIG_DEBUG_INFO_BTF, Linux 5.4+)
BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
#: tracefs, where classic tracepoints list their event ids
TRACEFS = "/sys/kernel/tracing"
#: tracefs under debugfs, on kernels and systems that mount it only there
TRACEFS_DEBUGFS = "/sys/kernel/debug/tracing"
#: the BPF filesystem (pinning)
BPFFS = "/sys/fs/bpf"
#: securityfs, whose lsm file lists the active LSMs
SECURITYFS = "/sys/kernel/security"
LSM_LIST = f"{SECURITYFS}/lsm"
#: the kprobe PMU (perf_event_open kprobes, Linux 4.17+)
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe/type"
MOUNTS = "/proc/self/mounts"
MOUNTINFO = "/proc/self/mountinfo"
