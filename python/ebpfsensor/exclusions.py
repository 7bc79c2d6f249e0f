# SPDX-License-Identifier: Apache-2.0
"""Exclusions: silence noisy processes in the kernel, before a record is reserved.

Rules (tagged msgspec Structs, so they load from configuration as they are):

- ``ExcludeExecutable(path)``: by the executable's identity (device and inode,
  resolved from the path with symlinks followed), so renaming the binary or
  starting it through a symlink does not dodge the rule;
- ``ExcludeName(name)``: by process name (comm, at most 15 bytes); any
  process can take any name (a symlink or a copy of a binary named so,
  ``prctl(PR_SET_NAME)``), so a name rule is a noise filter, never a trust
  decision: prefer the executable's identity;
- ``ExcludePid(pid)``: one running process;
- ``ExcludeCgroup(path)``: a cgroup v2 directory, or a container id;
- ``ExcludeUid(uid)``: every process running as that user;
- ``ExcludePathPrefix(prefix)``: file events on paths under a directory,
  whoever makes them (see :class:`ExcludePathPrefix` for the matching rule);
- ``ExcludeSelf()``: the sensor's own process, all its threads (installed by
  default: ``Config.exclude_self``), never the processes it starts.

``descendants=True`` (executable, pid) extends a rule to every process the
matched one starts, whatever they execute; it is refused for a name rule,
which would let anyone exclude everything they run by naming their first
process so. Every hit is counted per rule and per event kind.
"""

from __future__ import annotations

import os
import re
from typing import Union

import msgspec

from ._ffi import ffi, lib
from .errors import ConfigError
from .host.containers import find_cgroup2_root, parse_container_id
from .host.mounts import superblock_dev

__all__ = [
    "ExcludeCgroup",
    "ExcludeExecutable",
    "ExcludeName",
    "ExcludePathPrefix",
    "ExcludePid",
    "ExcludeSelf",
    "ExcludeUid",
    "Exclusion",
    "RuleStatus",
    "resolve",
]

MAX_RULES = lib.MAX_RULES
NAME_MAX = lib.TASK_COMM_LEN - 1


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class ExcludeExecutable(_Rule, frozen=True, tag="executable"):
    """Processes running this executable (absolute path)."""

    path: str
    descendants: bool = False


class ExcludeName(_Rule, frozen=True, tag="name"):
    """Processes with this name (comm).

    Spoofable: any user can start a process under any name (a symlink named
    so, ``prctl(PR_SET_NAME)``), and it is then excluded. Use it to filter
    noise, never to trust a process; ``descendants=True`` is refused.
    """

    name: str
    descendants: bool = False


class ExcludePid(_Rule, frozen=True, tag="pid"):
    """One process, by pid."""

    pid: int
    descendants: bool = False


class ExcludeCgroup(_Rule, frozen=True, tag="cgroup"):
    """Processes in a cgroup v2 directory, or in a container.

    ``path`` is either a path starting with ``/`` (from the cgroup2 mount,
    ``/system.slice/foo.service``, or the full ``/sys/fs/cgroup/...``), or
    a container id: 12 to 64 lowercase hex digits, matching exactly one
    container's cgroup (docker, containerd, cri-o, podman naming). The root
    cgroup is refused: on many hosts it holds every process.
    """

    path: str


class ExcludeUid(_Rule, frozen=True, tag="uid"):
    """Processes running as this user id."""

    uid: int


class ExcludePathPrefix(_Rule, frozen=True, tag="path_prefix"):
    """File events on a directory and everything under it.

    ``prefix`` is an absolute, normalised path (no ``.`` or ``..``
    component, no empty one; one trailing ``/`` is allowed) of at most
    255 bytes. It matches whole path components: ``/var/log`` covers
    ``/var/log`` itself and ``/var/log/x``, never ``/var/logs``.

    Matched against the absolute path a file event reports (the caller's
    name joined to its cwd or directory fd, as seen in its mount namespace).
    An event with two paths is excluded only when both are covered: rename
    and link by their old and new names, symlink by the link and its target
    (a relative target never is), so moving a file out of an excluded
    directory is reported. A path that was truncated, or that has a ``..``
    component (it may lead out of the directory), is never excluded. Names,
    not files: a symlink or hard link created in an excluded directory is
    reported, but what is later done through it there is not.
    """

    prefix: str


class ExcludeSelf(_Rule, frozen=True, tag="self"):
    """The sensor's own process: every thread of the process the rule is
    installed from, for as long as it runs, whatever it executes.

    Its events (its reads of /proc and cgroups, its sockets to an exporter,
    its bpf() calls) would otherwise feed back into the stream. The
    processes it starts are not excluded, nor a later process given its
    pid: the kernel takes the entry out when the process exits, and a new
    process whose parent is not excluded never inherits one. The sensor's
    own fork and exit records go with it (a child's are reported from its
    exec on). ``Config.exclude_self`` installs it first, before every other
    rule.
    """


Exclusion = Union[ExcludeExecutable, ExcludeName, ExcludePid, ExcludeCgroup, ExcludeUid, ExcludePathPrefix, ExcludeSelf]

# include/linux/proc_ns.h: the initial pid namespace's inode number, fixed
PROC_PID_INIT_INO = 0xEFFFFFFC


class RuleStatus(msgspec.Struct, frozen=True):
    """An installed rule and what it has filtered, per event kind."""

    id: int
    rule: Exclusion
    hits: dict[str, int]
    total: int


# The two encodings of a device number meet here, and only here. The kernel
# keeps s_dev as its internal dev_t (MKDEV: major << 20 | minor), which BPF
# programs read and key their maps by; stat() reports st_dev in the user
# encoding (new_encode_dev: minor's low byte, major, minor's upper bits).


def kernel_dev(st_dev: int) -> int:
    """A user-space dev_t as the kernel's s_dev (major << 20 | minor)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def user_dev(kernel_dev: int) -> int:
    """A kernel dev_t (``major << 20 | minor``) as ``os.stat`` reports it."""
    return os.makedev(kernel_dev >> 20, kernel_dev & 0xFFFFF)


def own_kernel_pid() -> int:
    """This process's id as BPF programs see it (the initial pid namespace's).

    In a child pid namespace ``os.getpid()`` is another number: the id is
    then read from /proc when /proc is the initial namespace's.

    Raises:
        ConfigError: the id cannot be known from here.
    """
    try:
        if os.stat("/proc/self/ns/pid").st_ino == PROC_PID_INIT_INO:
            return os.getpid()
        # NSpid's first id is in the namespace of the /proc mount
        if os.stat("/proc/1/ns/pid").st_ino == PROC_PID_INIT_INO:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    raise ConfigError(
        "exclusion self: this process runs in a pid namespace of its own and /proc does not show its id in the "
        "initial one; run the sensor in the host's pid namespace (docker --pid=host) or set exclude_self=False"
    )


def cgroup2_root() -> str:
    """The cgroup v2 mount point."""
    root = find_cgroup2_root()
    if root is None:
        raise ConfigError("exclusion by cgroup needs cgroup v2, which is not mounted")
    return root


_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")


def _find_container(container_id: str, root: str) -> list[str]:
    """The cgroup directories of the one container whose id starts with
    container_id (a container may show in more than one hierarchy place)."""
    what = f"exclusion cgroup {container_id!r}"
    if not _CONTAINER_ID.fullmatch(container_id):
        raise ConfigError(
            f"{what}: neither a cgroup path (start it with '/', from the cgroup2 mount: /system.slice/x.service) "
            "nor a container id (12 to 64 lowercase hex digits)"
        )
    found: dict[str, list[str]] = {}
    for dirpath, dirnames, _files in os.walk(root):
        cid = parse_container_id(os.path.basename(dirpath))
        if cid.startswith(container_id):
            found.setdefault(cid, []).append(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    if not found:
        raise ConfigError(f"{what}: no cgroup under {root} belongs to that container")
    if len(found) > 1:
        raise ConfigError(
            f"{what}: {len(found)} containers' ids start so ({', '.join(sorted(found))}); give more digits"
        )
    return next(iter(found.values()))


class Resolved(msgspec.Struct, frozen=True):
    map_name: str
    key: bytes
    flags: int
    seed_pids: frozenset[int] = frozenset()
    # more keys for the same rule: an executable's identity as the kernel
    # sees it, where stat(2) reports another device
    alt_keys: tuple[bytes, ...] = ()

    @property
    def keys(self) -> tuple[bytes, ...]:
        return (self.key, *self.alt_keys) if self.map_name else ()


def resolve(rule: Exclusion) -> Resolved:
    """Check a rule and compute its map key, touching no kernel state.

    Raises:
        ConfigError: what is wrong with the rule and how to fix it.
    """
    desc = lib.EXCL_DESCENDANTS if getattr(rule, "descendants", False) else 0
    if isinstance(rule, ExcludeExecutable):
        if not os.path.isabs(rule.path):
            raise ConfigError(f"exclusion executable {rule.path!r}: give an absolute path")
        try:
            st = os.stat(rule.path)
        except OSError as exc:
            raise ConfigError(f"exclusion executable {rule.path!r}: {exc.strerror}; the file must exist") from None
        if not os.path.isfile(rule.path):
            raise ConfigError(f"exclusion executable {rule.path!r}: not a regular file")
        key = ffi.new("struct exe_key *", {"dev": kernel_dev(st.st_dev), "ino": st.st_ino})
        alt: tuple[bytes, ...] = ()
        sb_dev = superblock_dev(rule.path)
        if sb_dev is not None and sb_dev != st.st_dev:
            alt_key = ffi.new("struct exe_key *", {"dev": kernel_dev(sb_dev), "ino": st.st_ino})
            alt = (bytes(ffi.buffer(alt_key)),)
        return Resolved("excl_exe", bytes(ffi.buffer(key)), desc, alt_keys=alt)
    if isinstance(rule, ExcludeName):
        raw = os.fsencode(rule.name)
        if not 0 < len(raw) <= NAME_MAX or b"\0" in raw:
            raise ConfigError(f"exclusion name {rule.name!r}: a process name has 1 to {NAME_MAX} bytes")
        if rule.descendants:
            raise ConfigError(
                f"exclusion name {rule.name!r} with descendants: anyone can name a process so and exclude "
                "everything it starts; exclude the executable (ExcludeExecutable, --executable) with descendants"
            )
        return Resolved("excl_comm", raw.ljust(lib.TASK_COMM_LEN, b"\0"), desc)
    if isinstance(rule, ExcludePid):
        if rule.pid <= 0 or not os.path.exists(f"/proc/{rule.pid}"):
            raise ConfigError(f"exclusion pid {rule.pid}: no such process")
        return Resolved("", b"", desc | lib.EXCL_STICKY, frozenset({rule.pid}))
    if isinstance(rule, ExcludeSelf):
        # sticky without descendants: kept across the process's own exec,
        # never passed on at fork
        return Resolved("", b"", lib.EXCL_STICKY, frozenset({own_kernel_pid()}))
    if isinstance(rule, ExcludeCgroup):
        root = cgroup2_root()
        if rule.path.startswith("/"):
            path = rule.path if rule.path.startswith(root + "/") or rule.path == root else root + rule.path
            paths = [os.path.normpath(path)]
        else:
            paths = _find_container(rule.path, root)
        keys = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ConfigError(f"exclusion cgroup {rule.path!r}: {path}: {exc.strerror}") from None
            if st.st_ino == os.stat(root).st_ino:
                raise ConfigError(
                    f"exclusion cgroup {rule.path!r}: the root cgroup holds every process not in another "
                    "cgroup (on many hosts, all of them); exclude a cgroup below it"
                )
            keys.append(st.st_ino.to_bytes(8, "little"))
        return Resolved("excl_cgroup", keys[0], 0, alt_keys=tuple(keys[1:]))
    if isinstance(rule, ExcludeUid):
        if not 0 <= rule.uid < 0xFFFFFFFF:
            raise ConfigError(f"exclusion uid {rule.uid}: not a user id")
        return Resolved("excl_uid", rule.uid.to_bytes(4, "little"), 0)
    if isinstance(rule, ExcludePathPrefix):
        data = _path_prefix_bytes(rule.prefix)
        key = ffi.new("struct excl_path_key *", {"prefixlen": len(data) * 8, "path": data})
        return Resolved("excl_path", bytes(ffi.buffer(key)), 0)
    raise ConfigError(f"unknown exclusion {rule!r}")


# the longest prefix: the kernel's LPM trie key holds EXCL_PATH_LEN bytes,
# the trailing '/' included
PATH_PREFIX_MAX = lib.EXCL_PATH_LEN - 1


def _path_prefix_bytes(prefix: str) -> bytes:
    """The LPM trie data of a prefix: its bytes with one trailing '/'."""
    what = f"exclusion path prefix {prefix!r}"
    fix = "give an absolute, normalised directory path such as /var/log/app"
    if not prefix:
        raise ConfigError(f"{what}: empty; {fix}")
    if "\0" in prefix:
        raise ConfigError(f"{what}: contains a NUL byte; {fix}")
    if not prefix.startswith("/"):
        raise ConfigError(f"{what}: not absolute (paths are matched from the root); {fix}")
    body = prefix[:-1] if len(prefix) > 1 and prefix.endswith("/") else prefix
    # "//" is not "/" with a trailing slash: an empty component, as "/a//"
    parts = body.split("/")[1:] if prefix != "/" else []
    if ".." in parts:
        raise ConfigError(f"{what}: has a '..' component; {fix}")
    if "." in parts or "" in parts:
        raise ConfigError(f"{what}: not normalised (a '.' or empty component); use {os.path.normpath(body)!r}")
    raw = os.fsencode(body)
    if len(raw) > PATH_PREFIX_MAX:
        raise ConfigError(
            f"{what}: {len(raw)} bytes; the kernel matches prefixes of at most {PATH_PREFIX_MAX} bytes "
            f"(its LPM trie keys hold {lib.EXCL_PATH_LEN}, the trailing '/' included): exclude a shorter parent"
        )
    return raw if raw == b"/" else raw + b"/"
