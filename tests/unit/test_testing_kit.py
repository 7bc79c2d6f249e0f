# SPDX-License-Identifier: Apache-2.0
"""The test kit: builders of consistent synthetic events, SyntheticSensor, the pytest plugin."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ebpfsensor.events import NetAccept, ProcessExec, to_json
from ebpfsensor.recording._format import all_kinds, context_fields
from ebpfsensor.testing import (
    Scenario,
    SyntheticSensor,
    current_scenario,
    make,
    make_exec,
    make_exit,
    make_file_create,
    make_file_open,
    make_fork,
    make_net_accept,
    make_net_connect,
    make_spawn,
    use_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ("ts_ns", "pid", "tid", "ppid", "uid", "gid", "comm", "start_time_ns", "cgroup_id", "container_id")


@pytest.fixture(autouse=True)
def fresh() -> Any:
    with use_scenario() as sc:
        yield sc


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_every_kind_builds_a_valid_event(kind: str) -> None:
    event = make(kind)
    cls = all_kinds()[kind]
    assert type(event) is cls and event.kind == kind
    # valid as the sensor's own: it round-trips through msgpack and JSON, typed
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(event), type=cls) == event
    assert msgspec.json.decode(to_json(event), type=cls) == event


def test_a_process_keeps_its_context_across_its_events() -> None:
    web = make_exec(pid=100, exe="/usr/sbin/nginx", argv=["nginx"])
    accept = make_net_accept(pid=100)
    opened = make_file_open(pid=100, path="/etc/nginx/nginx.conf")
    for event in (accept, opened):
        assert [getattr(event, f) for f in CONTEXT[1:]] == [getattr(web, f) for f in CONTEXT[1:]]
    assert web.comm == "nginx" and web.pid == web.tid == 100
    assert web.ts_ns < accept.ts_ns < opened.ts_ns


def test_a_field_given_applies_to_that_event_only() -> None:
    make_exec(pid=100, exe="/usr/sbin/nginx")
    odd = make_file_open(pid=100, comm="renamed", uid=33)
    after = make_file_open(pid=100)
    assert (odd.comm, odd.uid) == ("renamed", 33)
    assert (after.comm, after.uid) == ("nginx", 0)


def test_lifecycle_changes_the_scenario() -> None:
    sc = current_scenario()
    make_exec(pid=100, exe="/usr/sbin/nginx")
    fork = make_fork(pid=100)
    child = sc.get(fork.child_pid)
    assert child is not None and child.ppid == 100 and child.start_time_ns == fork.child_start_time_ns
    first = make_file_create(pid=fork.child_pid, path="/tmp/x")
    assert (first.comm, first.ppid, first.start_time_ns) == ("nginx", 100, fork.child_start_time_ns)
    exec_ = make_exec(pid=fork.child_pid, exe="/tmp/x", argv=["/tmp/x", "-d"])
    assert (exec_.comm, exec_.parent_comm, exec_.parent_exe, exec_.argv) == (
        "x",
        "nginx",
        "/usr/sbin/nginx",
        ["/tmp/x", "-d"],
    )
    assert make_file_open(pid=fork.child_pid).comm == "x"
    exit_ = make_exit(pid=fork.child_pid)
    assert exit_.duration_ns == exit_.ts_ns - fork.child_start_time_ns
    assert sc.get(fork.child_pid) is None
    # the pid reused: another process, started later
    again = make_file_open(pid=fork.child_pid)
    assert again.start_time_ns > fork.child_start_time_ns and again.comm == "bash"


def test_spawn_and_timestamps() -> None:
    sc = Scenario(start_ns=5_000, step_ns=10)
    fork, exec_ = sc.spawn(None, "/usr/bin/id", ["id", "-u"])
    assert (fork.ts_ns, exec_.ts_ns) == (5_010, 5_020)
    assert exec_.pid == fork.child_pid and exec_.ppid == fork.pid
    late = sc.make("process_exit", exec_.pid, ts_ns=9_000)
    assert late.ts_ns == 9_000 and sc.make("setsid").ts_ns == 9_010
    assert sc.events == [fork, exec_, late, sc.events[-1]]
    with use_scenario(sc):
        assert make_spawn(1, "/bin/true")[1].ppid == 1


def test_mistakes_are_errors() -> None:
    with pytest.raises(TypeError, match=r"process_exec has no field\(s\) exe_path"):
        make_exec(pid=1, exe_path="/bin/x")
    with pytest.raises(msgspec.ValidationError, match="argv"):
        make_exec(pid=1, argv="/bin/x")
    with pytest.raises(ValueError, match="unknown event kind 'nonsense'"):
        make("nonsense")
    with pytest.raises(TypeError, match="pid=2"):
        current_scenario().make(ProcessExec, current_scenario().process(1), pid=2)


def test_network_addresses() -> None:
    accept = make_net_accept(remote_address="2001:db8::7", remote_port=4444, local_address="::", local_port=22)
    assert isinstance(accept, NetAccept)
    assert (accept.family, accept.remote_address, accept.remote_port, accept.local_port) == (
        socket.AF_INET6,
        "2001:db8::7",
        4444,
        22,
    )
    unix = make_net_connect(remote_address="/run/docker.sock")
    assert (unix.family, unix.remote_address, unix.remote_port, unix.protocol) == (
        socket.AF_UNIX,
        "/run/docker.sock",
        0,
        0,
    )
    abstract = make_net_connect(remote_address="@bus")
    assert abstract.remote_path == "\0bus" and abstract.remote_address == "@bus"
    assert make_net_connect().remote_address == "192.0.2.10"


def test_process_context_is_shared_as_the_sensor_shares_it() -> None:
    if not context_fields():
        pytest.skip("events carry no process context in this version")
    web = make_exec(pid=100, exe="/usr/sbin/nginx")
    a, b = make_file_open(pid=100), make_net_accept(pid=100)
    assert web.process is a.process is b.process
    assert (web.process.pid, web.process.exe, web.process.comm) == (100, "/usr/sbin/nginx", "nginx")
    child = make_fork(pid=100).child_pid
    write = make_file_create(pid=child, path="/tmp/x")
    assert write.parent is web.process
    assert write.process.parent_entity_id == web.process.entity_id
    run = make_exec(pid=child, exe="/tmp/x")
    assert run.process is not write.process and run.process.exe == "/tmp/x"
    assert run.process.entity_id == write.process.entity_id
    assert Scenario(process_context=False).make(ProcessExec).process is None


def test_synthetic_sensor() -> None:
    sensor = SyntheticSensor()
    with use_scenario(sensor.scenario):
        first = [make_exec(pid=100, exe="/usr/sbin/nginx"), make_net_accept(pid=100)]
        sensor.feed()
        second = make_file_open(pid=100)
        sensor.feed([second])
        sensor.feed()  # nothing new: no batch
    sensor.lose(dropped=2, kinds={"file_open": {"dropped": 2}})
    seen: list[Any] = []
    with sensor:
        sensor.subscribe(seen.append, kinds={"net_accept"})
        assert sensor.pending == 3
        assert sensor.poll() == first and sensor.poll() == [second]
        assert sensor.poll() == [] and sensor.finished
        assert seen == [first[1]]
        st = sensor.stats()
        assert (st.delivered, st.dropped, st.kinds["file_open"].dropped, st.provider) == (3, 2, 2, "replay")
        assert sensor.health().reason.endswith("cut off before its end frame")
        third = current_scenario().make("setsid")
        sensor.feed(third)
        assert not sensor.finished and list(sensor.events()) == [third]

    async def collect() -> list[Any]:
        with SyntheticSensor(first) as s:
            return [e async for e in s]

    assert asyncio.run(collect()) == first


PLUGIN_TEST = """
from ebpfsensor.testing import make_exec, make_net_accept

RECORDING = {recording!r}

def test_synthetic(synthetic_sensor):
    make_exec(pid=100, exe="/usr/sbin/nginx")
    make_net_accept(pid=100)
    synthetic_sensor.feed()
    assert [e.kind for e in synthetic_sensor.events()] == ["process_exec", "net_accept"]

def test_a_fresh_scenario_each_test(synthetic_sensor):
    assert synthetic_sensor.scenario.events == []

def test_replay(replay_sensor):
    sensor = replay_sensor(RECORDING)
    assert any(e.kind == "net_accept" for e in sensor.events())
"""


def run_pytest(tmp_path: Path, *args: str, extra_path: str = "") -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_plugin_use.py"
    recording = ROOT / "tests" / "data" / "recordings" / "format1-dropper.ebr"
    test.write_text(textwrap.dedent(PLUGIN_TEST.format(recording=str(recording))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "python"), extra_path]))}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args, str(test)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fake_installed_entry_point(tmp_path: Path) -> str:
    """A site directory with a distribution declaring the plugin as ebpfsensor's pyproject does."""
    import tomllib

    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    site = tmp_path / "site"
    dist = site / "ebpfsensor_probe-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ebpfsensor-probe\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry.items())
    (dist / "entry_points.txt").write_text("[pytest11]\n" + lines)
    return str(site)


def test_plugin_with_p(tmp_path: Path) -> None:
    run = run_pytest(tmp_path, "-p", "ebpfsensor.testing.pytest_plugin")
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout + run.stderr


def test_plugin_from_the_entry_point_and_with_p_at_once(tmp_path: Path) -> None:
    """An installed ebpfsensor registers the plugin; a checkout's tests add
    -p too: both at once must load it once, not fail as registered twice."""
    site = fake_installed_entry_point(tmp_path)
    alone = run_pytest(tmp_path, extra_path=site)
    assert alone.returncode == 0 and "3 passed" in alone.stdout, alone.stdout + alone.stderr
    both = run_pytest(tmp_path, "-p", "ebpfsensor.testing.pytest_plugin", extra_path=site)
    assert both.returncode == 0 and "3 passed" in both.stdout, both.stdout + both.stderr


def test_the_plugin_only_adds_fixtures() -> None:
    """Loaded into every pytest run of a machine where ebpfsensor is
    installed, it must change nothing else: no hooks, no autouse fixtures."""
    from ebpfsensor.testing import pytest_plugin

    hooks = [name for name in vars(pytest_plugin) if name.startswith("pytest_")]
    assert hooks == []
    fixtures = {
        name: obj
        for name, obj in vars(pytest_plugin).items()
        if type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction")
    }
    assert sorted(fixtures) == ["replay_sensor", "synthetic_sensor"]
    assert "autouse=True" not in Path(pytest_plugin.__file__).read_text()
