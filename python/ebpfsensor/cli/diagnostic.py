# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor diagnostic ebpf-statistics`: who is noisy, and on what;
`ebpfsensor diagnostic overhead`: what the sensor costs this machine."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import msgspec

from ._common import diagnostic_window, parse_kinds


def cmd_ebpf_statistics(args: argparse.Namespace) -> int:
    """Count syscalls, initiators and file paths for --duration seconds; Ctrl-C ends the window early."""
    from ..diagnostic import format_text

    if args.duration < 0 or args.top < 0:
        raise ValueError("--duration and --top must not be negative")
    stats = diagnostic_window(args.duration, args.top, {args.variant} if args.variant else None)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(stats) + b"\n")
    else:
        sys.stdout.write(format_text(stats))
    return 0


def cmd_overhead(args: argparse.Namespace) -> int:
    """Time open+close, rename and fork+exec loops with nothing, the attach floor and the sensor."""
    from ..diagnostic_overhead import format_text, measure

    if not args.duration > 0:
        raise ValueError(f"--duration must be positive, not {args.duration}")
    kinds = parse_kinds(args.kinds)
    if not args.verbose:
        # the sensor starts several times: its warnings (hooks this kernel
        # lacks, no login source) would repeat; `ebpfsensor hooks` shows them
        logging.getLogger("ebpfsensor").setLevel(logging.ERROR)
    if sys.stderr.isatty() and not args.json:
        print(f"timing the loops for {args.duration:g} s (loading and unloading add a few)...", file=sys.stderr)
    report = measure(args.duration, kinds)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    else:
        sys.stdout.write(format_text(report))
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    p = sub.add_parser("diagnostic", help="diagnostics of the running system")
    diag = p.add_subparsers(dest="diagnostic", required=True)
    p = diag.add_parser(
        "ebpf-statistics", help="count syscalls, and monitored syscalls per executable and per file path, for a while"
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds to monitor (default 20)")
    p.add_argument("--top", type=int, default=10, help="entries per list (default 10, 0 for all)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--variant", choices=("raw", "tp"), help="force a hook variant (default: the best that works)")
    p.set_defaults(func=cmd_ebpf_statistics)

    p = diag.add_parser(
        "overhead",
        help="time open+close, rename and fork+exec loops without the sensor, at the attach floor and with it",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds of loops, over every mode (default 10)")
    p.add_argument("--kinds", help="comma-separated event kinds for the sensor (default: all)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_overhead)
