# SPDX-License-Identifier: Apache-2.0
"""The exclusion maps of a running eBPF source: rules in, hit counters out."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ..._ffi import check_ret, ffi, lib, map_items
from ...errors import ConfigError
from ...events import EVENT_CLASSES
from ...events._kinds import kind_of
from ...exclusions import (
    MAX_RULES,
    NAME_MAX,
    ExcludeCgroup,
    ExcludeExecutable,
    ExcludeName,
    ExcludePathPrefix,
    ExcludeSelf,
    ExcludeUid,
    Exclusion,
    Resolved,
    RuleStatus,
    resolve,
)

__all__ = ["ExclusionTable"]

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
        self._rules: dict[int, tuple[Exclusion, Resolved]] = {}

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

    def apply(self, rules: Sequence[Exclusion]) -> None:
        """Make the installed rules exactly these, all or nothing: rules
        kept keep their ids and counters; when a new one cannot be added
        (invalid, or the maps are full), the table is as it was.

        Raises:
            ConfigError: an invalid rule, or more than MAX_RULES rules.
        """
        wanted = list(dict.fromkeys(rules))
        resolved = {rule: resolve(rule) for rule in wanted}  # every rule checked before any change
        if len(wanted) > MAX_RULES:
            raise ConfigError(f"exclusions: {len(wanted)} rules; at most {MAX_RULES}")
        installed = {rule: rid for rid, (rule, _r) in self._rules.items()}
        new = [rule for rule in wanted if rule not in installed]
        old = [rid for rule, rid in installed.items() if rule not in resolved]
        # an old rule on a map key a new one takes (a path and its spelling
        # with a trailing '/') goes first, or the new one would be taken as
        # that rule; so do all old ones when the maps cannot hold both sets
        keys = {(r.map_name, r.key) for rule, r in resolved.items() if rule in new and r.map_name}
        early = [rid for rid in old if (self._rules[rid][1].map_name, self._rules[rid][1].key) in keys]
        if len(self._rules) - len(early) + len(new) > MAX_RULES:
            early = old
        removed: list[Exclusion] = []
        added: list[int] = []
        try:
            for rid in early:
                removed.append(self._rules[rid][0])
                self.remove(rid)
            for rule in new:
                added.append(self.add(rule))
        except BaseException:
            for rid in added:
                self.remove(rid)
            for rule in removed:
                self.add(rule)
            raise
        for rid in old:
            if rid not in early:
                self.remove(rid)

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
                    hits[kind_of(cls)] = n
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

    def _seed(self, rule_id: int, rule: Exclusion, resolved: Resolved) -> None:
        """Enter processes already running into excluded_tgids (the kernel
        keeps it current from here on, at exec, fork and exit)."""
        if isinstance(rule, (ExcludeCgroup, ExcludeUid, ExcludePathPrefix)):
            return
        if isinstance(rule, ExcludeSelf):
            # this very process, alive: no scan of /proc, nothing to take back
            value = ffi.new("struct excl_value *", {"rule": rule_id, "flags": resolved.flags})
            for tgid in resolved.seed_pids:
                key = ffi.new("uint32_t *", tgid)
                check_ret(lib.bpf_map_update_elem(self._fds["excluded_tgids"], key, value, 0), "exclude", "self")
            return
        procs = _processes()
        matched: set[int] = set(resolved.seed_pids)
        if isinstance(rule, ExcludeExecutable):
            want = os.stat(rule.path)
            matched |= {p for p, info in procs.items() if info.exe == (want.st_dev, want.st_ino)}
        elif isinstance(rule, ExcludeName):
            matched |= {p for p, info in procs.items() if info.comm == rule.name[:NAME_MAX]}
        flags = resolved.flags
        entries = {p: flags for p in matched}
        if flags & lib.EXCL_DESCENDANTS:
            children: dict[int, list[int]] = {}
            for p, info in procs.items():
                children.setdefault(info.ppid, []).append(p)
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
        # a process that exited between the scan and its insertion left an
        # entry its exit can no longer delete, which a later process with
        # the same pid would inherit: take back every entry whose process
        # is gone or is another one now (a pid reused after the insertion
        # is cleared by the kernel at that process's fork)
        for tgid in entries:
            start = procs[tgid].start if tgid in procs else None
            now = _start_time(tgid)
            if now is None or (start is not None and now != start):
                key = ffi.new("uint32_t *", tgid)
                current = ffi.new("struct excl_value *")
                if lib.bpf_map_lookup_elem(fd, key, current) == 0 and current.rule == rule_id:
                    lib.bpf_map_delete_elem(fd, key)


class _Proc(NamedTuple):
    ppid: int
    exe: tuple[int, int] | None  # (st_dev, st_ino) of its executable
    comm: str
    start: int  # clock ticks after boot: with the pid, names one process


def _stat_fields(stat: str) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (which may hold
    spaces and parentheses): [state, ppid, ...]."""
    return stat.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> int | None:
    """The process's start time, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(_stat_fields(f.read())[19])
    except (OSError, IndexError, ValueError):
        return None


def _processes() -> dict[int, _Proc]:
    """Every process, by pid."""
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
        fields = _stat_fields(stat)
        try:
            st = os.stat(base / "exe")
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        out[int(entry)] = _Proc(int(fields[1]), ident, comm, int(fields[19]))
    return out
