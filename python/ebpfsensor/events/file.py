# SPDX-License-Identifier: Apache-2.0
"""File events: open, create, unlink, mkdir, rename, chmod, chown, link, symlink."""

from __future__ import annotations

from ._base import EventType, _SyscallEvent

__all__ = [
    "DirCreate",
    "FileChmod",
    "FileChown",
    "FileCreate",
    "FileLink",
    "FileOpen",
    "FileRename",
    "FileSymlink",
    "FileUnlink",
]

# --- file events ------------------------------------------------------------
# ``path`` is absolute. For an open that succeeded (``resolved``) it comes
# from the opened file's own dentry and mount chain: symlinks, "..", dirfd
# and mount namespaces are resolved by the kernel. Everywhere else it is the
# caller's base directory (dirfd, the cwd for AT_FDCWD, the root for an
# absolute string), resolved the same way, joined with the caller's string
# as passed: the kernel's lookup of that string is not visible at the
# syscall tracepoints, so ".." or a symlink inside the string stays as
# written; with a dirfd that is not open, ``path`` is the string alone.
# Absolute means from the root of the process's mount namespace: a file in
# a container reads as the container sees it, one under a chroot with the
# chroot's own location in front. ``arg_path`` is the string as passed.
# ``dirfd`` is -100 (AT_FDCWD) for the cwd. ``*_truncated`` flags a string
# that could not be read or did not fit: a path longer than PATH_LEN - 1
# keeps its leading part, one deeper than MAX_PATH_DEPTH its last
# components.


class _FileOpenFields(_SyscallEvent, frozen=True, gc=False):
    """The fields of struct file_open_event, shared by FileOpen and FileCreate."""

    ino: int
    dev: int
    flags: int
    mode: int
    dirfd: int
    created: bool
    resolved: bool
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileOpen(_FileOpenFields, frozen=True, gc=False, tag="file_open"):
    """A file was opened (open, openat, openat2, creat), or an open failed.

    ``result`` is the new fd or -errno. ``flags`` are the O_* flags as passed
    and ``mode`` the creation mode; ``created`` when this open created the
    file. ``ino``/``dev`` identify the opened file (``dev`` as ``st_dev``),
    0 when the open failed. ``resolved``: ``path`` comes from the opened
    file itself (always when the open succeeded).
    """

    event_type = EventType.FILE_OPEN
    record = "file_open_event"


class FileCreate(_FileOpenFields, frozen=True, gc=False, tag="file_create"):
    """An open created a new file (``created``), or an open with O_CREAT
    failed: same fields as :class:`FileOpen`, and reported besides it. Also
    mknod/mknodat (``mode`` carries the file type, S_IFREG, S_IFIFO, ...;
    ``created`` when it succeeded; ``flags``, ``ino`` and ``dev`` are 0)."""

    event_type = EventType.FILE_CREATE
    record = "file_open_event"


class FileUnlink(_SyscallEvent, frozen=True, gc=False, tag="file_unlink"):
    """A file or (``is_dir``, rmdir or AT_REMOVEDIR) a directory was removed."""

    event_type = EventType.FILE_UNLINK
    record = "file_unlink_event"

    dirfd: int
    flags: int
    is_dir: bool
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class DirCreate(_SyscallEvent, frozen=True, gc=False, tag="dir_create"):
    """A directory was created (mkdir, mkdirat); ``mode`` as passed."""

    event_type = EventType.DIR_CREATE
    record = "dir_create_event"

    dirfd: int
    mode: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileRename(_SyscallEvent, frozen=True, gc=False, tag="file_rename"):
    """A file was renamed (rename, renameat, renameat2): ``path`` to ``new_path``.

    ``flags`` are renameat2's RENAME_NOREPLACE (1), RENAME_EXCHANGE (2),
    RENAME_WHITEOUT (4).

    ``replaced``: an existing file at ``new_path`` was replaced (False for a
    failed rename and for RENAME_EXCHANGE). The syscall tracepoints cannot
    see it; the ``rename_target`` hook on the kernel's rename permission
    check can, as a BPF LSM, fentry or kprobe program. On a kernel that
    allows none of them, a successful rename reports None (unknown), and
    ``Sensor.health()`` shows file_rename as partly unavailable.
    """

    event_type = EventType.FILE_RENAME
    record = "file_rename_event"

    dirfd: int
    new_dirfd: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    new_path_truncated: bool
    new_arg_path_truncated: bool
    replaced: bool | None
    path: str
    arg_path: str
    new_path: str
    new_arg_path: str


class FileChmod(_SyscallEvent, frozen=True, gc=False, tag="file_chmod"):
    """A file's mode was changed (chmod, fchmod, fchmodat, fchmodat2).

    For fchmod ``dirfd`` is the fd, ``arg_path`` is empty and ``path`` is
    the fd's file.
    """

    event_type = EventType.FILE_CHMOD
    record = "file_chmod_event"

    dirfd: int
    mode: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileChown(_SyscallEvent, frozen=True, gc=False, tag="file_chown"):
    """A file's owner changed (chown, lchown, fchown, fchownat) to
    ``new_uid``/``new_gid``; 4294967295 leaves one unchanged. lchown reports AT_SYMLINK_NOFOLLOW
    (0x100) in ``flags``."""

    event_type = EventType.FILE_CHOWN
    record = "file_chown_event"

    dirfd: int
    new_uid: int
    new_gid: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str


class FileLink(_SyscallEvent, frozen=True, gc=False, tag="file_link"):
    """A hard link ``new_path`` to the existing ``path`` was made (link, linkat)."""

    event_type = EventType.FILE_LINK
    record = "file_link_event"

    dirfd: int
    new_dirfd: int
    flags: int
    path_truncated: bool
    arg_path_truncated: bool
    new_path_truncated: bool
    new_arg_path_truncated: bool
    path: str
    arg_path: str
    new_path: str
    new_arg_path: str


class FileSymlink(_SyscallEvent, frozen=True, gc=False, tag="file_symlink"):
    """A symbolic link ``path`` holding ``target`` was made (symlink, symlinkat);
    ``target`` is the string stored, never resolved."""

    event_type = EventType.FILE_SYMLINK
    record = "file_symlink_event"

    dirfd: int
    target_truncated: bool
    path_truncated: bool
    arg_path_truncated: bool
    target: str
    path: str
    arg_path: str


#: every event a Sensor delivers; UserLogin comes from the kernel audit subsystem
