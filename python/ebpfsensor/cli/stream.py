# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor stream`: live events as JSON lines."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import Any

from ._common import parse_kinds


def cmd_stream(args: argparse.Namespace) -> int:
    """Stream events as JSON lines until interrupted or --duration passes."""
    from ..events import to_json
    from ..sensor import Sensor

    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    out = sys.stdout.buffer
    end = None if args.duration is None else time.monotonic() + args.duration
    with Sensor(kinds=parse_kinds(args.kinds), report_threads=args.threads) as sensor:
        # the hook choices are detail: data alone on stdout, and one banner line
        if args.verbose:
            for hook, info in sorted(sensor.hooks().items()):
                status = info.variant or "unavailable: " + " / ".join(info.failures)
                print(f"ebpfsensor: hook {hook}: {status}", file=sys.stderr)
        print(
            f"ebpfsensor: streaming from {sensor.stats().provider} (Ctrl-C stops)",
            file=sys.stderr,
        )
        while not stop and (end is None or time.monotonic() < end):
            for event in sensor.poll(None):
                out.write(to_json(event) + b"\n")
            out.flush()
        st = sensor.stats()
    print(
        f"ebpfsensor: delivered {st.delivered}, dropped {st.dropped}, undecodable {st.undecodable}",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    p = sub.add_parser("stream", help="stream live events as JSON lines")
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--threads", action="store_true", help="also report thread creation and exit")
    p.set_defaults(func=cmd_stream)
