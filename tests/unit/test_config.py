# SPDX-License-Identifier: Apache-2.0
"""Config.transport: the eBPF transport's choices."""

from __future__ import annotations

import pytest

from ebpfsensor import Config
from ebpfsensor.errors import ConfigError


def test_transport_is_checked() -> None:
    assert Config().transport == "auto"
    assert Config(transport="perf").transport == "perf"
    with pytest.raises(ConfigError, match="transport: 'bogus' is not one of auto, ring, perf"):
        Config(transport="bogus")
