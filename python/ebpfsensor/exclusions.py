# SPDX-License-Identifier: Apache-2.0
"""Exclusions: silence noisy processes in the kernel, before a record is reserved.

Rules (tagged msgspec Structs, so they load from configuration as they are):

- ``ExcludeExecutable(path)``: by the executable's identity (device and inode,
  resolved from the path with symlinks followed), so renaming the binary or
  starting it through a symlink does not dodge the rule;
- ``ExcludeName(name)``: by process name (comm, at most 15 bytes);
- ``ExcludePid(pid)``: one running process;
- ``ExcludeCgroup(path)``: a cgroup v2 directory, or a container id;
- ``ExcludeUid(uid)``: every process running as that user;
- ``ExcludePathPrefix(prefix)``: file events on paths under a directory,
  whoever makes them (see :class:`ExcludePathPrefix` for the matching rule).

``descendants=True`` (executable, name, pid) extends a rule to every process
the matched one starts, whatever they execute. Every hit is counted per rule
and per event kind.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Union

import msgspec

from ._containers import find_cgroup2_root
from ._ffi import check_ret, ffi, lib, map_items
from .errors import ConfigError
from .events import EVENT_CLASSES

__all__ = [
    "ExcludeCgroup",
    "ExcludeExecutable",
    "ExcludeName",
    "ExcludePathPrefix",
    "ExcludePid",
    "ExcludeUid",
    "Exclusion",
    "ExclusionTable",
    "RuleStatus",
]

MAX_RULES = lib.MAX_RULES
_NAME_MAX = lib.TASK_COMM_LEN - 1


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class ExcludeExecutable(_Rule, frozen=True, tag="executable"):
    """Processes running this executable (absolute path)."""

    path: str
    descendants: bool = False


class ExcludeName(_Rule, frozen=True, tag="name"):
    """Processes with this name (comm)."""

    name: str
    descendants: bool = False


class ExcludePid(_Rule, frozen=True, tag="pid"):
    """One process, by pid."""

    pid: int
    descendants: bool = False


class ExcludeCgroup(_Rule, frozen=True, tag="cgroup"):
    """Processes in a cgroup v2 directory (absolute, or relative to the
    cgroup2 mount) or in a container, by container id."""

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


Exclusion = Union[ExcludeExecutable, ExcludeName, ExcludePid, ExcludeCgroup, ExcludeUid, ExcludePathPrefix]


class RuleStatus(msgspec.Struct, frozen=True):
    """An installed rule and what it has filtered, per event kind."""

    id: int
    rule: Exclusion
    hits: dict[str, int]
    total: int


def kernel_dev(st_dev: int) -> int:
    """A user-space dev_t as the kernel's s_dev (major << 20 | minor)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def cgroup2_root() -> str:
    """The cgroup v2 mount point."""
    root = find_cgroup2_root()
    if root is None:
        raise ConfigError("exclusion by cgroup needs cgroup v2, which is not mounted")
    return root


def _find_container(container_id: str, root: str) -> str:
    for dirpath, dirnames, _files in os.walk(root):
        if container_id in os.path.basename(dirpath):
            return dirpath
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    raise ConfigError(f"exclusion cgroup {container_id!r}: no cgroup under {root} names that container")


class _Resolved(msgspec.Struct, frozen=True):
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


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def superblock_dev(path: str) -> int | None:
    """The kernel's s_dev of the filesystem holding path (user-space dev_t
    encoding), from /proc/self/mountinfo; None when it cannot be read.

    It differs from stat(2)'s st_dev where the filesystem reports another
    device per file: overlayfs whose layers are on different filesystems
    (a pseudo device per lower layer) and btrfs subvolumes. The kernel's
    inode of an executable carries the superblock's.
    """
    real = os.path.realpath(path)
    best: tuple[int, int] | None = None
    best_len = -1
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                point = _unescape_mountinfo(fields[4])
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                # the longest mount point holding the path; of equals, the last mounted
                if inside and len(point) >= best_len:
                    major, _, minor = fields[2].partition(":")
                    best, best_len = (int(major), int(minor)), len(point)
    except (OSError, IndexError, ValueError):
        return None
    return os.makedev(*best) if best else None


def resolve(rule: Exclusion) -> _Resolved:
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
        return _Resolved("excl_exe", bytes(ffi.buffer(key)), desc, alt_keys=alt)
    if isinstance(rule, ExcludeName):
        raw = rule.name.encode()
        if not 0 < len(raw) <= _NAME_MAX or b"\0" in raw:
            raise ConfigError(f"exclusion name {rule.name!r}: a process name has 1 to {_NAME_MAX} bytes")
        return _Resolved("excl_comm", raw.ljust(lib.TASK_COMM_LEN, b"\0"), desc)
    if isinstance(rule, ExcludePid):
        if rule.pid <= 0 or not os.path.exists(f"/proc/{rule.pid}"):
            raise ConfigError(f"exclusion pid {rule.pid}: no such process")
        return _Resolved("", b"", desc | lib.EXCL_STICKY, frozenset({rule.pid}))
    if isinstance(rule, ExcludeCgroup):
        root = cgroup2_root()
        path = rule.path
        if not path.startswith("/"):
            path = _find_container(path, root)
        elif not path.startswith(root + "/") and path != root:
            path = os.path.join(root, path.lstrip("/"))
        try:
            ino = os.stat(path).st_ino
        except OSError as exc:
            raise ConfigError(f"exclusion cgroup {rule.path!r}: {path}: {exc.strerror}") from None
        return _Resolved("excl_cgroup", ino.to_bytes(8, "little"), 0)
    if isinstance(rule, ExcludeUid):
        if not 0 <= rule.uid < 0xFFFFFFFF:
            raise ConfigError(f"exclusion uid {rule.uid}: not a user id")
        return _Resolved("excl_uid", rule.uid.to_bytes(4, "little"), 0)
    if isinstance(rule, ExcludePathPrefix):
        data = _path_prefix_bytes(rule.prefix)
        key = ffi.new("struct excl_path_key *", {"prefixlen": len(data) * 8, "path": data})
        return _Resolved("excl_path", bytes(ffi.buffer(key)), 0)
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


_ACTIVE_BIT = {
    "excl_exe": lib.EXCL_ACTIVE_EXEC,
    "excl_comm": lib.EXCL_ACTIVE_EXEC,
    "excl_cgroup": lib.EXCL_ACTIVE_CGROUP,
    "excl_uid": lib.EXCL_ACTIVE_UID,
    "excl_path": lib.EXCL_ACTIVE_PATH,
}


class ExclusionTable:
    """The exclusion maps of a running sensor.

    Args:
        fds: map name -> fd for excl_active, excluded_tgids, excl_exe,
            excl_comm, excl_cgroup, excl_uid, excl_path and excl_hits.
    """

    def __init__(self, fds: dict[str, int]) -> None:
        self._fds = fds
        self._rules: dict[int, tuple[Exclusion, _Resolved]] = {}

    def add(self, rule: Exclusion) -> int:
        """Install a rule; returns its id (the existing id for a duplicate,
        or for another name of what an existing rule excludes).

        Raises:
            ConfigError: an invalid rule, or MAX_RULES rules installed; nothing changes.
        """
        resolved = resolve(rule)
        for rid, (existing, existing_resolved) in self._rules.items():
            if existing == rule:
                return rid
            if not resolved.map_name or (existing_resolved.map_name, existing_resolved.key) != (
                resolved.map_name,
                resolved.key,
            ):
                continue
            # one map key, one rule: "/var/log" and "/var/log/", or two paths
            # (a hard link, a symlink) of one executable; a second rule on
            # the key would take it over, and removing either would drop both
            if existing_resolved.flags == resolved.flags:
                return rid
            raise ConfigError(
                f"exclusion {rule!r} names what rule {rid} ({existing!r}) already excludes, with other "
                "options; remove that rule first to change them"
            )
        free = next((i for i in range(MAX_RULES) if i not in self._rules), None)
        if free is None:
            raise ConfigError(f"exclusions: at most {MAX_RULES} rules; remove one first")
        self._reset_hits(free)
        value = ffi.new("struct excl_value *", {"rule": free, "flags": resolved.flags})
        for n, key in enumerate(resolved.keys):
            rc = lib.bpf_map_update_elem(self._fds[resolved.map_name], key, value, 0)
            if rc < 0:
                for done in resolved.keys[:n]:
                    lib.bpf_map_delete_elem(self._fds[resolved.map_name], done)
                check_ret(rc, "add exclusion", repr(rule))
        self._rules[free] = (rule, resolved)
        self._update_active()
        self._seed(free, rule, resolved)
        return free

    def remove(self, rule_id: int) -> None:
        """Remove a rule and release the processes it excluded.

        Raises:
            KeyError: no such rule id.
        """
        rule, resolved = self._rules.pop(rule_id)
        for key in resolved.keys:
            rc = lib.bpf_map_delete_elem(self._fds[resolved.map_name], key)
            if rc < 0 and -rc != errno.ENOENT:
                check_ret(rc, "remove exclusion", repr(rule))
        self._update_active()
        fd = self._fds["excluded_tgids"]
        items = map_items(fd, "uint32_t", "struct excl_value", "excluded_tgids")
        for key in [key for key, value in items if value.rule == rule_id]:
            lib.bpf_map_delete_elem(fd, key)

    def list(self) -> list[RuleStatus]:
        """Every rule with its hit counters."""
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        values = ffi.new("uint64_t[]", ncpu)
        key = ffi.new("uint32_t *")
        out = []
        for rid, (rule, _r) in sorted(self._rules.items()):
            hits: dict[str, int] = {}
            for cls in EVENT_CLASSES:
                key[0] = rid * lib.EVENT_TYPE_MAX + int(cls.event_type)
                check_ret(lib.bpf_map_lookup_elem(self._fds["excl_hits"], key, values), "read", "excl_hits")
                n = sum(values[i] for i in range(ncpu))
                if n:
                    hits[cls.__struct_config__.tag] = n  # type: ignore[index]
            out.append(RuleStatus(rid, rule, hits, sum(hits.values())))
        return out

    def _reset_hits(self, rule_id: int) -> None:
        """Zero a rule id's hit counters: ids are reused after remove(), and a
        new rule must not report the hits of the one it replaces."""
        ncpu = check_ret(lib.libbpf_num_possible_cpus(), "count", "possible CPUs")
        zeros = ffi.new("uint64_t[]", ncpu)
        key = ffi.new("uint32_t *")
        for event_type in range(lib.EVENT_TYPE_MAX):
            key[0] = rule_id * lib.EVENT_TYPE_MAX + event_type
            check_ret(lib.bpf_map_update_elem(self._fds["excl_hits"], key, zeros, 0), "reset", "excl_hits")

    def _update_active(self) -> None:
        mask = 0
        for _rule, resolved in self._rules.values():
            mask |= _ACTIVE_BIT.get(resolved.map_name, 0)
        key = ffi.new("uint32_t *", 0)
        check_ret(
            lib.bpf_map_update_elem(self._fds["excl_active"], key, ffi.new("uint32_t *", mask), 0),
            "update",
            "excl_active",
        )

    def _seed(self, rule_id: int, rule: Exclusion, resolved: _Resolved) -> None:
        """Enter processes already running into excluded_tgids (the kernel
        keeps it current from here on, at exec, fork and exit)."""
        if isinstance(rule, (ExcludeCgroup, ExcludeUid, ExcludePathPrefix)):
            return
        procs = _processes()
        matched: set[int] = set(resolved.seed_pids)
        if isinstance(rule, ExcludeExecutable):
            want = os.stat(rule.path)
            matched |= {p for p, info in procs.items() if info[1] == (want.st_dev, want.st_ino)}
        elif isinstance(rule, ExcludeName):
            matched |= {p for p, info in procs.items() if info[2] == rule.name[:_NAME_MAX]}
        flags = resolved.flags
        entries = {p: flags for p in matched}
        if flags & lib.EXCL_DESCENDANTS:
            children: dict[int, list[int]] = {}
            for p, info in procs.items():
                children.setdefault(info[0], []).append(p)
            todo = list(matched)
            while todo:
                for child in children.get(todo.pop(), []):
                    if child not in entries:
                        entries[child] = flags | lib.EXCL_STICKY
                        todo.append(child)
        fd = self._fds["excluded_tgids"]
        for tgid, f in entries.items():
            key = ffi.new("uint32_t *", tgid)
            value = ffi.new(
                "struct excl_value *",
                {"rule": rule_id, "flags": f | (lib.EXCL_STICKY if flags & lib.EXCL_DESCENDANTS else 0)},
            )
            check_ret(lib.bpf_map_update_elem(fd, key, value, 0), "exclude", f"pid {tgid}")


def _processes() -> dict[int, tuple[int, tuple[int, int] | None, str]]:
    """pid -> (ppid, (st_dev, st_ino) of its executable, comm) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        base = Path("/proc", entry)
        try:
            stat = (base / "stat").read_text()
            comm = (base / "comm").read_text().rstrip("\n")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        try:
            st = os.stat(base / "exe")
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        out[int(entry)] = (ppid, ident, comm)
    return out
