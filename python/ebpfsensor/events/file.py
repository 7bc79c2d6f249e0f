# SPDX-License-Identifier: Apache-2.0
"""File events: open, create, unlink, mkdir, rename, chmod, chown, link, symlink.

Paths: ``path`` is absolute. For an open that succeeded (``resolved``) it
comes from the opened file's own dentry and mount chain: symlinks, "..",
dirfd and mount namespaces are resolved by the kernel. So does the entry
any other call acts on where a hook on the kernel's path checks runs (BPF
LSM, fentry or kprobe; ``path_source`` is then ``KERNEL``). Everywhere else
it is the caller's base directory (dirfd, the cwd for AT_FDCWD, the root
for an absolute string), resolved the same way, joined with the caller's
string as passed: the kernel's lookup of that string is not visible at the
syscall tracepoints, so ".." or a symlink inside the string stays as
written; with a dirfd that is not open, ``path`` is the string alone. Absolute means from
the root of the process's mount namespace: a file in a container reads as
the container sees it, one under a chroot with the chroot's own location in
front. ``arg_path`` is the string as passed. ``dirfd`` is -100 (AT_FDCWD)
for the cwd. ``*_truncated`` flags a string that could not be read or did
not fit: a path longer than PATH_LEN - 1 (4095 bytes) keeps its leading
part, one deeper than MAX_PATH_DEPTH (64) its last components. ``new_path``,
``new_arg_path`` and ``new_dirfd`` follow the same rules.

Path sources: ``path_source`` (``new_path_source``, ``target_source``) says
where a path came from, as a :class:`PathSource` number, so a consumer knows
how far to trust it. The kernel copies the caller's string early in the
syscall; the event reads the caller's memory again at the syscall's exit,
where another thread may have rewritten it (while the call blocked, say).
At the syscall's entry a string of at most 102 bytes is copied whole, a
longer one's length and a keyed hash kept; at its exit they are compared. A
string that changed is reported as it was at entry when it was copied
whole, and flagged ``SYSCALL_ARG_CHANGED`` either way; such a path is never
excluded by a path prefix rule. An open that succeeded names the file it
opened (``KERNEL``), whatever the string. A rewrite within the instant
between the entry and the kernel's own copy is not seen.
"""

from __future__ import annotations

import enum

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
    "PathSource",
]


class PathSource(enum.IntEnum):
    """Where a path (or a network address) in an event came from: the
    values of ``path_source``, ``new_path_source``, ``target_source`` and,
    in network events, ``local_source`` and ``remote_source``."""

    #: no such path or address in this event
    NONE = 0
    #: from the kernel's own objects: the opened file, the fd's file, the
    #: entry a path check saw (where one is hooked), the socket (a path from
    #: a dirfd alone, or with an empty string, too)
    KERNEL = 1
    #: the caller's string, the same at the syscall's exit as at its entry
    #: (network: the sockaddr the caller passed, read at entry)
    SYSCALL_ARG = 2
    #: the caller's string changed between the syscall's entry and exit: as
    #: it was at entry when at most 102 bytes, else as at exit; either way
    #: the caller rewrote its argument during the call
    SYSCALL_ARG_CHANGED = 3
    #: the caller's string as read at the syscall's exit, not compared: it
    #: could not be read at entry (its memory was not resident); never
    #: excluded by a path prefix rule
    SYSCALL_ARG_UNCHECKED = 4


class _FileOpenFields(_SyscallEvent, frozen=True, gc=False):
    """The fields of struct file_open_event, shared by FileOpen and FileCreate.

    Attributes:
        ino: the opened file's inode number; 0 when the open failed.
        dev: the opened file's device, encoded as ``st_dev`` (major << 8 |
            minor); 0 when the open failed.
        flags: the O_* flags as passed (openat2: ``how.flags``; creat:
            O_CREAT|O_WRONLY|O_TRUNC).
        mode: the creation mode as passed.
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd.
        created: this open created the file (the kernel's FMODE_CREATED).
        resolved: ``path`` comes from the opened file itself (always when
            the open succeeded).
        path_truncated: ``path`` could not be read or did not fit (see
            "Paths" above).
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        path: the file's absolute path: from the opened file's own dentry
            and mount chain when ``resolved``, else the caller's base
            directory joined with ``arg_path`` (see "Paths" above).
        arg_path: the path string as the caller passed it.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource`: ``KERNEL`` when ``resolved`` (``arg_path``
            is then the caller's string, compared as for the others), else
            the caller's string checked as described under "Path sources"
            above.
    """

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
    path_source: int


class FileOpen(_FileOpenFields, frozen=True, gc=False, tag="file_open"):
    """A file was opened (open, openat, openat2, creat), or an open failed.

    One call is one event: an open that created its file is reported as a
    :class:`FileCreate` when that kind is collected, and as a FileOpen
    (``created`` set) only when it is not. An O_CREAT open that failed is a
    FileOpen (the file may have existed, and O_CREAT is the caller's to
    add: it does not move a failed open to another kind), or a FileCreate
    when FileCreate alone is collected.

    Which opens are reported is the open policy's (``Config.read_opens``):
    by default every open with write intent (O_WRONLY, O_RDWR, O_CREAT,
    O_TRUNC), and a read-only one (O_PATH included) when the file it opened
    is watched (matched by device and inode, whatever name it was opened
    by) or when the kernel refused it (EACCES, EPERM); the other read-only
    opens are counted (``KindStats.unwatched``). A watched open reported
    without its arguments (its thread's stash entry was evicted, or the
    open was in flight when the sensor started) has an empty ``arg_path``
    and ``dirfd`` -100. ``read_opens="all"`` reports
    every open.

    Where the open's ``fentry`` variant runs (``Sensor.hooks()``: one fexit
    program on the kernel's ``do_filp_open``, on kernels with BPF
    trampolines), the open is seen inside the kernel, io_uring's
    IORING_OP_OPENAT/OPENAT2 and the kernel's opens on the process's behalf
    (a core dump's file, ``acct``, ``swapon``) included, exec's own open of
    the program left out; then ``arg_path`` is the kernel's copy of the
    name and ``path_source`` is ``KERNEL`` for a failed open too, ``flags``
    are the kernel's (O_LARGEFILE dropped; an O_PATH open keeps only
    O_PATH, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC; io_uring's first,
    non-blocking try adds O_NONBLOCK), ``mode`` is 0 without
    O_CREAT/O_TMPFILE, and ``syscall_nr`` is that of ``io_uring_enter``
    (426) for an io_uring open, whether made in that call or by the ring's
    worker thread (``tid``), and -1 as an unsigned 32-bit number
    (4294967295) for a core dump after a fault. An open the kernel refuses
    before it looks the name up (a name it cannot copy or too long, flags
    it rejects, no free fd: EFAULT, ENAMETOOLONG, EINVAL, EMFILE) opened
    nothing and is not seen there.

    Attributes:
        result: the new fd, or -errno. With the ``fentry`` variant, the fd
            the syscall reserved for the file (read from the fd table: a
            thread of the same process reserving one in the same instant
            can make it that one), and 0 for an open that takes no fd (an
            io_uring fixed-file open, the kernel's own opens).
    """

    event_type = EventType.FILE_OPEN
    record = "file_open_event"


class FileCreate(_FileOpenFields, frozen=True, gc=False, tag="file_create"):
    """An open created a new file (``created``): same fields as
    :class:`FileOpen`, and reported instead of it (with this kind off, the
    call is a FileOpen with ``created``). A failed O_CREAT open is a
    FileCreate only when FileOpen is not collected. Also
    mknod/mknodat (``mode`` carries the file type, S_IFREG, S_IFIFO, ...;
    ``created`` when it succeeded; ``flags``, ``ino`` and ``dev`` are 0).

    Attributes:
        result: the new fd (an open) or 0 (mknod, mknodat), or -errno.
        ino: the opened file's inode number; 0 when the open failed, and for
            mknod/mknodat.
        dev: the opened file's device, encoded as ``st_dev`` (major << 8 |
            minor); 0 when the open failed, and for mknod/mknodat.
        flags: the O_* flags as passed (openat2: ``how.flags``; creat:
            O_CREAT|O_WRONLY|O_TRUNC); 0 for mknod/mknodat.
        mode: the creation mode as passed; for mknod/mknodat it carries the
            file type too (S_IFREG, S_IFIFO, ...).
        created: this open created the file (the kernel's FMODE_CREATED);
            for mknod/mknodat, the call succeeded.
    """

    event_type = EventType.FILE_CREATE
    record = "file_open_event"


class FileUnlink(_SyscallEvent, frozen=True, gc=False, tag="file_unlink"):
    """A file or (``is_dir``, rmdir or AT_REMOVEDIR) a directory was removed
    (unlink, unlinkat, rmdir).

    Attributes:
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd.
        flags: unlinkat's flags; AT_REMOVEDIR (0x200) for rmdir.
        is_dir: a directory was removed (rmdir, or unlinkat with
            AT_REMOVEDIR).
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        path: the removed file's absolute path (see "Paths" above).
        arg_path: the path string as the caller passed it.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above).
    """

    event_type = EventType.FILE_UNLINK
    record = "file_unlink_event"

    dirfd: int
    flags: int
    is_dir: bool
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str
    path_source: int


class DirCreate(_SyscallEvent, frozen=True, gc=False, tag="dir_create"):
    """A directory was created (mkdir, mkdirat).

    Attributes:
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd.
        mode: the new directory's mode as passed.
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        path: the new directory's absolute path (see "Paths" above).
        arg_path: the path string as the caller passed it.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above).
    """

    event_type = EventType.DIR_CREATE
    record = "dir_create_event"

    dirfd: int
    mode: int
    path_truncated: bool
    arg_path_truncated: bool
    path: str
    arg_path: str
    path_source: int


class FileRename(_SyscallEvent, frozen=True, gc=False, tag="file_rename"):
    """A file was renamed (rename, renameat, renameat2): ``path`` to ``new_path``.

    ``replaced`` cannot be seen at the syscall tracepoints; the
    ``rename_target`` hook on the kernel's rename permission check can, as a
    BPF LSM, fentry or kprobe program. On a kernel that allows none of them,
    a successful rename reports None (unknown), and ``Sensor.health()``
    shows file_rename as partly unavailable.

    Attributes:
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd.
        new_dirfd: the directory fd ``new_arg_path`` is relative to; -100
            (AT_FDCWD) for the cwd.
        flags: renameat2's RENAME_NOREPLACE (1), RENAME_EXCHANGE (2),
            RENAME_WHITEOUT (4); 0 for rename and renameat.
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        new_path_truncated: ``new_path`` could not be read or did not fit.
        new_arg_path_truncated: ``new_arg_path`` could not be read or did not
            fit.
        replaced: an existing file at ``new_path`` was replaced (False for a
            failed rename and for RENAME_EXCHANGE; None, unknown, for a
            successful rename where no ``rename_target`` hook could load).
        path: the old name, absolute (see "Paths" above).
        arg_path: the old name as the caller passed it.
        new_path: the new name, absolute (see "Paths" above).
        new_arg_path: the new name as the caller passed it.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above).
        new_path_source: where ``new_path`` and ``new_arg_path`` came
            from, a :class:`PathSource`.
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
    path_source: int
    new_path_source: int


class FileChmod(_SyscallEvent, frozen=True, gc=False, tag="file_chmod"):
    """A file's mode was changed (chmod, fchmod, fchmodat, fchmodat2).

    Attributes:
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd; for fchmod, the fd whose file changed.
        mode: the new mode as passed.
        flags: fchmodat2's AT_SYMLINK_NOFOLLOW (0x100), AT_EMPTY_PATH
            (0x1000); 0 for the other calls.
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        path: the file's absolute path (see "Paths" above); for fchmod, the
            fd's file.
        arg_path: the path string as the caller passed it; "" for fchmod.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above); ``KERNEL`` for
            fchmod.
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
    path_source: int


class FileChown(_SyscallEvent, frozen=True, gc=False, tag="file_chown"):
    """A file's owner changed (chown, lchown, fchown, fchownat) to
    ``new_uid``/``new_gid``.

    Attributes:
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd; for fchown, the fd whose file changed.
        new_uid: the owner asked for; 4294967295 leaves it unchanged.
        new_gid: the group asked for; 4294967295 leaves it unchanged.
        flags: fchownat's AT_* flags; lchown reports AT_SYMLINK_NOFOLLOW
            (0x100); 0 for chown and fchown.
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        path: the file's absolute path (see "Paths" above); for fchown, the
            fd's file.
        arg_path: the path string as the caller passed it; "" for fchown.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above); ``KERNEL`` for
            fchown.
    """

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
    path_source: int


class FileLink(_SyscallEvent, frozen=True, gc=False, tag="file_link"):
    """A hard link ``new_path`` to the existing ``path`` was made (link, linkat).

    Attributes:
        dirfd: the directory fd ``arg_path`` is relative to; -100 (AT_FDCWD)
            for the cwd.
        new_dirfd: the directory fd ``new_arg_path`` is relative to; -100
            (AT_FDCWD) for the cwd.
        flags: linkat's AT_SYMLINK_FOLLOW (0x400), AT_EMPTY_PATH (0x1000); 0
            for link.
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        new_path_truncated: ``new_path`` could not be read or did not fit.
        new_arg_path_truncated: ``new_arg_path`` could not be read or did not
            fit.
        path: the existing file, absolute (see "Paths" above).
        arg_path: the existing file as the caller passed it.
        new_path: the new link, absolute (see "Paths" above).
        new_arg_path: the new link as the caller passed it.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above).
        new_path_source: where ``new_path`` and ``new_arg_path`` came
            from, a :class:`PathSource`.
    """

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
    path_source: int
    new_path_source: int


class FileSymlink(_SyscallEvent, frozen=True, gc=False, tag="file_symlink"):
    """A symbolic link ``path`` holding ``target`` was made (symlink, symlinkat).

    Attributes:
        dirfd: the directory fd the new link's ``arg_path`` is relative to
            (symlinkat's newdirfd); -100 (AT_FDCWD) for the cwd.
        target_truncated: ``target`` could not be read or did not fit.
        path_truncated: ``path`` could not be read or did not fit.
        arg_path_truncated: ``arg_path`` could not be read or did not fit.
        target: the string the link holds, as given; never resolved.
        path: the new link's absolute path (see "Paths" above).
        arg_path: the new link's path as the caller passed it.
        path_source: where ``path`` and ``arg_path`` came from, a
            :class:`PathSource` (see "Path sources" above).
        target_source: where ``target`` came from, a :class:`PathSource`:
            ``KERNEL``, the kernel's copy, where a path_symlink hook runs;
            else the caller's string, checked as the paths are.
    """

    event_type = EventType.FILE_SYMLINK
    record = "file_symlink_event"

    dirfd: int
    target_truncated: bool
    path_truncated: bool
    arg_path_truncated: bool
    target: str
    path: str
    arg_path: str
    path_source: int
    target_source: int
