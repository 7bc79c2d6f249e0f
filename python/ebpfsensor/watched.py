# SPDX-License-Identifier: Apache-2.0
"""Watched files: the files whose read-only opens are reported.

Under ``Config.read_opens = "watched"`` (the default) an open with write
intent is reported as every open was before; a read-only open only when the
file it opened is watched, else it is counted (``KindStats.unwatched``). A
watched file is matched in the kernel by identity, the (device, inode) of
the opened file's inode, so a hard link, a bind mount, a symlink or a rename
of it is still that file. The identities are taken here with ``stat()``, at
start and again every :data:`REFRESH_S` seconds while the sensor polls: a
file created later (a new user's ``authorized_keys``) or replaced by a new
inode (``passwd`` writes a new ``/etc/shadow`` and renames it over the old
one; editors do the same) is watched from the next refresh on. A path that
does not exist is not an error: it is watched once it exists.

Entries are absolute paths or ``glob`` patterns (``/etc/pam.d/*``).
:data:`DEFAULT_WATCHED` is always watched; ``Config.watched_files`` adds to
it. Every user's ``~/.ssh/authorized_keys`` and ``~/.ssh/id_*`` private keys
are found from the password database at each refresh.
"""

from __future__ import annotations

import glob
import os
import pwd
import stat
from collections.abc import Iterable

from .errors import ConfigError
from .exclusions import kernel_dev
from .host.mounts import superblock_dev

__all__ = ["DEFAULT_WATCHED", "MANAGED_CONFIG_PATH", "MAX_WATCHED", "REFRESH_S", "check_patterns", "resolve"]

#: managed_config.DEFAULT_PATH (which imports this module's users)
MANAGED_CONFIG_PATH = "/etc/ebpfsensor/config.json"
#: how often the watched paths are looked up again while the sensor polls
REFRESH_S = 1.0
#: the most files watched at once (the kernel map's size, WATCHED_MAX)
MAX_WATCHED = 4096
#: the most entries Config.watched_files takes
MAX_PATTERNS = 1024

#: always watched: credentials, privilege and remote access configuration,
#: and the sensor's own configuration
DEFAULT_WATCHED: tuple[str, ...] = (
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/passwd",
    "/etc/group",
    "/etc/sudoers",
    "/etc/sudoers.d/*",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d/*",
    "/etc/ssh/ssh_host_*_key",
    "/etc/pam.d/*",
    "/etc/security/opasswd",
    "/root/.ssh/authorized_keys",
    "/root/.ssh/authorized_keys2",
    "/root/.ssh/id_*",
    MANAGED_CONFIG_PATH,
)

_GLOB = frozenset("*?[")


def check_patterns(patterns: Iterable[str], name: str = "watched_files") -> None:
    """Check configured entries: absolute, normalised paths or patterns.

    Raises:
        ConfigError: the first bad entry, and why.
    """
    entries = list(patterns)
    if len(entries) > MAX_PATTERNS:
        raise ConfigError(f"{name}: {len(entries)} entries; at most {MAX_PATTERNS}")
    for p in entries:
        if not isinstance(p, str) or not p.startswith("/"):
            raise ConfigError(f"{name}: {p!r} is not an absolute path; give one starting with '/'")
        if "\0" in p or len(os.fsencode(p)) >= 4096:
            raise ConfigError(f"{name}: {p!r} is not a file name (NUL, or 4096 bytes or more)")
        parts = p.split("/")[1:]
        if p != "/" and (p.endswith("/") or any(part in ("", ".", "..") for part in parts)):
            raise ConfigError(
                f"{name}: {p!r} is not a normalised path (no '.', '..', '//' or trailing '/'); "
                f"write {os.path.normpath(p)!r}"
            )
        if "**" in p:
            raise ConfigError(f"{name}: {p!r}: '**' is not supported; one '*' matches within one directory")


def _user_files() -> list[str]:
    """Every user's authorized_keys and private keys (~/.ssh/id_*, not .pub)."""
    homes = set()
    try:
        for entry in pwd.getpwall():
            if entry.pw_dir.startswith("/") and entry.pw_dir != "/":
                homes.add(entry.pw_dir)
    except OSError:
        pass
    out = []
    for home in sorted(homes):
        ssh = os.path.join(home, ".ssh")
        out += [os.path.join(ssh, "authorized_keys"), os.path.join(ssh, "authorized_keys2"), os.path.join(ssh, "id_*")]
    return out


def _expand(pattern: str) -> list[str]:
    if not _GLOB & set(pattern):
        return [pattern]
    keys = os.path.basename(pattern).startswith("id_")
    # of a key pair, the private key: public keys are there to be read
    return sorted(p for p in glob.glob(pattern) if not (keys and p.endswith(".pub")))


def resolve(extra: Iterable[str] = ()) -> dict[tuple[int, int], str]:
    """The watched files' identities now: (the kernel's s_dev, inode) ->
    the path it was found at. Regular files only (a directory's read-only
    opens are listings); paths that do not exist are left out. A file whose
    filesystem reports another device to stat() than its superblock's
    (btrfs subvolumes, overlayfs over several filesystems) is entered under
    both, as the kernel may see either."""
    out: dict[tuple[int, int], str] = {}
    # the superblock's device by stat()'s: one mountinfo read per filesystem
    sb_of: dict[int, int | None] = {}
    for pattern in (*DEFAULT_WATCHED, *_user_files(), *extra):
        for path in _expand(pattern):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            out.setdefault((kernel_dev(st.st_dev), st.st_ino), path)
            if st.st_dev not in sb_of:
                sb_of[st.st_dev] = superblock_dev(path)
            sb = sb_of[st.st_dev]
            if sb is not None and sb != st.st_dev:
                out.setdefault((kernel_dev(sb), st.st_ino), path)
            if len(out) >= MAX_WATCHED:
                return out
    return out
