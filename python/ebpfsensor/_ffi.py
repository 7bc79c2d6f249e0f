# SPDX-License-Identifier: Apache-2.0
"""The only user of the compiled extension: return-code checks and log routing."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Iterator
from typing import Any

from .errors import PRIVILEGE_HINT, LibbpfError, PrivilegeError

try:
    from ._libbpf import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        f"ebpfsensor's compiled extension is missing ({exc}); build it with `make ext` or install a wheel"
    ) from exc

__all__ = [
    "capture_libbpf_log",
    "check_ptr",
    "check_ret",
    "ffi",
    "lib",
    "map_items",
    "next_key",
    "release_heap",
    "strerror",
]

log = logging.getLogger("ebpfsensor.libbpf")
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_capture = threading.local()


# cffi's decorator is untyped: the extension has no stubs
@ffi.def_extern()  # type: ignore[untyped-decorator]
def _es_log(level: int, msg: Any) -> None:
    text = ffi.string(msg).decode("utf-8", "replace").rstrip("\n")
    lines = getattr(_capture, "lines", None)
    if lines is not None:
        lines.append(text)
    # libbpf warns about every program that fails to load; the loader decides
    # whether that matters (another variant may load), so keep those at INFO
    py_level = _LEVELS.get(level, logging.DEBUG)
    if lines is not None and py_level == logging.WARNING:
        py_level = logging.INFO
    log.log(py_level, "%s", text)


lib.es_route_libbpf_log()
lib.es_log_debug(int(log.isEnabledFor(logging.DEBUG)))


class capture_libbpf_log:
    """Collect libbpf's messages on this thread while the block runs (its
    debug messages only while the logger is at DEBUG: the loader reads the
    warnings)."""

    def __enter__(self) -> list[str]:
        lib.es_log_debug(int(log.isEnabledFor(logging.DEBUG)))
        self.lines: list[str] = []
        _capture.lines = self.lines
        return self.lines

    def __exit__(self, *exc: object) -> None:
        _capture.lines = None


def release_heap() -> None:
    """Give the C heap's free pages back to the system (what loading freed:
    the kernel BTF libbpf parsed for each object)."""
    lib.es_release_heap()


def strerror(err: int) -> str:
    """libbpf's words for an error number (positive or negative)."""
    buf = ffi.new("char[]", 256)
    lib.libbpf_strerror(-abs(err), buf, 256)
    return str(ffi.string(buf).decode("utf-8", "replace"))


def make_error(err: int, op: str, target: str, hint: str = "") -> LibbpfError:
    """The LibbpfError (or PrivilegeError) for a failed call."""
    err = abs(err)
    if err in (errno.EPERM, errno.EACCES):
        return PrivilegeError(err, strerror(err), op, target, hint or PRIVILEGE_HINT)
    return LibbpfError(err, strerror(err), op, target, hint)


def check_ret(rc: int, op: str, target: str, hint: str = "") -> int:
    """Raise for a negative errno return; return rc otherwise."""
    if rc < 0:
        raise make_error(rc, op, target, hint)
    return rc


def next_key(fd: int, key: Any, next_key: Any, target: str) -> bool:
    """bpf_map_get_next_key: False at the end of the map (key NULL: the first key)."""
    rc = lib.bpf_map_get_next_key(fd, key, next_key)
    if rc == -errno.ENOENT:
        return False
    check_ret(rc, "iterate", target)
    return True


def map_items(fd: int, key_type: str, value_type: str, target: str) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) of a hash map, each a fresh cffi object. An entry
    deleted between two steps is passed over."""
    prev = ffi.NULL
    while True:
        key = ffi.new(f"{key_type} *")
        if not next_key(fd, prev, key, target):
            return
        prev = key
        value = ffi.new(f"{value_type} *")
        rc = lib.bpf_map_lookup_elem(fd, key, value)
        if rc == -errno.ENOENT:
            continue
        check_ret(rc, "read", target)
        yield key, value


def check_ptr(ptr: Any, op: str, target: str, hint: str = "") -> Any:
    """Raise for a NULL return (libbpf sets errno); return ptr otherwise."""
    if ptr == ffi.NULL:
        raise make_error(ffi.errno or errno.EINVAL, op, target, hint)
    return ptr
