# SPDX-License-Identifier: Apache-2.0
"""Config.transport, Config.v419_objects and Config.kinds: what the configuration takes and keeps."""

from __future__ import annotations

import pytest

from ebpfsensor import Config
from ebpfsensor.errors import ConfigError


def test_transport_is_checked() -> None:
    assert Config().transport == "auto"
    assert Config(transport="perf").transport == "perf"
    with pytest.raises(ConfigError, match="transport: 'bogus' is not one of auto, ring, perf"):
        Config(transport="bogus")


def test_v419_objects_is_checked() -> None:
    assert Config().v419_objects == "auto"
    assert Config(transport="perf", v419_objects="always").v419_objects == "always"
    with pytest.raises(ConfigError, match="v419_objects: 'old' is not one of auto, always, never"):
        Config(v419_objects="old")
    # the v419 builds write to perf event arrays
    with pytest.raises(ConfigError, match='"always" needs transport="perf"'):
        Config(v419_objects="always")


def test_kinds_given_as_a_list_or_set_are_kept_as_a_frozenset() -> None:
    for given in (["process_exec", "file_open"], {"process_exec", "file_open"}):
        cfg = Config(kinds=given)  # type: ignore[arg-type]
        assert cfg.kinds == frozenset({"process_exec", "file_open"})
        assert cfg.enabled_kinds & frozenset({"file_open", "net_connect"}) == {"file_open"}


def test_kinds_given_as_one_string_is_refused_saying_so() -> None:
    with pytest.raises(ConfigError, match=r"kinds: a collection of kind names, not the string 'process_exec'"):
        Config(kinds="process_exec")  # type: ignore[arg-type]
