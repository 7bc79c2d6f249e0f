# SPDX-License-Identifier: Apache-2.0
"""Every syscall kind from kernel audit, where eBPF cannot run: the audit provider.

The provider speaks the audit netlink protocol itself (no auditd, auditctl
or libaudit). It needs root (CAP_AUDIT_CONTROL, and CAP_AUDIT_READ beside
an audit daemon), a kernel with CONFIG_AUDIT and CONFIG_AUDITSYSCALL, and
the initial user, PID and network namespaces.

**Rules.** At start it adds ``always,exit`` syscall rules keyed
:data:`KEY` for the syscalls the eBPF hooks watch for the kinds asked for
(:data:`KIND_SYSCALLS`): one rule per architecture (x86_64, plus i386 for
32-bit programs on x86_64; aarch64), and separate ones for ``kill``/``tkill``
/``tgkill`` (signal 0 left out in the kernel) and ``bpf`` (map element
access left out). Every open is audited, read or write, succeeded or failed;
the open policy (``Config.read_opens``) is applied in user space, as the
eBPF path applies it in the kernel: under "watched" a read-only open is
delivered only when the file it opened (the PATH record's device and inode)
is one of the watched files (:mod:`ebpfsensor.watched`, looked up again
every second) or the kernel refused it (EACCES, EPERM), else it is counted
as filtered. Audit still records every open: the policy does not lower
its cost in the kernel. The rules are appended after the
administrator's, whose rules are never touched; they are removed at close,
on an error in start, and, after a crash, by the next start (found by their
key with AUDIT_LIST_RULES). Audit locked in immutable mode (``enabled=2``,
``auditctl -e 2``) is detected before anything is added: the provider does
not run (:class:`AuditLockedError`), since rules added then could not be
removed before a reboot.

Audit applies the first rule that matches a syscall. Rules the
administrator adds while the provider runs come after its rules: for
syscalls they share, records carry this provider's key instead of theirs,
and its ``never`` rules (below) hide their matches for excluded processes.

**Exclusions** (``Config.exclusions``) are applied in the rules where audit
can: ``ExcludeUid`` as ``uid!=`` on every rule; ``ExcludeSelf`` (the
provider's own process, ``Config.exclude_self``) as ``pid!=`` on every
rule; ``ExcludeExecutable``
without descendants as ``exe!=`` (the first one; the others as ``never``
rules placed before the ``always`` ones), matched by the file as audit
watches it; ``ExcludePathPrefix`` as a ``never`` rule with ``dir=`` for the
calls that name one file (open, creat, mknod, unlink, rmdir, mkdir, chmod,
chown families) when the directory exists. Everything is checked again in
user space, where the other rules are applied too: names (comm), pids,
cgroups (read from /proc), descendants (followed through the parent pid of
each record, and /proc for processes seen first), executables by path, and
path prefixes on both names of a rename or link (so a file moved out of an
excluded directory is reported). Exclusions are fixed at start: the
Sensor's ``exclude()`` and ``exclusions()`` work with eBPF only.

**Where records come from.** With an audit daemon registered (AUDIT_GET's
``pid`` names a live process) the provider reads the read-only multicast
group (CAP_AUDIT_READ): the daemon keeps logging everything, ours included
under our key, and keeps its settings. With none it registers itself as the
audit daemon for the duration (AUDIT_SET ``pid``; the kernel takes the
netlink port of the socket the request comes from), because the kernel
prints every record to the kernel log when nobody receives them; its own
syscalls are then not audited. If a daemon starts meanwhile, the kernel
asks the provider to step aside (AUDIT_REPLACE): it unregisters and reads
the multicast group instead (the daemon's first attempt to register fails;
its next succeeds). If the daemon goes away, the provider registers again.

**Settings changed and restored.** ``enabled`` (set to 1 when 0), and as
audit daemon: the registration, ``backlog_limit`` (raised to
``backlog_limit`` when lower) and ``rate_limit`` (set to ``rate_limit``
records per second; 0 is no limit). Before changing anything the provider
writes what it is about to change, with the previous values, to
:data:`STATE_PATH` (``/run/ebpfsensor/audit.state``, mode 0600, JSON), and
holds an exclusive ``flock`` on it while it runs: a second provider refuses
to start. Close undoes every change and empties the file. A provider killed
with SIGKILL leaves the file (and its rules) behind, and the kernel forgets
its registration as soon as it next fails to send it a record; the next
start, finding the file, deletes the rules by key, restores the recorded
settings, and unregisters the dead process if the kernel still names it.
``/run`` is emptied at boot, when audit rules are gone too.

**Records into events.** The kernel sends each record of an event (SYSCALL,
EXECVE, CWD, PATH, SOCKADDR, OBJ_PID, CAPSET, KERN_MODULE, PROCTITLE, EOE)
as its own netlink message; they share the serial of ``audit(SEC.MS:SERIAL)``
and are assembled by serial until EOE (or for 2 s, counted ``incomplete``),
then turned into the same Structs the eBPF path delivers. Records of
syscalls the provider was not asked for (the administrator's rules) are
counted as filtered.

What audit gives and does not give, for every kind:

- common fields: ``pid``, ``ppid``, ``uid``, ``gid``, ``comm`` from the
  SYSCALL record; ``tid`` is ``pid`` (audit names the thread group only);
  ``ts_ns`` is the record's time, the kernel's coarse wall clock (its
  resolution is a tick, 1 to 10 ms, and audit writes milliseconds),
  converted to CLOCK_BOOTTIME; ``start_time_ns`` (clock-tick resolution),
  ``cgroup_id`` and ``container_id`` are read from /proc when the record
  arrives (0 and "" once the process is gone; cached for a second).
- syscall fields: ``result`` (``exit=``) and ``syscall_nr`` (the native
  number; a 32-bit call reports the native number of the same call).
  Arguments come from ``a0``..``a3``: a fifth argument (renameat2's and
  linkat's flags, fchownat's and fchmodat2's flags) is not recorded and is
  0.
- paths: ``arg_path`` is the string as passed (PATH ``name=``); ``path`` is
  it joined to the CWD record's directory, or to the directory fd's target
  read from /proc while the process lives (else the string alone), not
  normalised. ``resolved`` is always False, the ``*_truncated`` flags False
  (audit records names whole). A failed call may lack the names the
  kernel's lookup did not reach (a failed rename records only the
  directories): they are "".
- ``process_exec``: successful execs only; ``argv`` from EXECVE records (cut
  at ARGV_LEN - 1 bytes like the eBPF path), ``exe`` from SYSCALL ``exe=``
  (" (deleted)" stripped, ``exe_deleted``, ``exe_memfd`` as the process
  connector sets them), ``cwd`` from CWD, credentials, ``loginuid``
  (``auid``), ``sessionid`` (``ses``), ``tty`` from SYSCALL;
  ``parent_comm``, ``parent_exe`` and the namespace inodes from /proc ("",
  0 once gone).
- ``file_open``/``file_create``: ``ino`` and ``dev`` of the file (0 when
  the call failed), ``created`` from the PATH record's CREATE; ``flags``,
  ``mode``, ``dirfd`` from the arguments (openat2's from its OPENAT2
  record).
- ``file_rename``: ``replaced`` from the PATH record deleting the target;
  ``flags`` 0. ``file_chmod``/``file_chown`` through an fd:
  ``path`` from /proc. ``file_symlink``: ``target`` from its PATH record.
- network kinds: the address asked for (connect, bind) or the peer's
  (accept) from SOCKADDR; the socket's type, protocol and local address
  are read from a duplicate of the caller's socket (pidfd_getfd) while it
  is open, else 0 and empty.
- ``cred_change``: the ids after the call; the ids before are not recorded
  and are 4294967295, except setfsuid/setfsgid's, which the call returns;
  capability sets are 0 except capset's new sets (CAPSET record).
- ``kill``: signal 0 is not audited; signals to the caller's own process
  (OBJ_PID) are counted as filtered. ``ptrace``: the same requests as eBPF.
  ``memfd_create``: ``name`` from /proc while the fd is open. ``bpf_call``:
  ``prog_type``, ``insn_cnt`` 0 and ``prog_name`` "".
  ``module_load``: ``name`` from the KERN_MODULE record, ``args`` "",
  ``path`` from /proc. ``mount``: ``source`` and ``fstype`` "" (not
  recorded), ``target`` from PATH.
- ``process_fork`` and ``process_exit`` are not given (audit cannot see
  them cleanly): the process connector runs beside this provider for them.
- ``user_login``: the USER_* records PAM, sshd and login send, delivered as
  the login source (:mod:`.audit`) delivers them; the provider receives
  them anyway, so the Sensor does not start the login source beside it.

**Losses** are counted, never silent (:meth:`AuditProvider.stats`): the
kernel's ``lost`` counter since start (records dropped for the rate
limit, a full backlog or memory: kernel-wide, so beside an audit daemon it
counts the daemon's losses too), serial numbers never seen (events lost on
the way, counted after 5 s), receive buffer overruns (ENOBUFS), and the
time audited tasks spent waiting for a full backlog. A consumer slower
than the audited syscalls makes them wait up to the kernel's
``backlog_wait_time`` per record, as with auditd; the rate limit bounds
that, at the cost of records.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import json
import logging
import os
import platform
import select
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .. import watched
from .._ffi import lib
from .._text import fsdecode
from ..errors import ConfigError, DecodeError, EbpfSensorError, NotSupportedError, PrivilegeError
from ..events import (
    BpfCall,
    CredChange,
    DirCreate,
    Event,
    FileChmod,
    FileChown,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
    Kill,
    MemfdCreate,
    ModuleLoad,
    Mount,
    NetAccept,
    NetBind,
    NetConnect,
    NetListen,
    ProcessExec,
    Ptrace,
    Setsid,
    Umount,
)
from ..events.net import ip_text
from ..exclusions import (
    ExcludeCgroup,
    ExcludeExecutable,
    ExcludeName,
    ExcludePathPrefix,
    ExcludePid,
    ExcludeSelf,
    ExcludeUid,
    Exclusion,
    own_kernel_pid,
    resolve,
    user_dev,
)
from ..host import audit as ha
from ..host.audit import AuditRule, AuditStatus, audit_status
from ..host.containers import find_cgroup2_root, parse_container_id
from ..host.syscalls import syscall_number
from ..status import AuditKindStats, AuditProviderStats, KindHealth, SkippedExclusion
from .audit import DEFAULT_RECORD_TYPES, RECORD_TYPES, parse_record

__all__ = [
    "KEY",
    "KIND_SYSCALLS",
    "STATE_PATH",
    "AuditLockedError",
    "AuditProvider",
    "assemble",
    "build_rules",
]

log = logging.getLogger("ebpfsensor")

#: the key of every rule this provider adds (AUDIT_FILTERKEY)
KEY = "ebpfsensor"
#: what a running provider changed, for the next start after a crash
STATE_PATH = "/run/ebpfsensor/audit.state"
DEFAULT_RATE_LIMIT = 0
DEFAULT_BACKLOG_LIMIT = 8192
RCVBUF_BYTES = 64 << 20
MAX_BATCH = 8192
#: how long an event waits for its EOE record
PARTIAL_WAIT_S = 2.0
#: how long a serial number may be late before it counts as lost
GAP_WAIT_S = 5.0
#: the largest gap tracked serial by serial; a larger one is counted at once
GAP_TRACK_MAX = 100_000
STATUS_EVERY_S = 1.0
PROC_CACHE_S = 1.0
PROC_CACHE_ENTRIES = 8192
UNKNOWN_ID = 0xFFFFFFFF
AT_FDCWD = -100

#: syscalls audited for each kind: those the eBPF hooks watch
#: (sources/ebpf/hooks.py); a name an architecture lacks is left out
KIND_SYSCALLS: dict[str, tuple[str, ...]] = {
    "process_exec": ("execve", "execveat"),
    "file_open": ("open", "openat", "openat2", "creat"),
    "file_create": ("open", "openat", "openat2", "creat", "mknod", "mknodat"),
    "file_unlink": ("unlink", "unlinkat", "rmdir"),
    "dir_create": ("mkdir", "mkdirat"),
    "file_rename": ("rename", "renameat", "renameat2"),
    "file_chmod": ("chmod", "fchmod", "fchmodat", "fchmodat2"),
    "file_chown": ("chown", "lchown", "fchown", "fchownat"),
    "file_link": ("link", "linkat"),
    "file_symlink": ("symlink", "symlinkat"),
    "net_connect": ("connect",),
    "net_accept": ("accept", "accept4"),
    "net_bind": ("bind",),
    "net_listen": ("listen",),
    "cred_change": (
        "setuid",
        "setgid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "setfsuid",
        "setfsgid",
        "capset",
    ),
    "kill": ("kill", "tkill", "tgkill"),
    "setsid": ("setsid",),
    "ptrace": ("ptrace",),
    "memfd_create": ("memfd_create",),
    "bpf_call": ("bpf",),
    "module_load": ("init_module", "finit_module"),
    "mount": ("mount",),
    "umount": ("umount2",),
}
#: syscalls newer than the packaged table, numbered alike on x86_64 and aarch64
_EXTRA_NUMBERS = {"fchmodat2": 452}

#: i386 (32-bit programs on x86_64): number -> the native call it is
_I386: dict[int, str] = {
    11: "execve", 358: "execveat", 5: "open", 295: "openat", 437: "openat2", 8: "creat",
    14: "mknod", 297: "mknodat", 10: "unlink", 301: "unlinkat", 40: "rmdir", 39: "mkdir",
    296: "mkdirat", 38: "rename", 302: "renameat", 353: "renameat2", 15: "chmod", 94: "fchmod",
    306: "fchmodat", 452: "fchmodat2", 182: "chown", 16: "lchown", 95: "fchown", 298: "fchownat",
    212: "chown", 198: "lchown", 207: "fchown", 9: "link", 303: "linkat", 83: "symlink",
    304: "symlinkat", 362: "connect", 364: "accept4", 361: "bind", 363: "listen",
    102: "socketcall", 23: "setuid", 46: "setgid", 70: "setreuid", 71: "setregid",
    164: "setresuid", 170: "setresgid", 138: "setfsuid", 139: "setfsgid", 213: "setuid",
    214: "setgid", 203: "setreuid", 204: "setregid", 208: "setresuid", 210: "setresgid",
    215: "setfsuid", 216: "setfsgid", 185: "capset", 37: "kill", 238: "tkill", 270: "tgkill",
    66: "setsid", 26: "ptrace", 356: "memfd_create", 357: "bpf", 128: "init_module",
    350: "finit_module", 21: "mount", 52: "umount2",
}  # fmt: skip
#: socketcall(2)'s call numbers for the calls watched
_SOCKETCALL = {2: "bind", 3: "connect", 4: "listen", 5: "accept", 18: "accept4"}

# record types
AUDIT_SYSCALL = 1300
AUDIT_PATH = 1302
AUDIT_SOCKETCALL = 1304
AUDIT_SOCKADDR = 1306
AUDIT_CWD = 1307
AUDIT_EXECVE = 1309
AUDIT_OBJ_PID = 1318
AUDIT_EOE = 1320
AUDIT_CAPSET = 1322
AUDIT_REPLACE = 1329
AUDIT_KERN_MODULE = 1330
AUDIT_OPENAT2 = 1337
_WANTED = frozenset(
    {
        AUDIT_SYSCALL,
        AUDIT_PATH,
        AUDIT_SOCKETCALL,
        AUDIT_SOCKADDR,
        AUDIT_CWD,
        AUDIT_EXECVE,
        AUDIT_OBJ_PID,
        AUDIT_CAPSET,
        AUDIT_KERN_MODULE,
        AUDIT_OPENAT2,
    }
)

#: login records (USER_*), and those delivered as the login source delivers them
_LOGIN_TYPES = frozenset(RECORD_TYPES)
_LOGIN_DEFAULT = frozenset(n for n, name in RECORD_TYPES.items() if name in DEFAULT_RECORD_TYPES)

_SOL_NETLINK = 270
_NETLINK_ADD_MEMBERSHIP = 1
_NETLINK_DROP_MEMBERSHIP = 2
_SO_RCVBUFFORCE = 33
_NR_PIDFD_GETFD = 438

_O_CREAT = 0o100
# an open with write intent, as file.bpf.c's write_intent(): O_ACCMODE,
# O_CREAT, O_TRUNC, unless O_PATH (which makes the kernel ignore them)
_WRITE_INTENT = 0o3 | 0o100 | 0o1000
_O_PATH = 0o10000000
_CREAT_FLAGS = 0o100 | 0o1 | 0o1000  # O_CREAT | O_WRONLY | O_TRUNC
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_REMOVEDIR = 0x200
_ARGV_MAX = lib.ARGV_LEN - 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: ptrace requests that attach to or change a tracee (as priv.bpf.c)
_PTRACE_REPORTED = frozenset({0, 4, 5, 6, 13, 15, 16, 0x4205, 0x4206})
#: bpf(2) map element commands, left out in the kernel (as priv.bpf.c)
_BPF_MAP_ACCESS = (1, 2, 3, 4, 21, 24, 25, 26, 27)
#: the calls that name one file: a path prefix rule can exclude them in the kernel
_ONE_PATH = frozenset({"file_open", "file_create", "file_unlink", "dir_create", "file_chmod", "file_chown"})
#: what each kind lacks from audit, for health
_LIMITS: dict[str, str] = {
    "process_exec": "parent and namespaces from /proc",
    "file_rename": "renameat2 flags not recorded",
    "file_link": "linkat flags not recorded",
    "file_chown": "fchownat flags not recorded",
    "file_chmod": "fchmodat2 flags not recorded",
    "net_connect": "socket type and local address from the live socket",
    "net_accept": "socket type and local address from the live socket",
    "net_bind": "socket type and bound address from the live socket",
    "net_listen": "socket type and address from the live socket",
    "cred_change": "ids before the call not recorded",
    "memfd_create": "name from the live fd",
    "bpf_call": "program type, size and name not recorded",
    "module_load": "parameters not recorded",
    "mount": "source and filesystem type not recorded",
}


#: kinds whose socket fields are read from a duplicate of the caller's socket
_LIVE_SOCKET = frozenset(("net_connect", "net_accept", "net_bind", "net_listen"))


class AuditLockedError(EbpfSensorError):
    """Kernel audit is locked (``enabled=2``): rules cannot be added or removed
    until a reboot, so the audit provider does not run."""

    def __init__(self) -> None:
        super().__init__(
            "start audit provider: kernel audit is locked (enabled=2, immutable mode, set by `auditctl -e 2` or"
            " `-e 2` in the audit rules), so rules added now could not be removed before a reboot; remove `-e 2`"
            " from /etc/audit/rules.d/ and reboot to let the audit provider run"
        )


# --- rules -------------------------------------------------------------------------------


def _native_arches() -> list[tuple[int, str]]:
    """(audit arch, syscall table) pairs for this machine: native first."""
    machine = platform.machine()
    if machine == "x86_64":
        return [(ha.AUDIT_ARCH_X86_64, "x86"), (ha.AUDIT_ARCH_I386, "i386")]
    if machine == "aarch64":
        return [(ha.AUDIT_ARCH_AARCH64, "arm64")]
    raise NotSupportedError("audit provider", "", f"no syscall table for {machine}")


def _numbers(names: Iterable[str], table: str) -> set[int]:
    """The syscall numbers of these names in one table (``x86``, ``arm64``, ``i386``)."""
    if table == "i386":
        wanted = set(names)
        if wanted & {"connect", "bind", "listen", "accept", "accept4"}:
            wanted.add("socketcall")
        return {nr for nr, name in _I386.items() if name in wanted}
    out = set()
    for name in names:
        nr = syscall_number(name, table)
        if nr is None and table in ("x86", "arm64"):
            nr = _EXTRA_NUMBERS.get(name)
        if nr is not None:
            out.add(nr)
    return out


def build_rules(
    kinds: Iterable[str],
    exclusions: Iterable[Exclusion] = (),
    *,
    key: str = KEY,
    self_pid: int | None = None,
    arches: list[tuple[int, str]] | None = None,
    dir_exists: Callable[[str], bool] = os.path.isdir,
) -> list[AuditRule]:
    """The audit rules for these kinds, in the order they are added.

    Per architecture: ``never`` rules for the exclusions audit expresses
    that way, then ``always,exit`` rules keyed ``key``: one for every
    syscall but kill/tkill/tgkill and bpf, which get their own rules leaving
    out signal 0 and map element access.

    Args:
        kinds: event kinds (keys of :data:`KIND_SYSCALLS`).
        exclusions: the rules to express in the kernel where audit can.
        key: the rules' key.
        self_pid: a process whose syscalls are never audited (the provider's
            own, when it reads the multicast group).
        arches: (audit arch, syscall table) pairs; this machine's by default.
        dir_exists: whether a path prefix names a directory (audit can only
            watch one that exists).
    """
    # logins need no rule: PAM and the like send them
    kinds = sorted(set(kinds) - {"user_login"})
    unknown = [k for k in kinds if k not in KIND_SYSCALLS]
    if unknown:
        raise ConfigError(f"kinds: {', '.join(unknown)} not available from the audit provider")
    exes = [os.path.realpath(r.path) for r in exclusions if isinstance(r, ExcludeExecutable) and not r.descendants]
    uids = sorted({r.uid for r in exclusions if isinstance(r, ExcludeUid)})
    prefixes = [r.prefix.rstrip("/") or "/" for r in exclusions if isinstance(r, ExcludePathPrefix)]
    common: list[tuple[int, int, int | str]] = [(ha.AUDIT_UID, ha.AUDIT_NOT_EQUAL, uid) for uid in uids]
    if self_pid is not None:
        common.append((ha.AUDIT_PID, ha.AUDIT_NOT_EQUAL, self_pid))
    if exes:
        common.append((ha.AUDIT_EXE, ha.AUDIT_NOT_EQUAL, exes[0]))
    # arch, the fields above and the key must fit the kernel's field limit
    common = common[: ha.AUDIT_MAX_FIELDS - 4]
    rules: list[AuditRule] = []
    for arch, table in arches or _native_arches():
        arch_field = (ha.AUDIT_ARCH, ha.AUDIT_EQUAL, arch)
        key_field = (ha.AUDIT_FILTERKEY, ha.AUDIT_EQUAL, key)
        every = _numbers((name for kind in kinds for name in KIND_SYSCALLS[kind]), table)
        if not every:
            continue
        for exe in exes[1:]:
            rules.append(
                AuditRule.syscall_rule(
                    ha.AUDIT_NEVER, every, (arch_field, (ha.AUDIT_EXE, ha.AUDIT_EQUAL, exe), key_field)
                )
            )
        one_path = _numbers((n for k in kinds if k in _ONE_PATH for n in KIND_SYSCALLS[k]), table)
        if one_path:
            for prefix in prefixes:
                if dir_exists(prefix):
                    rules.append(
                        AuditRule.syscall_rule(
                            ha.AUDIT_NEVER, one_path, (arch_field, (ha.AUDIT_DIR, ha.AUDIT_EQUAL, prefix), key_field)
                        )
                    )
        kill = _numbers(("kill", "tkill"), table) & every
        tgkill = _numbers(("tgkill",), table) & every
        bpf = _numbers(("bpf",), table) & every
        rest = every - kill - tgkill - bpf
        if rest:
            rules.append(AuditRule.syscall_rule(ha.AUDIT_ALWAYS, rest, (arch_field, *common, key_field)))
        # signal 0 only checks that a process exists (kill: a1, tgkill: a2)
        if kill:
            sig0 = (ha.AUDIT_ARG0 + 1, ha.AUDIT_NOT_EQUAL, 0)
            rules.append(AuditRule.syscall_rule(ha.AUDIT_ALWAYS, kill, (arch_field, sig0, *common, key_field)))
        if tgkill:
            sig0 = (ha.AUDIT_ARG0 + 2, ha.AUDIT_NOT_EQUAL, 0)
            rules.append(AuditRule.syscall_rule(ha.AUDIT_ALWAYS, tgkill, (arch_field, sig0, *common, key_field)))
        if bpf:
            cmds = tuple((ha.AUDIT_ARG0, ha.AUDIT_NOT_EQUAL, cmd) for cmd in _BPF_MAP_ACCESS)
            rules.append(AuditRule.syscall_rule(ha.AUDIT_ALWAYS, bpf, (arch_field, *cmds, *common, key_field)))
    return rules


def _syscall_names(arches: list[tuple[int, str]]) -> dict[tuple[int, int], str]:
    """(audit arch, number) -> the native name."""
    out: dict[tuple[int, int], str] = {}
    names = {name for calls in KIND_SYSCALLS.values() for name in calls}
    for arch, table in arches:
        if table == "i386":
            out.update(((arch, nr), name) for nr, name in _I386.items())
            continue
        for name in names:
            nr = syscall_number(name, table)
            if nr is None:
                nr = _EXTRA_NUMBERS.get(name)
            if nr is not None:
                out[(arch, nr)] = name
    return out


@functools.cache
def _native_nr(name: str, table: str) -> int:
    """A syscall's number in a table (-1 when the architecture has none)."""
    nr = syscall_number(name, table)
    return nr if nr is not None else _EXTRA_NUMBERS.get(name, -1)


# --- record text ---------------------------------------------------------------------------


def _fields(body: str) -> dict[str, str]:
    """``key=value`` pairs of a kernel record body. Kernel records quote
    strings only when they hold no space or quote (others are hex), so
    splitting on spaces is exact."""
    out: dict[str, str] = {}
    for token in body.split(" "):
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def _text(value: str | None) -> str | None:
    """A string field's value: quoted, hex-encoded, or None for (null)."""
    if value is None:
        return None
    if value.startswith('"'):
        return value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
    if value in ("(null)", "(none)", "?"):
        return None
    try:
        return fsdecode(bytes.fromhex(value))
    except ValueError:
        return value


def _hex(value: str | None, default: int = 0) -> int:
    try:
        return int(value, 16) if value is not None else default
    except ValueError:
        return default


def _dec(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _u32(value: int) -> int:
    return value & 0xFFFFFFFF


class _Path(NamedTuple):
    """One PATH record."""

    name: str | None
    ino: int
    dev: int
    nametype: str


def _path_record(body: str) -> _Path:
    f = _fields(body)
    dev = f.get("dev")
    dev_value = 0
    if dev and ":" in dev:
        major, _, minor = dev.partition(":")
        dev_value = os.makedev(_hex(major), _hex(minor))
    return _Path(_text(f.get("name")), _dec(f.get("inode")), dev_value, f.get("nametype", "UNKNOWN"))


def _argv(bodies: list[str]) -> tuple[list[str], bool]:
    """argv from EXECVE records (``argc=N a0="..." a1_len=M a1[0]=...``), cut
    at ARGV_LEN - 1 bytes as the eBPF path cuts it."""
    f: dict[str, str] = {}
    for body in bodies:
        f.update(_fields(body))
    argc = _dec(f.get("argc"))
    raw = bytearray()
    for i in range(argc):
        if f"a{i}" in f:
            value = _text(f[f"a{i}"]) or ""
        else:
            chunks = []
            j = 0
            while f"a{i}[{j}]" in f:
                chunks.append(_text(f[f"a{i}[{j}]"]) or "")
                j += 1
            value = "".join(chunks)
        raw += os.fsencode(value) + b"\0"
    truncated = len(raw) > _ARGV_MAX
    raw = raw[:_ARGV_MAX]
    argv = [fsdecode(a) for a in bytes(raw).removesuffix(b"\0").split(b"\0")] if raw else []
    return argv, truncated


def _sockaddr(raw: bytes) -> tuple[int, int, bytes, str]:
    """family, port, address (16 bytes, network order), unix path."""
    if len(raw) < 2:
        return 0, 0, b"\0" * 16, ""
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET and len(raw) >= 8:
        return family, int.from_bytes(raw[2:4], "big"), raw[4:8].ljust(16, b"\0"), ""
    if family == socket.AF_INET6 and len(raw) >= 24:
        return family, int.from_bytes(raw[2:4], "big"), raw[8:24], ""
    if family == socket.AF_UNIX:
        path = raw[2:]
        # an abstract name starts with NUL; trailing NULs are not part of it
        path = b"\0" + path[1:].rstrip(b"\0") if path.startswith(b"\0") else path.split(b"\0", 1)[0]
        return family, 0, b"\0" * 16, fsdecode(path)
    return family, 0, b"\0" * 16, ""


class _Syscall(NamedTuple):
    """An assembled syscall event: the SYSCALL record's fields and the rest."""

    ts_ns: int
    serial: int
    name: str
    fields: dict[str, str]
    args: tuple[int, int, int, int]
    result: int
    paths: list[_Path]
    cwd: str | None
    sockaddr: bytes | None
    execve: list[str]
    extra: dict[int, dict[str, str]]
    complete: bool
    #: the native syscall number (a 32-bit call's native equivalent)
    nr: int


def assemble(
    records: list[tuple[int, str]], names: dict[tuple[int, int], str], table: str, ts_ns: int = 0
) -> _Syscall | None:
    """One event's records (type, text after the header) as a syscall event;
    None when it has no SYSCALL record or the syscall is not watched.

    Args:
        records: (record type, body) in arrival order.
        names: (audit arch, syscall number) -> native syscall name.
        table: the native syscall table (``x86``, ``arm64``).
        ts_ns: the event's timestamp.
    """
    sc: dict[str, str] | None = None
    paths: list[_Path] = []
    cwd = None
    saddr = None
    execve: list[str] = []
    extra: dict[int, dict[str, str]] = {}
    complete = False
    for rtype, body in records:
        if rtype == AUDIT_SYSCALL:
            sc = _fields(body)
        elif rtype == AUDIT_PATH:
            paths.append(_path_record(body))
        elif rtype == AUDIT_CWD:
            cwd = _text(_fields(body).get("cwd"))
        elif rtype == AUDIT_SOCKADDR:
            try:
                saddr = bytes.fromhex(_fields(body).get("saddr", ""))
            except ValueError:
                saddr = b""
        elif rtype == AUDIT_EXECVE:
            execve.append(body)
        elif rtype == AUDIT_EOE:
            complete = True
        else:
            extra[rtype] = _fields(body)
    if sc is None:
        return None
    arch, nr = _hex(sc.get("arch")), _dec(sc.get("syscall"), -1)
    name = names.get((arch, nr))
    if name is None:
        return None
    args = (_hex(sc.get("a0")), _hex(sc.get("a1")), _hex(sc.get("a2")), _hex(sc.get("a3")))
    if name == "socketcall":
        call = _SOCKETCALL.get(args[0])
        sock = extra.get(AUDIT_SOCKETCALL)
        if call is None or sock is None:
            return None
        name = call
        args = (_hex(sock.get("a0")), _hex(sock.get("a1")), _hex(sock.get("a2")), _hex(sock.get("a3")))
    # a 32-bit caller's arguments are 32-bit
    if arch in (ha.AUDIT_ARCH_I386, ha.AUDIT_ARCH_ARM):
        args = (args[0] & 0xFFFFFFFF, args[1] & 0xFFFFFFFF, args[2] & 0xFFFFFFFF, args[3] & 0xFFFFFFFF)
    result = _dec(sc.get("exit"))
    return _Syscall(
        ts_ns, 0, name, sc, args, result, paths, cwd, saddr, execve, extra, complete, _native_nr(name, table)
    )


# --- /proc ------------------------------------------------------------------------------------


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


def _stat_fields(pid: int) -> tuple[str, int, int] | None:
    """comm, ppid, start time (ns since boot) from /proc/PID/stat."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    close = raw.rfind(b")")
    parts = raw[close + 2 :].split()
    try:
        return fsdecode(raw[raw.find(b"(") + 1 : close]), int(parts[1]), int(parts[19]) * 1_000_000_000 // _CLK_TCK
    except (IndexError, ValueError):
        return None


def _exe_path(target: str) -> tuple[str, bool, bool]:
    """An image path as the eBPF path gives it: " (deleted)" stripped; deleted, memfd."""
    deleted = target.endswith(" (deleted)")
    if deleted:
        target = target.removesuffix(" (deleted)")
    return target, deleted, target.startswith("/memfd:")


class _Proc(NamedTuple):
    """What /proc said about a process, and when it was read."""

    read_at: float
    alive: bool
    start_time_ns: int
    cgroup_id: int
    container_id: str
    ppid: int


_pidfd_getfd: Callable[..., int] | None = None


def _peer_fd(pid: int, fd: int) -> int | None:
    """A duplicate of another process's fd (pidfd_getfd, Linux 5.6), or None."""
    global _pidfd_getfd
    if _pidfd_getfd is None:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
        syscall.restype = ctypes.c_long
        _pidfd_getfd = syscall
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        dup = _pidfd_getfd(_NR_PIDFD_GETFD, pidfd, fd, 0)
    finally:
        os.close(pidfd)
    return dup if dup >= 0 else None


@functools.cache
def _fd_copies() -> bool:
    """Whether another process's fd can be duplicated here: pidfd_open is
    Linux 5.3, pidfd_getfd 5.6 (ENOSYS before; EBADF for an fd not open)."""
    try:
        pidfd = os.pidfd_open(os.getpid())
    except OSError:
        return False
    try:
        _peer_fd(os.getpid(), -1)
        return ctypes.get_errno() != errno.ENOSYS
    finally:
        os.close(pidfd)


def _socket_of(pid: int, fd: int) -> tuple[int, int, int, Any] | None:
    """family, type, protocol and local address of a process's socket."""
    dup = _peer_fd(pid, fd)
    if dup is None:
        return None
    try:
        sock = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return None
    try:
        try:
            local = sock.getsockname()
        except OSError:
            local = None
        return int(sock.family), int(sock.type), sock.proto, local
    finally:
        sock.close()


# --- user-space exclusions ----------------------------------------------------------------------


class _Exclusions:
    """The exclusion rules applied to assembled events, with hit counts."""

    def __init__(self, rules: Iterable[Exclusion]) -> None:
        self.rules = tuple(rules)
        self.uids: set[int] = set()
        self.comms: dict[str, bool] = {}
        self.exes: dict[str, bool] = {}
        #: the excluded executables' files, (st_dev, st_ino): a hard link or a
        #: renamed file is the same executable, as eBPF matches it
        self.files: dict[tuple[int, int], bool] = {}
        self.pids: dict[int, tuple[int, bool]] = {}
        self.cgroups: set[int] = set()
        self.prefixes: list[str] = []
        for rule in self.rules:
            if isinstance(rule, ExcludeUid):
                self.uids.add(rule.uid)
            elif isinstance(rule, ExcludeName):
                self.comms[rule.name] = self.comms.get(rule.name, False) or rule.descendants
            elif isinstance(rule, ExcludeExecutable):
                path = os.path.realpath(rule.path)
                self.exes[path] = self.exes.get(path, False) or rule.descendants
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                self.files[key] = self.files.get(key, False) or rule.descendants
            elif isinstance(rule, (ExcludePid, ExcludeSelf)):
                pid = rule.pid if isinstance(rule, ExcludePid) else own_kernel_pid()
                started = _stat_fields(pid)
                self.pids[pid] = (started[2] if started else 0, getattr(rule, "descendants", False))
            elif isinstance(rule, ExcludeCgroup):
                self.cgroups.add(int.from_bytes(resolve(rule).key, "little"))
            elif isinstance(rule, ExcludePathPrefix):
                body = rule.prefix.rstrip("/")
                self.prefixes.append(body + "/" if body else "/")
        self.descendants = any(self.comms.values()) or any(self.exes.values()) or any(d for _, d in self.pids.values())
        #: processes excluded with their descendants: pid -> start time (0 unknown)
        self.roots: dict[int, int] = {}
        if self.descendants:
            self._seed()

    @staticmethod
    def _file(exe: str) -> tuple[int, int] | None:
        """The (st_dev, st_ino) of an executable path now (a path can be
        given to another file at any time: not cached)."""
        try:
            st = os.stat(exe)
        except (OSError, ValueError):
            return None
        return (st.st_dev, st.st_ino)

    def _excluded_exe(self, exe: str) -> bool:
        return exe in self.exes or (bool(self.files) and bool(exe) and self._file(exe) in self.files)

    def _matches_root(self, pid: int, comm: str, exe: str) -> bool:
        if self.comms.get(comm):
            return True
        if self.exes.get(exe):
            return True
        if self.files and exe and self.files.get(self._file(exe) or (0, 0)):
            return True
        entry = self.pids.get(pid)
        return entry is not None and entry[1]

    def _seed(self) -> None:
        """Processes already running that a descendants rule covers, and theirs."""
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            st = _stat_fields(pid)
            if st is None:
                continue
            parents[pid] = st[1]
            exe = _exe_path(_readlink(f"/proc/{pid}/exe") or "")[0]
            if self._matches_root(pid, st[0], exe):
                self.roots[pid] = st[2]
        changed = True
        while changed:
            changed = False
            for pid, ppid in parents.items():
                if ppid in self.roots and pid not in self.roots:
                    st = _stat_fields(pid)
                    self.roots[pid] = st[2] if st else 0
                    changed = True

    def process(self, pid: int, ppid: int, uid: int, comm: str, exe: str, info: _Proc) -> bool:
        """Whether events of this process are excluded (noting new descendants)."""
        if uid in self.uids or comm in self.comms or self._excluded_exe(exe):
            if self.descendants and self._matches_root(pid, comm, exe):
                self.roots[pid] = info.start_time_ns
            return True
        entry = self.pids.get(pid)
        if entry is not None and entry[0] in (0, info.start_time_ns):
            return True
        if self.cgroups and info.cgroup_id in self.cgroups:
            return True
        if self.roots:
            started = self.roots.get(pid)
            if started is not None and (started == 0 or info.start_time_ns in (0, started)):
                return True
            if ppid in self.roots:
                self.roots[pid] = info.start_time_ns
                return True
        return False

    def paths(self, *paths: str) -> bool:
        """Whether a file event with these paths is excluded: every path covered."""
        if not self.prefixes:
            return False
        for path in paths:
            if not path or not path.startswith("/") or "/../" in path + "/":
                return False
            if not any(path + "/" == p or path.startswith(p) for p in self.prefixes):
                return False
        return True


# --- the state file ---------------------------------------------------------------------------------


class _State:
    """What this provider changed, on disk, under an exclusive lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> dict[str, Any] | None:
        """Lock the file; return what a previous provider left in it.

        Raises:
            EbpfSensorError: another process holds it (an audit provider runs).
        """
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 4096, 0)
            os.close(fd)
            try:
                pid = json.loads(owner).get("pid", "?")
            except (ValueError, AttributeError):
                pid = "?"
            raise EbpfSensorError(
                f"start audit provider: another process (pid {pid}) runs the audit provider; {self.path} is locked"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.fchmod(fd, 0o600)
        self.fd = fd
        raw = os.pread(fd, 1 << 16, 0)
        if not raw.strip():
            return None
        try:
            left = json.loads(raw)
        except ValueError:
            log.warning("audit provider: %s is not JSON; ignoring it", self.path)
            return None
        return left if isinstance(left, dict) else None

    def write(self, state: dict[str, Any]) -> None:
        assert self.fd is not None
        data = json.dumps(state, sort_keys=True).encode() + b"\n"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Empty the file and unlock it."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def _set(mask: int, values: dict[str, int]) -> None:
    ha.set_audit_status(
        mask,
        enabled=values.get("enabled", 0),
        rate_limit=values.get("rate_limit", 0),
        backlog_limit=values.get("backlog_limit", 0),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the provider ------------------------------------------------------------------------------------


class AuditProvider:
    """Syscall events from kernel audit (see the module's description).

    Args:
        kinds: the kinds to deliver (a subset of :attr:`available_kinds`);
            None for all.
        exclusions: rules applied in the audit rules where audit can, and
            in user space; one that does not resolve is left out and listed
            in ``skipped_exclusions``.
        rate_limit: records per second the kernel may send while this
            provider is the audit daemon (AUDIT_SET rate_limit); 0: no limit.
        backlog_limit: the kernel's backlog is raised to at least this while
            this provider is the audit daemon.
        state_path: the state file (see the module's description).
        rcvbuf_bytes: the receiving socket's buffer.
        read_status: reads the kernel's audit status (AUDIT_GET); the tests
            give another to check the refusal of a locked audit.
        arches: (audit arch, syscall table) pairs, native first; this
            machine's by default (records of another machine can be
            replayed with :meth:`feed`).

    Use as a context manager, or call :meth:`start` and :meth:`close`; wait
    with :meth:`poll` or on :meth:`fileno`.

    Raises:
        ConfigError: (from __init__) an unknown kind (an exclusion that does
            not resolve is left out and listed in ``skipped_exclusions``).
        AuditLockedError: (from start) audit is in immutable mode.
        NotSupportedError: (from start) no kernel audit, or not in the
            initial namespaces.
        PrivilegeError: (from start) needs CAP_AUDIT_CONTROL (and
            CAP_AUDIT_READ beside an audit daemon).
        EbpfSensorError: (from start) another audit provider runs.
    """

    name = "audit"
    available_kinds = frozenset(KIND_SYSCALLS) | {"user_login"}

    def __init__(
        self,
        kinds: Iterable[str] | None = None,
        *,
        exclusions: Iterable[Exclusion] = (),
        rate_limit: int = DEFAULT_RATE_LIMIT,
        backlog_limit: int = DEFAULT_BACKLOG_LIMIT,
        state_path: str = STATE_PATH,
        rcvbuf_bytes: int = RCVBUF_BYTES,
        read_status: Callable[[], AuditStatus] = audit_status,
        arches: list[tuple[int, str]] | None = None,
        read_opens: str = "watched",
        watched_files: Iterable[str] = (),
    ) -> None:
        if kinds is not None:
            unknown = sorted(set(kinds) - self.available_kinds)
            if unknown:
                raise ConfigError(
                    f"kinds: {', '.join(unknown)} not available from the audit provider;"
                    f" available: {', '.join(sorted(self.available_kinds))}"
                )
        self.kinds = self.available_kinds if kinds is None else frozenset(kinds)
        #: the rules given that did not resolve, left out (health lists them)
        self.skipped_exclusions: list[SkippedExclusion] = []
        self.exclusions = self._resolvable(exclusions, self.skipped_exclusions)
        self._cgroot = find_cgroup2_root()
        self._excl = _Exclusions(())
        self.rate_limit = rate_limit
        self.backlog_limit = backlog_limit
        self.read_opens = read_opens
        self.watched_patterns = tuple(watched_files)
        self._watched: frozenset[tuple[int, int]] = frozenset()
        self._watched_at = -watched.REFRESH_S
        self.rcvbuf_bytes = rcvbuf_bytes
        self._read_status = read_status
        self._state = _State(state_path)
        self._sock: socket.socket | None = None
        # the counters' socket, bound once: a socket bound every tick would
        # be a bind of the sensor's own each second (an event, or a hit of
        # Config.exclude_self) and a socket made and closed for nothing
        self._status_sock: socket.socket | None = None
        self._receiver = False
        self._started = False
        self._changed: dict[str, Any] = {}
        self._rules: list[AuditRule] = []
        self._arches = arches or _native_arches()
        self._table = self._arches[0][1]
        self._names = _syscall_names(self._arches)
        self._by_name: dict[str, tuple[str, ...]] = {}
        for kind in sorted(self.kinds - {"user_login"}):
            for call in KIND_SYSCALLS[kind]:
                self._by_name[call] = (*self._by_name.get(call, ()), kind)
        #: serial -> [first seen (monotonic), b"SEC.MS", records]
        self._partial: dict[int, list[Any]] = {}
        self._stash: list[bytes] = []
        self._offset = 0
        self._ignored: OrderedDict[int, None] = OrderedDict()
        self._proc: OrderedDict[int, _Proc] = OrderedDict()
        self._max_serial = 0
        self._missing: dict[int, float] = {}
        self._next_status = 0.0
        self._status: AuditStatus | None = None
        self._lost0 = self._wait0 = 0
        self._note = ""
        self._counts = {kind: [0, 0, 0] for kind in self.kinds}  # delivered, filtered, excluded
        self.delivered = self.filtered = self.excluded = self.serial_gaps = self.overruns = 0
        self.incomplete = self.undecodable = self.kernel_lost = self.backlog_wait_jiffies = 0

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``receiver`` (the audit daemon for now), ``multicast`` (beside one), or "" when stopped."""
        if self._sock is None:
            return ""
        return "receiver" if self._receiver else "multicast"

    def rules(self) -> list[AuditRule]:
        """The rules this provider added."""
        return list(self._rules)

    def start(self) -> AuditProvider:
        """Add the rules and start receiving; idempotent.

        Nothing is changed when audit is locked; anything changed before a
        failure is undone.
        """
        if self._started:
            return self
        status = self._read_status()
        if status.enabled == 2:
            raise AuditLockedError()
        left = self._state.acquire()
        try:
            self._started = True
            self._recover(left)
            # a state file is written before each change, with what to undo
            self._changed = {"pid": os.getpid()}
            self._state.write(self._changed)
            self._excl = _Exclusions(self.exclusions)
            status = self._read_counters()
            daemon = status.pid != 0 and _alive(status.pid)
            self._open(receiver=not daemon)
            if status.enabled == 0:
                self._change("enabled", 0, ha.AUDIT_STATUS_ENABLED, enabled=1)
            if self._receiver:
                self._tune(status)
            # the provider's own syscalls (Config.exclude_self); as the audit
            # daemon, the kernel never audits them anyway
            own = own_kernel_pid() if ExcludeSelf() in self.exclusions else None
            self._rules = build_rules(self.kinds, self.exclusions, self_pid=own, arches=self._arches)
            for rule in self._rules:
                self._add(rule)
            st = self._read_counters()
            self._status = st
            self._lost0, self._wait0 = st.lost, st.backlog_wait_time_actual
            self._next_status = time.monotonic() + STATUS_EVERY_S
        except BaseException:
            self.close()
            raise
        log.info("audit provider: %d rules added, receiving as %s", len(self._rules), self.mode)
        return self

    def _add(self, rule: AuditRule) -> None:
        try:
            ha.add_rule(rule)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise

    def _open(self, receiver: bool) -> None:
        sock = ha.audit_socket()
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self.rcvbuf_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        if receiver:
            self._register()
        else:
            self._join()

    def _register(self) -> None:
        """Become the audit daemon: the kernel sends every record to our socket."""
        assert self._sock is not None
        self._changed["receiver"] = True
        self._state.write(self._changed)
        ha.set_audit_status(ha.AUDIT_STATUS_PID, pid=os.getpid(), sock=self._sock, stash=self._stash)
        self._receiver = True

    def _join(self) -> None:
        """Read the multicast group beside an audit daemon."""
        assert self._sock is not None
        try:
            self._sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, ha.AUDIT_NLGRP_READLOG)
        except PermissionError as exc:
            err = exc.errno or errno.EPERM
            raise PrivilegeError(
                err, os.strerror(err), "join", "audit read-only group", "needs CAP_AUDIT_READ"
            ) from exc
        self._receiver = False

    def _tune(self, status: AuditStatus) -> None:
        if status.backlog_limit < self.backlog_limit:
            self._change(
                "backlog_limit", status.backlog_limit, ha.AUDIT_STATUS_BACKLOG_LIMIT, backlog_limit=self.backlog_limit
            )
        if status.rate_limit != self.rate_limit:
            self._change("rate_limit", status.rate_limit, ha.AUDIT_STATUS_RATE_LIMIT, rate_limit=self.rate_limit)

    def _change(self, name: str, old: int, mask: int, **values: int) -> None:
        """Record the old value, then change the setting."""
        self._changed.setdefault(name, old)
        self._state.write(self._changed)
        _set(mask, values)

    def _recover(self, left: dict[str, Any] | None) -> None:
        """Undo what a provider that died left: its rules, its settings."""
        stale = [r for r in ha.list_rules() if r.key == KEY]
        if left is None and not stale:
            return
        log.warning(
            "audit provider: a previous run (pid %s) did not close; removing its %d rules and restoring %s",
            (left or {}).get("pid", "?"),
            len(stale),
            ", ".join(k for k in sorted(left or {}) if k != "pid") or "nothing else",
        )
        for rule in stale:
            try:
                ha.delete_rule(rule)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
        if not left:
            return
        self._restore(left, dead_pid=left.get("pid"))
        self._state.write({})

    def _restore(self, changed: dict[str, Any], dead_pid: int | None = None) -> None:
        """Put back the settings in ``changed``; unregister a receiver."""
        mask = 0
        values: dict[str, int] = {}
        for name, bit in (("rate_limit", ha.AUDIT_STATUS_RATE_LIMIT), ("backlog_limit", ha.AUDIT_STATUS_BACKLOG_LIMIT)):
            if isinstance(changed.get(name), int):
                mask |= bit
                values[name] = changed[name]
        if mask:
            _set(mask, values)
        # audit off before the receiver goes, so that no record of it reaches the kernel log
        if isinstance(changed.get("enabled"), int):
            ha.set_audit_status(ha.AUDIT_STATUS_ENABLED, enabled=changed["enabled"])
        if changed.get("receiver"):
            st = audit_status()
            mine = dead_pid if dead_pid is not None else os.getpid()
            if st.pid == mine and (dead_pid is None or not _alive(dead_pid)):
                # for a dead receiver the kernel first checks it is gone, then forgets it
                ha.set_audit_status(ha.AUDIT_STATUS_PID, pid=0)

    def close(self) -> None:
        """Remove the rules, restore the settings, stop receiving; idempotent.

        Every step is tried even when one fails (each failure is logged).
        """
        if not self._started:
            return
        self._started = False
        steps: list[tuple[str, Callable[[], None]]] = []
        if self._sock is not None:
            steps.append(("remove rules", self._remove_rules))
        steps.append(("restore settings", lambda: self._restore(self._changed)))
        for what, step in steps:
            try:
                step()
            except (OSError, EbpfSensorError) as exc:
                log.error("audit provider: %s: %s", what, exc)
        for sock in (self._sock, self._status_sock):
            if sock is not None:
                sock.close()
        self._sock = self._status_sock = None
        self._receiver = False
        self._state.release()
        self._rules = []

    def _remove_rules(self) -> None:
        # by key, not from memory: a rule added just before a failure is found too
        for rule in ha.list_rules():
            if rule.key == KEY:
                try:
                    ha.delete_rule(rule)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise

    def __enter__(self) -> AuditProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_started", False):
            self.close()

    # --- state ---------------------------------------------------------------------------------

    def fileno(self) -> int:
        """The receiving socket's fd: readable when records are waiting."""
        if self._sock is None:
            raise ValueError("the audit provider is not started; call start()")
        return self._sock.fileno()

    def set_exclusions(self, rules: Iterable[Exclusion]) -> None:
        """Apply these rules from now on, in user space (the audit rules in
        the kernel stay those of start): a sensor's rules changed while it
        runs.

        A rule that no longer resolves (its cgroup removed) is left out, logged.
        """
        self.exclusions = self._resolvable(rules, [])
        self._excl = _Exclusions(self.exclusions)

    @staticmethod
    def _resolvable(rules: Iterable[Exclusion], skipped: list[SkippedExclusion]) -> tuple[Exclusion, ...]:
        """The rules that resolve now; the others go to skipped, logged, as
        eBPF skips them: one stale rule (its process exited, its file or
        cgroup gone) or malformed one must not leave the host unwatched.
        The provider's own process resolves at start, which refuses a pid
        namespace of its own first (audit runs in the initial one only)."""
        kept = []
        for rule in rules:
            try:
                if not isinstance(rule, ExcludeSelf):
                    resolve(rule)
            except ConfigError as exc:
                log.warning("audit provider: exclusion left out: %s", exc)
                skipped.append(SkippedExclusion(rule, str(exc)))
                continue
            kept.append(rule)
        return tuple(kept)

    def kind_health(self, kind: str) -> KindHealth:
        """Live while the provider runs and audit is enabled; what audit lacks for the kind."""
        if kind not in self.kinds:
            return KindHealth(False, "", "not provided by the audit provider")
        if self._sock is None:
            return KindHealth(False, "", "the audit provider is not running")
        st = self._status
        if st is not None and st.enabled == 0:
            return KindHealth(False, self.name, "kernel audit was disabled (enabled=0) while the provider runs")
        parts = [f"as audit {'daemon' if self._receiver else 'multicast reader'}"]
        if self._receiver and ExcludeSelf() not in self.exclusions:
            # audit_filter_syscall() skips the registered daemon's thread group
            parts.append("this process's own calls unseen (the kernel never audits its audit daemon)")
        if kind in _LIVE_SOCKET and not _fd_copies():
            parts.append("socket type and local address not read (pidfd_getfd, Linux 5.6, is missing)")
        elif kind in _LIMITS:
            parts.append(_LIMITS[kind])
        if self._note:
            parts.append(self._note)
        return KindHealth(True, self.name, "; ".join(parts))

    def stats(self) -> AuditProviderStats:
        """Delivery, filtering and loss counters since start."""
        return AuditProviderStats(
            mode=self.mode,
            kinds={k: AuditKindStats(*v) for k, v in sorted(self._counts.items())},
            delivered=self.delivered,
            filtered=self.filtered,
            excluded=self.excluded,
            kernel_lost=self.kernel_lost,
            serial_gaps=self.serial_gaps,
            overruns=self.overruns,
            incomplete=self.incomplete,
            undecodable=self.undecodable,
            backlog_wait_jiffies=self.backlog_wait_jiffies,
        )

    # --- receiving -------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Wait up to timeout seconds for records and return the events completed.

        Raises:
            ValueError: the provider is not started.
        """
        sock = self._sock
        if sock is None:
            raise ValueError("the audit provider is not started; call start()")
        out: list[Event] = []
        if self._stash:
            pending, self._stash = self._stash, []
            for data in pending:
                self._datagram(data, out)
        if not out and timeout > 0:
            select.select([sock], [], [], timeout)
        # wall clock to boot clock, once a batch
        offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self._offset = offset
        recv = sock.recvfrom
        for _ in range(MAX_BATCH):
            try:
                data, (sender, _groups) = recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                log.warning("audit provider: receive buffer overrun (%d so far)", self.overruns)
                continue
            if sender == 0:
                self._datagram(data, out)
        now = time.monotonic()
        self._flush(now, out)
        if now >= self._next_status:
            self._tick(now)
        self.delivered += len(out)
        return out

    def feed(self, data: bytes) -> list[Event]:
        """The events one netlink datagram completes, as :meth:`poll` reads
        them; for records recorded elsewhere (no kernel is needed)."""
        out: list[Event] = []
        self._datagram(data, out)
        self.delivered += len(out)
        return out

    def flush(self, now: float | None = None) -> list[Event]:
        """Events still waiting for their end-of-event record after
        PARTIAL_WAIT_S (as of ``now``, monotonic seconds), and the count of
        serial numbers never seen after GAP_WAIT_S; :meth:`poll` does this."""
        out: list[Event] = []
        self._flush(time.monotonic() if now is None else now, out)
        self.delivered += len(out)
        return out

    def _datagram(self, data: bytes, out: list[Event]) -> None:
        if len(data) < ha.NLMSG_HEADER.size:
            self.undecodable += 1
            return
        rtype = data[4] | data[5] << 8
        if rtype == AUDIT_REPLACE:
            self._step_aside()
            return
        if rtype < 1100:
            return  # acknowledgements and replies of requests
        # "audit(SEC.MS:SERIAL): ": the header, read without decoding the record
        head = data.find(b"):", 22, 80)
        colon = data.rfind(b":", 22, head)
        try:
            serial = int(data[colon + 1 : head])
        except ValueError:
            self.undecodable += 1
            return
        if serial != self._max_serial:
            self._see(serial)
        if rtype in _LOGIN_TYPES:
            if "user_login" in self.kinds:
                self._login(rtype, data, out)
            return
        if rtype == AUDIT_EOE:
            entry = self._partial.pop(serial, None)
            if entry is not None:
                self._event(entry[2], entry[1], serial, True, out)
            return
        if rtype not in _WANTED or serial in self._ignored:
            return
        body = data[head + 3 :].rstrip(b"\0\n").decode("ascii", "replace")
        if rtype == AUDIT_SYSCALL:
            arch, _, rest = body.partition(" ")
            nr = rest[8 : rest.find(" ")] if rest.startswith("syscall=") else ""
            name = self._names.get((_hex(arch[5:]), _dec(nr, -1)))
            if name is None or (name not in self._by_name and name != "socketcall"):
                self._ignore(serial)
                self.filtered += 1
                return
        entry = self._partial.get(serial)
        if entry is None:
            self._partial[serial] = [time.monotonic(), data[22:colon], [(rtype, body)]]
        else:
            entry[2].append((rtype, body))

    def _login(self, rtype: int, data: bytes, out: list[Event]) -> None:
        """A login record, delivered as the login source delivers it."""
        counts = self._counts["user_login"]
        if rtype not in _LOGIN_DEFAULT:
            counts[1] += 1
            self.filtered += 1
            return
        text = fsdecode(data[ha.NLMSG_HEADER.size :].rstrip(b"\0\n"))
        wall = text[6 : text.find(":", 6)] if text.startswith("audit(") else ""
        try:
            event = parse_record(rtype, text, self._boot_ns(wall.encode()))
        except DecodeError:
            self.undecodable += 1
            return
        # a successful authentication is followed by the session or login it opens
        if event.record_type == "USER_AUTH" and event.success:
            counts[1] += 1
            self.filtered += 1
            return
        if self._excl.rules and self._excl.uids and event.uid in self._excl.uids:
            counts[2] += 1
            self.excluded += 1
            return
        counts[0] += 1
        out.append(event)

    def _boot_ns(self, stamp: bytes) -> int:
        """CLOCK_BOOTTIME ns of an audit timestamp ``SEC.MS``."""
        sec, _, ms = stamp.partition(b".")
        try:
            return int(sec) * 1_000_000_000 + int(ms) * 1_000_000 - self._offset
        except ValueError:
            return 0

    def _ignore(self, serial: int) -> None:
        self._partial.pop(serial, None)
        self._ignored[serial] = None
        if len(self._ignored) > 4096:
            self._ignored.popitem(last=False)

    def _see(self, serial: int) -> None:
        """Track serial numbers: a number never seen is an event lost on the way."""
        top = self._max_serial
        if serial > top:
            if top and serial > top + 1:
                gap = serial - top - 1
                if gap > GAP_TRACK_MAX:
                    self.serial_gaps += gap
                else:
                    now = time.monotonic()
                    for missing in range(top + 1, serial):
                        self._missing[missing] = now
            self._max_serial = serial
        elif self._missing:
            self._missing.pop(serial, None)

    def _flush(self, now: float, out: list[Event]) -> None:
        """Events whose EOE never came (after PARTIAL_WAIT_S); serials never seen."""
        if self._partial:
            stale = [s for s, entry in self._partial.items() if now - entry[0] > PARTIAL_WAIT_S]
            for serial in stale:
                entry = self._partial.pop(serial)
                if any(rtype == AUDIT_SYSCALL for rtype, _ in entry[2]):
                    self._event(entry[2], entry[1], serial, False, out)
        if self._missing:
            late = [s for s, seen in self._missing.items() if now - seen > GAP_WAIT_S]
            for serial in late:
                del self._missing[serial]
            if late:
                self.serial_gaps += len(late)
                log.warning("audit provider: %d audit events never arrived (%d so far)", len(late), self.serial_gaps)

    def _read_counters(self) -> AuditStatus:
        """The kernel's audit status, asked on the provider's status socket."""
        if self._status_sock is None:
            sock = ha.audit_socket()
            try:
                sock.bind((0, 0))
            except BaseException:
                sock.close()
                raise
            self._status_sock = sock
        try:
            return audit_status(sock=self._status_sock)
        except BaseException:
            # a fresh socket next time: no late reply left queued on this one
            self._status_sock.close()
            self._status_sock = None
            raise

    def _tick(self, now: float) -> None:
        """Read the kernel's counters; follow an audit daemon coming or going."""
        self._next_status = now + STATUS_EVERY_S
        try:
            st = self._read_counters()
        except (OSError, EbpfSensorError) as exc:
            log.debug("audit provider: status: %s", exc)
            return
        self._status = st
        lost = (st.lost - self._lost0) & 0xFFFFFFFF
        if lost > self.kernel_lost:
            log.warning("audit provider: the kernel lost %d audit records since start", lost)
        self.kernel_lost = lost
        self.backlog_wait_jiffies = (st.backlog_wait_time_actual - self._wait0) & 0xFFFFFFFF
        if not self._receiver and st.pid == 0 and self._sock is not None:
            # the audit daemon went away: receive in its place
            try:
                self._sock.setsockopt(_SOL_NETLINK, _NETLINK_DROP_MEMBERSHIP, ha.AUDIT_NLGRP_READLOG)
                self._register()
                self._note = "took over as audit daemon after the daemon stopped"
                log.warning("audit provider: the audit daemon stopped; receiving records in its place")
            except (OSError, EbpfSensorError) as exc:
                log.warning("audit provider: could not register as audit daemon: %s", exc)

    def _step_aside(self) -> None:
        """An audit daemon wants to register: let it, and read beside it."""
        if not self._receiver or self._sock is None:
            return
        try:
            ha.set_audit_status(ha.AUDIT_STATUS_PID, pid=0)
            self._changed["receiver"] = False
            self._state.write(self._changed)
            self._join()
            self._note = "an audit daemon started: now reading beside it"
            log.warning("audit provider: an audit daemon asked to register; reading the multicast group instead")
        except (OSError, EbpfSensorError) as exc:
            log.warning("audit provider: could not step aside for the audit daemon: %s", exc)

    # --- events ------------------------------------------------------------------------------------

    def _info(self, pid: int) -> _Proc:
        """start time, cgroup and container of a process, from /proc (cached briefly)."""
        now = time.monotonic()
        info = self._proc.get(pid)
        if info is not None and now - info.read_at < PROC_CACHE_S:
            return info
        st = _stat_fields(pid)
        if st is None:
            info = _Proc(now, False, 0, 0, "", 0)
        else:
            cgroup_id, container = 0, ""
            raw = _read(f"/proc/{pid}/cgroup") or b""
            for line in raw.split(b"\n"):
                if line.startswith(b"0::"):
                    path = fsdecode(line[3:])
                    container = parse_container_id(path)
                    if self._cgroot:
                        try:
                            cgroup_id = os.stat(os.path.join(self._cgroot, path.lstrip("/"))).st_ino
                        except OSError:
                            cgroup_id = 0
                    break
            info = _Proc(now, True, st[2], cgroup_id, container, st[1])
        self._proc[pid] = info
        self._proc.move_to_end(pid)
        if len(self._proc) > PROC_CACHE_ENTRIES:
            self._proc.popitem(last=False)
        return info

    def _event(
        self, records: list[tuple[int, str]], stamp: bytes, serial: int, complete: bool, out: list[Event]
    ) -> None:
        ts_ns = self._boot_ns(stamp)
        try:
            ev = assemble(records, self._names, self._table, ts_ns)
        except (ValueError, IndexError) as exc:
            self.undecodable += 1
            log.debug("audit provider: event %d: %s", serial, exc)
            return
        if ev is None:
            return
        kinds = self._by_name.get(ev.name)
        if not kinds:
            self.filtered += 1
            return
        if not complete:
            self.incomplete += 1
        sc = ev.fields
        pid = _dec(sc.get("pid"))
        info = self._info(pid)
        uid = _dec(sc.get("uid"), UNKNOWN_ID)
        comm = _text(sc.get("comm")) or ""
        exe = _exe_path(_text(sc.get("exe")) or "")[0]
        if self._excl.rules and self._excl.process(pid, _dec(sc.get("ppid")), uid, comm, exe, info):
            for kind in kinds:
                self._counts[kind][2] += 1
            self.excluded += 1
            return
        header = {
            "ts_ns": ts_ns,
            "cgroup_id": info.cgroup_id,
            "start_time_ns": info.start_time_ns,
            "pid": pid,
            "tid": pid,
            "ppid": _dec(sc.get("ppid")),
            "uid": uid,
            "gid": _dec(sc.get("gid"), UNKNOWN_ID),
            "comm": comm,
            "container_id": info.container_id,
        }
        try:
            built = _BUILDERS[ev.name](self, ev, header, kinds)
        except (ValueError, IndexError, KeyError, struct.error) as exc:
            self.undecodable += 1
            log.debug("audit provider: event %d (%s): %s", serial, ev.name, exc)
            return
        for kind, event in built:
            if event is None:
                self._counts[kind][1] += 1
                self.filtered += 1
            elif self._excl.prefixes and _excluded_path(self._excl, event):
                self._counts[kind][2] += 1
                self.excluded += 1
            else:
                self._counts[kind][0] += 1
                out.append(event)

    def watched_ids(self) -> frozenset[tuple[int, int]]:
        """The watched files' (st_dev, inode), looked up again every
        :data:`ebpfsensor.watched.REFRESH_S` seconds."""
        now = time.monotonic()
        if now - self._watched_at >= watched.REFRESH_S:
            self._watched_at = now
            ids = watched.resolve(self.watched_patterns)
            self._watched = frozenset((user_dev(dev), ino) for dev, ino in ids)
        return self._watched

    # paths ----------------------------------------------------------------------------------------

    def _abs(self, ev: _Syscall, name: str | None, dirfd: int = AT_FDCWD) -> str:
        """A name made absolute as the module's description says."""
        if not name:
            return ""
        if name.startswith("/"):
            return name
        if dirfd == AT_FDCWD:
            base = ev.cwd
        else:
            base = _readlink(f"/proc/{_dec(ev.fields.get('pid'))}/fd/{dirfd}")
        if not base or not base.startswith("/"):
            return name
        return base.rstrip("/") + "/" + name

    def _fd_path(self, ev: _Syscall, fd: int) -> str:
        target = _readlink(f"/proc/{_dec(ev.fields.get('pid'))}/fd/{fd}")
        return target if target and target.startswith("/") else ""


#: where a path or address came from (the values of PathSource, where the
#: Structs say it): none, the kernel's objects (/proc, the live socket), the
#: caller's argument as the kernel copied it (audit's PATH and SOCKADDR records)
_SRC_NONE, _SRC_KERNEL, _SRC_ARG = 0, 1, 2


def _src(name: str | None) -> int:
    return _SRC_ARG if name else _SRC_NONE


def _make(cls: type[Any], sources: dict[str, int], **fields: Any) -> Any:
    """An event Struct; ``sources`` gives ``<name>_source`` for the Structs that have it."""
    for what, value in sources.items():
        if f"{what}_source" in cls.__struct_fields__:
            fields[f"{what}_source"] = value
    return cls(**fields)


def _excluded_path(excl: _Exclusions, event: Event) -> bool:
    if isinstance(event, (FileRename, FileLink)):
        return excl.paths(event.path, event.new_path)
    if isinstance(event, FileSymlink):
        return excl.paths(event.path, event.target)
    path = getattr(event, "path", None)
    if path is None or isinstance(event, (Mount, Umount, ModuleLoad)):
        return False
    return excl.paths(path)


def _item(ev: _Syscall, *types: str) -> _Path | None:
    """The first PATH record of these name types (any but PARENT when none given)."""
    for p in ev.paths:
        if (p.nametype in types) if types else (p.nametype != "PARENT"):
            return p
    return None


def _sys(ev: _Syscall) -> dict[str, Any]:
    return {"result": ev.result, "syscall_nr": ev.nr}


_Built = list[tuple[str, Event | None]]


def _build_exec(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    if ev.result < 0:
        return [("process_exec", None)]
    sc = ev.fields
    pid = header["pid"]
    exe, deleted, memfd = _exe_path(_text(sc.get("exe")) or "")
    argv, argv_truncated = _argv(ev.execve)
    ns = {}
    for name in ("pid", "mnt", "net", "user"):
        try:
            ns[name] = os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except OSError:
            ns[name] = 0
    ppid = header["ppid"]
    parent = _stat_fields(ppid) if ppid else None
    parent_exe = _exe_path(_readlink(f"/proc/{ppid}/exe") or "")[0] if ppid else ""
    tty = sc.get("tty", "")
    event = ProcessExec(
        euid=_dec(sc.get("euid"), UNKNOWN_ID),
        egid=_dec(sc.get("egid"), UNKNOWN_ID),
        suid=_dec(sc.get("suid"), UNKNOWN_ID),
        sgid=_dec(sc.get("sgid"), UNKNOWN_ID),
        fsuid=_dec(sc.get("fsuid"), UNKNOWN_ID),
        fsgid=_dec(sc.get("fsgid"), UNKNOWN_ID),
        loginuid=_dec(sc.get("auid"), UNKNOWN_ID),
        sessionid=_dec(sc.get("ses"), UNKNOWN_ID),
        pid_ns=ns["pid"],
        mnt_ns=ns["mnt"],
        net_ns=ns["net"],
        user_ns=ns["user"],
        old_tid=pid,
        argv_truncated=argv_truncated,
        exe_truncated=False,
        cwd_truncated=False,
        parent_exe_truncated=False,
        exe_deleted=deleted,
        exe_memfd=memfd,
        parent_comm=parent[0] if parent else "",
        tty="" if tty in ("(none)", "?") else tty,
        exe=exe,
        cwd=ev.cwd or "",
        parent_exe=parent_exe,
        argv=argv,
        **header,
    )
    return [("process_exec", event)]


def _build_open(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    if ev.name == "open":
        dirfd, flags, mode = AT_FDCWD, a[1], a[2]
    elif ev.name == "creat":
        dirfd, flags, mode = AT_FDCWD, _CREAT_FLAGS, a[1]
    elif ev.name == "openat2":
        how = ev.extra.get(AUDIT_OPENAT2, {})
        dirfd, flags, mode = _s32(a[0]), _hex(how.get("oflag")), _hex(how.get("mode"))
    elif ev.name in ("mknod", "mknodat"):
        return _build_mknod(p, ev, header, kinds)
    else:
        dirfd, flags, mode = _s32(a[0]), a[2], a[3]
    item = _item(ev)
    name = item.name if item else None
    ok = ev.result >= 0
    if p.read_opens == "watched" and (flags & _O_PATH or not flags & _WRITE_INTENT):
        # a read-only open: reported for a watched file, or a refusal
        if ok and (item is None or (item.dev, item.ino) not in p.watched_ids()):
            return [("file_open", None)] if "file_open" in kinds else []
        if not ok and -ev.result not in (errno.EACCES, errno.EPERM):
            return [("file_open", None)] if "file_open" in kinds else []
    created = ok and item is not None and item.nametype == "CREATE"
    fields = {
        "ino": item.ino if ok and item else 0,
        "dev": item.dev if ok and item else 0,
        "flags": _u32(flags),
        "mode": _u32(mode),
        "dirfd": dirfd,
        "created": created,
        "resolved": False,
        "path_truncated": False,
        "arg_path_truncated": False,
        "path": p._abs(ev, name, dirfd),
        "arg_path": name or "",
        **_sys(ev),
        **header,
    }
    # one call, one event, as the eBPF provider: a creation is a FileCreate
    # when that kind is on, else a FileOpen; a failed O_CREAT open (the file
    # may exist) is a FileOpen, unless only FileCreate is on
    open_on = "file_open" in kinds
    if "file_create" in kinds and (created or (not ok and flags & _O_CREAT and not open_on)):
        return [("file_create", _make(FileCreate, {"path": _src(name)}, **fields))]
    if open_on:
        return [("file_open", _make(FileOpen, {"path": _src(name)}, **fields))]
    return []


def _build_mknod(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    if "file_create" not in kinds:
        return []
    a = ev.args
    dirfd, mode = (AT_FDCWD, a[1]) if ev.name == "mknod" else (_s32(a[0]), a[2])
    item = _item(ev, "CREATE") or _item(ev)
    name = item.name if item else None
    event = _make(
        FileCreate,
        {"path": _src(name)},
        ino=0,
        dev=0,
        flags=0,
        mode=_u32(mode),
        dirfd=dirfd,
        created=ev.result >= 0,
        resolved=False,
        path_truncated=False,
        arg_path_truncated=False,
        path=p._abs(ev, name, dirfd),
        arg_path=name or "",
        **_sys(ev),
        **header,
    )
    return [("file_create", event)]


def _build_unlink(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    if ev.name == "unlinkat":
        dirfd, flags = _s32(a[0]), _u32(a[2])
    elif ev.name == "rmdir":
        dirfd, flags = AT_FDCWD, _AT_REMOVEDIR
    else:
        dirfd, flags = AT_FDCWD, 0
    item = _item(ev, "DELETE") or _item(ev)
    name = item.name if item else None
    event = _make(
        FileUnlink,
        {"path": _src(name)},
        dirfd=dirfd,
        flags=flags,
        is_dir=bool(flags & _AT_REMOVEDIR),
        path_truncated=False,
        arg_path_truncated=False,
        path=p._abs(ev, name, dirfd),
        arg_path=name or "",
        **_sys(ev),
        **header,
    )
    return [("file_unlink", event)]


def _build_mkdir(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    dirfd, mode = (AT_FDCWD, a[1]) if ev.name == "mkdir" else (_s32(a[0]), a[2])
    item = _item(ev, "CREATE") or _item(ev)
    name = item.name if item else None
    event = _make(
        DirCreate,
        {"path": _src(name)},
        dirfd=dirfd,
        mode=_u32(mode),
        path_truncated=False,
        arg_path_truncated=False,
        path=p._abs(ev, name, dirfd),
        arg_path=name or "",
        **_sys(ev),
        **header,
    )
    return [("dir_create", event)]


def _two_names(ev: _Syscall) -> tuple[str | None, str | None, bool]:
    """old name, new name, and whether an existing file was replaced: the
    first DELETE record names the old file, CREATE the new name, and a
    second DELETE of the new name the file it replaced."""
    deleted = [p for p in ev.paths if p.nametype == "DELETE"]
    created = _item(ev, "CREATE")
    old = deleted[0].name if deleted else None
    new = created.name if created else None
    replaced = any(p.name == new for p in deleted[1:]) if new is not None else False
    return old, new, replaced


def _build_rename(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    if ev.name == "rename":
        dirfd = new_dirfd = AT_FDCWD
    else:
        dirfd, new_dirfd = _s32(a[0]), _s32(a[2])
    old, new, replaced = _two_names(ev)
    event = _make(
        FileRename,
        {"path": _src(old), "new_path": _src(new)},
        dirfd=dirfd,
        new_dirfd=new_dirfd,
        flags=0,
        path_truncated=False,
        arg_path_truncated=False,
        new_path_truncated=False,
        new_arg_path_truncated=False,
        replaced=replaced if ev.result >= 0 else False,
        path=p._abs(ev, old, dirfd),
        arg_path=old or "",
        new_path=p._abs(ev, new, new_dirfd),
        new_arg_path=new or "",
        **_sys(ev),
        **header,
    )
    return [("file_rename", event)]


def _build_chmod(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    item = _item(ev)
    name = item.name if item else None
    if ev.name == "fchmod":
        dirfd, mode, flags = _s32(a[0]), a[1], 0
        path = p._fd_path(ev, dirfd)
        path_src = _SRC_KERNEL if path else _SRC_NONE
    else:
        dirfd, mode = (AT_FDCWD, a[1]) if ev.name == "chmod" else (_s32(a[0]), a[2])
        flags = a[3] if ev.name == "fchmodat2" else 0
        path = p._abs(ev, name, dirfd)
        path_src = _src(name)
    event = _make(
        FileChmod,
        {"path": path_src},
        dirfd=dirfd,
        mode=_u32(mode),
        flags=_u32(flags),
        path_truncated=False,
        arg_path_truncated=False,
        path=path,
        arg_path="" if ev.name == "fchmod" else name or "",
        **_sys(ev),
        **header,
    )
    return [("file_chmod", event)]


def _build_chown(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    item = _item(ev)
    name = item.name if item else None
    if ev.name == "fchown":
        dirfd, uid, gid, flags = _s32(a[0]), a[1], a[2], 0
        path = p._fd_path(ev, dirfd)
    elif ev.name == "fchownat":
        dirfd, uid, gid, flags = _s32(a[0]), a[2], a[3], 0
        path = p._abs(ev, name, dirfd)
    else:
        dirfd, uid, gid = AT_FDCWD, a[1], a[2]
        flags = _AT_SYMLINK_NOFOLLOW if ev.name == "lchown" else 0
        path = p._abs(ev, name, dirfd)
    path_src = (_SRC_KERNEL if path else _SRC_NONE) if ev.name == "fchown" else _src(name)
    event = _make(
        FileChown,
        {"path": path_src},
        dirfd=dirfd,
        new_uid=_u32(uid),
        new_gid=_u32(gid),
        flags=flags,
        path_truncated=False,
        arg_path_truncated=False,
        path=path,
        arg_path="" if ev.name == "fchown" else name or "",
        **_sys(ev),
        **header,
    )
    return [("file_chown", event)]


def _build_link(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    dirfd, new_dirfd = (AT_FDCWD, AT_FDCWD) if ev.name == "link" else (_s32(a[0]), _s32(a[2]))
    old = _item(ev, "NORMAL")
    new = _item(ev, "CREATE")
    old_name = old.name if old else None
    new_name = new.name if new else None
    event = _make(
        FileLink,
        {"path": _src(old_name), "new_path": _src(new_name)},
        dirfd=dirfd,
        new_dirfd=new_dirfd,
        flags=0,
        path_truncated=False,
        arg_path_truncated=False,
        new_path_truncated=False,
        new_arg_path_truncated=False,
        path=p._abs(ev, old_name, dirfd),
        arg_path=old_name or "",
        new_path=p._abs(ev, new_name, new_dirfd),
        new_arg_path=new_name or "",
        **_sys(ev),
        **header,
    )
    return [("file_link", event)]


def _build_symlink(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    dirfd = AT_FDCWD if ev.name == "symlink" else _s32(ev.args[1])
    target = _item(ev, "UNKNOWN")
    link = _item(ev, "CREATE")
    name = link.name if link else None
    event = _make(
        FileSymlink,
        {"path": _src(name), "target": _src(target.name if target else None)},
        dirfd=dirfd,
        target_truncated=False,
        path_truncated=False,
        arg_path_truncated=False,
        target=(target.name or "") if target else "",
        path=p._abs(ev, name, dirfd),
        arg_path=name or "",
        **_sys(ev),
        **header,
    )
    return [("file_symlink", event)]


_NET_CLASSES: dict[str, tuple[str, type[Any]]] = {
    "connect": ("net_connect", NetConnect),
    "accept": ("net_accept", NetAccept),
    "accept4": ("net_accept", NetAccept),
    "bind": ("net_bind", NetBind),
    "listen": ("net_listen", NetListen),
}


def _build_net(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    kind, cls = _NET_CLASSES[ev.name]
    a = ev.args
    fd = _s32(a[0])
    pid = header["pid"]
    family, port, addr, path = _sockaddr(ev.sockaddr) if ev.sockaddr else (0, 0, b"\0" * 16, "")
    # the caller's socket while it is open: its type, protocol, local address
    live_fd = ev.result if ev.name.startswith("accept") and ev.result >= 0 else fd
    live = _socket_of(pid, live_fd)
    sock_type = protocol = 0
    local = (0, 0, b"\0" * 16, "")
    if live is not None:
        live_family, sock_type, protocol, name = live
        family = family or live_family
        local = _address(live_family, name)
    remote = (family, port, addr, path)
    sources = {
        "local": _SRC_KERNEL if live is not None else _SRC_NONE,
        "remote": _SRC_ARG if ev.sockaddr else _SRC_NONE,
    }
    if ev.name == "bind":
        if ev.result < 0 or live is None:
            local = remote
            sources["local"] = sources["remote"]
        remote = (family, 0, b"\0" * 16, "")
        sources["remote"] = _SRC_NONE
    elif ev.name == "listen":
        remote = (family, 0, b"\0" * 16, "")
        sources["remote"] = _SRC_NONE
    event = _make(
        cls,
        sources,
        fd=fd,
        flags=_u32(a[3]) if ev.name == "accept4" else 0,
        backlog=_u32(a[1]) if ev.name == "listen" else 0,
        family=family,
        sock_type=sock_type & 0xF,
        protocol=protocol,
        local_port=local[1],
        remote_port=remote[1],
        local_addr=ip_text(family, local[2]),
        remote_addr=ip_text(family, remote[2]),
        local_path=local[3],
        remote_path=remote[3],
        **_sys(ev),
        **header,
    )
    return [(kind, event)]


def _address(family: int, name: Any) -> tuple[int, int, bytes, str]:
    """(family, port, address bytes, unix path) of a getsockname() result."""
    if family == socket.AF_INET and isinstance(name, tuple):
        return family, name[1], socket.inet_pton(socket.AF_INET, name[0]).ljust(16, b"\0"), ""
    if family == socket.AF_INET6 and isinstance(name, tuple):
        return family, name[1], socket.inet_pton(socket.AF_INET6, name[0].split("%")[0]), ""
    if family == socket.AF_UNIX:
        raw = name if isinstance(name, bytes) else os.fsencode(name or "")
        raw = b"\0" + raw[1:].rstrip(b"\0") if raw.startswith(b"\0") else raw
        return family, 0, b"\0" * 16, fsdecode(raw)
    return family, 0, b"\0" * 16, ""


_CRED_ARGS = {
    "setuid": 1,
    "setgid": 1,
    "setfsuid": 1,
    "setfsgid": 1,
    "setreuid": 2,
    "setregid": 2,
    "setresuid": 3,
    "setresgid": 3,
    "capset": 0,
}


def _build_cred(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    sc = ev.fields
    new: dict[str, Any] = {
        k: _dec(sc.get(k), UNKNOWN_ID) for k in ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid")
    }
    old: dict[str, Any] = dict.fromkeys(new, UNKNOWN_ID)
    # setfsuid and setfsgid return the previous id
    if ev.name == "setfsuid":
        old["fsuid"] = _u32(ev.result)
    elif ev.name == "setfsgid":
        old["fsgid"] = _u32(ev.result)
    caps = ev.extra.get(AUDIT_CAPSET, {})
    args = [_u32(x) for x in ev.args[: _CRED_ARGS[ev.name]]] + [0, 0, 0]
    event = CredChange(
        **{f"old_{k}": v for k, v in old.items()},
        **{f"new_{k}": v for k, v in new.items()},
        old_cap_inheritable=0,
        old_cap_permitted=0,
        old_cap_effective=0,
        new_cap_inheritable=_hex(caps.get("cap_pi")),
        new_cap_permitted=_hex(caps.get("cap_pp")),
        new_cap_effective=_hex(caps.get("cap_pe")),
        arg0=args[0],
        arg1=args[1],
        arg2=args[2],
        **_sys(ev),
        **header,
    )
    return [("cred_change", event)]


def _build_kill(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    if ev.name == "kill":
        target_pid, target_tid, sig = _s32(a[0]), 0, a[1]
    elif ev.name == "tkill":
        target_pid, target_tid, sig = 0, _s32(a[0]), a[1]
    else:
        target_pid, target_tid, sig = _s32(a[0]), _s32(a[1]), a[2]
    obj = ev.extra.get(AUDIT_OBJ_PID)
    # signal 0, and signals to the caller's own process, as the eBPF path
    if sig == 0 or (obj is not None and _dec(obj.get("opid"), -1) == header["pid"]):
        return [("kill", None)]
    event = Kill(target_pid=target_pid, target_tid=target_tid, signal=_u32(sig), **_sys(ev), **header)
    return [("kill", event)]


def _build_setsid(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    return [("setsid", Setsid(**_sys(ev), **header))]


def _build_ptrace(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    if a[0] not in _PTRACE_REPORTED:
        return [("ptrace", None)]
    event = Ptrace(request=a[0], addr=a[2], data=a[3], target_pid=_s32(a[1]), **_sys(ev), **header)
    return [("ptrace", event)]


def _build_memfd(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    name = ""
    if ev.result >= 0:
        target = _readlink(f"/proc/{header['pid']}/fd/{ev.result}") or ""
        if target.startswith("/memfd:"):
            name = target[len("/memfd:") :].removesuffix(" (deleted)")
    event = MemfdCreate(flags=_u32(ev.args[1]), name=name, **_sys(ev), **header)
    return [("memfd_create", event)]


def _build_bpf(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    if a[0] in _BPF_MAP_ACCESS:
        return [("bpf_call", None)]
    event = BpfCall(cmd=a[0], prog_type=0, insn_cnt=0, attr_size=_u32(a[2]), prog_name="", **_sys(ev), **header)
    return [("bpf_call", event)]


def _build_module(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    a = ev.args
    module = ev.extra.get(AUDIT_KERN_MODULE, {})
    if ev.name == "finit_module":
        fd, image_len, flags = _s32(a[0]), 0, _u32(a[2])
        path = p._fd_path(ev, fd)
    else:
        fd, image_len, flags, path = -1, a[1], 0, ""
    event = ModuleLoad(
        image_len=image_len,
        fd=fd,
        flags=flags,
        name=_text(module.get("name")) or "",
        path_truncated=False,
        path=path,
        args="",
        **_sys(ev),
        **header,
    )
    return [("module_load", event)]


def _build_mount(p: AuditProvider, ev: _Syscall, header: dict[str, Any], kinds: tuple[str, ...]) -> _Built:
    item = _item(ev)
    target = item.name if item and item.name else ""
    if ev.name == "umount2":
        event: Event = Umount(
            flags=_u32(ev.args[1]),
            path_truncated=False,
            target=target,
            path=p._abs(ev, target),
            **_sys(ev),
            **header,
        )
        return [("umount", event)]
    event = Mount(
        flags=_u32(ev.args[3]),
        path_truncated=False,
        source="",
        target=target,
        fstype="",
        path=p._abs(ev, target),
        **_sys(ev),
        **header,
    )
    return [("mount", event)]


_Builder = Callable[[AuditProvider, _Syscall, dict[str, Any], tuple[str, ...]], _Built]
_BUILDERS: dict[str, _Builder] = {}
for _names, _builder in (
    (KIND_SYSCALLS["process_exec"], _build_exec),
    (("open", "openat", "openat2", "creat", "mknod", "mknodat"), _build_open),
    (KIND_SYSCALLS["file_unlink"], _build_unlink),
    (KIND_SYSCALLS["dir_create"], _build_mkdir),
    (KIND_SYSCALLS["file_rename"], _build_rename),
    (KIND_SYSCALLS["file_chmod"], _build_chmod),
    (KIND_SYSCALLS["file_chown"], _build_chown),
    (KIND_SYSCALLS["file_link"], _build_link),
    (KIND_SYSCALLS["file_symlink"], _build_symlink),
    (("connect", "accept", "accept4", "bind", "listen"), _build_net),
    (KIND_SYSCALLS["cred_change"], _build_cred),
    (KIND_SYSCALLS["kill"], _build_kill),
    (KIND_SYSCALLS["setsid"], _build_setsid),
    (KIND_SYSCALLS["ptrace"], _build_ptrace),
    (KIND_SYSCALLS["memfd_create"], _build_memfd),
    (KIND_SYSCALLS["bpf_call"], _build_bpf),
    (KIND_SYSCALLS["module_load"], _build_module),
    (("mount", "umount2"), _build_mount),
):
    for _name in _names:
        _BUILDERS[_name] = _builder
