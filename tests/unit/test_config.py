# SPDX-License-Identifier: Apache-2.0
"""Config.transport and Config.v419_objects: the eBPF transport's and objects' choices."""

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
