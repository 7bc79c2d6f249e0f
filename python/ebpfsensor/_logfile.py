# SPDX-License-Identifier: Apache-2.0
"""The library's rotating log file, beside the `logging` records callers see.

The sensor runs as root and the log's directory (``/var/log/ebpfsensor``) sits
in a directory others may write (``/var/log`` is group-writable on Ubuntu), so
the file is created and checked as a daemon would: the directory must be a
real directory (no symlink) owned by the effective uid and writable by no one
else, and the file a regular file owned by the effective uid, with one link,
writable by no one else, opened without following a symlink. Anything else is
refused: a warning says what is wrong and how to fix it, and the sensor runs
on without its log file.
"""

from __future__ import annotations

import errno
import io
import logging
import logging.handlers
import os
import stat

log = logging.getLogger("ebpfsensor")
_handlers: dict[str, _SafeRotatingFileHandler] = {}

MAX_BYTES = 10 << 20
BACKUP_COUNT = 5
DIR_MODE = 0o750
FILE_MODE = 0o640


class _Refused(Exception):
    """The log file or its directory is not safe to write: what and the fix."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")


def _owner(uid: int) -> str:
    return "root" if uid == 0 else str(uid)


def _open_dir(directory: str) -> int:
    """The log directory, created if missing, opened and checked."""
    try:
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    except FileExistsError:
        pass  # a dangling symlink: refused below
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        try:
            st = os.lstat(directory)
        except OSError:
            raise exc from None
        if stat.S_ISLNK(st.st_mode):
            raise _Refused(
                f"its directory {directory} is a symlink (to {os.readlink(directory)})",
                f"replace it with a real directory (`rm {directory}`: the sensor creates it) "
                "or set log_file to a path in one",
            ) from None
        raise _Refused(f"{directory} is not a directory", "remove it or set log_file elsewhere") from None
    try:
        st = os.fstat(dfd)
        euid = os.geteuid()
        if st.st_uid != euid:
            raise _Refused(
                f"its directory {directory} is owned by uid {st.st_uid}, not {_owner(euid)}",
                f"run `chown {_owner(euid)} {directory}`, or remove it (the sensor creates it)",
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _Refused(
                f"its directory {directory} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})",
                f"run `chmod go-w {directory}`",
            )
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def _open_file(dfd: int, name: str, path: str) -> int:
    """The log file in the directory dfd, opened for appending and checked."""
    # O_NONBLOCK: a FIFO in its place must not block the sensor's start
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    created = True
    try:
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, FILE_MODE, dir_fd=dfd)
    except FileExistsError:
        created = False
        try:
            fd = os.open(name, flags, dir_fd=dfd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise _Refused(
                f"it is a symlink (to {os.readlink(name, dir_fd=dfd)})",
                f"remove it (`rm {path}`): the sensor creates the file",
            ) from None
    try:
        st = os.fstat(fd)
        euid = os.geteuid()
        if not stat.S_ISREG(st.st_mode):
            raise _Refused("it is not a regular file", f"remove it (`rm {path}`): the sensor creates the file")
        if st.st_uid != euid:
            raise _Refused(
                f"it is owned by uid {st.st_uid}, not {_owner(euid)}",
                f"remove it (`rm {path}`): the sensor creates the file",
            )
        if st.st_nlink != 1:
            raise _Refused(
                f"it has {st.st_nlink} links (a hard link makes it another file's name too)",
                f"remove it (`rm {path}`): the sensor creates the file",
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _Refused(
                f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})", f"run `chmod go-w {path}`"
            )
        mode = stat.S_IMODE(st.st_mode)
        if created or mode & ~FILE_MODE:
            # exactly FILE_MODE when created, whatever the umask; an older
            # file readable by others loses that
            os.fchmod(fd, FILE_MODE if created else mode & FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _SafeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose every open and rename goes through an fd
    of the checked directory, never by path (no symlink followed, and the
    directory cannot be swapped under it). A file refused at a rotation
    stops the handler, with one warning."""

    def __init__(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        self._dir_fd = _open_dir(directory)
        self._basename = os.path.basename(path)
        self.refused = False
        try:
            super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8")
        except BaseException:
            os.close(self._dir_fd)
            raise

    def _open(self) -> io.TextIOWrapper:
        fd = _open_file(self._dir_fd, self._basename, self.baseFilename)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        # the stdlib's version also stats the path: the open file is enough
        if self.stream is None:
            self.stream = self._open()
        if self.maxBytes <= 0:
            return False
        msg = f"{self.format(record)}\n"
        return os.fstat(self.stream.fileno()).st_size + len(msg.encode("utf-8")) >= self.maxBytes

    def doRollover(self) -> None:
        if self.stream:
            self.stream.close()
            self.stream = None
        # safe renames: within the fd of the directory _open_dir checked (no one else writes it), never by path
        for i in range(self.backupCount - 1, -1, -1):
            src = f"{self._basename}.{i}" if i else self._basename
            try:
                os.rename(src, f"{self._basename}.{i + 1}", src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            except FileNotFoundError:
                pass
        try:
            self.stream = self._open()
        except (_Refused, OSError) as exc:
            self.refused = True
            log.warning("log file %s unavailable after rotation: %s", self.baseFilename, _reason(exc))

    def emit(self, record: logging.LogRecord) -> None:
        # refused, or closed (the stdlib would reopen by path): nothing more
        if self.refused or self._dir_fd < 0:
            return
        try:
            if self.shouldRollover(record):
                self.doRollover()
                if self.refused:
                    return
            logging.FileHandler.emit(self, record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        # under the handler's lock, so no emit in another thread uses the fd
        # (or a new file's, reusing its number) after it is closed
        self.acquire()
        try:
            super().close()
        finally:
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
            self.release()


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _Refused) else str(getattr(exc, "strerror", None) or exc)


def enable(path: str | None) -> str | None:
    """Log the ``ebpfsensor`` loggers to a rotating file (5 x 10 MiB).

    The directory is created (mode 0750) if missing, the file (mode 0640)
    too; an existing directory or file that is a symlink, is owned by
    another uid, is writable by group or others, or (the file) has another
    hard link, is refused.

    Returns the path in use, or None when there is none (or it cannot be
    written or is refused: that is logged, not raised — a sensor does not
    stop for it).
    """
    if not path:
        return None
    old = _handlers.get(path)
    if old is not None and not old.refused:
        return path
    if old is not None:
        disable(path)
    try:
        handler = _SafeRotatingFileHandler(path)
    except (_Refused, OSError) as exc:
        log.warning("log file %s unavailable: %s", path, _reason(exc))
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # the logger's level stays the caller's: warnings (provider switches,
    # drops, unavailable hooks) by default, more if they ask for it
    log.addHandler(handler)
    _handlers[path] = handler
    return path


def disable(path: str) -> None:
    """Stop logging to path (enabled by :func:`enable`) and close it."""
    handler = _handlers.pop(path, None)
    if handler is not None:
        log.removeHandler(handler)
        handler.close()
