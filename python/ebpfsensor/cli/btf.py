# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor btf locate` and `btf minimize`: the BTF for kernels without their own."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec


def cmd_locate(args: argparse.Namespace) -> int:
    """Print the BTF the sensor would relocate against, and why, in one line."""
    from ..host import btf
    from ..managed_config import load_managed_config

    btf_path, btf_dir = args.btf_path, args.btf_dir
    if btf_path is None or btf_dir is None:
        sensor = load_managed_config(args.config).sensor
        btf_path = sensor.btf_path if btf_path is None else btf_path
        btf_dir = sensor.btf_dir if btf_dir is None else btf_dir
    found = btf.locate(btf_path or None, btf_dir, release=args.release)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(found) + b"\n")
    else:
        print(found.describe())
    return 0


def cmd_minimize(args: argparse.Namespace) -> int:
    """Write a BTF file holding only the types the packaged objects relocate against."""
    from ..host import btf

    made = btf.minimize(args.input, args.output, bpftool=args.bpftool)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(made) + b"\n")
    else:
        print(
            f"{made.output}: {made.output_bytes} bytes from {made.input_bytes} "
            f"({len(made.objects)} objects: {', '.join(made.objects)})"
        )
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    from ..managed_config import DEFAULT_PATH

    p = sub.add_parser("btf", help="the BTF for kernels without /sys/kernel/btf/vmlinux")
    cmds = p.add_subparsers(dest="btf", required=True)

    p = cmds.add_parser("locate", help="which BTF the sensor would use, and why (or where it looked)")
    p.add_argument("--btf-path", help="as Config.btf_path (default: the managed configuration's)")
    p.add_argument("--btf-dir", help="as Config.btf_dir (default: the managed configuration's)")
    p.add_argument("--release", help="search for this kernel release (default: the running kernel's)")
    p.add_argument("--config", default=DEFAULT_PATH, help=f"managed configuration file (default {DEFAULT_PATH})")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_locate)

    p = cmds.add_parser(
        "minimize", help="a few-KiB BTF file with only the types the packaged objects use (bpftool gen min_core_btf)"
    )
    p.add_argument("--input", required=True, help="the kernel's full BTF (raw, or a vmlinux with .BTF)")
    p.add_argument("--output", required=True, help="the file to write")
    p.add_argument("--bpftool", default="bpftool", help="bpftool to run (default: bpftool in PATH)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_minimize)
