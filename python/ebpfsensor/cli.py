# SPDX-License-Identifier: Apache-2.0
"""The `ebpfsensor` command: stream events, show hooks, check objects."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import EbpfSensorError, VerifierError

if TYPE_CHECKING:
    from .diagnostic import EbpfStatistics

__all__ = ["main"]


def _kinds(text: str | None) -> frozenset[str] | None:
    if not text:
        return None
    return frozenset(k.strip() for k in text.split(",") if k.strip())


def cmd_stream(args: argparse.Namespace) -> int:
    """Stream events as JSON lines until interrupted or --duration passes."""
    from .events import to_json
    from .sensor import Sensor

    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    out = sys.stdout.buffer
    end = None if args.duration is None else time.monotonic() + args.duration
    with Sensor(kinds=_kinds(args.kinds), report_threads=args.threads) as sensor:
        for hook, info in sorted(sensor.hooks().items()):
            status = info.variant or "unavailable: " + " / ".join(info.failures)
            print(f"ebpfsensor: hook {hook}: {status}", file=sys.stderr)
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


def cmd_hooks(args: argparse.Namespace) -> int:
    """Load the probes once and print which variant each hook uses."""
    from .sensor import Sensor

    with Sensor(kinds=_kinds(args.kinds)) as sensor:
        hooks = sensor.hooks()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(hooks) + b"\n")
        return 0
    for hook, info in sorted(hooks.items()):
        print(f"{hook:12} {info.variant or '-':8} {'; '.join(info.failures)}")
    return 0


def _diagnostic_window(duration: float, top: int, variants: set[str] | None = None) -> EbpfStatistics:
    """The diagnostic's counts over duration seconds; Ctrl-C ends the window
    early (the counts so far are kept)."""
    from .diagnostic import Diagnostic

    with Diagnostic(variants=variants) as diag:
        try:
            time.sleep(duration)
        except KeyboardInterrupt:
            pass
        return diag.stop(top)


def cmd_ebpf_statistics(args: argparse.Namespace) -> int:
    """Count syscalls, initiators and file paths for --duration seconds; Ctrl-C ends the window early."""
    from .diagnostic import format_text

    if args.duration < 0 or args.top < 0:
        raise ValueError("--duration and --top must not be negative")
    stats = _diagnostic_window(args.duration, args.top, {args.variant} if args.variant else None)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(stats) + b"\n")
    else:
        sys.stdout.write(format_text(stats))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Check compiled objects without loading them: programs, sizes, layouts."""
    from ._btf import read_object_btf
    from ._ffi import ffi
    from .events import RECORDS, c_members
    from .objects import BpfObject, packaged_object_path

    paths = [Path(p) for p in args.objects] or sorted(packaged_object_path("process").parent.glob("*.bpf.o"))
    failures = 0
    for path in paths:
        obj = BpfObject.open(path)
        btf = read_object_btf(obj.data)
        print(f"{path.name}:")
        for hook, variants in sorted(obj.hooks.items()):
            names = ", ".join(f"{p.variant} ({_insns(obj.data, p.section)} insns)" for p in variants)
            print(f"  hook {hook}: {names}")
        # several kinds may share a record layout: check each layout once
        for record in dict.fromkeys(spec.cls.record for spec in RECORDS.values()):
            found = btf.struct(record)
            if found is None:
                continue
            size, members = found
            c_size = ffi.sizeof(f"struct {record}")
            c_layout = [(n, o, ffi.sizeof(t)) for n, o, t in c_members(ffi.typeof(f"struct {record}"))]
            ok = size == c_size and [(m.name, m.offset, m.size) for m in members] == c_layout
            failures += not ok
            print(f"  record {record}: {size} bytes, {'layout matches' if ok else 'LAYOUT DIFFERS from cffi'}")
    return 1 if failures else 0


def _print_health(h: Any) -> None:
    on = "true" if h.ebpf else "false"
    print(f"supplementary_events_subsystem: {h.supplementary_events_subsystem}")
    print(f"ebpf: {on} ({h.reason})")
    c = h.capabilities
    print(f"kernel: {c.kernel_release} {c.machine}, {c.distribution}")
    print(f"support: {c.support.reason}")
    print(f"btf: {c.btf_source}; ring buffer: {c.ring_buffer}; tracefs: {c.tracefs}; bpffs: {c.bpffs}")
    types = ", ".join(f"{k}={v}" for k, v in c.program_types.items())
    print(f"program types: {types}")
    print("kinds:")
    for kind, k in h.kinds.items():
        print(f"  {kind:16} {'live' if k.live else 'off':5} {k.source:16} {k.reason}")
    st = h.counters
    print(f"counters: delivered {st.delivered}, dropped {st.dropped}, undecodable {st.undecodable}")
    print(f"log file: {h.log_file or '-'}")


def cmd_health(args: argparse.Namespace) -> int:
    """Start the sensor as configured, report its health, stop it."""
    from .sensor import Sensor

    sensor = Sensor.from_managed_config(args.config)
    with sensor:
        sensor.poll(0.1)
        health = sensor.health()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(health) + b"\n")
    else:
        _print_health(health)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """What this kernel supports and which provider would run."""
    from .health import probe

    report = probe(load=not args.no_load)
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the managed configuration in force (defaults filled in)."""
    from .managed_config import load_managed_config

    managed = load_managed_config(args.config)
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(managed)) + b"\n")
    return 0


def cmd_config_feature(args: argparse.Namespace) -> int:
    """Enable or disable the eBPF supplementary event provider in the managed file."""
    from .managed_config import load_managed_config, write_feature

    write_feature(args.config, args.value == "enabled")
    managed = load_managed_config(args.config)
    print(f"{args.config}: ebpfSupplementaryEventProvider {'enabled' if managed.ebpf_enabled else 'disabled'}")
    return 0


def _rule_from_args(args: argparse.Namespace) -> Any:
    from .exclusions import ExcludeCgroup, ExcludeExecutable, ExcludeName, ExcludePathPrefix, ExcludePid, ExcludeUid

    if args.duration is not None and not args.top_initiator:
        raise ValueError("--duration goes with --top-initiator")
    if args.top_initiator:
        return _top_initiator_rule(args)
    if args.executable:
        return ExcludeExecutable(args.executable, descendants=args.descendants)
    if args.name:
        return ExcludeName(args.name, descendants=args.descendants)
    if args.pid is not None:
        return ExcludePid(args.pid, descendants=args.descendants)
    if args.cgroup:
        return ExcludeCgroup(args.cgroup)
    if args.path_prefix:
        return ExcludePathPrefix(args.path_prefix)
    return ExcludeUid(args.uid)


def _top_initiator_rule(args: argparse.Namespace) -> Any:
    """Run a diagnostic window; the rule for its top initiator (refused for
    this interpreter and for a file that cannot be resolved)."""
    duration = 20.0 if args.duration is None else args.duration
    if duration < 0:
        raise ValueError("--duration must not be negative")
    print(f"ebpfsensor: counting monitored syscalls for {duration:g} seconds (Ctrl-C ends early)", file=sys.stderr)
    stats = _diagnostic_window(duration, top=1)
    rule = stats.top_initiator_exclusion(descendants=args.descendants)
    top = stats.top_initiators[0]
    print(f"top initiator: {top.path} : {top.count} monitored syscalls in {stats.duration_s:g} s")
    return rule


def cmd_exclusions(args: argparse.Namespace) -> int:
    """List, add or remove exclusions in the managed configuration.

    A running sensor applies them on its next configuration reload
    (Sensor.apply_exclusions); a new sensor loads them at start.
    """
    from .exclusions import resolve
    from .managed_config import load_managed_config, write_exclusions

    rules = list(load_managed_config(args.config).sensor.exclusions)
    if args.exclusions_command == "add":
        rule = _rule_from_args(args)
        resolve(rule)  # an invalid rule changes nothing
        text = msgspec.json.encode(rule).decode()
        if rule not in rules:
            rules.append(rule)
            write_exclusions(args.config, rules)
            print(f"added {text} to {args.config}")
        else:
            print(f"already in {args.config}: {text}")
    elif args.exclusions_command == "remove":
        if not 0 <= args.index < len(rules):
            raise ValueError(f"no exclusion {args.index}; `ebpfsensor exclusions list` shows {len(rules)}")
        del rules[args.index]
        write_exclusions(args.config, rules)
    for i, rule in enumerate(rules):
        print(f"{i}: {msgspec.json.encode(rule).decode()}")
    return 0


def _insns(data: bytes, section: str) -> int:
    import io

    from elftools.elf.elffile import ELFFile

    sec = ELFFile(io.BytesIO(data)).get_section_by_name(section)
    return 0 if sec is None else sec["sh_size"] // 8


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebpfsensor", description="eBPF sensor for security agents")
    parser.add_argument("-v", "--verbose", action="store_true", help="log libbpf messages and full verifier logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stream", help="stream live events as JSON lines")
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--threads", action="store_true", help="also report thread creation and exit")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("hooks", help="load the probes and show which hook variants this kernel runs")
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hooks)

    from .managed_config import DEFAULT_PATH

    p = sub.add_parser("health", help="start the sensor as configured and report which source runs and why")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", default=DEFAULT_PATH, help=f"managed configuration file (default {DEFAULT_PATH})")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("probe", help="report kernel capabilities and the provider that would run")
    p.add_argument("--no-load", action="store_true", help="do not load programs (no privileges needed)")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("config", help="show or change the managed configuration")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("show", help="print the configuration in force")
    c.add_argument("--config", default=DEFAULT_PATH)
    c.set_defaults(func=cmd_config_show)
    c = csub.add_parser("ebpf-supplementary-event-provider", help="enable or disable the eBPF provider")
    c.add_argument("--value", required=True, choices=("enabled", "disabled"))
    c.add_argument("--config", default=DEFAULT_PATH)
    c.set_defaults(func=cmd_config_feature)

    p = sub.add_parser("exclusions", help="list, add or remove exclusions in the managed configuration")
    esub = p.add_subparsers(dest="exclusions_command", required=True)
    e = esub.add_parser("list", help="the exclusions configured")
    e.add_argument("--config", default=DEFAULT_PATH)
    e = esub.add_parser(
        "add",
        help="exclude processes, or file events under a directory, in the kernel",
        description="Add an exclusion to the managed configuration: a sensor started from it, or reloading it, "
        "applies it in the kernel. Prints the rule and the file it was written to.",
    )
    e.add_argument("--config", default=DEFAULT_PATH)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--executable", help="absolute path; matched by the file's identity")
    which.add_argument("--name", help="process name (comm)")
    which.add_argument("--pid", type=int)
    which.add_argument("--cgroup", help="cgroup v2 path or container id")
    which.add_argument("--uid", type=int)
    which.add_argument(
        "--path-prefix",
        metavar="DIR",
        help="file events on DIR and below, whoever makes them (absolute, normalised, at most 255 bytes; "
        "whole components: /var/log covers /var/log/x, not /var/logs; a rename or link needs both names under it)",
    )
    which.add_argument(
        "--top-initiator",
        action="store_true",
        help="the executable that makes the most monitored syscalls: runs the ebpf-statistics diagnostic for "
        "--duration seconds and excludes its top initiator by identity, as --executable does (refused for this "
        "interpreter and for a file that is gone)",
    )
    e.add_argument("--duration", type=float, help="with --top-initiator: seconds to count (default 20)")
    e.add_argument("--descendants", action="store_true", help="also every process they start")
    e = esub.add_parser("remove", help="remove the exclusion at an index shown by list")
    e.add_argument("--config", default=DEFAULT_PATH)
    e.add_argument("index", type=int)
    p.set_defaults(func=cmd_exclusions)
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

    p = sub.add_parser("check", help="check compiled objects without loading them")
    p.add_argument("objects", nargs="*", help=".bpf.o files (default: the packaged ones)")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return int(args.func(args))
    except VerifierError as exc:
        print(f"ebpfsensor: error: {exc}", file=sys.stderr)
        if args.verbose:
            print("\n".join(exc.log), file=sys.stderr)
        return 2
    except (EbpfSensorError, ValueError) as exc:
        print(f"ebpfsensor: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
