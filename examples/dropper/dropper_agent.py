# SPDX-License-Identifier: Apache-2.0
"""A small agent: alerts when a child of a network server writes a file and runs it.

The classic web shell or exploited service: a process that accepted a
connection starts a child, the child writes an executable (a dropper's
payload) and executes it. The detection keeps, by process identity (pid and
start time, so a reused pid is another process):

- servers: processes that accepted a connection (``net_accept`` that succeeded);
- parents: each forked child's parent (``process_fork``; else the ``ppid``);
- written: files a server's child opened for writing or created;

and alerts when the writer (or a child of it) executes one of them.

Events are not handed out in time order across kinds: the sensor drains its
process lifecycle ring (exec, fork, exit) before the activity ring (files,
network), so a payload's exec can come before the write that made it, in
the same batch. The detection therefore also keeps recent execs and matches
a write against them; nothing is forgotten at an exit (the exit may come
first too), the tables are bounded instead.

Run it live (as root): ``python3 examples/dropper/dropper_agent.py``.
Its tests (``test_dropper_agent.py``) need neither root nor a kernel.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import msgspec

import ebpfsensor

__all__ = ["KINDS", "Alert", "DropperDetector", "detect"]

#: what the detection reads
KINDS = frozenset({"net_accept", "process_fork", "process_exec", "file_open", "file_create", "file_rename"})
_WRITE = os.O_WRONLY | os.O_RDWR

Proc = tuple[int, int]  # pid, start_time_ns


class Alert(msgspec.Struct, frozen=True):
    """A server's child ran a file it wrote.

    Attributes:
        server_pid: the network server's pid.
        server_comm: its name.
        writer_pid: the child that wrote the file.
        path: the file.
        exec_pid: the process that executed it (the writer, or a child of it).
        argv: the arguments it was run with.
        ts_ns: when it was executed, CLOCK_BOOTTIME ns.
    """

    server_pid: int
    server_comm: str
    writer_pid: int
    path: str
    exec_pid: int
    argv: list[str]
    ts_ns: int


class DropperDetector:
    """Feed it events in any order (``handle``), or attach it to a sensor; read ``alerts``.

    Args:
        limit: entries kept in each table (the oldest go first).
    """

    def __init__(self, limit: int = 65536) -> None:
        self.limit = limit
        self.servers: dict[Proc, str] = {}
        self.parent: dict[Proc, Proc] = {}
        self.latest: dict[int, Proc] = {}
        self.written: dict[str, tuple[Proc, Proc, int]] = {}  # path -> writer, its server, when
        self.execs: dict[str, list[tuple[Proc, Any]]] = {}  # path -> recent execs of it
        self.alerts: list[Alert] = []
        self._alerted: set[tuple[str, Proc]] = set()

    def attach(self, sensor: Any) -> Any:
        """Subscribe to a Sensor, ReplaySensor or SyntheticSensor; returns the subscription."""
        return sensor.subscribe(self.handle, kinds=KINDS)

    def _keep(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        if len(table) > self.limit:
            del table[next(iter(table))]

    def _see(self, pid: int, start_time_ns: int) -> Proc:
        proc = (pid, start_time_ns)
        if self.latest.get(pid) != proc:
            self._keep(self.latest, pid, proc)
        return proc

    def _server_of(self, proc: Proc, ppid: int) -> Proc | None:
        """The server that is proc's parent, if it is one."""
        parent = self.parent.get(proc) or self.latest.get(ppid)
        return parent if parent in self.servers else None

    def _by(self, proc: Proc, ppid: int, writer: Proc) -> bool:
        """proc is the writer, or a child of it."""
        return proc == writer or self.parent.get(proc) == writer or ppid == writer[0]

    def handle(self, event: Any) -> None:
        """Take one event (of any kind; those not in KINDS are ignored)."""
        kind = event.kind
        if kind == "net_accept":
            if event.result >= 0:
                self._keep(self.servers, self._see(event.pid, event.start_time_ns), event.comm)
        elif kind == "process_fork":
            parent = self._see(event.pid, event.start_time_ns)
            child = self._see(event.child_pid, event.child_start_time_ns)
            self._keep(self.parent, child, parent)
        elif kind in ("file_open", "file_create"):
            if event.result >= 0 and (event.flags & _WRITE or event.created):
                self._written(event)
        elif kind == "file_rename":
            # a payload written under one name and moved into place
            if event.result == 0 and event.path in self.written:
                self._keep(self.written, event.new_path, self.written.pop(event.path))
        elif kind == "process_exec":
            self._exec(event)

    def _written(self, event: Any) -> None:
        writer = self._see(event.pid, event.start_time_ns)
        server = self._server_of(writer, event.ppid)
        if server is None:
            return
        self._keep(self.written, event.path, (writer, server, event.ts_ns))
        # an exec handed out before the write that preceded it
        for proc, ex in self.execs.pop(event.path, []):
            if ex.ts_ns >= event.ts_ns and self._by(proc, ex.ppid, writer):
                self._alert(event.path, writer, server, ex)

    def _exec(self, event: Any) -> None:
        proc = self._see(event.pid, event.start_time_ns)
        # a script runs through its interpreter: the file is then an argument
        for path in dict.fromkeys((event.exe, *event.argv[1:2])):
            hit = self.written.get(path)
            if hit is not None and event.ts_ns >= hit[2] and self._by(proc, event.ppid, hit[0]):
                self._alert(path, hit[0], hit[1], event)
                return
            recent = self.execs.get(path, [])
            self._keep(self.execs, path, [*recent[-7:], (proc, event)])

    def _alert(self, path: str, writer: Proc, server: Proc, ex: Any) -> None:
        key = (path, (ex.pid, ex.start_time_ns))
        if key in self._alerted:
            return
        self._alerted.add(key)
        comm = self.servers.get(server, "")
        self.alerts.append(Alert(server[0], comm, writer[0], path, ex.pid, list(ex.argv), ex.ts_ns))


def detect(sensor: Any, duration: float | None = None) -> list[Alert]:
    """Run the detection over a sensor for duration seconds (a replay: to its end)."""
    detector = DropperDetector()
    detector.attach(sensor)
    sensor.run(duration)
    return detector.alerts


def main() -> int:
    detector = DropperDetector()
    with ebpfsensor.Sensor(kinds=KINDS) as sensor:
        detector.attach(sensor)
        print("watching for servers' children running what they wrote (Ctrl-C stops)", file=sys.stderr)
        seen = 0
        try:
            while True:
                sensor.poll(None)
                for alert in detector.alerts[seen:]:
                    sys.stdout.buffer.write(msgspec.json.encode(alert) + b"\n")
                    sys.stdout.flush()
                seen = len(detector.alerts)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
