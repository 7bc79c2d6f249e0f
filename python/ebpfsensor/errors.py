# SPDX-License-Identifier: Apache-2.0
"""The exception tree. Every error says what failed, on what, and what to do."""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "ConfigError",
    "DecodeError",
    "EbpfSensorError",
    "LibbpfError",
    "NotSupportedError",
    "PrivilegeError",
    "RecordingError",
    "VerifierError",
]

PRIVILEGE_HINT = "needs root or CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8)"


class EbpfSensorError(Exception):
    """Base of every error raised by ebpfsensor."""


class LibbpfError(EbpfSensorError, OSError):
    """A libbpf or bpf(2) call failed.

    Attributes:
        errno: the positive error number.
        strerror: libbpf's words for it.
        op: the operation, lowercase ("load", "attach", "open").
        target: what it was applied to (an object, program or map name).
    """

    def __init__(self, err: int, strerror: str, op: str, target: str, hint: str = "") -> None:
        OSError.__init__(self, err, strerror)
        self.op = op
        self.target = target
        self.hint = hint

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        text = f"{self.op} {self.target}: {self.strerror} ({name})"
        return f"{text}; {self.hint}" if self.hint else text


class PrivilegeError(LibbpfError, PermissionError):
    """EPERM or EACCES where privileges are the likely cause."""


class VerifierError(LibbpfError):
    """The kernel's verifier rejected a program.

    Attributes:
        program: the program's name.
        log: every line of the verifier log.
    """

    def __init__(self, err: int, strerror: str, op: str, target: str, program: str, log: list[str]) -> None:
        super().__init__(err, strerror, op, target)
        self.program = program
        self.log = log

    @property
    def cause(self) -> str:
        """The last meaningful line of the verifier log."""
        skip = ("processed ", "verification time", "stack depth", "-- END", "mark_precise")
        for line in reversed(self.log):
            text = line.strip()
            if text and not text.startswith(skip):
                return text
        return ""

    def __str__(self) -> str:
        base = super().__str__()
        cause = self.cause
        if not cause:
            return f"{base}: program {self.program} rejected"
        omitted = max(len(self.log) - 1, 0)
        return f"{base}: program {self.program} rejected: {cause} ({omitted} lines omitted)"


class NotSupportedError(EbpfSensorError):
    """The running kernel lacks a feature.

    Attributes:
        feature: what is missing, in words.
        min_kernel: the first kernel version that has it, if known.
    """

    def __init__(self, feature: str, min_kernel: str = "", detail: str = "") -> None:
        self.feature = feature
        self.min_kernel = min_kernel
        self.detail = detail
        text = f"{feature} is not supported by this kernel ({os.uname().release})"
        if min_kernel:
            text += f"; needs Linux {min_kernel} or later"
        if detail:
            text += f": {detail}"
        super().__init__(text)


class DecodeError(EbpfSensorError, ValueError):
    """A record could not be decoded.

    Attributes:
        record_type: the record's type number, if it could be read.
        offset: where in the record the problem is.
    """

    def __init__(self, message: str, record_type: int | None = None, offset: int = 0) -> None:
        super().__init__(message)
        self.record_type = record_type
        self.offset = offset


class ConfigError(EbpfSensorError, ValueError):
    """Configuration that cannot be used; says which setting and how to fix it."""


class RecordingError(EbpfSensorError, ValueError):
    """A recording that cannot be read: not a recording, a format version
    newer than this library reads, or a truncated or corrupted frame.

    Attributes:
        path: the recording's file name ("" for a stream without one).
        offset: the byte offset in the file of the frame (or part) at fault.
        version: the format version the file declares, when that is the
            problem; else None.
    """

    def __init__(self, message: str, path: str = "", offset: int = 0, version: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.version = version
