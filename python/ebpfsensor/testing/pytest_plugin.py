# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures for testing detections without root: ``synthetic_sensor``, ``replay_sensor``.

An installed ebpfsensor registers this plugin (the ``pytest11`` entry
point); from a checkout, ``pytest -p ebpfsensor.testing.pytest_plugin``.
The entry point is named as the module, so both at once load it once. It
only adds these two fixtures (no hooks, nothing autouse), so it changes
nothing in a pytest run that does not ask for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..recording.replay import ReplaySensor
    from .synthetic import SyntheticSensor

__all__ = ["replay_sensor", "synthetic_sensor"]


@pytest.fixture
def synthetic_sensor() -> Iterator[SyntheticSensor]:
    """A started :class:`~ebpfsensor.testing.SyntheticSensor` with a fresh
    scenario that the module's builders (``make_exec``, ...) use for the
    test; ``synthetic_sensor.feed()`` hands what they built to the sensor."""
    from .builders import use_scenario
    from .synthetic import SyntheticSensor

    sensor = SyntheticSensor()
    with use_scenario(sensor.scenario), sensor:
        yield sensor


@pytest.fixture
def replay_sensor(request: pytest.FixtureRequest) -> Iterator[Callable[..., ReplaySensor]]:
    """Open recordings as started :class:`~ebpfsensor.ReplaySensor` objects,
    closed after the test: ``replay_sensor("dropper.ebr", speed=None)``. A
    relative name is looked for next to the test's file, then in the
    current directory; the keywords are ReplaySensor's."""
    from ..recording.replay import ReplaySensor

    opened: list[ReplaySensor] = []

    def open_recording(path: str | Path, **options: Any) -> ReplaySensor:
        name = Path(path)
        if not name.is_absolute():
            here = Path(str(request.path)).parent / name
            name = here if here.exists() or not name.exists() else name
        sensor = ReplaySensor(name, **options).start()
        opened.append(sensor)
        return sensor

    try:
        yield open_recording
    finally:
        for sensor in opened:
            sensor.close()
