# SPDX-License-Identifier: Apache-2.0
"""Executable hashes, off the delivery path.

At an exec the consumer opens ``/proc/PID/exe``: while the process lives
that is the very file it executed, even after the path was renamed over or
unlinked. The fd and the file's identity (device, inode, size, mtime,
ctime) go to a worker thread, which reads and hashes the file and checks
the identity again after reading. Hashes are cached by identity, so an
executable run a thousand times is read once, and a file rewritten in place
(new size, mtime or ctime) is read again. Budgets bound the work: files and
bytes per second, and a largest file size; a request over them gets no hash
and says why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

from ..events._base import ExeHash
from ._procfs import read_stat

__all__ = ["ALGORITHMS", "HashResult", "Hasher", "Identity"]

log = logging.getLogger("ebpfsensor")

#: the digests ExeHash carries
ALGORITHMS = ("sha256", "sha1", "md5")
_CHUNK = 1 << 20


class Identity(NamedTuple):
    """What names a file's content: a change to any of these is a new file."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


class HashResult(NamedTuple):
    """A finished job: for whom, and the hash or why there is none."""

    token: object
    digest: ExeHash | None
    reason: str


class _Job(NamedTuple):
    fd: int
    identity: Identity
    token: object


class _Bucket:
    """A token bucket: rate per second, holding at most one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = time.monotonic()

    def take(self, n: float) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        # a file larger than one second's worth passes when the bucket is full
        if self.tokens >= min(n, self.rate):
            self.tokens -= n
            return True
        return False


class Hasher:
    """Hashes executables on a worker thread.

    Args:
        algorithms: digests to compute, among :data:`ALGORITHMS`.
        max_file_bytes: a larger file is not hashed (``too_large``).
        files_per_s: files read per second, at most (``budget``).
        bytes_per_s: bytes read per second, at most (``budget``).
        cache_entries: hashes kept by file identity.

    :meth:`request` is called by the consumer's thread; results come back
    through :meth:`results`, on the same thread.
    """

    def __init__(
        self,
        algorithms: tuple[str, ...] = ("sha256",),
        *,
        max_file_bytes: int = 128 << 20,
        files_per_s: float = 100,
        bytes_per_s: float = 256 << 20,
        cache_entries: int = 8192,
    ) -> None:
        bad = [a for a in algorithms if a not in ALGORITHMS]
        if bad or not algorithms:
            raise ValueError(f"hash algorithms {bad or 'none'}: choose among {', '.join(ALGORITHMS)}")
        self.algorithms = tuple(a for a in ALGORITHMS if a in algorithms)
        self.max_file_bytes = max_file_bytes
        self._files = _Bucket(files_per_s)
        self._bytes = _Bucket(bytes_per_s)
        self._cache: OrderedDict[Identity, ExeHash] = OrderedDict()
        self._cache_entries = cache_entries
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Job, ExeHash | None, str, int]] = queue.SimpleQueue()
        # identity -> tokens waiting for it: a file is read once however many
        # processes run it meanwhile
        self._pending: dict[Identity, list[object]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.hashed = self.bytes = self.cached = self.cache_evictions = 0
        self.refused: dict[str, int] = {}

    # --- the consumer's side ------------------------------------------------------------

    def refuse(self, reason: str) -> tuple[None, str]:
        """Count a request left without a hash."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return None, reason

    def request(
        self, pid: int, start_ticks: int, exec_wall_ns: int, token: object, *, memfd: bool = False
    ) -> tuple[ExeHash | None, str]:
        """The hash of what process pid executed: now when cached, else
        later through :meth:`results` (``pending``), or None and why not.

        Args:
            pid: the process, which has just exec'd.
            start_ticks: its start time in clock ticks, to check the pid
                still names it once its exe is open.
            exec_wall_ns: when it exec'd, Unix time in ns: a file changed
                after that is not what it executed (``replaced``).
            token: handed back with the result.
            memfd: the image is a memfd, which anyone holding it may
                rewrite: not hashed.
        """
        if memfd:
            return self.refuse("memfd")
        try:
            fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return self.refuse("gone")
        keep = False
        try:
            st = os.fstat(fd)
            if _start_ticks(pid) != start_ticks:
                return self.refuse("gone")  # the pid names another process now
            ident = Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            hit = self._cache.get(ident)
            if hit is not None:
                self._cache.move_to_end(ident)
                self.cached += 1
                return hit, ""
            if max(st.st_mtime_ns, st.st_ctime_ns) > exec_wall_ns:
                return self.refuse("replaced")
            if st.st_size > self.max_file_bytes:
                return self.refuse("too_large")
            waiting = self._pending.get(ident)
            if waiting is not None:
                waiting.append(token)
                return None, "pending"
            if not (self._files.take(1) and self._bytes.take(st.st_size)):
                return self.refuse("budget")
            self._pending[ident] = [token]
            self._start()
            self._jobs.put(_Job(fd, ident, token))
            keep = True
            return None, "pending"
        finally:
            if not keep:
                os.close(fd)

    def results(self) -> list[HashResult]:
        """The jobs finished since the last call, one result per request."""
        out: list[HashResult] = []
        while True:
            try:
                job, digest, reason, nbytes = self._done.get_nowait()
            except queue.Empty:
                return out
            tokens = self._pending.pop(job.identity, [job.token])
            if digest is not None:
                self.hashed += 1
                self.bytes += nbytes
                self._cache[job.identity] = digest
                while len(self._cache) > self._cache_entries:
                    self._cache.popitem(last=False)
                    self.cache_evictions += 1
            else:
                self.refused[reason] = self.refused.get(reason, 0) + len(tokens)
            out += [HashResult(t, digest, reason) for t in tokens]

    @property
    def queued(self) -> int:
        """Files waiting for the worker."""
        return len(self._pending)

    def cache_size(self) -> int:
        """Hashes held in the cache."""
        return len(self._cache)

    # --- the worker --------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._work, name="ebpfsensor-hasher", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                digest, reason, nbytes = self._hash(job)
            except OSError as exc:
                log.debug("hashing fd %d failed: %s", job.fd, exc)
                digest, reason, nbytes = None, "unreadable", 0
            finally:
                os.close(job.fd)
            self._done.put((job, digest, reason, nbytes))

    def _hash(self, job: _Job) -> tuple[ExeHash | None, str, int]:
        hashers = [hashlib.new(a) for a in self.algorithms]
        offset = 0
        while True:
            chunk = os.pread(job.fd, _CHUNK, offset)
            if not chunk:
                break
            for h in hashers:
                h.update(chunk)
            offset += len(chunk)
            if offset > job.identity.size:
                break
        st = os.fstat(job.fd)
        if Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != job.identity or (
            offset != job.identity.size
        ):
            return None, "replaced", offset
        return ExeHash(**{a: h.hexdigest() for a, h in zip(self.algorithms, hashers, strict=True)}), "", offset

    def close(self) -> None:
        """Stop the worker; files still queued are closed unread. Idempotent."""
        self._closed = True
        thread, self._thread = self._thread, None
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                os.close(job.fd)
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        # whatever the worker finished is in _done: its fds are closed
        self._pending.clear()


def _start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks, or None when it is gone."""
    stat = read_stat(pid)
    return stat[4] if stat is not None else None
