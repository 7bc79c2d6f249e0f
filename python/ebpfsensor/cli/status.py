# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor hooks`, `health`, `probe` and `check`: what runs, and why."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from ._common import parse_kinds


def cmd_hooks(args: argparse.Namespace) -> int:
    """Load the probes once and print which variant each hook uses."""
    from ..sensor import Sensor

    with Sensor(kinds=parse_kinds(args.kinds)) as sensor:
        hooks = sensor.hooks()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(hooks) + b"\n")
        return 0
    for hook, info in sorted(hooks.items()):
        print(f"{hook:12} {info.variant or '-':8} {info.object:20} {'; '.join(info.failures)}")
    return 0


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
    opens = st.kinds.get("file_open")
    # the open policy's accounting: read-only opens of files not watched
    counted = f", read-only opens counted, not reported {opens.unwatched}" if opens and opens.unwatched else ""
    print(f"counters: delivered {st.delivered}, dropped {st.dropped}, undecodable {st.undecodable}{counted}")
    rules = [f"{_rule_text(r.rule)} ({r.total} hits)" for r in h.exclusions]
    print(f"exclusions: {'; '.join(rules) or '-'}")
    print(f"log file: {h.log_file or '-'}")


def _rule_text(rule: Any) -> str:
    """``executable /usr/bin/x descendants``, ``self``: a rule on one line."""
    fields = msgspec.to_builtins(rule)
    return " ".join([fields.pop("type"), *(k if v is True else str(v) for k, v in fields.items())])


def cmd_health(args: argparse.Namespace) -> int:
    """Start the sensor as configured, report its health, stop it."""
    from ..sensor import Sensor

    sensor = Sensor.from_managed_config(args.config)
    with sensor:
        sensor.poll(0.1)
        health = sensor.health()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(health) + b"\n")
    else:
        _print_health(health)
    return 0


def _print_probe(r: Any) -> None:
    c = r.capabilities
    print(f"tier: {r.tier}")
    print(f"provider: {r.provider} ({r.reason})")
    print(f"kernel: {c.kernel_release} {c.machine}, {c.distribution}")
    print(f"support: {c.support.reason}")
    print(f"btf: {c.btf_source}; ring buffer: {c.ring_buffer}; tracefs: {c.tracefs}; bpffs: {c.bpffs}")
    print(f"program types: {', '.join(f'{k}={v}' for k, v in c.program_types.items())}")
    if not r.kinds:
        print("kinds: not loaded (--no-load, or no privileges)")
        return
    print("kinds:")
    for kind, k in r.kinds.items():
        print(f"  {kind:16} {'live' if k.live else 'off':5} {k.source:16} {k.reason}")
    print("hooks:")
    for hook, info in sorted(r.hooks.items()):
        print(f"  {hook:24} {info.variant or '-':8} {'; '.join(info.failures)}")


def cmd_probe(args: argparse.Namespace) -> int:
    """What this kernel supports and which provider would run."""
    from ..probe import probe

    report = probe(load=not args.no_load)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    else:
        _print_probe(report)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Check compiled objects without loading them: programs, sizes, layouts."""
    from .._btf import read_object_btf
    from .._ffi import ffi
    from ..events._layout import RECORDS, c_members
    from ..sources.ebpf.objects import BpfObject, packaged_object_path

    paths = [Path(p) for p in args.objects] or sorted(packaged_object_path("process").parent.glob("*.bpf.o"))
    failures = 0
    for path in paths:
        obj = BpfObject.open(path)
        btf = read_object_btf(obj.data)
        print(f"{path.name}:")
        own = obj.sections
        for hook, variants in sorted(obj.hooks.items()):
            names = ", ".join(
                f"{p.variant} ({_insns(obj.data, own[p.name])} insns" + (f", shares {p.name})" if p.shared else ")")
                for p in variants
            )
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


def _insns(data: bytes, section: str) -> int:
    import io

    from elftools.elf.elffile import ELFFile

    sec = ELFFile(io.BytesIO(data)).get_section_by_name(section)
    return 0 if sec is None else sec["sh_size"] // 8


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    from ..managed_config import DEFAULT_PATH

    p = sub.add_parser("hooks", help="load the probes and show which hook variants this kernel runs")
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hooks)

    p = sub.add_parser("health", help="start the sensor as configured and report which source runs and why")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", default=DEFAULT_PATH, help=f"managed configuration file (default {DEFAULT_PATH})")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("probe", help="report kernel capabilities and the provider that would run")
    p.add_argument("--no-load", action="store_true", help="do not load programs (no privileges needed)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("check", help="check compiled objects without loading them")
    p.add_argument("objects", nargs="*", help=".bpf.o files (default: the packaged ones)")
    p.set_defaults(func=cmd_check)
