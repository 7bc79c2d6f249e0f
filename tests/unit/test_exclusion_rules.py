# SPDX-License-Identifier: Apache-2.0
"""Exclusion rules checked and encoded without the kernel: path prefixes, and
the rule made from a diagnostic's top initiator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from ebpfsensor import Config, ConfigError, ExcludeCgroup, ExcludeExecutable, ExcludeName, ExcludePathPrefix
from ebpfsensor._ffi import ffi, lib
from ebpfsensor.diagnostic import DiagnosticCounters, EbpfStatistics, InitiatorCount, shared_executable
from ebpfsensor.exclusions import PATH_PREFIX_MAX, PROC_PID_INIT_INO, ExcludeSelf, own_kernel_pid, resolve
from ebpfsensor.host.containers import find_cgroup2_root


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


@pytest.mark.parametrize("shared", ["/bin/bash", "/bin/dash", "/usr/bin/python3", "/usr/bin/env", "/usr/bin/perl"])
def test_top_initiator_refuses_shared_executables_unless_forced(shared: str) -> None:
    """An interpreter or a shell as the top initiator: excluding it would
    silence every script it runs, for every user."""
    if not os.path.exists(shared):
        pytest.skip(f"{shared} is not installed here")
    stats = stats_with(initiator_for(shared))
    refused = r"is a shared executable .* for every user: exclude the noisy process by pid"
    with pytest.raises(ConfigError, match=refused):
        stats.top_initiator_exclusion()
    assert stats.top_initiator_exclusion(force=True) == ExcludeExecutable(shared)


def test_shared_executables_match_the_file_a_link_names(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/bin/dash")
    assert shared_executable(str(link)) is not None
    assert shared_executable(str(tmp_path / "my-daemon")) is None


def test_name_rules_cannot_reach_descendants() -> None:
    """Any user can start a process under any name: with descendants, a name
    rule would let them exclude everything that process starts."""
    with pytest.raises(ConfigError, match="anyone can name a process so"):
        resolve(ExcludeName("cron", descendants=True))
    assert resolve(ExcludeName("cron")).map_name == "excl_comm"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "neither a cgroup path"),
        ("e", "neither a cgroup path"),
        ("abc", "neither a cgroup path"),
        ("ABCDEF012345", "neither a cgroup path"),
        ("0123456789ab", "no cgroup under .* belongs to that container"),
        ("/", "the root cgroup"),
    ],
)
def test_cgroup_rules_match_whole_names_never_the_root(path: str, message: str) -> None:
    """A substring of the root cgroup's directory name excluded the root
    cgroup: on a host where everything runs in it, everything."""
    root = find_cgroup2_root()
    if root is None:
        pytest.skip("cgroup v2 is not mounted")
    with pytest.raises(ConfigError, match=message):
        resolve(ExcludeCgroup(path))
    with pytest.raises(ConfigError, match="the root cgroup"):
        resolve(ExcludeCgroup(root))


def test_cgroup_rule_by_container_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Container ids match a container's own cgroup directory, whole or by a
    unique prefix of at least 12 digits."""
    a, b = "ab" * 32, "ab" * 6 + "cd" * 26
    (tmp_path / "system.slice" / f"docker-{a}.scope").mkdir(parents=True)
    (tmp_path / "system.slice" / f"docker-{b}.scope").mkdir(parents=True)
    monkeypatch.setattr("ebpfsensor.exclusions.find_cgroup2_root", lambda: str(tmp_path))
    key = resolve(ExcludeCgroup(a)).key
    assert key == os.stat(tmp_path / "system.slice" / f"docker-{a}.scope").st_ino.to_bytes(8, "little")
    assert resolve(ExcludeCgroup(a[:14])).key == key
    with pytest.raises(ConfigError, match="2 containers' ids start so"):
        resolve(ExcludeCgroup(a[:12]))
    relative = resolve(ExcludeCgroup("/system.slice")).key
    assert relative == os.stat(tmp_path / "system.slice").st_ino.to_bytes(8, "little")


def test_self_rule_names_this_process_alone() -> None:
    if os.stat("/proc/self/ns/pid").st_ino != PROC_PID_INIT_INO:
        pytest.skip("this process runs in a pid namespace of its own: its kernel pid is another number")
    resolved = resolve(ExcludeSelf())
    # by pid, kept across an exec, never passed on at fork
    assert (resolved.map_name, resolved.seed_pids) == ("", frozenset({os.getpid()}))
    assert resolved.flags == lib.EXCL_STICKY and not resolved.flags & lib.EXCL_DESCENDANTS
    assert own_kernel_pid() == os.getpid()


def test_self_rule_comes_first_unless_switched_off() -> None:
    rules = (ExcludeName("noisy"),)
    assert Config(exclusions=rules).active_exclusions == (ExcludeSelf(), *rules)
    assert Config(exclusions=rules, exclude_self=False).active_exclusions == rules
    # named in the configuration: where it was put, once
    placed = (ExcludeName("noisy"), ExcludeSelf())
    assert Config(exclusions=placed).active_exclusions == placed
    cfg = msgspec.json.decode(b'{"exclude_self": false, "exclusions": [{"type": "self"}]}', type=Config)
    assert (cfg.exclude_self, cfg.exclusions) == (False, (ExcludeSelf(),))


def test_self_rule_in_a_pid_namespace_of_its_own_is_refused_saying_why() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = "from ebpfsensor.exclusions import own_kernel_pid as f\ntry:\n    f()\nexcept Exception as e:\n    print(e)"
    try:
        out = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.skip("unshare(1) is not installed")
    if out.returncode and "Operation not permitted" in out.stderr:
        pytest.skip("creating a pid namespace needs privileges")
    assert "pid namespace of its own" in out.stdout and "exclude_self=False" in out.stdout
