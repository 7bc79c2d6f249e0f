# SPDX-License-Identifier: Apache-2.0
"""ebpfsensor: kernel telemetry for security agents, through eBPF.

import ebpfsensor
with ebpfsensor.Sensor() as sensor:
    for event in sensor.events(timeout=1.0):
        print(event.kind, event.pid, event.exe)
"""

from .config import Config
from .diagnostic import Diagnostic, EbpfStatistics, ebpf_statistics
from .errors import (
    ConfigError,
    DecodeError,
    EbpfSensorError,
    LibbpfError,
    NotSupportedError,
    PrivilegeError,
    RecordingError,
    VerifierError,
)
from .events import Event, EventType, ProcessExec, ProcessExit, ProcessFork, UserLogin, decode, to_json
from .exclusions import (
    ExcludeCgroup,
    ExcludeExecutable,
    ExcludeName,
    ExcludePathPrefix,
    ExcludePid,
    ExcludeUid,
    Exclusion,
)
from .host.capabilities import Capabilities
from .probe import ProbeReport, probe
from .recording import Recorder, ReplaySensor
from .sensor import Sensor, Subscription
from .status import Health, HookInfo, KindHealth, KindStats, SensorStats

__version__ = "0.1.0"

__all__ = [
    "Capabilities",
    "Config",
    "ConfigError",
    "DecodeError",
    "Diagnostic",
    "EbpfSensorError",
    "EbpfStatistics",
    "Event",
    "EventType",
    "ExcludeCgroup",
    "ExcludeExecutable",
    "ExcludeName",
    "ExcludePathPrefix",
    "ExcludePid",
    "ExcludeUid",
    "Exclusion",
    "Health",
    "HookInfo",
    "KindHealth",
    "KindStats",
    "LibbpfError",
    "NotSupportedError",
    "PrivilegeError",
    "ProbeReport",
    "ProcessExec",
    "ProcessExit",
    "ProcessFork",
    "Recorder",
    "RecordingError",
    "ReplaySensor",
    "Sensor",
    "SensorStats",
    "Subscription",
    "UserLogin",
    "VerifierError",
    "__version__",
    "decode",
    "ebpf_statistics",
    "probe",
    "to_json",
]
