# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor config` and `exclusions`: the managed configuration file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from ._common import diagnostic_window


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the managed configuration in force (defaults filled in)."""
    from ..managed_config import load_managed_config

    managed = load_managed_config(args.config)
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(managed)) + b"\n")
    return 0


def cmd_config_feature(args: argparse.Namespace) -> int:
    """Enable or disable the eBPF supplementary event provider in the managed file."""
    from ..managed_config import load_managed_config, write_feature

    write_feature(args.config, args.value == "enabled")
    managed = load_managed_config(args.config)
    print(f"{args.config}: ebpfSupplementaryEventProvider {'enabled' if managed.ebpf_enabled else 'disabled'}")
    return 0


def _rule_from_args(args: argparse.Namespace) -> Any:
    from ..exclusions import ExcludeCgroup, ExcludeExecutable, ExcludeName, ExcludePathPrefix, ExcludePid, ExcludeUid

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
    stats = diagnostic_window(duration, top=1)
    rule = stats.top_initiator_exclusion(descendants=args.descendants, force=args.force)
    top = stats.top_initiators[0]
    print(f"top initiator: {top.path} : {top.count} monitored syscalls in {stats.duration_s:g} s")
    return rule


def cmd_exclusions(args: argparse.Namespace) -> int:
    """List, add or remove exclusions in the managed configuration.

    A running sensor applies them on its next configuration reload
    (Sensor.apply_exclusions); a new sensor loads them at start.
    """
    from ..exclusions import resolve
    from ..managed_config import load_managed_config, write_exclusions

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


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    from ..managed_config import DEFAULT_PATH

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
    which.add_argument(
        "--name",
        help="process name (comm); spoofable: any user can run a process under any name, so use it only to "
        "filter noise (not with --descendants)",
    )
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
        "interpreter, for a file that is gone, and for interpreters, shells and launchers unless --force)",
    )
    e.add_argument("--duration", type=float, help="with --top-initiator: seconds to count (default 20)")
    e.add_argument("--descendants", action="store_true", help="also every process they start")
    e.add_argument(
        "--force",
        action="store_true",
        help="with --top-initiator: exclude it even when it is an interpreter, a shell or a launcher, which "
        "silences every script it runs, for every user",
    )
    e = esub.add_parser("remove", help="remove the exclusion at an index shown by list")
    e.add_argument("--config", default=DEFAULT_PATH)
    e.add_argument("index", type=int)
    p.set_defaults(func=cmd_exclusions)
