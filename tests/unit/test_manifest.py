# SPDX-License-Identifier: Apache-2.0
"""Packaged objects are checked against the build's MANIFEST before use."""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import pytest

from ebpfsensor.errors import LibbpfError
from ebpfsensor.sources.ebpf import objects
from ebpfsensor.sources.ebpf.objects import MANIFEST, BpfObject, packaged_object_path


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the packaged objects and manifest that packaged() reads instead."""
    src = packaged_object_path("process").parent
    if not (src / "process.bpf.o").exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    dst = tmp_path / "bpf"
    shutil.copytree(src, dst)
    monkeypatch.setattr(objects, "packaged_object_path", lambda name: dst / f"{name}.bpf.o")
    return dst


def test_manifest_lists_every_packaged_object() -> None:
    d = packaged_object_path("process").parent
    names = sorted(p.name for p in d.glob("*.bpf.o"))
    if not names:
        pytest.skip("no compiled objects: run `make bpf` first")
    lines = (d / MANIFEST).read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in lines) == names
    for line in lines:
        digest, name = line.split("  ")
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == digest


def test_untouched_object_opens(copy: Path) -> None:
    assert BpfObject.packaged("process").hooks["exec"]


def test_tampered_object_refused(copy: Path) -> None:
    obj = copy / "process.bpf.o"
    data = bytearray(obj.read_bytes())
    data[-1] ^= 0x01  # still a valid ELF, but not the one that was built
    obj.write_bytes(bytes(data))
    with pytest.raises(LibbpfError) as info:
        BpfObject.packaged("process")
    err = info.value
    assert err.errno == errno.EBADMSG
    assert str(err).startswith(f"verify {obj}: checksum mismatch")
    assert "refused" in str(err) and "reinstall ebpfsensor" in str(err)


def test_missing_manifest_refused(copy: Path) -> None:
    (copy / MANIFEST).unlink()
    with pytest.raises(LibbpfError) as info:
        BpfObject.packaged("process")
    assert info.value.errno == errno.ENOENT
    assert "no MANIFEST" in str(info.value) and "make bpf" in str(info.value)


def test_unlisted_object_refused(copy: Path) -> None:
    text = (copy / MANIFEST).read_text()
    (copy / MANIFEST).write_text("".join(line for line in text.splitlines(True) if "process.bpf.o" not in line))
    with pytest.raises(LibbpfError, match=r"not listed in .*MANIFEST") as info:
        BpfObject.packaged("process")
    assert info.value.errno == errno.ENOENT


def test_malformed_manifest_refused(copy: Path) -> None:
    (copy / MANIFEST).write_text("not a manifest\n")
    with pytest.raises(LibbpfError, match="malformed") as info:
        BpfObject.packaged("process")
    assert info.value.errno == errno.EBADMSG
