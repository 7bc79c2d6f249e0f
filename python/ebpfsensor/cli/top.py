# SPDX-License-Identifier: Apache-2.0
"""`ebpfsensor top`: a live view of events per second per kind, the busiest
processes and files, drops and CPU (the view needs rich: ``pip install
'ebpfsensor[top]'``; ``--json`` does not)."""

from __future__ import annotations

import argparse
import collections
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

import msgspec

from ..errors import EbpfSensorError
from ._common import parse_kinds

__all__ = ["Counts", "TopSnapshot", "render"]


class TopProcess(msgspec.Struct, frozen=True):
    """A process and its events in the last interval."""

    pid: int
    name: str
    events: int


class TopFile(msgspec.Struct, frozen=True):
    """A file path and its events in the last interval."""

    path: str
    events: int


class TopSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One refresh of the view: rates over the last interval, totals since start."""

    time: float
    interval_s: float
    provider: str
    rates: dict[str, float]
    totals: dict[str, int]
    processes: list[TopProcess]
    files: list[TopFile]
    events_per_s: float
    delivered: int
    dropped: int
    dropped_per_s: float
    undecodable: int
    sensor_cpu_pct: float
    system_cpu_pct: float


def _system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class Counts:
    """Events counted per kind, process and file path, over an interval."""

    def __init__(self, top: int = 10) -> None:
        from ..events import file as file_events
        from ..events._kinds import kind_of

        self._kind = kind_of

        self.top = top
        self._file_classes = frozenset(
            getattr(file_events, name) for name in file_events.__all__ if name != "PathSource"
        )
        self._by_class: collections.Counter[type] = collections.Counter()
        self._procs: collections.Counter[tuple[int, str]] = collections.Counter()
        self._files: collections.Counter[str] = collections.Counter()
        self._totals: collections.Counter[str] = collections.Counter()
        self._kind_of: dict[type, str] = {}
        self._dropped = 0
        self._since = time.monotonic()
        self._cpu = os.times()
        self._sys = _system_cpu()

    def add(self, batch: list[Any]) -> None:
        if not batch:
            return
        self._by_class.update(map(type, batch))
        files = self._file_classes
        procs = self._procs
        for e in batch:
            ctx = getattr(e, "process", None)
            name = (ctx.exe.rpartition("/")[2] if ctx is not None and ctx.exe else "") or getattr(e, "comm", "")
            procs[(e.pid, name or getattr(e, "exe", ""))] += 1
            if type(e) in files:
                self._files[e.path] += 1

    def snapshot(self, stats: Any) -> TopSnapshot:
        """The interval's rates and the tops, then a new interval."""
        now = time.monotonic()
        interval = max(1e-6, now - self._since)
        rates: dict[str, float] = {}
        for cls, n in self._by_class.items():
            kind = self._kind_of.get(cls)
            if kind is None:
                kind = self._kind_of[cls] = self._kind(cls)
            rates[kind] = rates.get(kind, 0.0) + n / interval
            self._totals[kind] += n
        cpu = os.times()
        busy, total = _system_cpu()
        sensor_cpu = (cpu.user + cpu.system - self._cpu.user - self._cpu.system) / interval * 100
        system_cpu = 100.0 * (busy - self._sys[0]) / (total - self._sys[1]) if total > self._sys[1] else 0.0
        dropped = stats.dropped
        snap = TopSnapshot(
            time=time.time(),
            interval_s=round(interval, 3),
            provider=stats.provider,
            rates={k: round(v, 1) for k, v in sorted(rates.items(), key=lambda kv: -kv[1])},
            totals=dict(sorted(self._totals.items())),
            processes=[TopProcess(pid, name, n) for (pid, name), n in self._procs.most_common(self.top)],
            files=[TopFile(path, n) for path, n in self._files.most_common(self.top)],
            events_per_s=round(sum(rates.values()), 1),
            delivered=stats.delivered,
            dropped=dropped,
            dropped_per_s=round((dropped - self._dropped) / interval, 1),
            undecodable=stats.undecodable,
            sensor_cpu_pct=round(sensor_cpu, 1),
            system_cpu_pct=round(system_cpu, 1),
        )
        self._by_class.clear()
        self._procs.clear()
        self._files.clear()
        self._dropped = dropped
        self._since, self._cpu, self._sys = now, cpu, (busy, total)
        return snap


def render(snap: TopSnapshot) -> Any:
    """The snapshot as a rich renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        ("ebpfsensor top", "bold"),
        f"  {time.strftime('%H:%M:%S', time.localtime(snap.time))}  provider {snap.provider}  ",
        (f"{snap.events_per_s:,.0f} events/s", "bold"),
        f"  dropped {snap.dropped:,} ({snap.dropped_per_s:,.0f}/s)  undecodable {snap.undecodable:,}  ",
        f"CPU sensor {snap.sensor_cpu_pct:.1f}%  system {snap.system_cpu_pct:.1f}%",
    )
    if snap.dropped_per_s:
        head.stylize("red")
    kinds = Table(title="events per kind", title_justify="left", expand=False)
    kinds.add_column("kind")
    kinds.add_column("/s", justify="right")
    kinds.add_column("total", justify="right")
    for kind in list(snap.rates) + [k for k in snap.totals if k not in snap.rates]:
        kinds.add_row(kind, f"{snap.rates.get(kind, 0.0):,.1f}", f"{snap.totals.get(kind, 0):,}")
    per_s = 1 / max(snap.interval_s, 1e-3)
    procs = Table(title="busiest processes", title_justify="left", expand=False)
    procs.add_column("pid", justify="right")
    procs.add_column("process")
    procs.add_column("events/s", justify="right")
    for p in snap.processes:
        procs.add_row(str(p.pid), p.name, f"{p.events * per_s:,.1f}")
    files = Table(title="busiest files", title_justify="left", expand=False)
    files.add_column("path", overflow="fold")
    files.add_column("events/s", justify="right")
    for f in snap.files:
        files.add_row(f.path, f"{f.events * per_s:,.1f}")
    grid = Table.grid(padding=(0, 2))
    grid.add_row(kinds, procs)
    return Group(head, grid, files)


def cmd_top(args: argparse.Namespace) -> int:
    """Refresh every --interval seconds until interrupted or --duration passes."""
    from ..sensor import Sensor

    if args.interval <= 0 or (args.duration is not None and args.duration < 0) or args.top < 1:
        raise ValueError("--interval and --top must be positive, --duration not negative")
    console = None
    if not args.json:
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:
            raise EbpfSensorError("ebpfsensor top needs rich: pip install 'ebpfsensor[top]' (or use --json)") from None
        console = Console(file=sys.stdout)
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with Sensor(kinds=parse_kinds(args.kinds)) as sensor:
        end = None if args.duration is None else time.monotonic() + args.duration
        counts = Counts(args.top)
        live = None
        if console is not None and console.is_terminal:
            live = Live(render(counts.snapshot(sensor.stats())), console=console, auto_refresh=False, screen=False)
            live.start()
        try:
            tick = time.monotonic() + args.interval
            while not stop and (end is None or time.monotonic() < end):
                wait = max(0.0, min(tick, end if end is not None else tick) - time.monotonic())
                counts.add(sensor.poll(min(wait, sensor.config.max_latency_ms / 1000)))
                if time.monotonic() < tick:
                    continue
                tick += args.interval
                snap = counts.snapshot(sensor.stats())
                if args.json:
                    sys.stdout.buffer.write(msgspec.json.encode(snap) + b"\n")
                    sys.stdout.flush()
                elif live is not None:
                    live.update(render(snap), refresh=True)
                elif console is not None:
                    # not a terminal: one frame per interval, one after the other
                    console.print(render(snap))
        finally:
            if live is not None:
                live.stop()
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommands to the parser's subparsers."""
    p = sub.add_parser(
        "top", help="live view: events per second per kind, busiest processes and files, drops, CPU (needs rich)"
    )
    p.add_argument("--kinds", help="comma-separated event kinds (default: all)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--top", type=int, default=10, help="processes and files shown (default 10)")
    p.add_argument("--json", action="store_true", help="print each refresh as one JSON object per line")
    p.set_defaults(func=cmd_top)
