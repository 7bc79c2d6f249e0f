# SPDX-License-Identifier: Apache-2.0
"""Exclusion rules checked and encoded without the kernel: path prefixes, and
the rule made from a diagnostic's top initiator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import pytest

from ebpfsensor import Config, ConfigError, ExcludeExecutable, ExcludePathPrefix
from ebpfsensor._ffi import ffi, lib
from ebpfsensor.diagnostic import DiagnosticCounters, EbpfStatistics, InitiatorCount
from ebpfsensor.exclusions import PATH_PREFIX_MAX, resolve


def lpm_key(prefix: str) -> tuple[int, bytes]:
    resolved = resolve(ExcludePathPrefix(prefix))
    assert resolved.map_name == "excl_path" and len(resolved.key) == ffi.sizeof("struct excl_path_key")
    key = ffi.from_buffer("struct excl_path_key *", bytearray(resolved.key))
    data = bytes(ffi.buffer(key.path))
    return key.prefixlen, data


@pytest.mark.parametrize(
    ("prefix", "stored"),
    [
        ("/var/log/app", b"/var/log/app/"),
        ("/var/log/app/", b"/var/log/app/"),  # one trailing '/' is the same prefix
        ("/proc", b"/proc/"),
        ("/", b"/"),
    ],
)
def test_prefix_is_stored_with_one_trailing_slash(prefix: str, stored: bytes) -> None:
    bits, data = lpm_key(prefix)
    assert bits == len(stored) * 8
    assert data == stored.ljust(lib.EXCL_PATH_LEN, b"\0")


def test_longest_prefix_fits_the_kernel_key() -> None:
    assert PATH_PREFIX_MAX == 255 == lib.EXCL_PATH_LEN - 1
    longest = "/" + "d" * 254
    bits, data = lpm_key(longest)
    assert bits == 256 * 8 and data == (longest + "/").encode()
    with pytest.raises(ConfigError, match="256 bytes; the kernel matches prefixes of at most 255 bytes"):
        resolve(ExcludePathPrefix(longest + "d"))


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("", "empty"),
        ("var/log", "not absolute"),
        ("./log", "not absolute"),
        ("/var/log/..", "'..' component"),
        ("/var/../etc", "'..' component"),
        ("/var//log", "not normalised .* use '/var/log'"),
        ("/var/log/.", "not normalised"),
        ("/var/log//", "not normalised"),
        ("//", "not normalised"),
        ("/var/\0log", "NUL byte"),
    ],
)
def test_invalid_prefixes_name_the_rule_and_the_fix(prefix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        resolve(ExcludePathPrefix(prefix))
    assert f"exclusion path prefix {prefix!r}" in str(info.value)
    # the fix: a valid form, or the normalised path
    assert "such as /var/log/app" in str(info.value) or "; use '/" in str(info.value)


def test_prefix_rules_load_from_configuration() -> None:
    raw = b'{"exclusions": [{"type": "path_prefix", "prefix": "/var/log/app"}, {"type": "uid", "uid": 7}]}'
    config = msgspec.json.decode(raw, type=Config)
    assert config.exclusions[0] == ExcludePathPrefix("/var/log/app")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"exclusions": [{"type": "path_prefix", "path": "/x"}]}', type=Config)


def stats_with(*initiators: InitiatorCount) -> EbpfStatistics:
    return EbpfStatistics(1.0, "x86", "raw", [], list(initiators), [], DiagnosticCounters())


def initiator_for(path: str, count: int = 1000, **kw: object) -> InitiatorCount:
    st = os.stat(path)
    return InitiatorCount(path, count, st.st_dev, st.st_ino, 0, **kw)  # type: ignore[arg-type]


def test_top_initiator_rule(tmp_path: Path) -> None:
    exe = tmp_path / "noisy"
    exe.write_bytes(b"\x7fELF")
    exe.chmod(0o755)
    stats = stats_with(initiator_for(str(exe)), initiator_for("/bin/sh", 10))
    assert stats.top_initiator_exclusion() == ExcludeExecutable(str(exe))
    assert stats.top_initiator_exclusion(descendants=True) == ExcludeExecutable(str(exe), descendants=True)


def test_top_initiator_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="saw none"):
        stats_with().top_initiator_exclusion()
    # the interpreter running this process (and the sensor)
    with pytest.raises(ConfigError, match="the executable of this process, the one running the sensor"):
        stats_with(initiator_for(os.path.realpath(sys.executable))).top_initiator_exclusion()
    exe = tmp_path / "gone"
    exe.write_bytes(b"")
    top = initiator_for(str(exe))
    exe.unlink()
    with pytest.raises(ConfigError, match=r"No such file or directory; it has no file here"):
        stats_with(top).top_initiator_exclusion()
    exe.write_bytes(b"")  # a new file at the same path: another inode
    replaced = msgspec.structs.replace(top, ino=top.ino + 1_000_000)
    with pytest.raises(ConfigError, match="now names another file"):
        stats_with(replaced).top_initiator_exclusion()
    with pytest.raises(ConfigError, match="truncated"):
        stats_with(initiator_for(str(exe), truncated=True)).top_initiator_exclusion()
