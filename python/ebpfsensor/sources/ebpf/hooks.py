# SPDX-License-Identifier: Apache-2.0
"""Which object and which hooks produce each event kind, and the maps the
objects share."""

from __future__ import annotations

__all__ = ["ALWAYS", "EXCLUSION_MAPS", "KIND_HOOKS", "SHARED_MAPS", "hooks_for"]


def _file_hooks(*syscalls: str) -> tuple[str, ...]:
    """The hooks of file.bpf.o for these syscalls: an enter/exit pair each.
    Calls an architecture lacks (arm64 has no open, unlink, ...) have no
    program in its object and are left out when loading."""
    return tuple(f"file_{name}_{side}" for name in syscalls for side in ("enter", "exit"))


def _syscall_hooks(*syscalls: str) -> tuple[str, ...]:
    return tuple(f"{name}_{side}" for name in syscalls for side in ("enter", "exit"))


_OPEN_HOOKS = _file_hooks("open", "creat", "openat", "openat2")

#: hooks loaded whatever kinds are collected: they keep exclusion state (and
#: the kinds they produce are switched on and off in kind_enabled)
ALWAYS: dict[str, frozenset[str]] = {"process": frozenset({"exec", "fork", "exit"})}

#: kind -> (object, hooks); a hook that serves several kinds is loaded when
#: any of them is enabled (the program checks kind_enabled)
KIND_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "process_exec": ("process", ("exec",)),
    "process_fork": ("process", ("fork",)),
    "process_exit": ("process", ("exit",)),
    # path_* (lsm/fentry/kprobe, on the kernel's path checks) give the
    # paths the kernel resolved; without them a path is the caller's string
    "file_open": ("file", _OPEN_HOOKS),
    "file_create": ("file", (*_OPEN_HOOKS, *_file_hooks("mknod", "mknodat"), "path_mknod")),
    "file_unlink": ("file", (*_file_hooks("unlink", "unlinkat", "rmdir"), "path_unlink", "path_rmdir")),
    "dir_create": ("file", (*_file_hooks("mkdir", "mkdirat"), "path_mkdir")),
    # rename_target tells whether a rename replaced a file (lsm/fentry/kprobe)
    "file_rename": ("file", (*_file_hooks("rename", "renameat", "renameat2"), "rename_target", "path_rename")),
    "file_chmod": ("file", (*_file_hooks("chmod", "fchmod", "fchmodat", "fchmodat2"), "path_chmod")),
    "file_chown": ("file", (*_file_hooks("chown", "lchown", "fchown", "fchownat"), "path_chown")),
    "file_link": ("file", (*_file_hooks("link", "linkat"), "path_link")),
    "file_symlink": ("file", (*_file_hooks("symlink", "symlinkat"), "path_symlink")),
    "net_connect": ("net", _syscall_hooks("connect")),
    "net_accept": ("net", _syscall_hooks("accept", "accept4")),
    "net_bind": ("net", _syscall_hooks("bind")),
    "net_listen": ("net", _syscall_hooks("listen")),
    "cred_change": (
        "priv",
        _syscall_hooks(
            "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "capset"
        ),
    ),
    "kill": ("priv", _syscall_hooks("kill", "tkill", "tgkill")),
    "setsid": ("priv", _syscall_hooks("setsid")),
    "ptrace": ("priv", _syscall_hooks("ptrace")),
    "memfd_create": ("priv", _syscall_hooks("memfd_create")),
    "bpf_call": ("priv", _syscall_hooks("bpf")),
    "module_load": ("priv", (*_syscall_hooks("init_module", "finit_module"), "module_load")),
    "mount": ("priv", _syscall_hooks("mount")),
    "umount": ("priv", _syscall_hooks("umount")),
}

#: the exclusion maps, shared by every object: the first object loaded creates them
EXCLUSION_MAPS = (
    "excl_active",
    "excluded_tgids",
    "excl_exe",
    "excl_comm",
    "excl_cgroup",
    "excl_uid",
    "excl_path",
    "excl_hits",
)
#: every map the objects share
SHARED_MAPS = ("lifecycle_events", "activity_events", "kind_stats", "kind_enabled", *EXCLUSION_MAPS)


def hooks_for(kinds: frozenset[str]) -> dict[str, set[str]]:
    """object -> the hooks to load for these kinds (with :data:`ALWAYS`)."""
    wanted: dict[str, set[str]] = {name: set(hooks) for name, hooks in ALWAYS.items()}
    for kind in sorted(kinds):
        obj_name, hooks = KIND_HOOKS[kind]
        wanted.setdefault(obj_name, set()).update(hooks)
    return wanted
