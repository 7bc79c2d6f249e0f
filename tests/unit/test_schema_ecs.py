# SPDX-License-Identifier: Apache-2.0
"""ECS documents of every kind: valid against ECS 9.4.0, field by field."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

import msgspec
import pytest
from tests.unit.test_schema_validate import eid, loss_marker, process_info, sample_events, validate_ecs, with_context

from ebpfsensor import schema
from ebpfsensor.events import KINDS, to_json
from ebpfsensor.schema import _common, _ecs

OFFSET = 1_700_000_000_000_000_000  # boot time + OFFSET = Unix time
SAMPLES = sample_events()


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ecs, "wall_offset_ns", lambda: OFFSET)


def flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and k != "labels":
            out.update(flat(v, name + "."))
        else:
            out[name] = v
    return out


def first(kind: str, **match: Any) -> Any:
    return next(e for e in SAMPLES if e.kind == kind and all(getattr(e, k) == v for k, v in match.items()))


@pytest.mark.parametrize("event", SAMPLES, ids=[f"{e.kind}-{i}" for i, e in enumerate(SAMPLES)])
def test_every_sample_is_valid_ecs(event: Any) -> None:
    doc = schema.ecs(event)
    assert validate_ecs(doc) == []
    json.dumps(doc)  # plain JSON types only
    f = flat(doc)
    assert f["ecs.version"] == schema.ECS_VERSION == "9.4.0"
    assert f["event.kind"] == "event" and f["event.module"] == "ebpfsensor"
    assert f["agent.type"] == "ebpfsensor" and f["agent.version"] == schema._common.VERSION
    assert f["host.hostname"] == os.uname().nodename and f["host.os.type"] == "linux"
    if event.kind != "user_login":
        assert f["event.action"] == event.kind
        assert f["@timestamp"] == _common.iso(event.ts_ns + OFFSET)


def test_common_process_fields() -> None:
    e = first("file_open", result=3)
    f = flat(schema.ecs(e))
    assert {k: v for k, v in f.items() if k.startswith(("process.", "user.", "group."))} == {
        "process.pid": 77,
        "process.name": "prog",
        "process.entity_id": eid(77, 4_000_000_000),
        "process.start": "2023-11-14T22:13:24.000000Z",
        "process.thread.id": 78,
        "process.parent.pid": 1,
        "process.real_user.id": "1000",
        "process.real_group.id": "1001",
        "user.id": "1000",
        "group.id": "1001",
    }
    assert f["@timestamp"] == "2023-11-14T22:13:25.000000Z"
    assert f["event.dataset"] == "ebpfsensor.file"
    assert "container.id" not in f
    assert flat(schema.ecs(msgspec.structs.replace(e, container_id="c" * 64)))["container.id"] == "c" * 64


EXPECTED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("process_exec", {}, {
        "event.category": ["process"], "event.type": ["start"], "event.outcome": "success",
        "process.name": "ls", "process.executable": "/usr/bin/ls", "process.args": ["ls", "-l", "/tmp"],
        "process.args_count": 3, "process.command_line": "ls -l /tmp", "process.working_directory": "/home/u",
        "process.user.id": "0", "process.group.id": "0", "process.saved_user.id": "0", "process.real_user.id": "1000",
        "process.parent.pid": 1, "process.parent.name": "bash", "process.parent.executable": "/usr/bin/bash",
        "process.interactive": True,
    }),
    ("process_fork", {"child_pid": 90}, {
        "event.category": ["process"], "event.type": ["start"], "process.pid": 90, "process.thread.id": 90,
        "process.start": "2023-11-14T22:13:24.500000Z", "process.entity_id": eid(90, 4_500_000_000),
        "process.parent.pid": 77, "process.parent.entity_id": eid(77, 4_000_000_000),
    }),
    ("process_fork", {"child_pid": 91}, {"process.pid": 91, "process.start": None, "process.entity_id": None}),
    ("process_exit", {"exit_code": 3}, {
        "event.type": ["end"], "process.exit_code": 3, "process.uptime": 2,
        "process.end": "2023-11-14T22:13:25.000000Z",
    }),
    ("process_exit", {"exit_signal": 9}, {
        "process.exit_code": 137, "labels": {"exit_signal": "SIGKILL", "core_dumped": "true"},
    }),
    ("file_open", {"result": 3}, {
        "event.category": ["file"], "event.type": ["access"], "event.outcome": "success", "file.path": "/etc/passwd",
        "file.name": "passwd", "file.directory": "/etc", "file.inode": "1234", "file.device": "2049",
    }),
    ("file_open", {"result": -2}, {
        "event.outcome": "failure", "error.code": "ENOENT", "error.message": "No such file or directory",
        "file.inode": None,
    }),
    ("file_create", {"result": 4}, {
        "event.type": ["creation"], "file.path": "/tmp/new", "file.mode": "0644", "file.type": "file",
    }),
    ("file_create", {"result": 0}, {"file.type": "fifo", "file.mode": "0600"}),
    ("file_unlink", {"result": 0}, {"event.type": ["deletion"], "file.path": "/tmp/old", "file.type": None}),
    ("file_unlink", {"is_dir": True}, {"file.type": "dir", "error.code": "ENOTEMPTY"}),
    ("dir_create", {}, {"event.type": ["creation"], "file.type": "dir", "file.mode": "0755"}),
    ("file_rename", {}, {
        "event.type": ["change"], "file.path": "/tmp/b", "labels": {"original_path": "/tmp/a", "replaced": "false"},
    }),
    ("file_chmod", {}, {"event.type": ["change"], "file.mode": "4755"}),
    ("file_chown", {}, {"file.uid": "0", "file.gid": None, "error.code": "EPERM"}),
    ("file_link", {}, {"event.type": ["creation"], "file.path": "/tmp/h", "labels": {"link_source": "/tmp/a"}}),
    ("file_symlink", {}, {
        "event.type": ["creation"], "file.path": "/tmp/s", "file.type": "symlink", "file.target_path": "../etc/shadow",
    }),
    ("net_connect", {"result": 0}, {
        "event.category": ["network"], "event.type": ["connection", "start"], "network.type": "ipv4",
        "network.transport": "tcp", "network.iana_number": "6", "network.direction": "egress",
        "source.ip": "10.0.0.2", "source.port": 40000, "destination.ip": "93.184.216.34", "destination.port": 443,
        "related.ip": ["10.0.0.2", "93.184.216.34"],
    }),
    ("net_connect", {"result": -111}, {
        "network.type": "ipv6", "destination.ip": "::1", "destination.port": 22, "event.outcome": "failure",
        "error.code": "ECONNREFUSED",
    }),
    ("net_connect", {"result": -115}, {"event.outcome": "unknown", "error.code": None}),
    ("net_connect", {"result": 0, "family": 1}, {
        "destination.address": "/run/x.sock", "destination.ip": None, "network.type": None, "source.address": None,
    }),
    ("net_accept", {}, {
        "network.direction": "ingress", "destination.ip": "127.0.0.1", "destination.port": 8080,
        "source.port": 51000,
    }),
    ("net_bind", {}, {
        "event.type": ["info"], "network.transport": "udp", "source.ip": "0.0.0.0", "source.port": 5353,
        "destination.ip": None, "network.direction": None,
    }),
    ("net_listen", {}, {"event.type": ["start"], "source.address": "@abstract", "labels": {"backlog": "128"}}),
    ("cred_change", {"syscall_nr": 105}, {
        "event.category": ["process"], "event.type": ["change"], "process.user.id": "65534",
        "process.real_user.id": "65534", "user.id": "0", "user.effective.id": "65534",
        "process.thread.capabilities.effective": [], "process.thread.capabilities.permitted": [],
    }),
    ("cred_change", {"syscall_nr": 126}, {
        "process.thread.capabilities.effective": ["CAP_CHOWN"],
        "process.thread.capabilities.permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE"],
    }),
    ("kill", {"signal": 15}, {
        "event.type": ["info"], "labels": {"signal": "SIGTERM", "target_pid": "1234", "target_tid": "0"},
    }),
    ("setsid", {"result": 77}, {"process.session_leader.pid": 77, "process.session_leader.same_as_process": True}),
    ("setsid", {"result": -1}, {"process.session_leader.pid": None, "error.code": "EPERM"}),
    ("ptrace", {"request": 16}, {
        "event.type": ["access"], "labels": {"ptrace_request": "PTRACE_ATTACH", "target_pid": "1234"},
    }),
    ("memfd_create", {}, {"event.type": ["creation"], "file.name": "memfd:payload"}),
    ("bpf_call", {"cmd": 5}, {
        "event.category": ["driver"], "event.type": ["start"],
        "labels": {"bpf_cmd": "BPF_PROG_LOAD", "bpf_prog_type": "1", "bpf_prog_name": "handle_exec",
                   "bpf_insn_cnt": "42"},
    }),
    ("bpf_call", {"cmd": 0}, {"event.type": ["info"], "labels": {"bpf_cmd": "BPF_MAP_CREATE"}}),
    ("module_load", {"result": 0}, {
        "event.category": ["driver"], "event.type": ["start"], "file.path": "/lib/modules/x/dummy.ko",
        "labels": {"module_name": "dummy", "module_args": "numdummies=0"},
    }),
    ("module_load", {"result": -8}, {"file.path": None, "error.code": "ENOEXEC"}),
    ("mount", {"result": 0}, {
        "event.category": ["file"], "event.type": ["change"], "file.path": "/mnt", "file.type": "dir",
        "labels": {"mount_source": "none", "fstype": "tmpfs", "mount_flags": "0x6"},
    }),
    ("umount", {}, {"file.path": "/mnt", "labels": {"umount_flags": "0x0"}}),
    ("user_login", {"record_type": "USER_LOGIN"}, {
        "@timestamp": "2025-11-24T16:00:00.123000Z", "event.category": ["authentication", "session"],
        "event.type": ["start"], "event.outcome": "success", "event.code": "USER_LOGIN", "event.action": "user_login",
        "process.pid": 812, "process.executable": "/usr/sbin/sshd", "process.name": "sshd", "user.name": "bob",
        "source.ip": "203.0.113.7", "related.ip": ["203.0.113.7"],
        "labels": {"op": "login", "audit_serial": "456", "terminal": "ssh", "auid": "1000", "ses": "4"},
    }),
    ("user_login", {"record_type": "USER_AUTH"}, {
        "event.category": ["authentication"], "event.type": ["info"], "event.outcome": "failure",
        "user.name": "alice", "source.ip": None,
    }),
    ("user_login", {"record_type": "USER_END"}, {"event.category": ["session"], "event.type": ["end"]}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "match", "want"), EXPECTED, ids=[f"{k}-{m}" for k, m, _ in EXPECTED])
def test_fields(kind: str, match: dict[str, Any], want: dict[str, Any]) -> None:
    f = flat(schema.ecs(first(kind, **match)))
    assert {k: f.get(k) for k in want} == want


@pytest.mark.parametrize(
    ("addr", "ip"),
    [("203.0.113.7", "203.0.113.7"), ("::FFFF:203.0.113.7", "::ffff:203.0.113.7"), ("2001:DB8:0:0::1", "2001:db8::1")],
)
def test_login_addresses_are_printed_canonical(addr: str, ip: str) -> None:
    """A login record's address, as PAM wrote it, is an IP: ECS and OCSF
    print its canonical text, and keep the record's spelling as the address."""
    e = msgspec.structs.replace(first("user_login", record_type="USER_LOGIN"), addr=addr)
    assert e.ip == ipaddress.ip_address(addr)
    f = flat(schema.ecs(e))
    assert (f["source.ip"], f["related.ip"], f["source.address"]) == (ip, [ip], addr)
    assert schema.ocsf(e)["src_endpoint"]["ip"] == ip


def test_a_login_from_a_host_name_has_no_ip() -> None:
    e = msgspec.structs.replace(first("user_login", record_type="USER_LOGIN"), addr="bastion.example.org")
    assert e.ip is None
    f = flat(schema.ecs(e))
    assert (f.get("source.ip"), f["source.address"]) == (None, "bastion.example.org")
    assert "ip" not in schema.ocsf(e).get("src_endpoint", {})


def test_expectations_cover_every_kind() -> None:
    assert {kind for kind, _, _ in EXPECTED} == set(KINDS)


def test_loss_marker() -> None:
    doc = schema.ecs(loss_marker())
    assert validate_ecs(doc) == []
    f = flat(doc)
    assert {k: f.get(k) for k in ("event.kind", "event.action", "event.start", "event.end", "event.reason")} == {
        "event.kind": "pipeline_error",
        "event.action": "loss",
        "event.start": "2023-11-14T22:13:24.000000Z",
        "event.end": "2023-11-14T22:13:24.900000Z",
        "event.reason": "12 records lost (ebpf)",
    }
    assert f["labels"]["lost_by_kind"] == "file_open=10,process_exec=2"


def test_batch_is_the_same_as_one_by_one() -> None:
    assert schema.ecs_batch(SAMPLES) == [schema.ecs(e) for e in SAMPLES]


def test_not_an_event() -> None:
    with pytest.raises(TypeError, match="not an ebpfsensor event: int"):
        schema.ecs(1)
    with pytest.raises(TypeError):
        schema.ecs_batch([SAMPLES[0], "x"])


def test_process_context_is_used_where_present() -> None:
    e = first("file_open", result=3)
    ctx = process_info(77, 4_000_000_000, "/usr/bin/cat", ["cat", "/etc/passwd"], sha256="ab" * 32, sid=70)
    parent = process_info(1, 1_000_000_000, "/usr/bin/bash", ["bash"], sha256="cd" * 32)
    doc = schema.ecs(with_context(e, ctx, parent))
    assert validate_ecs(doc) == []
    f = flat(doc)
    assert {k: f[k] for k in f if k.startswith("process.") and k not in flat(schema.ecs(e))} == {
        "process.executable": "/usr/bin/cat",
        "process.args": ["cat", "/etc/passwd"],
        "process.args_count": 2,
        "process.command_line": "cat /etc/passwd",
        "process.working_directory": "/root",
        "process.user.id": "0",
        "process.group.id": "0",
        "process.hash.sha256": "ab" * 32,
        "process.session_leader.pid": 70,
        "process.session_leader.same_as_process": False,
        "process.parent.executable": "/usr/bin/bash",
        "process.parent.args": ["bash"],
        "process.parent.args_count": 1,
        "process.parent.command_line": "bash",
        "process.parent.working_directory": "/root",
        "process.parent.hash.sha256": "cd" * 32,
        "process.parent.start": "2023-11-14T22:13:21.000000Z",
        "process.parent.entity_id": eid(1, 1_000_000_000),
        "process.parent.name": "bash",
        "process.parent.user.id": "0",
        "process.parent.group.id": "0",
        "process.parent.real_user.id": "1000",
        "process.parent.real_group.id": "1001",
    }
    assert f["process.entity_id"] == ctx.entity_id
    # an exec: the context's hash goes with the new image only if it is of it
    exe = first("process_exec", container_id="")
    same = schema.ecs(with_context(exe, process_info(77, 4_000_000_000, "/usr/bin/ls", ["ls"], sha256="ef" * 32), None))
    assert validate_ecs(same) == []
    assert flat(same)["process.hash.sha256"] == "ef" * 32
    assert flat(same)["process.args"] == ["ls", "-l", "/tmp"]
    other = schema.ecs(
        with_context(exe, process_info(77, 4_000_000_000, "/usr/bin/sh", ["sh"], sha256="ef" * 32), None)
    )
    assert "process.hash.sha256" not in flat(other) and flat(other)["process.executable"] == "/usr/bin/ls"
    # a fork: the child runs the parent's image
    fork = flat(schema.ecs(with_context(first("process_fork", child_pid=90), ctx, parent)))
    assert fork["process.executable"] == fork["process.parent.executable"] == "/usr/bin/cat"
    assert fork["process.parent.entity_id"] == ctx.entity_id


def test_encoder_formats() -> None:
    e = first("file_open", result=3)
    assert schema.Encoder("native").encode(e) == to_json(e)
    assert json.loads(schema.Encoder("ecs").encode(e)) == schema.ecs(e)
    lines = schema.Encoder("ecs").encode_lines(SAMPLES).splitlines()
    assert [json.loads(line) for line in lines] == schema.ecs_batch(SAMPLES)
    with pytest.raises(ValueError, match="unknown format 'xml'; use one of native, ecs, ocsf"):
        schema.Encoder("xml")


def test_bytes_that_are_not_utf8_survive() -> None:
    e = msgspec.structs.replace(first("file_open", result=3), path="/tmp/\udcff\udcfe")
    enc = schema.Encoder("ecs")
    (one,) = enc.encode_batch([e])
    assert b"\\udcff\\udcfe" in one
    assert os.fsencode(json.loads(one)["file"]["path"]) == b"/tmp/\xff\xfe"
    assert enc.encode_lines([e, e]) == one + b"\n" + one + b"\n"
