# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor stream`: live events as JSON lines (native, ECS or OCSF), to
stdout or an exporter (a file, NATS JetStream, syslog)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import Any

from ._common import parse_kinds


def cmd_stream(args: argparse.Namespace) -> int:
    """Stream events until interrupted or --duration passes.

    Quiet: stdout holds the data alone and stderr one banner line; the
    counters follow at the end only with -v, or when events were lost.
    """
    from ..exporters import Exporter, open_exporter
    from ..schema import Encoder
    from ..sensor import Sensor

    if args.duration is not None and args.duration < 0:
        raise ValueError("--duration must not be negative")
    encoder = Encoder(args.format)
    exporter: Exporter | None = None
    if args.output:
        options: dict[str, Any] = {"format": args.format}
        if args.tls_ca:
            if not args.output.startswith("syslog+tls://"):
                raise ValueError("--tls-ca goes with --output syslog+tls://HOST:PORT")
            options["ca_file"] = args.tls_ca
        exporter = open_exporter(args.output, **options)
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    out = sys.stdout.buffer
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        with Sensor(kinds=parse_kinds(args.kinds), report_threads=args.threads) as sensor:
            # the hook choices are detail: data alone on stdout, and one banner line
            if args.verbose:
                for hook, info in sorted(sensor.hooks().items()):
                    status = info.variant or "unavailable: " + " / ".join(info.failures)
                    print(f"ebpfsensor: hook {hook}: {status}", file=sys.stderr)
            where = f" to {args.output}" if args.output else ""
            print(
                f"ebpfsensor: streaming {args.format} events from {sensor.stats().provider}{where} (Ctrl-C stops)",
                file=sys.stderr,
            )
            warned = ""
            next_check = time.monotonic() + 1.0
            while not stop and (end is None or time.monotonic() < end):
                batch = sensor.poll(None)
                if exporter is None:
                    if batch:
                        out.write(encoder.encode_lines(batch))
                        out.flush()
                    continue
                exporter.submit_batch(batch)
                if time.monotonic() >= next_check:
                    next_check += 1.0
                    warned = _warn_output(args.output, exporter, warned)
            st = sensor.stats()
    finally:
        if exporter is not None:
            exporter.close(args.flush_timeout)
    lost = st.dropped + st.undecodable
    if exporter is not None:
        xs = exporter.stats()
        if args.verbose or lost or xs.dropped or xs.failed:
            print(
                f"ebpfsensor: delivered {st.delivered}, dropped {st.dropped}, undecodable {st.undecodable}; "
                f"{args.output}: delivered {xs.delivered}, dropped {xs.dropped} (queue full), failed {xs.failed}",
                file=sys.stderr,
            )
        if xs.failed:
            print(
                f"ebpfsensor: error: {args.output}: {xs.failed} events not delivered within "
                f"--flush-timeout {args.flush_timeout:g} s: {xs.last_error}",
                file=sys.stderr,
            )
            return 2
    elif args.verbose or lost:
        print(
            f"ebpfsensor: delivered {st.delivered}, dropped {st.dropped}, undecodable {st.undecodable}", file=sys.stderr
        )
    return 0


def _warn_output(output: str, exporter: Any, warned: str) -> str:
    """One line on stderr when the output starts failing, one when it recovers."""
    xs = exporter.stats()
    if not xs.connected and xs.retries and xs.last_error and xs.last_error != warned:
        print(f"ebpfsensor: warning: {output}: {xs.last_error}; retrying, events queue meanwhile", file=sys.stderr)
        return str(xs.last_error)
    if xs.connected and warned:
        print(f"ebpfsensor: {output}: delivering again", file=sys.stderr)
        return ""
    return warned


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    from ..exporters import URL_FORMS
    from ..schema import FORMATS

    p = sub.add_parser(
        "stream",
        help="stream live events as JSON lines, to stdout or an output",
        description="Stream live events as JSON lines: to stdout (the data alone; one banner line on stderr), "
        "or to an output. Outputs retry with backoff and queue events meanwhile; a full queue drops "
        "(counted, and reported at the end).",
    )
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--threads", action="store_true", help="also report thread creation and exit")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="native",
        help="native: the event Structs as they are (default); ecs: Elastic Common Schema; ocsf: OCSF",
    )
    p.add_argument("--output", metavar="URL", help="send the events to " + ", ".join(URL_FORMS) + " (default stdout)")
    p.add_argument("--tls-ca", metavar="FILE", help="CA certificates (PEM) to verify a syslog+tls server with")
    p.add_argument(
        "--flush-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="at the end, seconds to deliver what the output still holds (default 10)",
    )
    p.set_defaults(func=cmd_stream)
