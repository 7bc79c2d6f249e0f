# SPDX-License-Identifier: Apache-2.0
"""ebpfsensor: kernel telemetry for security agents, through eBPF.

    import ebpfsensor
    with ebpfsensor.Sensor() as sensor:
        for event in sensor.events(timeout=1.0):
            print(event.kind, event.pid, event.exe)
"""

from .config import Config
from .errors import (
    ConfigError,
    DecodeError,
    EbpfSensorError,
    LibbpfError,
    NotSupportedError,
    PrivilegeError,
    VerifierError,
)
from .diagnostic import Diagnostic, EbpfStatistics, ebpf_statistics
from .events import Event, EventType, ProcessExec, ProcessExit, ProcessFork, decode, to_json
from .sensor import HookInfo, KindStats, Sensor, SensorStats, Subscription

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "DecodeError",
    "Diagnostic",
    "EbpfSensorError",
    "EbpfStatistics",
    "Event",
    "EventType",
    "HookInfo",
    "KindStats",
    "LibbpfError",
    "NotSupportedError",
    "PrivilegeError",
    "ProcessExec",
    "ProcessExit",
    "ProcessFork",
    "Sensor",
    "SensorStats",
    "Subscription",
    "VerifierError",
    "__version__",
    "decode",
    "ebpf_statistics",
    "to_json",
]
