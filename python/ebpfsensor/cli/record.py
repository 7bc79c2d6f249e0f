# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor record` and `ebpfsensor replay`: recordings for testing detections."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import Any

from ._common import parse_kinds


def cmd_record(args: argparse.Namespace) -> int:
    """Record live events to a file until interrupted or --duration passes."""
    from ..sensor import Sensor

    if args.duration is not None and args.duration < 0:
        raise ValueError(f"--duration {args.duration}: must not be negative")
    kinds = parse_kinds(args.kinds)
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    end = None if args.duration is None else time.monotonic() + args.duration
    with Sensor(kinds=kinds, report_threads=args.threads) as sensor:
        recorder = sensor.record(args.output, level=args.level)
        print(f"ebpfsensor: recording from {sensor.stats().provider} to {args.output} (Ctrl-C stops)", file=sys.stderr)
        try:
            while not stop and (end is None or time.monotonic() < end):
                wait = None if end is None else max(0.0, min(0.1, end - time.monotonic()))
                sensor.poll(wait)
        finally:
            recorder.close()
        st = sensor.stats()
    n = recorder.events_written
    size = recorder.bytes_written
    print(
        f"ebpfsensor: recorded {n} events in {size} bytes ({size / n if n else 0:.1f} bytes/event) to {args.output}; "
        f"dropped {st.dropped}, undecodable {st.undecodable}",
        file=sys.stderr,
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Print a recording's events as JSON lines, at the recorded pace or at once."""
    from ..events import to_json
    from ..recording import ReplaySensor

    if args.speed is not None and args.speed < 0:
        raise ValueError(f"--speed {args.speed}: must not be negative")
    out = sys.stdout.buffer
    with ReplaySensor(
        args.recording, speed=args.speed, kinds=parse_kinds(args.kinds), allow_truncated=args.allow_truncated
    ) as replay:
        h = replay.header
        print(
            f"ebpfsensor: replaying {args.recording}: format {h.version}, recorded by ebpfsensor "
            f"{h.sensor_version or '?'} with provider {h.provider or '?'} on Linux {h.host.get('release', '?')}",
            file=sys.stderr,
        )
        start = time.perf_counter()
        n = 0
        if args.count:
            while not replay.finished:
                n += len(replay.poll(None))
        else:
            for event in replay.events():
                out.write(to_json(event) + b"\n")
                n += 1
            out.flush()
        seconds = time.perf_counter() - start
        health = replay.health()
        st = replay.stats()
    rate = f", {n / seconds:,.0f} events/s" if seconds > 0 and args.speed is None else ""
    print(
        f"ebpfsensor: replayed {n} events in {seconds:.2f} s{rate}; recorded losses: dropped {st.dropped}, "
        f"undecodable {st.undecodable}; {'complete' if health.complete else 'no end frame: the recording was cut off'}",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    p = sub.add_parser("record", help="record live events to a file that ReplaySensor replays without root")
    p.add_argument("--output", "-o", required=True, help="the recording to write (replaced if it exists)")
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--threads", action="store_true", help="also record thread creation and exit")
    p.add_argument("--level", type=int, default=6, choices=range(10), metavar="0-9", help="compression level (6)")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("replay", help="print a recording's events as JSON lines")
    p.add_argument("recording", help="a file written by `ebpfsensor record` or Sensor.record()")
    p.add_argument("--speed", type=float, help="1 for the recorded pace, 2 twice as fast (default: at once)")
    p.add_argument("--kinds", help="comma-separated event kinds (default: all recorded)")
    p.add_argument("--count", action="store_true", help="print no events: count them and measure the rate")
    p.add_argument(
        "--allow-truncated", action="store_true", help="replay a recording cut off mid-frame up to that frame"
    )
    p.set_defaults(func=cmd_replay)
