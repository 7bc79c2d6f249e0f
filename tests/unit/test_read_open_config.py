# SPDX-License-Identifier: Apache-2.0
"""The open policy's configuration: Config.read_opens, Config.watched_files,
and the watched files' identities as user space resolves them."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from ebpfsensor import Config, watched
from ebpfsensor.errors import ConfigError
from ebpfsensor.exclusions import kernel_dev, user_dev
from ebpfsensor.managed_config import DEFAULT_PATH


def test_defaults() -> None:
    cfg = Config()
    assert cfg.read_opens == "watched" and cfg.watched_files == ()
    assert Config(read_opens="all").read_opens == "all"


def test_read_opens_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"read_opens: 'some' is not one of watched, all \(watched: "):
        Config(read_opens="some")


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("etc/shadow", "is not an absolute path"),
        ("", "is not an absolute path"),
        ("/etc/../shadow", "is not a normalised path"),
        ("/etc//shadow", "is not a normalised path"),
        ("/etc/ssh/", "is not a normalised path"),
        ("/etc/./x", "is not a normalised path"),
        ("/etc/sha\0dow", "is not a file name"),
        ("/srv/**/key", "'\\*\\*' is not supported"),
    ],
)
def test_watched_files_are_checked(entry: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"watched_files: .*{why}"):
        Config(watched_files=(entry,))


def test_too_many_watched_entries() -> None:
    with pytest.raises(ConfigError, match="watched_files: 1025 entries; at most 1024"):
        Config(watched_files=tuple(f"/srv/f{i}" for i in range(1025)))


def test_watched_files_from_configuration() -> None:
    cfg = msgspec.json.decode(
        b'{"read_opens": "all", "watched_files": ["/srv/app/key", "/srv/app/*.pem"]}', type=Config
    )
    assert cfg.watched_files == ("/srv/app/key", "/srv/app/*.pem") and cfg.read_opens == "all"
    # as a file's: msgspec reports the check's message
    with pytest.raises(msgspec.ValidationError, match="watched_files: 'key' is not an absolute path"):
        msgspec.json.decode(b'{"watched_files": ["key"]}', type=Config)


def test_the_sensors_own_configuration_is_watched() -> None:
    assert watched.MANAGED_CONFIG_PATH == DEFAULT_PATH
    assert DEFAULT_PATH in watched.DEFAULT_WATCHED


def test_resolve_by_identity_in_the_kernels_encoding(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_text("x")
    (tmp_path / "id_test").write_text("private")
    (tmp_path / "id_test.pub").write_text("public")
    ids = watched.resolve((str(f), str(tmp_path / "missing"), str(tmp_path / "id_*"), str(tmp_path)))
    st = os.stat(f)
    key = (kernel_dev(st.st_dev), st.st_ino)
    assert ids[key] == str(f)
    # one conversion each way, and back: major << 20 | minor, and stat()'s
    assert key[0] == (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
    assert user_dev(key[0]) == st.st_dev
    paths = set(ids.values())
    # a file that does not exist is left out, as is a directory; of a key
    # pair, the private key only
    assert str(tmp_path / "missing") not in paths and str(tmp_path) not in paths
    assert str(tmp_path / "id_test") in paths and str(tmp_path / "id_test.pub") not in paths


def test_device_numbers_beyond_a_byte() -> None:
    # new_encode_dev and MKDEV differ as soon as a minor number needs more than a byte
    dev = os.makedev(259, 70000)
    assert kernel_dev(dev) == (259 << 20) | 70000
    assert user_dev(kernel_dev(dev)) == dev
