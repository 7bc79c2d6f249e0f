# SPDX-License-Identifier: Apache-2.0
"""The `ebpfsensor` command, one module per group of subcommands.

Every expected error (a bad argument, a configuration that cannot be used,
a kernel that refuses, an OS error) is printed as one line and exits with
status 2; ``-v`` adds libbpf's messages, full verifier logs and tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from ..errors import EbpfSensorError, VerifierError
from . import btf, config, diagnostic, record, status, stream, top

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebpfsensor", description="eBPF sensor for security agents")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log hook choices, libbpf messages, full verifier logs, tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (stream, status, config, diagnostic, record, top, btf):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return 0
    except (EbpfSensorError, ValueError, OSError) as exc:
        print(f"ebpfsensor: error: {exc}", file=sys.stderr)
        if args.verbose:
            if isinstance(exc, VerifierError):
                print("\n".join(exc.log), file=sys.stderr)
            traceback.print_exc()
        return 2
