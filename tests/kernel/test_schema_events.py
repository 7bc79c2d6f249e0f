# SPDX-License-Identifier: Apache-2.0
"""Real events of every kind the kernel gives, as ECS and OCSF: valid against
the published schemas (tests/data/schemas/) and field by field what the
activity was."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _sysevents import Header, in_child, nr
from tests.unit.test_schema_validate import validate_ecs, validate_ocsf

from ebpfsensor import schema
from ebpfsensor.events import KINDS, boot_to_wall_ns

pytestmark = pytest.mark.bpf

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
NOBODY = 65534
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 1 << 14, 1 << 18
AUDIT_USER_LOGIN = 1112
NLM_F_REQUEST, NLM_F_ACK = 1, 4
TRUE = os.path.realpath("/bin/true")


def flat(doc: dict[str, Any], prefix: str = "", keep: tuple[str, ...] = ("labels", "unmapped")) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict) and k not in keep:
            out.update(flat(v, f"{prefix}{k}.", keep))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _activity(tmp: str) -> dict[str, Any]:
    """Make one event of every kind (but logins) from this process and its
    children; what was done, for the checks."""
    done: dict[str, Any] = {"header": Header()}
    true = subprocess.Popen([TRUE, "schema-test"])
    assert true.wait() == 0
    done["true"] = true.pid
    path = os.path.join(tmp, "f")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    done["port"] = srv.getsockname()[1]
    for s in (conn, cli, srv):
        s.close()
    os.close(os.memfd_create("schema-test"))
    attr = bytearray(12)
    _libc.syscall(nr("bpf"), 11, ctypes.c_char_p(bytes(attr)), len(attr))  # BPF_PROG_GET_NEXT_ID
    image = os.path.join(tmp, "not-a-module.ko")
    with open(image, "wb") as f:
        f.write(b"\0" * 64)
    with open(image, "rb") as f:
        _libc.syscall(nr("finit_module"), f.fileno(), b"", 0)
    sleeper = subprocess.Popen(["sleep", "30"])
    os.kill(sleeper.pid, signal.SIGTERM)
    sleeper.wait()
    done["killed"] = sleeper.pid
    target = os.path.join(tmp, "mnt")
    os.mkdir(target)

    def child() -> dict[str, Any]:
        # the file kinds from the child: where they come from the audit
        # provider (5.4, 4.19) the sensor's process is the audit daemon,
        # whose own calls the kernel never audits
        with open(path, "w") as f:  # file_create (one event: it creates the file)
            f.write("x")
        with open(path) as f:  # file_open
            f.read()
        os.chmod(path, 0o640)
        os.chown(path, os.getuid(), os.getgid())
        os.link(path, path + ".hard")
        os.symlink("f", path + ".sym")
        os.rename(path + ".hard", path + ".moved")
        os.mkdir(path + ".d")
        os.unlink(path + ".moved")
        os.setsid()
        assert _libc.ptrace(0, 0, None, None) == 0  # PTRACE_TRACEME
        assert _libc.unshare(CLONE_NEWNS) == 0
        assert _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
        assert _libc.mount(b"schema-src", target.encode(), b"tmpfs", 0, b"size=1m") == 0
        assert _libc.umount2(target.encode(), 0) == 0
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        return {}

    done["child"] = in_child(child)
    return done


def _send_user_login() -> None:
    """An AUDIT_USER_LOGIN record, as sshd's PAM stack writes one."""
    text = b'op=login acct="schema-test" exe="/usr/sbin/sshd" hostname=192.0.2.7 addr=192.0.2.7 terminal=ssh res=failed'
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 9) as sock:  # NETLINK_AUDIT
        sock.bind((0, 0))
        sock.sendto(
            struct.pack("=IHHII", 16 + len(text), AUDIT_USER_LOGIN, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + text, (0, 0)
        )
        sock.settimeout(2)
        reply = sock.recv(4096)
        (err,) = struct.unpack_from("=i", reply, 16)
        if err:
            raise OSError(-err, os.strerror(-err))


@pytest.fixture(scope="module")
def sensor() -> Iterator[Any]:
    """Every kind on, this process's events reported, and every open (the
    activity's opens are read-only ones too)."""
    import ebpfsensor

    with ebpfsensor.Sensor(exclude_self=False, read_opens="all") as s:
        yield s


@pytest.fixture(scope="module")
def audit_on() -> Iterator[bool]:
    """Kernel audit on while the module runs (as it was afterwards); False
    where it cannot be used."""
    from ebpfsensor.errors import EbpfSensorError
    from ebpfsensor.host.audit import audit_status, set_audit_enabled

    try:
        before = audit_status().enabled
        if not before:
            set_audit_enabled(1)
    except (EbpfSensorError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        if not before:
            set_audit_enabled(before)


def test_every_kind_from_real_activity(sensor: Any, tmp_path: Any, audit_on: bool) -> None:

    tmp = os.path.realpath(tmp_path)
    health = sensor.health().kinds
    live = {kind for kind, k in health.items() if k.live}
    done = _activity(tmp)
    h = done["header"]
    if "user_login" in live and audit_on:
        _send_user_login()
    pids = {os.getpid(), done["child"]["pid"], done["true"]}
    events: list[Any] = []

    def mine(e: Any) -> bool:
        if e.kind == "user_login":
            return "schema-test" in e.message
        return e.ts_ns >= h.since_ns and e.pid in pids

    wanted = live - ({"user_login"} if not audit_on else set())
    end = time.monotonic() + 10
    while not wanted <= {e.kind for e in events} and time.monotonic() < end:
        events += [e for e in sensor.poll(0.1) if mine(e)]
    events += [e for e in sensor.poll(0.2) if mine(e)]
    missing = wanted - {e.kind for e in events}
    assert not missing, f"no real event of {sorted(missing)} (health: { {k: health[k].reason for k in missing} })"
    for e in events:
        ecs, ocsf = schema.ecs(e), schema.ocsf(e)
        assert validate_ecs(ecs) == [], (e.kind, ecs)
        assert validate_ocsf(ocsf) == [], (e.kind, ocsf)
    assert set(KINDS) >= {e.kind for e in events}
    # audit's timestamps are milliseconds: two calls in one may tie
    _check_fields(events, done, tmp, coarse=health["file_open"].source == "audit")


def _pick(events: list[Any], kind: str, **match: Any) -> Any:
    found = [e for e in events if e.kind == kind and all(getattr(e, k) == v for k, v in match.items())]
    assert found, f"no {kind} event with {match}"
    return found[0]


def _check_fields(events: list[Any], done: dict[str, Any], tmp: str, coarse: bool) -> None:
    exe = _pick(events, "process_exec", pid=done["true"])
    e, o = flat(schema.ecs(exe)), flat(schema.ocsf(exe))
    assert (e["process.executable"], e["process.args"], e["process.pid"]) == (TRUE, [TRUE, "schema-test"], exe.pid)
    assert (o["process.file.path"], o["process.cmd_line"], o["process.pid"]) == (TRUE, f"{TRUE} schema-test", exe.pid)
    assert (o["class_uid"], o["activity_id"], o["launch_type_id"]) == (1007, 1, 3)
    wall = boot_to_wall_ns(exe.ts_ns)
    assert abs(o["time"] - wall // 1_000_000) <= 1
    assert e["@timestamp"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(wall // 1_000_000_000))[:13])

    opened = _pick(events, "file_open", path=os.path.join(tmp, "f"))
    e, o = flat(schema.ecs(opened)), flat(schema.ocsf(opened))
    assert e["file.path"] == o["file.path"] == opened.path and opened.path.startswith(tmp)
    assert e["process.pid"] == o["actor.process.pid"] == done["child"]["pid"]
    assert (o["class_uid"], o["activity_id"], e["event.type"]) == (1001, 14, ["access"])
    created = _pick(events, "file_create", path=os.path.join(tmp, "f"))
    assert created.created and (created.ts_ns <= opened.ts_ns if coarse else created.ts_ns < opened.ts_ns)

    renamed = _pick(events, "file_rename")
    e, o = flat(schema.ecs(renamed)), flat(schema.ocsf(renamed))
    assert (o["file.path"], o["file_result.path"]) == (os.path.join(tmp, "f.hard"), os.path.join(tmp, "f.moved"))
    assert (e["file.path"], e["labels"]["original_path"]) == (os.path.join(tmp, "f.moved"), os.path.join(tmp, "f.hard"))

    # the listening side is the destination, whichever end reports
    for kind, inbound in (("net_connect", False), ("net_accept", True)):
        ev = _pick(events, kind, pid=os.getpid())
        e, o = flat(schema.ecs(ev)), flat(schema.ocsf(ev))
        assert (e["destination.port"], e["destination.ip"]) == (done["port"], "127.0.0.1")
        assert o["dst_endpoint.port"] == done["port"] and o["connection_info.direction_id"] == (1 if inbound else 2)
        assert e["network.transport"] == "tcp" and o["connection_info.protocol_name"] == "tcp"

    cred = _pick(events, "cred_change", new_uid=NOBODY)
    o = flat(schema.ocsf(cred))
    assert (o["activity_id"], o["process.user.uid"]) == (5, str(NOBODY))
    killed = _pick(events, "kill", target_pid=done["killed"])
    assert flat(schema.ocsf(killed))["process.pid"] == done["killed"]
    assert flat(schema.ecs(killed))["labels"]["signal"] == "SIGTERM"
    mount = _pick(events, "mount", result=0, fstype="tmpfs")
    assert flat(schema.ocsf(mount))["file.path"] == mount.path == os.path.join(tmp, "mnt")
    logins = [e for e in events if e.kind == "user_login"]
    if logins:
        login = logins[0]
        e, o = flat(schema.ecs(login)), flat(schema.ocsf(login))
        assert (e["user.name"], e["event.outcome"], e["source.ip"]) == ("schema-test", "failure", "192.0.2.7")
        assert (o["user.name"], o["status_id"], o["src_endpoint.ip"], o["logon_type_id"]) == (
            "schema-test",
            2,
            "192.0.2.7",
            10,
        )
