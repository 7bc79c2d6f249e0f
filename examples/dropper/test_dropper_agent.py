# SPDX-License-Identifier: Apache-2.0
"""The dropper detection, tested without root or a kernel.

Synthetic events describe each case in a few lines (``ebpfsensor.testing``
builders and the ``synthetic_sensor`` fixture); a recording of the real
thing, made once as root, checks the detection against what the kernel
really reports (``replay_sensor``). Run: ``pytest examples/dropper`` with
ebpfsensor installed (or ``-p ebpfsensor.testing.pytest_plugin`` from a
checkout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from dropper_agent import DropperDetector, detect

from ebpfsensor.testing import (
    make_exec,
    make_exit,
    make_file_chmod,
    make_file_create,
    make_file_open,
    make_file_rename,
    make_fork,
    make_net_accept,
    make_spawn,
)

RECORDING = Path(__file__).resolve().parents[2] / "tests" / "data" / "recordings" / "format1-dropper.ebr"


def web_server(pid: int = 100) -> int:
    """A running nginx that accepted a connection."""
    make_exec(pid=pid, exe="/usr/sbin/nginx", argv=["nginx", "-g", "daemon off;"])
    make_net_accept(pid=pid, local_address="10.0.0.5", local_port=80, remote_address="203.0.113.9")
    return pid


def test_a_servers_child_that_runs_what_it_wrote(synthetic_sensor: Any) -> None:
    server = web_server()
    child = make_fork(pid=server).child_pid
    make_file_create(pid=child, path="/tmp/.x", mode=0o755)
    make_exec(pid=child, exe="/tmp/.x")
    synthetic_sensor.feed()

    alerts = detect(synthetic_sensor)

    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.server_pid, alert.server_comm, alert.writer_pid, alert.path) == (server, "nginx", child, "/tmp/.x")


def test_in_the_order_the_sensor_hands_events_out(synthetic_sensor: Any) -> None:
    """The sensor drains the lifecycle ring (exec, fork, exit) before the
    activity ring: the payload's exec comes before the accept and the write."""
    server = web_server()
    child = make_fork(pid=server).child_pid
    make_file_create(pid=child, path="/tmp/.x")
    make_exec(pid=child, exe="/tmp/.x")
    make_exit(pid=child)
    events = synthetic_sensor.scenario.events
    lifecycle = [e for e in events if e.kind.startswith("process_")]
    synthetic_sensor.feed(lifecycle + [e for e in events if e not in lifecycle])

    assert [a.path for a in detect(synthetic_sensor)] == ["/tmp/.x"]


def test_written_renamed_made_executable_and_run_by_a_grandchild(synthetic_sensor: Any) -> None:
    server = web_server()
    shell = make_spawn(server, "/bin/sh", ["sh", "-c", "curl ... > /tmp/a; mv /tmp/a /tmp/b; /tmp/b"])[1].pid
    make_file_open(pid=shell, path="/tmp/a", flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, created=True)
    make_file_rename(pid=shell, path="/tmp/a", new_path="/tmp/b")
    make_file_chmod(pid=shell, path="/tmp/b", mode=0o755)
    make_spawn(shell, "/tmp/b")
    synthetic_sensor.feed()

    assert [a.path for a in detect(synthetic_sensor)] == ["/tmp/b"]


def test_a_script_run_through_its_interpreter(synthetic_sensor: Any) -> None:
    child = make_fork(pid=web_server()).child_pid
    make_file_create(pid=child, path="/tmp/run.sh")
    make_exec(pid=child, exe="/usr/bin/dash", argv=["/bin/sh", "/tmp/run.sh"])
    synthetic_sensor.feed()

    assert [a.path for a in detect(synthetic_sensor)] == ["/tmp/run.sh"]


@pytest.mark.parametrize(
    "case",
    ["not a server", "the server itself", "reads only", "runs something else", "failed accept", "after exit"],
)
def test_what_is_not_a_dropper(synthetic_sensor: Any, case: str) -> None:
    make_exec(pid=100, exe="/usr/sbin/nginx")
    if case != "not a server":
        make_net_accept(pid=100, result=-11 if case == "failed accept" else 4)
    actor = 100 if case == "the server itself" else make_fork(pid=100).child_pid
    if case == "reads only":
        make_file_open(pid=actor, path="/tmp/.x")
    else:
        make_file_create(pid=actor, path="/tmp/.x")
    if case == "after exit":
        make_exit(pid=actor)
        actor = make_fork(pid=100).child_pid
    make_exec(pid=actor, exe="/usr/bin/id" if case == "runs something else" else "/tmp/.x")
    synthetic_sensor.feed()

    assert detect(synthetic_sensor) == []


def test_across_batches_and_losses(synthetic_sensor: Any) -> None:
    """The state survives batch boundaries; a loss marker does not confuse it."""
    server = web_server()
    synthetic_sensor.feed()
    child = make_fork(pid=server).child_pid
    synthetic_sensor.feed()
    synthetic_sensor.lose(dropped=2)
    make_file_create(pid=child, path="/tmp/.x")
    synthetic_sensor.feed()
    make_exec(pid=child, exe="/tmp/.x")
    synthetic_sensor.feed()

    detector = DropperDetector()
    detector.attach(synthetic_sensor)
    batches = 0
    while not synthetic_sensor.finished:
        batches += bool(synthetic_sensor.poll())
    assert batches == 4 and len(detector.alerts) == 1
    assert synthetic_sensor.stats().dropped == 2


def test_the_recorded_attack(replay_sensor: Any) -> None:
    """Recorded as root with a real sensor: a Python server accepts a
    connection, forks, and the child writes a copy of /bin/true and runs it
    (tests/kernel/test_record_replay.py made it)."""
    if not RECORDING.exists():
        pytest.skip(f"{RECORDING} is in the ebpfsensor repository")
    sensor = replay_sensor(RECORDING)

    alerts = detect(sensor)

    assert len(alerts) == 1
    assert alerts[0].path.endswith("/payload") and alerts[0].server_comm.startswith("python")
    assert alerts[0].exec_pid == alerts[0].writer_pid
