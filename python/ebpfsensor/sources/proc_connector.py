# SPDX-License-Identifier: Apache-2.0
"""Process exec/fork/exit without eBPF: the kernel's netlink process connector.

A fallback provider for kernels where eBPF is disabled, unsupported or
deny-listed. It listens on NETLINK_CONNECTOR (CN_IDX_PROC) and turns
PROC_EVENT_FORK/EXEC/EXIT into the same Structs the eBPF path produces
(:class:`~ebpfsensor.events.ProcessExec`, ``ProcessFork``, ``ProcessExit``).
It needs root (CAP_NET_ADMIN in the initial user namespace), a kernel with
CONFIG_PROC_EVENTS, and must run in the initial network namespace.

The connector only says *which* process did what; everything else is read
from /proc when the event is received, so it is what /proc says then, not
at the instant of the event. A process (or its parent) that is already gone
cannot be read; a small cache, filled at fork and exec, supplies what was
known about it. Where nothing is known the fields hold these neutral values:

- strings (``exe``, ``cwd``, ``parent_exe``, ``comm``, ``tty``, ...): ``""``,
  ``argv``: ``[]``; e.g. a short-lived process that exited before its exec
  event was read has an empty ``exe`` and ``argv``.
- uids and gids: 4294967295 (``(uid_t)-1``, "no id"), as are ``loginuid``
  and ``sessionid`` when unset, like the eBPF path.
- ``cgroup_id``, ``start_time_ns``, ``child_start_time_ns``, namespace
  inodes, ``ppid``: 0.

Differences from the eBPF path, always:

- ``start_time_ns`` comes from /proc/PID/stat (clock ticks since boot,
  usually 10 ms resolution), not the kernel's nanoseconds.
- ``ProcessExec.old_tid`` is the tid (the connector does not report the
  pre-exec tid); ``*_truncated`` flags are False except ``argv_truncated``
  (argv is cut at ARGV_LEN - 1 bytes, as in BPF).
- ``ProcessFork.clone_flags``: FORK_CLONE_THREAD for a thread, otherwise
  the FORK_CLONE_NEW* namespace flags found by comparing the child's
  /proc/PID/ns with the parent's; sharing flags (CLONE_VM, ...) are unknown
  and 0.
- ``ProcessExit``: the connector reports every thread's exit; the exit of
  the thread-group leader (tid == pid) is taken as the process's, so a
  leader that exits before its other threads ends the process early.
  ``exit_signal`` is decoded from the wait status (``exit_code & 0x7f``),
  not the connector's ``exit_signal``, which is the signal sent to the
  parent (SIGCHLD).
- " (deleted)" is stripped from exe paths, as the eBPF path never adds it;
  ``exe_deleted`` (the image has no links left) and ``exe_memfd`` (the
  image is a memfd, ``/memfd:NAME``) say what it meant.
- ``container_id`` is parsed from the cgroup path in /proc/PID/cgroup.

Timestamps are CLOCK_BOOTTIME ns like the eBPF path: the connector stamps
events with ktime_get_ns() (CLOCK_MONOTONIC), converted by adding the
current BOOTTIME - MONOTONIC offset (the time spent suspended).

Nothing is lost silently: a receive buffer overrun (ENOBUFS) is counted in
``overruns``, and messages missing from the connector's per-CPU sequence
numbers are counted in ``lost``; both are logged and in :meth:`stats`.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import time
from collections import OrderedDict
from typing import NamedTuple

from .._ffi import lib
from .._text import fsdecode
from ..errors import ConfigError, NotSupportedError, PrivilegeError
from ..events import Event, ProcessExec, ProcessExit, ProcessFork
from ..host.containers import find_cgroup2_root, parse_container_id
from ..status import KindHealth, ProcConnectorStats

__all__ = ["ProcConnectorSource", "ProcConnectorStats"]

log = logging.getLogger("ebpfsensor")

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2

NLMSG_DONE = 3

PROC_EVENT_NONE = 0x00000000
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_UID = 0x00000004
PROC_EVENT_GID = 0x00000040
PROC_EVENT_COMM = 0x00000200
PROC_EVENT_EXIT = 0x80000000

UNKNOWN_ID = 0xFFFFFFFF
RCVBUF_BYTES = 8 << 20
CACHE_ENTRIES = 32768
MAX_BATCH = 4096

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # id.idx, id.val, seq, ack, len, flags
_PROC_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns; event_data follows
_FORK = struct.Struct("=iiii")  # parent_pid, parent_tgid, child_pid, child_tgid
_EXEC = struct.Struct("=ii")  # process_pid, process_tgid
_ID = struct.Struct("=iiII")  # process_pid, process_tgid, ruid/rgid, euid/egid
_COMM = struct.Struct("=ii16s")
_EXIT_OLD = struct.Struct("=iiII")  # older kernels: no parent fields
_EXIT = struct.Struct("=iiIIii")  # + parent_pid, parent_tgid
_ACK = struct.Struct("=I")
_NS_FLAGS = {
    "mnt": lib.FORK_CLONE_NEWNS,
    "uts": lib.FORK_CLONE_NEWUTS,
    "ipc": lib.FORK_CLONE_NEWIPC,
    "net": lib.FORK_CLONE_NEWNET,
    "cgroup": lib.FORK_CLONE_NEWCGROUP,
    "user": lib.FORK_CLONE_NEWUSER,
    "pid": lib.FORK_CLONE_NEWPID,
}
_ARGV_MAX = lib.ARGV_LEN - 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class _Known(NamedTuple):
    """What is remembered about a process for when /proc no longer has it."""

    start_time_ns: int
    comm: str
    uid: int
    gid: int
    ppid: int
    cgroup_id: int
    container_id: str


class _Header(NamedTuple):
    """The fields every event has (the eBPF path's struct task_ctx)."""

    cgroup_id: int
    start_time_ns: int
    pid: int
    tid: int
    ppid: int
    uid: int
    gid: int
    comm: str
    container_id: str


class _Task(NamedTuple):
    """The common header fields read from /proc."""

    start_time_ns: int
    comm: str
    ppid: int
    uid: int
    gid: int
    cgroup_id: int
    container_id: str
    tty_nr: int
    ids: tuple[int, ...]  # uid, euid, suid, fsuid, gid, egid, sgid, fsgid


# --- /proc --------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _exe(path: str) -> tuple[str, bool, bool]:
    """An image's path (as the eBPF path gives it), deleted, memfd."""
    target = _readlink(path)
    if target is None:
        return "", False, False
    try:
        deleted = os.stat(path).st_nlink == 0
    except OSError:
        deleted = target.endswith(" (deleted)")
    if deleted:
        target = target.removesuffix(" (deleted)")
    return target, deleted, target.startswith("/memfd:")


def _int_file(path: str, default: int) -> int:
    raw = _read(path)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def _parse_stat(raw: bytes) -> tuple[str, int, int, int] | None:
    """comm, ppid, tty_nr, start time (ns) from /proc/PID/stat."""
    open_, close = raw.find(b"("), raw.rfind(b")")
    if open_ < 0 or close < open_:
        return None
    fields = raw[close + 2 :].split()
    try:
        # fields[n - 3] is stat field n: 4 ppid, 7 tty_nr, 22 starttime
        return (
            fsdecode(raw[open_ + 1 : close]),
            int(fields[1]),
            int(fields[4]),
            int(fields[19]) * 1_000_000_000 // _CLK_TCK,
        )
    except (IndexError, ValueError):
        return None


def _parse_ids(raw: bytes) -> tuple[int, ...]:
    """uid, euid, suid, fsuid, gid, egid, sgid, fsgid from /proc/PID/status."""
    uids = gids = [UNKNOWN_ID] * 4
    for line in raw.split(b"\n"):
        if line.startswith(b"Uid:"):
            uids = [int(x) for x in line.split()[1:5]]
        elif line.startswith(b"Gid:"):
            gids = [int(x) for x in line.split()[1:5]]
            break
    return (*uids, *gids)


def _tty_name(tty_nr: int) -> str:
    """The kernel's tty->name (as the eBPF path reports it) for a device number."""
    if tty_nr == 0:
        return ""
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:  # UNIX98 pty slaves
        return f"pts{(major - 136) * 256 + minor}"
    target = _readlink(f"/sys/dev/char/{major}:{minor}")
    return os.path.basename(target) if target else ""


# --- the provider ----------------------------------------------------------------------


class ProcConnectorSource:
    """Process lifecycle events from the netlink process connector.

    Args:
        kinds: the kinds to deliver (a subset of :attr:`available_kinds`);
            None for all.
        report_threads: also deliver thread creation and thread exits.
        rcvbuf_bytes: the socket's receive buffer; events arriving while it
            is full are lost (and counted).

    Use as a context manager, or call :meth:`start` and :meth:`close`. Wait
    with :meth:`poll`, or register :meth:`fileno` with a selector or
    ``loop.add_reader`` and call ``poll(0)`` when it is readable.

    Raises:
        ConfigError: (from __init__) an unknown kind.
        NotSupportedError: (from start) the kernel has no process connector.
        PrivilegeError: (from start) not allowed to listen (needs root).
    """

    name = "proc_connector"
    available_kinds = frozenset({"process_exec", "process_fork", "process_exit"})

    def __init__(
        self, kinds: frozenset[str] | None = None, report_threads: bool = False, *, rcvbuf_bytes: int = RCVBUF_BYTES
    ) -> None:
        if kinds is not None:
            unknown = sorted(set(kinds) - self.available_kinds)
            if unknown:
                raise ConfigError(
                    f"kinds: {', '.join(unknown)} not available from the process connector;"
                    f" available: {', '.join(sorted(self.available_kinds))}"
                )
        self.kinds = self.available_kinds if kinds is None else frozenset(kinds)
        self.report_threads = report_threads
        self.rcvbuf_bytes = rcvbuf_bytes
        self._sock: socket.socket | None = None
        self._pending: list[Event] = []
        self._known: OrderedDict[int, _Known] = OrderedDict()
        self._last_seq: dict[int, int] = {}
        self._cgroot = find_cgroup2_root()
        self._ack_cookie = (os.getpid() << 8) & 0xFFFFFFFF
        self._awaiting_ack = False
        self.delivered = self.filtered = self.lost = self.overruns = self.undecodable = self.incomplete = 0

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> ProcConnectorSource:
        """Open the connector socket and subscribe; idempotent.

        Raises:
            NotSupportedError: no NETLINK_CONNECTOR or no process events.
            PrivilegeError: the kernel refused the subscription.
        """
        if self._sock is not None:
            return self
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_CONNECTOR)
        except OSError as exc:
            raise NotSupportedError(
                "netlink process connector",
                "",
                f"{exc.strerror}; the kernel needs CONFIG_CONNECTOR and CONFIG_PROC_EVENTS",
            ) from exc
        self._sock = sock
        try:
            self._subscribe(sock)
        except BaseException:
            self.close()
            raise
        return self

    def _subscribe(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, self.rcvbuf_bytes)  # SO_RCVBUFFORCE, root only
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
        try:
            sock.bind((0, CN_IDX_PROC))
        except PermissionError as exc:
            err = exc.errno or errno.EPERM
            raise PrivilegeError(
                err, os.strerror(err), "listen", "process connector", "needs root (CAP_NET_ADMIN)"
            ) from exc
        self._awaiting_ack = True
        self._send_op(sock, PROC_CN_MCAST_LISTEN)
        # the kernel answers on the multicast group; events may arrive first
        end = time.monotonic() + 1.0
        while self._awaiting_ack and time.monotonic() < end:
            self._pending.extend(self._drain(max(0.0, end - time.monotonic())))
        if self._awaiting_ack:
            log.debug("process connector: no acknowledgement of the subscription; assuming it took effect")
            self._awaiting_ack = False

    def _send_op(self, sock: socket.socket, op: int) -> None:
        payload = struct.pack("=I", op)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, self._ack_cookie, len(payload), 0)
        nlh = _NLMSGHDR.pack(_NLMSGHDR.size + len(cn) + len(payload), NLMSG_DONE, 0, 0, 0)
        sock.sendto(nlh + cn + payload, (0, 0))

    def kind_health(self, kind: str) -> KindHealth:
        """Every kind this source was asked for is live while it runs."""
        if kind not in self.kinds:
            return KindHealth(False, "", "not provided by the process connector")
        if self._sock is None:
            return KindHealth(False, "", "the process connector is not running")
        return KindHealth(True, self.name, "")

    def fileno(self) -> int:
        """The socket's fd: readable when events are waiting."""
        if self._sock is None:
            raise ValueError("the process connector source is not started; call start()")
        return self._sock.fileno()

    def close(self) -> None:
        """Unsubscribe and close the socket; idempotent."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            # kernels before 6.6 count listeners only through LISTEN/IGNORE
            self._send_op(sock, PROC_CN_MCAST_IGNORE)
        except OSError:
            pass
        finally:
            sock.close()

    def __enter__(self) -> ProcConnectorSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- events -------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Wait up to timeout seconds for events and return those available.

        Raises:
            ValueError: the provider is not started.
        """
        if self._sock is None:
            raise ValueError("the process connector source is not started; call start()")
        out, self._pending = self._pending, []
        out.extend(self._drain(0.0 if out else timeout))
        self.delivered += len(out)
        return out

    def stats(self) -> ProcConnectorStats:
        """The loss and delivery counters."""
        return ProcConnectorStats(
            self.delivered, self.filtered, self.lost, self.overruns, self.undecodable, self.incomplete
        )

    def _drain(self, timeout: float) -> list[Event]:
        sock = self._sock
        assert sock is not None
        out: list[Event] = []
        if timeout > 0:
            ready, _, _ = select.select([sock], [], [], timeout)
            if not ready:
                return out
        for _ in range(MAX_BATCH):
            try:
                data, (sender, _groups) = sock.recvfrom(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                log.warning(
                    "process connector: receive buffer overrun, events lost (%d overruns so far)", self.overruns
                )
                continue
            if sender != 0:
                continue  # only the kernel speaks on this group
            self._parse(data, out)
        return out

    def _parse(self, data: bytes, out: list[Event]) -> None:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size or offset + length > len(data):
                self.undecodable += 1
                return
            if mtype == NLMSG_DONE:  # the connector sends every message as NLMSG_DONE
                self._message(data[offset + _NLMSGHDR.size : offset + length], out)
            offset += (length + 3) & ~3

    def _message(self, body: bytes, out: list[Event]) -> None:
        if len(body) < _CN_MSG.size + _PROC_EVENT.size:
            self.undecodable += 1
            return
        idx, val, seq, ack, size, _flags = _CN_MSG.unpack_from(body, 0)
        if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC):
            return
        ev = body[_CN_MSG.size : _CN_MSG.size + size]
        if len(ev) < _PROC_EVENT.size:
            self.undecodable += 1
            return
        what, cpu, mono_ns = _PROC_EVENT.unpack_from(ev, 0)
        data = ev[_PROC_EVENT.size :]
        if what == PROC_EVENT_NONE:
            self._ack(ack, data)
            return
        self._count_gap(cpu, seq)
        ts_ns = mono_ns + time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        try:
            if what == PROC_EVENT_FORK:
                parent_pid, parent_tgid, child_pid, child_tgid = _FORK.unpack_from(data)
                self._fork(out, ts_ns, parent_pid, parent_tgid, child_pid, child_tgid)
            elif what == PROC_EVENT_EXEC:
                pid, tgid = _EXEC.unpack_from(data)
                self._exec(out, ts_ns, pid, tgid)
            elif what == PROC_EVENT_EXIT:
                parent_tgid = 0
                if len(data) >= _EXIT.size:
                    pid, tgid, code, _signal, _ppid, parent_tgid = _EXIT.unpack_from(data)
                else:
                    pid, tgid, code, _signal = _EXIT_OLD.unpack_from(data)
                self._exit(out, ts_ns, pid, tgid, code, parent_tgid)
            elif what in (PROC_EVENT_UID, PROC_EVENT_GID):
                pid, tgid, real, _effective = _ID.unpack_from(data)
                self._id_change(what, pid, tgid, real)
            elif what == PROC_EVENT_COMM:
                pid, tgid, comm = _COMM.unpack_from(data)
                self._comm_change(pid, tgid, comm)
        except struct.error:
            self.undecodable += 1

    def _ack(self, ack: int, data: bytes) -> None:
        if not self._awaiting_ack or ack != (self._ack_cookie + 1) & 0xFFFFFFFF:
            return  # another listener's acknowledgement
        self._awaiting_ack = False
        err = _ACK.unpack_from(data)[0] if len(data) >= _ACK.size else 0
        if err in (errno.EPERM, errno.EACCES):
            raise PrivilegeError(err, os.strerror(err), "listen", "process connector", "needs root (CAP_NET_ADMIN)")
        if err:
            raise NotSupportedError("netlink process connector", "", f"subscription refused: {os.strerror(err)}")

    def _count_gap(self, cpu: int, seq: int) -> None:
        # the kernel numbers proc events per CPU; a gap is messages we lost
        last = self._last_seq.get(cpu)
        self._last_seq[cpu] = seq
        if last is None:
            return
        gap = (seq - last - 1) & 0xFFFFFFFF
        if 0 < gap < 1 << 31:
            self.lost += gap
            log.warning("process connector: %d events lost on CPU %d (%d lost so far)", gap, cpu, self.lost)

    # --- enrichment ------------------------------------------------------------------------

    def _task(self, tgid: int, tid: int) -> _Task | None:
        base = f"/proc/{tgid}" if tid == tgid else f"/proc/{tgid}/task/{tid}"
        raw = _read(f"{base}/stat")
        parsed = _parse_stat(raw) if raw else None
        status = _read(f"{base}/status")
        if parsed is None or status is None:
            return None
        comm, ppid, tty_nr, start = parsed
        if tid != tgid:
            leader = _read(f"/proc/{tgid}/stat")
            leader_stat = _parse_stat(leader) if leader else None
            start = leader_stat[3] if leader_stat else start
        ids = _parse_ids(status)
        cgroup_id, container_id = self._cgroup(tgid)
        return _Task(start, comm, ppid, ids[0], ids[4], cgroup_id, container_id, tty_nr, ids)

    def _cgroup(self, pid: int) -> tuple[int, str]:
        """The cgroup v2 id (its directory's inode) and the container id."""
        raw = _read(f"/proc/{pid}/cgroup") or b""
        for line in raw.split(b"\n"):
            if line.startswith(b"0::"):
                path = fsdecode(line[3:])
                try:
                    cgroup_id = os.stat(os.path.join(self._cgroot, path.lstrip("/"))).st_ino if self._cgroot else 0
                except OSError:
                    cgroup_id = 0
                return cgroup_id, parse_container_id(path)
        return 0, ""

    def _remember(self, tgid: int, known: _Known) -> None:
        self._known[tgid] = known
        self._known.move_to_end(tgid)
        if len(self._known) > CACHE_ENTRIES:
            self._known.popitem(last=False)

    def _common(self, tgid: int, tid: int, ppid_hint: int = 0) -> tuple[_Header, _Task | None]:
        """The header fields: from /proc if the task is there, else from the cache."""
        task = self._task(tgid, tid)
        if task is not None:
            if tid == tgid:
                self._remember(
                    tgid,
                    _Known(
                        task.start_time_ns, task.comm, task.uid, task.gid, task.ppid, task.cgroup_id, task.container_id
                    ),
                )
            return _Header(
                task.cgroup_id,
                task.start_time_ns,
                tgid,
                tid,
                task.ppid,
                task.uid,
                task.gid,
                task.comm,
                task.container_id,
            ), task
        known = self._known.get(tgid) or _Known(0, "", UNKNOWN_ID, UNKNOWN_ID, ppid_hint, 0, "")
        ppid = ppid_hint or known.ppid
        header = _Header(
            known.cgroup_id, known.start_time_ns, tgid, tid, ppid, known.uid, known.gid, known.comm, known.container_id
        )
        return header, None

    def _namespaces(self, pid: int) -> dict[str, int]:
        out = {}
        for name in _NS_FLAGS:
            try:
                out[name] = os.stat(f"/proc/{pid}/ns/{name}").st_ino
            except OSError:
                out[name] = 0
        return out

    def _fork(
        self, out: list[Event], ts_ns: int, parent_pid: int, parent_tgid: int, child_pid: int, child_tgid: int
    ) -> None:
        is_thread = child_pid != child_tgid
        if is_thread and not self.report_threads:
            self.filtered += 1
            return
        common, task = self._common(parent_tgid, parent_pid)
        child_stat = _read(f"/proc/{child_tgid}/stat")
        parsed = _parse_stat(child_stat) if child_stat else None
        child_start = parsed[3] if parsed else 0
        if not is_thread:
            # the child starts with its parent's credentials and cgroup
            self._remember(
                child_tgid,
                _Known(
                    child_start, common.comm, common.uid, common.gid, parent_tgid, common.cgroup_id, common.container_id
                ),
            )
        if "process_fork" not in self.kinds:
            return
        flags = 0
        if is_thread:
            flags = lib.FORK_CLONE_THREAD
        elif parsed is not None:
            theirs, ours = self._namespaces(child_tgid), self._namespaces(parent_tgid)
            for name, flag in _NS_FLAGS.items():
                if theirs[name] and ours[name] and theirs[name] != ours[name]:
                    flags |= flag
        if task is None or parsed is None:
            self.incomplete += 1
        out.append(
            ProcessFork(
                ts_ns=ts_ns,
                child_start_time_ns=child_start,
                clone_flags=flags,
                child_pid=child_tgid,
                child_tid=child_pid,
                **common._asdict(),
            )
        )

    def _exec(self, out: list[Event], ts_ns: int, pid: int, tgid: int) -> None:
        common, task = self._common(tgid, pid)
        if "process_exec" not in self.kinds:
            return
        base = f"/proc/{tgid}"
        if task is None:
            self.incomplete += 1
            common = common._replace(comm="")  # what is known is from before the exec
            ids: tuple[int, ...] = (common.uid,) * 4 + (common.gid,) * 4
            tty_nr = 0
        else:
            ids, tty_nr = task.ids, task.tty_nr
        argv_raw = (_read(f"{base}/cmdline") or b"") if task else b""
        argv_truncated = len(argv_raw) > _ARGV_MAX
        argv_raw = argv_raw[:_ARGV_MAX]
        # every argument ends with a NUL; an empty last argument is kept
        argv = [fsdecode(a) for a in argv_raw.removesuffix(b"\0").split(b"\0")] if argv_raw else []
        ns = self._namespaces(tgid) if task else dict.fromkeys(_NS_FLAGS, 0)
        exe, exe_deleted, exe_memfd = _exe(f"{base}/exe") if task else ("", False, False)
        ppid = common.ppid
        parent_stat = _read(f"/proc/{ppid}/stat") if ppid else None
        parent = _parse_stat(parent_stat) if parent_stat else None
        out.append(
            ProcessExec(
                ts_ns=ts_ns,
                euid=ids[1],
                egid=ids[5],
                suid=ids[2],
                sgid=ids[6],
                fsuid=ids[3],
                fsgid=ids[7],
                loginuid=_int_file(f"{base}/loginuid", UNKNOWN_ID) if task else UNKNOWN_ID,
                sessionid=_int_file(f"{base}/sessionid", UNKNOWN_ID) if task else UNKNOWN_ID,
                pid_ns=ns["pid"],
                mnt_ns=ns["mnt"],
                net_ns=ns["net"],
                user_ns=ns["user"],
                old_tid=pid,
                argv_truncated=argv_truncated,
                exe_truncated=False,
                cwd_truncated=False,
                parent_exe_truncated=False,
                parent_comm=parent[0] if parent else "",
                tty=_tty_name(tty_nr),
                exe_deleted=exe_deleted,
                exe_memfd=exe_memfd,
                exe=exe,
                cwd=(_readlink(f"{base}/cwd") or "") if task else "",
                parent_exe=_exe(f"/proc/{ppid}/exe")[0] if ppid else "",
                argv=argv,
                **common._asdict(),
            )
        )

    def _exit(self, out: list[Event], ts_ns: int, pid: int, tgid: int, code: int, parent_tgid: int) -> None:
        is_thread = pid != tgid
        if is_thread and not self.report_threads:
            self.filtered += 1
            return
        known = self._known.get(tgid)
        common, task = self._common(tgid, pid, parent_tgid)
        if task is not None and known is not None and known.start_time_ns not in (0, task.start_time_ns):
            # the pid was reused before we read /proc: what we knew is right
            task = None
            common = _Header(
                known.cgroup_id,
                known.start_time_ns,
                tgid,
                pid,
                parent_tgid or known.ppid,
                known.uid,
                known.gid,
                known.comm,
                known.container_id,
            )
        if not is_thread:
            self._known.pop(tgid, None)
        if "process_exit" not in self.kinds:
            return
        if task is None:
            self.incomplete += 1
        start = common.start_time_ns
        out.append(
            ProcessExit(
                ts_ns=ts_ns,
                duration_ns=max(0, ts_ns - start) if start else 0,
                exit_code=(code >> 8) & 0xFF,
                exit_signal=code & 0x7F,
                core_dumped=bool(code & 0x80),
                is_thread=is_thread,
                **common._asdict(),
            )
        )

    def _id_change(self, what: int, pid: int, tgid: int, real: int) -> None:
        known = self._known.get(tgid)
        if known is not None and pid == tgid:
            self._known[tgid] = known._replace(uid=real) if what == PROC_EVENT_UID else known._replace(gid=real)

    def _comm_change(self, pid: int, tgid: int, comm: bytes) -> None:
        known = self._known.get(tgid)
        if known is not None and pid == tgid:
            self._known[tgid] = known._replace(comm=fsdecode(comm.split(b"\0", 1)[0]))
