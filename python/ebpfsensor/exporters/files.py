# SPDX-License-Identifier: Apache-2.0
"""Events to a file as JSON lines, rotated by size, a bounded number of files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any

from ._base import Exporter

__all__ = ["FileExporter"]


class FileExporter(Exporter):
    """JSON lines appended to ``path``; when the next line would take the
    file past ``max_bytes`` it is renamed ``path.1`` (``path.1`` to
    ``path.2``, ...; the oldest beyond ``backups`` is deleted) and a new
    file begins. A single line longer than ``max_bytes`` gets a file of its
    own. Delivered means written to the file (and, with ``fsync``, synced).

    Args:
        path: the file; created (mode 0600) when missing, appended to when not.
        max_bytes: the size at which the file rotates.
        backups: rotated files kept (0: the file is truncated instead).
        fsync: sync the file after each batch.
        **options: those of :class:`Exporter` (``format``, ``queue_size``, ...).

    Raises:
        ValueError: max_bytes not positive, or backups negative.
    """

    name = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 100 << 20,
        backups: int = 5,
        fsync: bool = False,
        **options: Any,
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        super().__init__(**options)
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._fsync = fsync
        self._file: IO[bytes] | None = None
        self._size = 0

    def _connect(self, timeout: float) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = os.fstat(fd).st_size

    def _prepare(self, events: Sequence[Any], payloads: list[bytes]) -> Any:
        return [p + b"\n" for p in payloads]

    def _send(self, prepared: Any, timeout: float) -> None:
        # lines are consumed as they are written: a retry after a failed
        # write goes on from the first line not written
        lines: list[bytes] = prepared
        while lines:
            if self._size and self._size + len(lines[0]) > self.max_bytes:
                self._rotate()
            n, total = 1, len(lines[0])
            while n < len(lines) and self._size + total + len(lines[n]) <= self.max_bytes:
                total += len(lines[n])
                n += 1
            self._write(b"".join(lines[:n]))
            del lines[:n]
        if self._fsync and self._file is not None:
            os.fsync(self._file.fileno())

    def _write(self, data: bytes) -> None:
        if self._file is None:
            raise OSError(f"{self.path} is not open")
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n or 0 :]
            self._size += n or 0

    def _rotate(self) -> None:
        self._disconnect()
        if self.backups == 0:
            os.truncate(self.path, 0)
        else:
            for i in range(self.backups - 1, 0, -1):
                older = f"{self.path}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._connect(0)

    def _disconnect(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
