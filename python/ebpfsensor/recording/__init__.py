# SPDX-License-Identifier: Apache-2.0
"""Record what a sensor delivers; replay it without privileges or a kernel.

    with ebpfsensor.Sensor() as sensor, sensor.record("trace.ebr"):
        sensor.run(duration=60)

    with ebpfsensor.ReplaySensor("trace.ebr") as replay:   # any user, any machine
        for event in replay.events():
            ...

The file format (frames, versions, what older and newer readers do) is in
docs/recording.md.
"""

from __future__ import annotations

from ._format import (
    FORMAT_VERSION,
    EndFrame,
    EventsFrame,
    Frame,
    FrameType,
    LossFrame,
    ProcessesFrame,
    RecordingHeader,
    RecordingReader,
    RecordingWriter,
    SensorInfo,
    new_header,
    read_events,
)
from .recorder import Recorder
from .replay import RecordedProcess, ReplayHealth, ReplayProcessTable, ReplaySensor, ReplaySubscription

__all__ = [
    "FORMAT_VERSION",
    "EndFrame",
    "EventsFrame",
    "Frame",
    "FrameType",
    "LossFrame",
    "ProcessesFrame",
    "RecordedProcess",
    "Recorder",
    "RecordingHeader",
    "RecordingReader",
    "RecordingWriter",
    "ReplayHealth",
    "ReplayProcessTable",
    "ReplaySensor",
    "ReplaySubscription",
    "SensorInfo",
    "new_header",
    "read_events",
]
