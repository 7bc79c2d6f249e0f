# SPDX-License-Identifier: Apache-2.0
"""The managed configuration file an administrator (or MDM) deploys.

The file is JSON; every part is optional::

    {
      "features": {"ebpfSupplementaryEventProvider": "enabled"},
      "provider": {"failMode": "degrade"},
      "sensor":   {"kinds": ["process_exec"], "max_latency_ms": 50}
    }

``features`` has the reference agent's shape (``"enabled"`` | ``"disabled"``);
``provider.failMode`` is ``"degrade"`` (fall back to the process connector when
eBPF cannot run) or ``"fail-closed"`` (report the sensor as failed instead);
``sensor`` holds exactly the fields of :class:`ebpfsensor.Config`, validated
by it. A missing file means the defaults: eBPF enabled, degrade.

Because the file decides what the sensor watches, it is refused when anyone
but root or the current user owns it or its directory, or when either is
writable by group or others; when it is a symlink (the sensor runs as root
and follows no link to a file it trusts: point it at the real file); and when
it is larger than :data:`MAX_BYTES`. Those checks are made on the opened
file and directory, so neither can be swapped between check and read.
Rewrites (:func:`write_feature`, :func:`write_exclusions`) refuse the same
files and replace the file atomically.

Pid exclusions are never kept in the file: a pid names one process of one
boot, and after that process exits, or after a reboot, the same number names
an unrelated process. Exclude a running process at run time with
``Sensor.exclude(ExcludePid(...))``, or exclude by executable.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from .config import Config
from .errors import ConfigError
from .exclusions import ExcludePid, Exclusion

__all__ = [
    "DEFAULT_PATH",
    "MAX_BYTES",
    "ConfigWatcher",
    "ManagedConfig",
    "ManagedConfigError",
    "load_managed_config",
    "write_feature",
]

log = logging.getLogger("ebpfsensor")

DEFAULT_PATH = "/etc/ebpfsensor/config.json"
FEATURE_KEY = "ebpfSupplementaryEventProvider"
#: the largest file read: a real configuration is a few KiB; the cap keeps a
#: mistaken or hostile file from costing the sensor memory and time
MAX_BYTES = 1 << 20


class ManagedConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The managed configuration in force.

    Attributes:
        ebpf_enabled: ``features.ebpfSupplementaryEventProvider`` is "enabled".
        fail_closed: ``provider.failMode`` is "fail-closed": when eBPF cannot
            run, fail instead of falling back to the process connector.
        sensor: the sensor settings (``sensor`` section over the defaults).
        path: the file it was read from (which may not exist).
    """

    ebpf_enabled: bool = True
    fail_closed: bool = False
    sensor: Config = msgspec.field(default_factory=Config)
    path: str = DEFAULT_PATH


class ManagedConfigError(ConfigError):
    """The managed configuration file cannot be used.

    Attributes:
        path: the file.
        key: the key path within it (``features.ebpfSupplementaryEventProvider``),
            "" for the file as a whole.
        problem: what is wrong.
        fix: what to do about it.
    """

    def __init__(self, path: str, key: str, problem: str, fix: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{path}: {key}" if key else path
        super().__init__(f"managed config {where}: {problem}; {fix}")


# --- the file's schema -----------------------------------------------------------


class _Features(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename={"ebpf": FEATURE_KEY}):
    ebpf: Literal["enabled", "disabled"] = "enabled"


class _Provider(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename={"fail_mode": "failMode"}):
    fail_mode: Literal["degrade", "fail-closed"] = "degrade"


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    features: _Features = msgspec.field(default_factory=_Features)
    provider: _Provider = msgspec.field(default_factory=_Provider)
    sensor: Config = msgspec.field(default_factory=Config)


_KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": ("features", "provider", "sensor"),
    "features": (FEATURE_KEY,),
    "provider": ("failMode",),
    "sensor": Config.__struct_fields__,
}
_VALUES: dict[str, str] = {
    f"features.{FEATURE_KEY}": '"enabled" or "disabled"',
    "provider.failMode": '"degrade" or "fail-closed"',
}
_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<key>[^`]*)`")
_WRONG_TYPE = re.compile(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`")


def _describe(path: str, exc: msgspec.ValidationError) -> ManagedConfigError:
    """Turn msgspec's validation error into one naming the key and the fix."""
    m = _MSGSPEC_ERROR.match(str(exc))
    msg, where = (m.group("msg"), (m.group("path") or "").lstrip(".")) if m else (str(exc), "")
    if (unknown := _UNKNOWN_FIELD.match(msg)) is not None:
        key = unknown.group("key")
        known = ", ".join(_KNOWN_KEYS.get(where, ()))
        section = f"under {where}" if where else "at the top level"
        return ManagedConfigError(
            path, f"{where}.{key}".lstrip("."), "unknown key", f"remove it; known keys {section}: {known}"
        )
    if isinstance(exc.__cause__, ConfigError):
        # Config.__post_init__ says "<field>: <problem>"
        field, _, problem = str(exc.__cause__).partition(": ")
        if field in Config.__struct_fields__:
            return ManagedConfigError(path, f"{where}.{field}", "invalid value", f"{problem}; fix the value")
        return ManagedConfigError(path, where, "invalid value", str(exc.__cause__))
    if where in _VALUES and msg.startswith("Invalid enum value"):
        value = msg.removeprefix("Invalid enum value").strip()
        return ManagedConfigError(path, where, f"invalid value {value}", f"use {_VALUES[where]}")
    if (wrong := _WRONG_TYPE.match(msg)) is not None:
        want, got = wrong.group("want"), wrong.group("got")
        fix = f"use {_VALUES[where]}" if where in _VALUES else f"give a value of type {want}"
        return ManagedConfigError(path, where or "(top level)", f"expected {want}, got {got}", fix)
    return ManagedConfigError(path, where, msg, "fix the value")


def _reject_constant(path: str) -> Any:
    def hook(name: str) -> Any:
        raise ManagedConfigError(path, "", f"{name} is not valid JSON", "use a number")

    return hook


def _no_duplicates(path: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ManagedConfigError(path, key, "duplicate key", "keep only one of them")
            out[key] = value
        return out

    return hook


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(path), parse_constant=_reject_constant(path))
    except ManagedConfigError:
        raise
    except json.JSONDecodeError as exc:
        raise ManagedConfigError(
            path,
            "",
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            f"fix the syntax (`python3 -m json.tool {path}` shows where)",
        ) from None
    except RecursionError:
        raise ManagedConfigError(
            path,
            "",
            "JSON nested too deeply to parse",
            "a managed configuration is a few levels deep: remove the nested arrays or objects",
        ) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise ManagedConfigError(
                path,
                "",
                "a number with too many digits to parse",
                "no setting takes a number that long: give a value in the setting's range",
            ) from None
        raise ManagedConfigError(path, "", f"cannot parse: {exc}", "fix the file") from None
    except Exception as exc:
        # json.loads documents only JSONDecodeError: anything else is still
        # the file's fault, and a poll of the file must never raise it
        raise ManagedConfigError(path, "", f"cannot parse: {type(exc).__name__}: {exc}", "fix the file") from None


_PID_PROBLEM = (
    "a pid rule cannot be kept in the configuration: a pid names one process of one boot, and once that process "
    "exits, or after a reboot, the same pid names an unrelated process"
)
_PID_FIX = (
    "drop the pid rule; exclude a running process at run time with Sensor.exclude(ExcludePid(...)), "
    "or exclude by executable (`ebpfsensor exclusions add --executable PATH`)"
)


def _reject_pid_rules(path: str, rules: Sequence[Exclusion]) -> None:
    for i, rule in enumerate(rules):
        if isinstance(rule, ExcludePid):
            raise ManagedConfigError(path, f"sensor.exclusions[{i}]", _PID_PROBLEM, _PID_FIX)


def _validate(path: str, doc: Any) -> _File:
    """The document as the file's schema, or the error naming key and fix."""
    try:
        parsed = msgspec.convert(doc, type=_File)
    except msgspec.ValidationError as exc:
        raise _describe(path, exc) from None
    except RecursionError:
        raise ManagedConfigError(
            path, "", "nested too deeply to check", "a managed configuration is a few levels deep: flatten it"
        ) from None
    _reject_pid_rules(path, parsed.sensor.exclusions)
    return parsed


# --- reading safely ------------------------------------------------------------------


def _check_owner_and_mode(path: str, target: str, st: os.stat_result) -> None:
    """Refuse target (the file at path, or its directory) if others could write it."""
    what = "the file" if target == path else f"its directory {target}"
    if st.st_uid not in (0, os.geteuid()):
        raise ManagedConfigError(
            path,
            "",
            f"{what} is owned by uid {st.st_uid}, not root or this process's uid {os.geteuid()}; refusing it",
            f"run `chown root {target}`",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ManagedConfigError(
            path,
            "",
            f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); refusing it",
            f"run `chmod go-w {target}`",
        )


def _symlink_error(path: str, name: str, dfd: int) -> ManagedConfigError:
    try:
        target = f" (to {os.readlink(name, dir_fd=dfd)})"
    except OSError:
        target = ""
    return ManagedConfigError(
        path,
        "",
        f"is a symlink{target}; the sensor follows no symlink to its configuration",
        "point the sensor at the real file (--config, or the path argument)",
    )


def _open_dir(path: str) -> tuple[int, str] | None:
    """The directory holding path, opened, and its real name; None if it is missing."""
    directory = os.path.dirname(path) or "."
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ManagedConfigError(
            path, "", f"cannot open its directory: {exc.strerror}", "check the path and its permissions"
        ) from None
    try:
        # the name of the directory actually opened, for messages
        real = os.readlink(f"/proc/self/fd/{dfd}")
    except OSError:
        real = os.path.realpath(directory)
    return dfd, real


def _open_in(path: str, dfd: int) -> int | None:
    """The file at path opened for reading from its directory's fd (no
    symlink followed); None if it does not exist."""
    name = os.path.basename(path)
    if not name:
        raise ManagedConfigError(path, "", "not a regular file", "point the configuration at a JSON file")
    try:
        return os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink_error(path, name, dfd) from None
        raise ManagedConfigError(
            path, "", f"cannot open: {exc.strerror}", "check the path and its permissions"
        ) from None


def _read_secure(path: str) -> str | None:
    """The file's text, or None if it does not exist; refuses unsafe files."""
    opened = _open_dir(path)
    if opened is None:
        return None
    dfd, directory = opened
    try:
        fd = _open_in(path, dfd)
        if fd is None:
            return None
        try:
            # checked on the open file and directory, so neither can be
            # swapped after the check
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ManagedConfigError(path, "", "not a regular file", "point the configuration at a JSON file")
            _check_owner_and_mode(path, path, st)
            _check_owner_and_mode(path, directory, os.fstat(dfd))
            if st.st_size > MAX_BYTES:
                raise ManagedConfigError(
                    path,
                    "",
                    f"{st.st_size} bytes, more than the {MAX_BYTES} a configuration file may have",
                    "a configuration is a few KiB of JSON: check that the path names the configuration file",
                )
            # at most one byte past the cap: the file may grow after fstat
            chunks = []
            left = MAX_BYTES + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as exc:
            raise ManagedConfigError(path, "", f"cannot read: {exc.strerror}", "check the file") from None
        finally:
            os.close(fd)
    finally:
        os.close(dfd)
    data = b"".join(chunks)
    if len(data) > MAX_BYTES:
        raise ManagedConfigError(
            path,
            "",
            f"grew past the {MAX_BYTES} bytes a configuration file may have while it was read",
            "a configuration is a few KiB of JSON: check that the path names the configuration file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManagedConfigError(path, "", f"not UTF-8 text at byte {exc.start}", "save the file as UTF-8") from None


def load_managed_config(path: str = DEFAULT_PATH) -> ManagedConfig:
    """Read and validate the managed configuration file.

    Args:
        path: the file; :data:`DEFAULT_PATH` by default.

    Returns:
        The configuration; the defaults (eBPF enabled, degrade) when the
        file does not exist.

    Raises:
        ManagedConfigError: (a ConfigError) malformed JSON (nested too
            deeply or a number too long included), an unknown key, a wrong
            type or value, a pid exclusion, a file larger than
            :data:`MAX_BYTES`, a symlink, or a file or directory that others
            could have written. The message names the file, the key and the
            fix.
    """
    text = _read_secure(path)
    if text is None:
        return ManagedConfig(path=path)
    parsed = _validate(path, _parse_json(path, text))
    return ManagedConfig(
        ebpf_enabled=parsed.features.ebpf == "enabled",
        fail_closed=parsed.provider.fail_mode == "fail-closed",
        sensor=parsed.sensor,
        path=path,
    )


def _rewrite(path: str, mutate: Callable[[dict[str, Any]], None]) -> None:
    """Change the file's document and replace the file atomically (a
    temporary file in the same directory, fsync, rename) with mode 0600, or
    the old file's if stricter, creating the directory if missing. The
    result is validated first: nothing invalid is ever written. A symlink is
    refused, not replaced by a file."""
    text = _read_secure(path)
    doc: Any = {} if text is None else _parse_json(path, text)
    if not isinstance(doc, dict):
        raise ManagedConfigError(
            path, "(top level)", f"expected object, got {type(doc).__name__}", "make the file a JSON object"
        )
    mutate(doc)
    _validate(path, doc)
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    opened = _open_dir(path)
    if opened is None:
        raise ManagedConfigError(path, "", "its directory vanished while it was written", "write it again")
    dfd, directory = opened
    try:
        # the temporary file and the rename go through this fd: the
        # directory checked is the one written
        _check_owner_and_mode(path, directory, os.fstat(dfd))
        name = os.path.basename(path)
        try:
            old: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and stat.S_ISLNK(old.st_mode):
            raise _symlink_error(path, name, dfd)
        mode = 0o600 if old is None else stat.S_IMODE(old.st_mode) & 0o600
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
        try:
            try:
                os.fchmod(fd, mode)  # exactly mode, whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _section(path: str, doc: dict[str, Any], key: str) -> dict[str, Any]:
    section = doc.setdefault(key, {})
    if not isinstance(section, dict):
        raise ManagedConfigError(path, key, f"expected object, got {type(section).__name__}", "make it a JSON object")
    return section


def write_feature(path: str, enabled: bool) -> None:
    """Set ``features.ebpfSupplementaryEventProvider``, keeping every other key.

    Raises:
        ManagedConfigError: the existing file is unsafe (see
            :func:`load_managed_config`), not JSON, or its ``features`` is not
            an object; nothing is written then.
        OSError: the directory cannot be written.
    """

    def mutate(doc: dict[str, Any]) -> None:
        _section(path, doc, "features")[FEATURE_KEY] = "enabled" if enabled else "disabled"

    _rewrite(path, mutate)


def write_exclusions(path: str, rules: Sequence[Exclusion]) -> None:
    """Replace ``sensor.exclusions``, keeping every other key.

    Raises:
        ManagedConfigError: as for write_feature, or a rule is an
            ``ExcludePid`` (a pid is not kept in the file: it names one
            process of one boot; use ``Sensor.exclude`` at run time, or
            exclude by executable); nothing is written then.
    """
    _reject_pid_rules(path, rules)

    def mutate(doc: dict[str, Any]) -> None:
        _section(path, doc, "sensor")["exclusions"] = msgspec.to_builtins(list(rules))

    _rewrite(path, mutate)


class ConfigWatcher:
    """Keeps the last valid managed configuration in force across reloads.

    Args:
        path: the file; :data:`DEFAULT_PATH` by default.

    The constructor loads the file. If that fails, the defaults are in force
    and the error is in :attr:`last_error` (and logged); a later successful
    :meth:`reload` replaces them. Call :meth:`reload` on SIGHUP, or
    :meth:`reload_if_changed` periodically: it never raises.

    A failed load is logged as a warning once per change of the file (or of
    its directory's owner and mode), not on every poll or reload that finds
    the same file with the same error.

    Attributes:
        current: the configuration in force.
        last_error: the error of the last failed load (a ManagedConfigError:
            what is wrong with the file and the fix), None after a success.
    """

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        self.current = ManagedConfig(path=path)
        self.last_error: ConfigError | None = None
        self._signature: tuple[int, ...] | None = None
        self._logged: tuple[tuple[int, ...] | None, str] | None = None
        try:
            self.reload()
        except ConfigError:
            pass

    def _stat_signature(self) -> tuple[int, ...] | None:
        try:
            # the name itself, not what it links to: replacing a refused
            # symlink with the real file is a change
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return None
        try:
            # a refused directory fixed with chmod or chown is a change too
            d = os.stat(os.path.dirname(self.path) or ".")
            parent: tuple[int, ...] = (d.st_dev, d.st_ino, d.st_mode, d.st_uid)
        except OSError:
            parent = ()
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid, *parent)

    def reload(self) -> ManagedConfig:
        """Load the file again; on success it is in force.

        Returns:
            The new configuration in force.

        Raises:
            ConfigError: the file is invalid; the previous configuration stays
                in force and the error is kept in :attr:`last_error`.
        """
        signature = self._stat_signature()
        try:
            config = load_managed_config(self.path)
        except ConfigError as exc:
            self._signature = signature
            self.last_error = exc
            if self._logged != (signature, str(exc)):
                self._logged = (signature, str(exc))
                log.warning("%s; keeping the previous configuration in force", exc)
            raise
        self._signature = signature
        self._logged = None
        self.current = config
        self.last_error = None
        return config

    def reload_if_changed(self) -> bool:
        """Reload when the file changed (appeared, vanished, or was rewritten).

        Never raises: errors are kept in :attr:`last_error` (and logged once
        per change) and the previous configuration stays in force.

        Returns:
            True when the configuration in force changed.
        """
        if self._stat_signature() == self._signature:
            return False
        before = self.current
        try:
            self.reload()
        except ConfigError:
            return False
        return self.current != before
