# SPDX-License-Identifier: Apache-2.0
"""A test kit for detections built on ebpfsensor: no root, no kernel.

- Builders of valid synthetic events with consistent process context, one
  per kind (``make_exec``, ``make_net_accept``, ``make_file_create``, ...),
  in a :class:`Scenario` (processes and a clock).
- :class:`SyntheticSensor`: the Sensor's API fed with them.
- ``ebpfsensor.ReplaySensor``: the Sensor's API fed from a recording made
  on a real machine (``ebpfsensor record``, ``Sensor.record``).
- A pytest plugin (``ebpfsensor.testing.pytest_plugin``, loaded by an
  installed ebpfsensor, or with ``-p ebpfsensor.testing.pytest_plugin``):
  the fixtures ``synthetic_sensor`` and ``replay_sensor``.

    def test_dropper(synthetic_sensor):
        make_exec(pid=100, exe="/usr/sbin/nginx")
        make_net_accept(pid=100)
        child = make_fork(pid=100).child_pid
        make_file_create(pid=child, path="/tmp/x")
        make_exec(pid=child, exe="/tmp/x")
        synthetic_sensor.feed()
        assert my_agent.alerts(synthetic_sensor)
"""

from __future__ import annotations

from .builders import (
    Scenario,
    SyntheticProcess,
    current_scenario,
    make,
    make_bpf_call,
    make_cred_change,
    make_dir_create,
    make_exec,
    make_exit,
    make_file_chmod,
    make_file_chown,
    make_file_create,
    make_file_link,
    make_file_open,
    make_file_rename,
    make_file_symlink,
    make_file_unlink,
    make_fork,
    make_kill,
    make_loss,
    make_memfd_create,
    make_module_load,
    make_mount,
    make_net_accept,
    make_net_bind,
    make_net_connect,
    make_net_listen,
    make_ptrace,
    make_setsid,
    make_spawn,
    make_umount,
    make_user_login,
    use_scenario,
)
from .synthetic import SyntheticSensor

__all__ = [
    "Scenario",
    "SyntheticProcess",
    "SyntheticSensor",
    "current_scenario",
    "make",
    "make_bpf_call",
    "make_cred_change",
    "make_dir_create",
    "make_exec",
    "make_exit",
    "make_file_chmod",
    "make_file_chown",
    "make_file_create",
    "make_file_link",
    "make_file_open",
    "make_file_rename",
    "make_file_symlink",
    "make_file_unlink",
    "make_fork",
    "make_kill",
    "make_loss",
    "make_memfd_create",
    "make_module_load",
    "make_mount",
    "make_net_accept",
    "make_net_bind",
    "make_net_connect",
    "make_net_listen",
    "make_ptrace",
    "make_setsid",
    "make_spawn",
    "make_umount",
    "make_user_login",
    "use_scenario",
]
