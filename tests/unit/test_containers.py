# SPDX-License-Identifier: Apache-2.0
"""Container ids from cgroup paths, filled into events by the consumer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.recordgen import make_record

from ebpfsensor.events import EventType
from ebpfsensor.host.containers import CgroupResolver, parse_container_id
from ebpfsensor.sources.ebpf.ring import BatchDecoder

CID = "4f1e" * 16


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/system.slice/docker-{CID}.scope", CID),
        (f"/docker/{CID}", CID),
        (f"/kubepods.slice/kubepods-burstable.slice/cri-containerd-{CID}.scope", CID),
        (f"/kubepods/besteffort/pod1234/{CID}", CID),
        (f"/machine.slice/libpod-{CID}.scope/container", CID),
        (f"/system.slice/crio-{CID}.scope", CID),
        ("/user.slice/user-1000.slice/session-3.scope", ""),
        ("/", ""),
        (f"/system.slice/docker-{CID[:-1]}.scope", ""),
    ],
)
def test_parse(path: str, expected: str) -> None:
    assert parse_container_id(path) == expected


def test_consumer_fills_container_ids(tmp_path: Path) -> None:
    scope = tmp_path / "system.slice" / f"docker-{CID}.scope"
    scope.mkdir(parents=True)
    plain = tmp_path / "user.slice"
    plain.mkdir()
    dec = BatchDecoder()
    dec._containers = CgroupResolver(root=str(tmp_path))
    ino, plain_ino = os.stat(scope).st_ino, os.stat(plain).st_ino
    recs = [make_record(EventType.EXIT, pid=i, cgroup_id=c) for i, c in enumerate([ino, plain_ino, ino])]
    first = dec.transcode(recs)
    assert [e.container_id for e in first] == [CID, "", CID]
    # second time round the C side knows both cgroups: nothing left to patch
    again = dec.transcode(recs)
    assert [e.container_id for e in again] == [CID, "", CID]
    assert dec._c.nmisses == 0


def test_a_cgroup_made_after_the_last_walk_is_looked_for_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container whose cgroup appeared within the rescan window was cached
    with an empty container id for good: its every later event lacked it."""
    monkeypatch.setattr("ebpfsensor.host.containers._REWALK_S", 0.0)
    (tmp_path / "system.slice").mkdir()
    dec = BatchDecoder()
    dec._containers = CgroupResolver(root=str(tmp_path))
    known = os.stat(tmp_path / "system.slice").st_ino
    dec.transcode([make_record(EventType.EXIT, pid=1, cgroup_id=known)])  # the tree is walked now
    # the container's cgroup, made after that walk; its first records are
    # seen before the next walk could find it
    monkeypatch.setattr("ebpfsensor.host.containers._REWALK_S", 3600.0)
    scope = tmp_path / "system.slice" / f"docker-{CID}.scope"
    scope.mkdir()
    rec = make_record(EventType.EXIT, pid=2, cgroup_id=os.stat(scope).st_ino)
    assert [e.container_id for e in dec.transcode([rec])] == [""]
    monkeypatch.setattr("ebpfsensor.host.containers._REWALK_S", 0.0)
    assert [e.container_id for e in dec.transcode([rec])] == [CID]
    assert dec._c.nmisses == 0 and not dec._unknown
