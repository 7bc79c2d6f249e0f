# SPDX-License-Identifier: Apache-2.0
"""OCSF events of every kind: valid against OCSF 1.8.0, class and activity per
kind, attribute by attribute."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import pytest
from tests.unit.test_schema_validate import (
    eid,
    loss_marker,
    process_info,
    sample_events,
    validate_ocsf,
    with_context,
)

from ebpfsensor import schema
from ebpfsensor.events import KINDS
from ebpfsensor.schema import _common, _ocsf

OFFSET = 1_700_000_000_000_000_000  # boot time + OFFSET = Unix time
SAMPLES = sample_events()


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ocsf, "wall_offset_ns", lambda: OFFSET)


def flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and k != "unmapped":
            out.update(flat(v, name + "."))
        else:
            out[name] = v
    return out


def first(kind: str, **match: Any) -> Any:
    return next(e for e in SAMPLES if e.kind == kind and all(getattr(e, k) == v for k, v in match.items()))


@pytest.mark.parametrize("event", SAMPLES, ids=[f"{e.kind}-{i}" for i, e in enumerate(SAMPLES)])
def test_every_sample_is_valid_ocsf(event: Any) -> None:
    doc = schema.ocsf(event)
    assert validate_ocsf(doc) == []
    json.dumps(doc)
    f = flat(doc)
    assert f["metadata.version"] == schema.OCSF_VERSION == "1.8.0"
    assert (f["metadata.product.name"], f["metadata.product.version"]) == ("ebpfsensor", _common.VERSION)
    assert f["device.hostname"] == os.uname().nodename and f["device.os.type_id"] == 200
    assert f["type_uid"] == f["class_uid"] * 100 + f["activity_id"]
    assert f["severity_id"] == 1
    if event.kind != "user_login":
        assert f["metadata.event_code"] == event.kind
        assert f["time"] == (event.ts_ns + OFFSET) // 1_000_000
        assert f["actor.process.pid"] == (event.ppid if event.kind == "process_exec" else event.pid)
    assert ("container" in f["metadata.profiles"]) == bool(getattr(event, "container_id", ""))


# kind, what picks the sample, (class_uid, activity_id, activity_name), attributes
CLASSES: list[tuple[str, dict[str, Any], tuple[int, int, str], dict[str, Any]]] = [
    ("process_exec", {"container_id": ""}, (1007, 1, "Launch"), {
        "launch_type_id": 3, "process.pid": 77, "process.name": "ls", "process.cmd_line": "ls -l /tmp",
        "process.file.path": "/usr/bin/ls", "process.file.name": "ls", "process.working_directory": "/home/u",
        "process.uid": eid(77, 4_000_000_000), "process.created_time": 1_700_000_004_000,
        "process.parent_process.pid": 1, "process.parent_process.file.path": "/usr/bin/bash",
        "process.session.uid": "3", "process.session.terminal": "pts0",
        "actor.process.pid": 1, "actor.process.name": "bash", "actor.user.uid": "1000", "status_id": 1,
    }),
    ("process_fork", {"child_pid": 90}, (1007, 1, "Launch"), {
        "launch_type_id": 2, "process.pid": 90, "process.ptid": 90, "process.uid": eid(90, 4_500_000_000),
        "process.parent_process.pid": 77, "actor.process.pid": 77, "actor.process.ptid": 78,
        "actor.process.uid": eid(77, 4_000_000_000), "actor.process.parent_process.pid": 1,
    }),
    ("process_exit", {"exit_code": 3}, (1007, 2, "Terminate"), {
        "exit_code": 3, "process.pid": 77, "process.terminated_time": 1_700_000_005_000, "actor.process.pid": 77,
    }),
    ("process_exit", {"exit_signal": 9}, (1007, 2, "Terminate"), {"exit_code": 137}),
    ("file_open", {"result": 3}, (1001, 14, "Open"), {
        "file.path": "/etc/passwd", "file.name": "passwd", "file.parent_folder": "/etc", "file.type_id": 0,
        "file.uid": "2049:1234", "access_mask": 0o2000000, "status_id": 1, "status": "Success",
    }),
    ("file_open", {"result": -2}, (1001, 14, "Open"), {
        "status_id": 2, "status": "Failure", "status_code": "ENOENT", "status_detail": "No such file or directory",
    }),
    ("file_create", {"result": 4}, (1001, 1, "Create"), {"file.path": "/tmp/new", "file.type_id": 1}),
    ("file_create", {"result": 0}, (1001, 1, "Create"), {"file.type_id": 6, "file.type": "Named Pipe"}),
    ("file_unlink", {"result": 0}, (1001, 4, "Delete"), {"file.path": "/tmp/old"}),
    ("file_unlink", {"is_dir": True}, (1001, 4, "Delete"), {"file.type_id": 2, "status_code": "ENOTEMPTY"}),
    ("dir_create", {}, (1001, 1, "Create"), {"file.type_id": 2, "file.path": "/tmp/d"}),
    ("file_rename", {}, (1001, 5, "Rename"), {"file.path": "/tmp/a", "file_result.path": "/tmp/b"}),
    ("file_chmod", {}, (1001, 7, "Set Security"), {"file.path": "/tmp/a"}),
    ("file_chown", {}, (1001, 7, "Set Security"), {"file_result.owner.uid": "0", "status_code": "EPERM"}),
    ("file_link", {}, (1001, 1, "Create"), {"file.path": "/tmp/h"}),
    ("file_symlink", {}, (1001, 1, "Create"), {"file.path": "/tmp/s", "file.type_id": 7}),
    ("net_connect", {"result": 0}, (4001, 1, "Open"), {
        "src_endpoint.ip": "10.0.0.2", "src_endpoint.port": 40000, "dst_endpoint.ip": "93.184.216.34",
        "dst_endpoint.port": 443, "connection_info.direction_id": 2, "connection_info.protocol_num": 6,
        "connection_info.protocol_name": "tcp", "connection_info.protocol_ver_id": 4,
    }),
    ("net_connect", {"result": -111}, (4001, 5, "Refuse"), {
        "connection_info.protocol_ver_id": 6, "dst_endpoint.ip": "::1", "status_code": "ECONNREFUSED",
    }),
    ("net_connect", {"result": -115}, (4001, 1, "Open"), {"status_id": 0, "status_code": "EINPROGRESS"}),
    ("net_connect", {"result": 0, "family": 1}, (4001, 1, "Open"), {
        "dst_endpoint.name": "/run/x.sock", "src_endpoint.name": None, "connection_info.protocol_num": None,
    }),
    ("net_connect", {"result": -2, "family": 1}, (4001, 4, "Fail"), {
        "src_endpoint.hostname": os.uname().nodename, "dst_endpoint.name": None,
    }),
    ("net_accept", {}, (4001, 1, "Open"), {
        "connection_info.direction_id": 1, "dst_endpoint.port": 8080, "src_endpoint.port": 51000,
    }),
    ("net_bind", {}, (4001, 99, "Bind"), {
        "src_endpoint.ip": "0.0.0.0", "src_endpoint.port": 5353, "connection_info.protocol_name": "udp",
        "type_name": "Network Activity: Other",
    }),
    ("net_listen", {}, (4001, 7, "Listen"), {"dst_endpoint.name": "@abstract"}),
    ("cred_change", {"syscall_nr": 105}, (1007, 5, "Set User ID"), {"process.user.uid": "65534"}),
    ("cred_change", {"syscall_nr": 126}, (1007, 99, "Set Capabilities"), {"process.pid": 77}),
    ("kill", {"signal": 15}, (1007, 99, "Signal"), {"process.pid": 1234, "actor.process.pid": 77}),
    ("kill", {"signal": 9}, (1007, 99, "Signal"), {"process.pid": 4321, "process.ptid": 4321, "status_id": 2}),
    ("setsid", {"result": 77}, (1007, 99, "Set Session ID"), {"process.session.uid": "77"}),
    ("ptrace", {"request": 16}, (1007, 3, "Open"), {"process.pid": 1234, "injection_type_id": None}),
    ("ptrace", {"request": 5}, (1007, 4, "Inject"), {
        "process.pid": 1234, "injection_type_id": 99, "injection_type": "PTRACE_POKEDATA",
    }),
    ("ptrace", {"request": 0}, (1007, 3, "Open"), {"process.pid": 1}),
    ("memfd_create", {}, (1001, 1, "Create"), {"file.name": "memfd:payload", "file.path": None}),
    ("bpf_call", {"cmd": 5}, (1003, 1, "Create"), {
        "kernel.name": "handle_exec", "kernel.type_id": 99, "kernel.type": "BPF Program",
        "kernel.system_call": "BPF_PROG_LOAD",
    }),
    ("bpf_call", {"cmd": 0}, (1003, 1, "Create"), {"kernel.type": "BPF Map"}),
    ("bpf_call", {"cmd": 6}, (1003, 4, "Invoke"), {"kernel.name": "bpf", "kernel.type_id": 2}),
    ("module_load", {"result": 0}, (1002, 1, "Load"), {
        "driver.file.name": "dummy", "driver.file.path": "/lib/modules/x/dummy.ko",
    }),
    ("module_load", {"result": -8}, (1002, 1, "Load"), {"driver.file.name": "(unknown)", "status_code": "ENOEXEC"}),
    ("mount", {"result": 0}, (1001, 12, "Mount"), {"file.path": "/mnt", "file.type_id": 2}),
    ("mount", {"result": -1}, (1001, 12, "Mount"), {"file.path": "/", "file.name": "/"}),
    ("umount", {}, (1001, 13, "Unmount"), {"file.path": "/mnt"}),
    ("user_login", {"record_type": "USER_LOGIN"}, (3002, 1, "Logon"), {
        "time": 1_764_000_000_123, "metadata.event_code": "USER_LOGIN", "user.name": "bob",
        "src_endpoint.ip": "203.0.113.7", "dst_endpoint.hostname": os.uname().nodename, "is_remote": True,
        "logon_type_id": 10, "service.name": "sshd", "logon_process.pid": 812, "session.uid": "4",
        "session.terminal": "ssh", "status_id": 1, "status_detail": "login",
    }),
    ("user_login", {"record_type": "USER_AUTH"}, (3002, 1, "Logon"), {
        "user.name": "alice", "status_id": 2, "is_remote": False, "logon_type_id": 2, "src_endpoint.ip": None,
    }),
    ("user_login", {"record_type": "USER_END"}, (3002, 2, "Logoff"), {"user.name": "root"}),
    ("user_login", {"record_type": "CRED_ACQ"}, (3002, 99, "CRED_ACQ"), {"type_name": "Authentication: Other"}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "match", "cls", "want"), CLASSES, ids=[f"{k}-{m}" for k, m, _, _ in CLASSES])
def test_class_activity_and_attributes(
    kind: str, match: dict[str, Any], cls: tuple[int, int, str], want: dict[str, Any]
) -> None:
    f = flat(schema.ocsf(first(kind, **match)))
    assert (f["class_uid"], f["activity_id"], f["activity_name"]) == cls
    assert {k: f.get(k) for k in want} == want


def test_classes_cover_every_kind() -> None:
    assert {kind for kind, _, _, _ in CLASSES} == set(KINDS)


def test_names_match_the_schema() -> None:
    f = flat(schema.ocsf(first("file_open", result=3)))
    assert (f["category_uid"], f["category_name"], f["class_name"], f["type_name"]) == (
        1,
        "System Activity",
        "File System Activity",
        "File System Activity: Open",
    )
    f = flat(schema.ocsf(first("user_login", record_type="USER_LOGIN")))
    assert (f["category_uid"], f["category_name"]) == (3, "Identity & Access Management")


def test_unmapped_keeps_what_has_no_attribute() -> None:
    doc = schema.ocsf(first("process_exec", container_id=""))
    assert doc["unmapped"]["euid"] == 0 and doc["unmapped"]["loginuid"] == 1000
    assert schema.ocsf(first("file_symlink"))["unmapped"] == {"link_target": "../etc/shadow"}


def test_loss_marker() -> None:
    doc = schema.ocsf(loss_marker())
    assert validate_ocsf(doc) == []
    f = flat(doc)
    assert (f["class_uid"], f["activity_id"], f["severity_id"]) == (6008, 1, 3)
    assert (f["start_time"], f["end_time"], f["count"]) == (1_700_000_004_000, 1_700_000_004_900, 12)
    assert f["message"] == "12 records lost (ebpf)"
    assert f["unmapped"]["by_kind"] == {"file_open": 10, "process_exec": 2}


def test_batch_is_the_same_as_one_by_one() -> None:
    assert schema.ocsf_batch(SAMPLES) == [schema.ocsf(e) for e in SAMPLES]


def test_container_profile() -> None:
    e = msgspec.structs.replace(first("file_open", result=3), container_id="c" * 64)
    doc = schema.ocsf(e)
    assert doc["metadata"]["profiles"] == ["host", "container"]
    assert doc["actor"]["process"]["container"] == {"uid": "c" * 64}
    assert validate_ocsf(doc) == []


def test_process_context_is_used_where_present() -> None:
    e = first("file_open", result=3)
    ctx = process_info(77, 4_000_000_000, "/usr/bin/cat", ["cat", "/etc/passwd"], sha256="ab" * 32)
    parent = process_info(1, 1_000_000_000, "/usr/bin/bash", ["bash"], sha256="cd" * 32)
    doc = schema.ocsf(with_context(e, ctx, parent))
    assert validate_ocsf(doc) == []
    f = flat(doc)
    assert {k: f.get(k) for k in f if k.startswith("actor.") and k not in flat(schema.ocsf(e))} == {
        "actor.process.file.name": "cat",
        "actor.process.file.path": "/usr/bin/cat",
        "actor.process.file.parent_folder": "/usr/bin",
        "actor.process.file.type_id": 1,
        "actor.process.file.type": "Regular File",
        "actor.process.file.hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": "ab" * 32}],
        "actor.process.cmd_line": "cat /etc/passwd",
        "actor.process.working_directory": "/root",
        "actor.process.session.uid": "3",
        "actor.process.session.terminal": "pts0",
        "actor.process.parent_process.file.name": "bash",
        "actor.process.parent_process.file.path": "/usr/bin/bash",
        "actor.process.parent_process.file.parent_folder": "/usr/bin",
        "actor.process.parent_process.file.type_id": 1,
        "actor.process.parent_process.file.type": "Regular File",
        "actor.process.parent_process.file.hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": "cd" * 32}],
        "actor.process.parent_process.cmd_line": "bash",
        "actor.process.parent_process.working_directory": "/root",
        "actor.process.parent_process.name": "bash",
        "actor.process.parent_process.created_time": 1_700_000_001_000,
        "actor.process.parent_process.uid": eid(1, 1_000_000_000),
        "actor.process.parent_process.user.uid": "1000",
    }
    exe = first("process_exec", container_id="")
    same = schema.ocsf(
        with_context(exe, process_info(77, 4_000_000_000, "/usr/bin/ls", ["ls"], sha256="ef" * 32), None)
    )
    assert validate_ocsf(same) == []
    assert same["process"]["file"]["hashes"][0]["value"] == "ef" * 32
    assert same["process"]["cmd_line"] == "ls -l /tmp"
    sh = process_info(77, 4_000_000_000, "/usr/bin/sh", ["sh"], sha256="ef" * 32)
    other = schema.ocsf(with_context(exe, sh, None))
    assert "hashes" not in other["process"]["file"] and other["process"]["file"]["path"] == "/usr/bin/ls"


def test_not_an_event() -> None:
    with pytest.raises(TypeError, match="not an ebpfsensor event: str"):
        schema.ocsf("x")
