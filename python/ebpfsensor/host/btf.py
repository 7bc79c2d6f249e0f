# SPDX-License-Identifier: Apache-2.0
"""The BTF that CO-RE relocates against: the kernel's own, or a file for it.

The search (:func:`resolve`), first hit wins:

1. ``Config.btf_path``: that file. Missing or refused, it is an error and
   nothing else is tried: the administrator named the file.
2. ``/sys/kernel/btf/vmlinux``: the running kernel's own BTF
   (CONFIG_DEBUG_INFO_BTF); no file is handed to libbpf.
3. ``Config.btf_dir`` (:data:`DEFAULT_BTF_DIR`): ``<release>.btf``, then
   BTFHub's archive layout ``<ID>/<VERSION_ID>/<arch>/<release>.btf``
   (os-release's ID and VERSION_ID, then VERSION_ID's major number, as
   BTFHub names RHEL's directories). Each also as ``.btf.tar.xz``, the form
   BTFHub ships: unpacked into a private cache (:data:`CACHE_DIR`) and
   checked to be BTF.
4. The places libbpf itself looks for a vmlinux (:data:`LIBBPF_LOCATIONS`).
   A file found there is handed to libbpf explicitly rather than left for
   libbpf to find: it passes the same checks as the others, the file used
   is the file reported, and a vmlinux with DWARF only (no ``.BTF``
   section), which libbpf skips without a word, is named in the report.

Every external file is opened once, without following a symlink, and
checked on the open file: owned by root or by this process's user, not
writable by group or others, and so is each directory from ``btf_dir`` (or
the file's own directory) down to it; and it is BTF (magic 0xEB9F, or an
ELF with a ``.BTF`` section). libbpf then reads that open file through
``/proc/self/fd``, so the file checked is the file loaded. Why: CO-RE takes
every field offset the programs read from this file; whoever can replace
it decides what the programs read, and can make events lie.

    with resolve(cfg.btf_path, cfg.btf_dir) as btf:
        obj.load(..., btf_path=btf.libbpf_path)   # None: the kernel's own
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import platform
import secrets
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from .._btf import Btf
from ..errors import EbpfSensorError, NotSupportedError
from .arch import bpf_arch_of
from .paths import BTF_VMLINUX, PACKAGE_DIR
from .support import read_os_release

__all__ = [
    "CACHE_DIR",
    "DEFAULT_BTF_DIR",
    "LIBBPF_LOCATIONS",
    "BtfFileError",
    "BtfLocation",
    "BtfNotFoundError",
    "MinimizeResult",
    "ResolvedBtf",
    "locate",
    "minimize",
    "packaged_objects",
    "resolve",
]

#: where the sensor looks for BTF files named for kernel releases
DEFAULT_BTF_DIR = "/var/lib/ebpfsensor/btf"
#: the private (0700) directory BTFHub archives are unpacked into
CACHE_DIR = "/run/ebpfsensor/btf"
#: libbpf's own fallback locations when /sys/kernel/btf/vmlinux is missing
#: (btf__load_vmlinux_btf, libbpf 1.5), in its order; {r} is the release
LIBBPF_LOCATIONS = (
    "/boot/vmlinux-{r}",
    "/lib/modules/{r}/vmlinux-{r}",
    "/lib/modules/{r}/build/vmlinux",
    "/usr/lib/modules/{r}/kernel/vmlinux",
    "/usr/lib/debug/boot/vmlinux-{r}",
    "/usr/lib/debug/boot/vmlinux-{r}.debug",
    "/usr/lib/debug/lib/modules/{r}/vmlinux",
)
#: BTFHub's architecture directory for a machine (uname -m)
BTFHUB_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}

_MAGIC = 0xEB9F
# struct btf_header: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HDR = struct.Struct("=HBBIIIII")
# a whole kernel's BTF is a few MiB; an archive member far larger is not one
_MAX_UNPACKED = 256 << 20
_O_FILE = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
_O_DIR = os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY
_HOW_TO_MAKE = (
    "make one with `pahole --btf_encode_detached={r}.btf VMLINUX` from the kernel's debug vmlinux "
    "(then `ebpfsensor btf minimize` shrinks it to a few KiB), or take this kernel's file from BTFHub"
)

Source = Literal["config", "kernel", "btf_dir", "libbpf"]


class BtfNotFoundError(NotSupportedError):
    """No BTF for the kernel release: the message names every place searched
    and what to do.

    Attributes:
        release: the kernel release searched for.
        searched: each place looked at, with why it did not serve.
    """

    def __init__(self, release: str, searched: list[str], message: str) -> None:
        self.release = release
        self.searched = searched
        self.feature = "kernel BTF"
        self.min_kernel = ""
        self.detail = message
        EbpfSensorError.__init__(self, message)


class BtfFileError(EbpfSensorError):
    """A BTF file was found but refused: others could have written it, it is
    a symlink, or it is not BTF.

    Attributes:
        path: the file (or archive) refused.
    """

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        super().__init__(f"BTF file {path}: {problem}; {fix}")


class BtfLocation(msgspec.Struct, frozen=True, kw_only=True):
    """Where the BTF comes from, and why that one.

    Attributes:
        release: the kernel release it is for.
        source: ``config`` (Config.btf_path), ``kernel``
            (/sys/kernel/btf/vmlinux), ``btf_dir`` (a file in Config.btf_dir)
            or ``libbpf`` (a vmlinux where libbpf also looks).
        path: the file found.
        reason: why it was chosen, in words.
        unpacked: for an archive, the checked copy in the private cache that
            libbpf reads; "" otherwise.
        searched: the places looked at before it, each with why it did not
            serve.
    """

    release: str
    source: Source
    path: str
    reason: str
    unpacked: str = ""
    searched: list[str] = msgspec.field(default_factory=list)

    @property
    def external(self) -> bool:
        """An external file, not the kernel's own BTF."""
        return self.source != "kernel"

    def describe(self) -> str:
        """One line: the release, the file and why."""
        kind = "external BTF" if self.external else "kernel BTF"
        return f"{self.release}: {kind} {self.path} ({self.reason})"

    def summary(self) -> str:
        """The capability report's form: ``kernel (PATH)`` or ``external (PATH; why)``."""
        if not self.external:
            return f"kernel ({self.path})"
        return f"external ({self.path}; {self.reason})"


class ResolvedBtf:
    """The search's answer, its file held open until :meth:`close`.

    Attributes:
        location: what was found and why.
    """

    def __init__(self, location: BtfLocation, fd: int = -1) -> None:
        self.location = location
        self._fd = fd

    @property
    def libbpf_path(self) -> str | None:
        """The path to give libbpf as ``btf_custom_path``: the checked open
        file; None for the kernel's own BTF (libbpf finds it)."""
        if self._fd < 0:
            return None
        return f"/proc/self/fd/{self._fd}"

    def close(self) -> None:
        """Close the file; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResolvedBtf:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --- opening files that no one else could have written ------------------------------------


def _check_owner_and_mode(report: str, st: os.stat_result, directory: str | None = None) -> None:
    """Refuse a file (or, when named, its directory) that others than root
    and this process's user own or may write."""
    subject, target = ("it is", report) if directory is None else (f"its directory {directory} is", directory)
    euid = os.geteuid()
    if st.st_uid not in (0, euid):
        owners = "root" if euid == 0 else f"root or this process's uid {euid}"
        raise BtfFileError(
            report,
            f"{subject} owned by uid {st.st_uid}, not {owners}: whoever can replace a BTF file decides the "
            "offsets the programs read; refusing it",
            f"run `chown root {target}`",
        )
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    # others cannot rename or remove what they do not own in a sticky directory (/tmp)
    if writable and not (directory and st.st_mode & stat.S_ISVTX):
        raise BtfFileError(
            report,
            f"{subject} writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): whoever can "
            "replace a BTF file decides the offsets the programs read; refusing it",
            f"run `chmod go-w {target}`",
        )


def _open_checked(path: str, base: str | None = None) -> int | None:
    """path opened for reading, or None if it (or a directory on the way)
    does not exist. The file and every directory from base (default: the
    file's own directory) down to it are checked on the open fds; a symlink
    as the last component is refused.

    Raises:
        BtfFileError: a symlink, not a regular file, or owned or writable by
            others.
    """
    path = os.path.abspath(path)
    base = os.path.abspath(base) if base else os.path.dirname(path)
    parts = Path(os.path.relpath(path, base)).parts
    if not parts or parts[0] == "..":
        raise ValueError(f"{path} is not under {base}")
    try:
        dfd = os.open(base, _O_DIR)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BtfFileError(path, f"cannot open {base}: {exc.strerror}", "check the path and its permissions") from None
    here = base
    try:
        _check_owner_and_mode(path, os.fstat(dfd), here)
        for part in parts[:-1]:
            here = os.path.join(here, part)
            try:
                nfd = os.open(part, _O_DIR | os.O_NOFOLLOW, dir_fd=dfd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:
                    return None
                if exc.errno == errno.ELOOP:
                    raise BtfFileError(
                        path,
                        f"{here} is a symlink; the sensor follows no symlink below btf_dir",
                        "put the directory there",
                    ) from None
                raise BtfFileError(path, f"cannot open {here}: {exc.strerror}", "check its permissions") from None
            os.close(dfd)
            dfd = nfd
            _check_owner_and_mode(path, os.fstat(dfd), here)
        try:
            fd = os.open(parts[-1], _O_FILE, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BtfFileError(
                    path,
                    "is a symlink; the sensor follows no symlink to a BTF file",
                    "put the file itself there",
                ) from None
            raise BtfFileError(path, f"cannot open: {exc.strerror}", "check its permissions") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BtfFileError(path, "not a regular file", "put the BTF file itself there")
            _check_owner_and_mode(path, st)
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(dfd)


# --- what is BTF ----------------------------------------------------------------------


def _raw_btf_problem(head: bytes, size: int) -> str:
    """Why a raw BTF blob's header is wrong ("" when it is right)."""
    if len(head) < _HDR.size:
        return f"{size} bytes, shorter than a BTF header"
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(head)
    if magic != _MAGIC:
        return f"not BTF (starts {head[:4].hex()}, expected the magic 0x{_MAGIC:x} in {sys.byteorder}-endian order)"
    if version != 1:
        return f"BTF version {version}, not 1"
    if hdr_len < _HDR.size:
        return f"a BTF header of {hdr_len} bytes, shorter than {_HDR.size}"
    if hdr_len + max(type_off + type_len, str_off + str_len) > size:
        return "a truncated BTF file (its sections run past the end)"
    return ""


def _btf_problem(fd: int) -> str:
    """Why the open file is not BTF libbpf can read ("" when it is): a raw
    BTF blob, or an ELF (a vmlinux) with a ``.BTF`` section."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, _HDR.size, 0)
    if head[:4] != b"\x7fELF":
        return _raw_btf_problem(head, size)
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            section = ELFFile(f).get_section_by_name(".BTF")
            if section is None:
                return "an ELF file without a .BTF section (DWARF only?)"
            problem = _raw_btf_problem(os.pread(fd, _HDR.size, section["sh_offset"]), section["sh_size"])
    except (ELFError, struct.error, ValueError) as exc:
        return f"a malformed ELF file ({exc})"
    return f"its .BTF section is {problem}" if problem else ""


def _require_btf(fd: int, path: str, release: str) -> None:
    problem = _btf_problem(fd)
    if problem:
        os.close(fd)
        raise BtfFileError(path, problem, _HOW_TO_MAKE.format(r=release))


# --- BTFHub archives -------------------------------------------------------------------


def _private_dir(path: str) -> int:
    """The cache directory, created 0700 if missing, opened; refused if it
    is not this process's user's own and private."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        dfd = os.open(path, _O_DIR | os.O_NOFOLLOW)
    except OSError as exc:
        raise BtfFileError(
            path,
            f"cannot create the private cache for unpacked archives: {exc.strerror}",
            "run as root, or unpack the archive yourself into btf_dir as <release>.btf",
        ) from None
    st = os.fstat(dfd)
    if st.st_uid != os.geteuid():
        os.close(dfd)
        raise BtfFileError(
            path,
            f"the cache directory is owned by uid {st.st_uid}, not this process's uid {os.geteuid()}; refusing it",
            f"remove {path}: the sensor creates it",
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.fchmod(dfd, 0o700)
    return dfd


def _archive_member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo | None:
    for member in tar:
        if member.isfile() and os.path.basename(member.name) == name:
            return member
    return None


def _unpack(archive_fd: int, archive: str, release: str, cache_dir: str) -> tuple[int, str]:
    """The archive's ``<release>.btf``, unpacked into the private cache once
    per archive file and checked to be BTF: (open fd, its path)."""
    st = os.fstat(archive_fd)
    # a new or replaced archive gets a new name: a cached copy never outlives its archive
    identity = f"{archive}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
    name = f"{release}.{hashlib.sha256(identity.encode()).hexdigest()[:16]}.btf"
    cached = os.path.join(cache_dir, name)
    dfd = _private_dir(cache_dir)
    try:
        try:
            fd = os.open(name, _O_FILE, dir_fd=dfd)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            if not _btf_problem(fd):
                return fd, cached
            os.close(fd)
        member_name = f"{release}.btf"
        tmp = f".{name}.{secrets.token_hex(6)}"
        try:
            with os.fdopen(os.dup(archive_fd), "rb") as raw, tarfile.open(fileobj=raw, mode="r:xz") as tar:
                member = _archive_member(tar, member_name)
                if member is None:
                    raise BtfFileError(archive, f"the archive holds no {member_name}", "use this kernel's archive")
                if member.size > _MAX_UNPACKED:
                    raise BtfFileError(archive, f"{member_name} is {member.size} bytes", "use this kernel's archive")
                src = tar.extractfile(member)
                if src is None:
                    raise BtfFileError(archive, f"cannot read {member_name}", "replace the archive")
                wfd = os.open(
                    tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
                )
                with os.fdopen(wfd, "wb") as out:
                    shutil.copyfileobj(src, out)
        except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
            _unlink_quietly(tmp, dfd)
            raise BtfFileError(archive, f"cannot unpack: {exc}", "replace the archive with an intact copy") from None
        except BaseException:
            _unlink_quietly(tmp, dfd)
            raise
        fd = os.open(tmp, _O_FILE, dir_fd=dfd)
        problem = _btf_problem(fd)
        if problem:
            os.close(fd)
            _unlink_quietly(tmp, dfd)
            raise BtfFileError(archive, f"its {member_name} is {problem}", "replace the archive with this kernel's")
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        for old in os.listdir(dfd):
            if old != name and old.startswith(f"{release}.") and old.endswith(".btf"):
                _unlink_quietly(old, dfd)
        return fd, cached
    finally:
        os.close(dfd)


def _unlink_quietly(name: str, dfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass


# --- the search -----------------------------------------------------------------------------


def _check_release(release: str) -> None:
    if not release or "/" in release or "\0" in release or release in (".", ".."):
        raise ValueError(f"{release!r} is not a kernel release (as `uname -r` prints it)")


def _hub_dirs() -> list[str]:
    """BTFHub's ``<ID>/<VERSION_ID>/<arch>`` for this system, VERSION_ID
    first, then its major number (BTFHub's directories for RHEL are "8")."""
    osr = read_os_release()
    arch = BTFHUB_ARCH.get(platform.machine(), platform.machine())
    versions = list(dict.fromkeys([osr.version_id, osr.version_id.split(".")[0]]))
    names = [osr.id, *versions]
    if not all(n and "/" not in n and n not in (".", "..") for n in names):
        return []
    return [os.path.join(osr.id, v, arch) for v in versions]


def resolve(
    btf_path: str | None = None,
    btf_dir: str = DEFAULT_BTF_DIR,
    *,
    release: str | None = None,
    cache_dir: str = CACHE_DIR,
) -> ResolvedBtf:
    """Find the BTF for a kernel release, check it, and hold it open.

    Args:
        btf_path: Config.btf_path: that file, nothing else.
        btf_dir: Config.btf_dir.
        release: the kernel release (``uname -r``); the running kernel's by
            default. For another release the running kernel's own BTF does
            not apply and is skipped.
        cache_dir: where archives are unpacked (private, 0700).

    Returns:
        The file, open; close it (or use ``with``) once the objects are loaded.

    Raises:
        BtfNotFoundError: nothing found; the message names the release, every
            place searched and what to do.
        BtfFileError: a file found but refused (others could write it, a
            symlink, not BTF, a broken archive).
        ValueError: release is not a release name.
    """
    running = os.uname().release
    release = release or running
    _check_release(release)
    if btf_path:
        fd = _open_checked(btf_path)
        if fd is None:
            raise BtfNotFoundError(
                release,
                [f"{btf_path} (Config.btf_path)"],
                f"the BTF file {btf_path} (Config.btf_path) does not exist; "
                f"give the BTF file of kernel {release}, or unset btf_path to search for one",
            )
        _require_btf(fd, btf_path, release)
        return ResolvedBtf(BtfLocation(release=release, source="config", path=btf_path, reason="Config.btf_path"), fd)

    searched: list[str] = []
    if release == running and os.path.exists(BTF_VMLINUX):
        return ResolvedBtf(
            BtfLocation(release=release, source="kernel", path=BTF_VMLINUX, reason="the running kernel's own")
        )
    why = "absent" if release == running else f"it describes the running kernel, {running}"
    searched.append(f"{BTF_VMLINUX} ({why})")

    found = _search_btf_dir(btf_dir, release, cache_dir, searched)
    if found is not None:
        return found
    for pattern in LIBBPF_LOCATIONS:
        path = pattern.format(r=release)
        fd = _open_checked(path)
        if fd is None:
            searched.append(f"{path} (absent)")
            continue
        problem = _btf_problem(fd)
        if problem:
            # libbpf skips these too; a DWARF-only vmlinux is the common case
            os.close(fd)
            searched.append(f"{path} ({problem})")
            continue
        where = BtfLocation(
            release=release,
            source="libbpf",
            path=path,
            reason="a vmlinux with BTF where libbpf also looks",
            searched=searched,
        )
        return ResolvedBtf(where, fd)
    raise BtfNotFoundError(
        release,
        searched,
        f"no BTF for kernel {release}: searched {', '.join(searched)}; put {release}.btf in {btf_dir} "
        f"(owned by root, not writable by group or others) or set Config.btf_path: " + _HOW_TO_MAKE.format(r=release),
    )


def _search_btf_dir(btf_dir: str, release: str, cache_dir: str, searched: list[str]) -> ResolvedBtf | None:
    if not os.path.isdir(btf_dir):
        searched.append(f"{btf_dir} (absent)")
        return None
    layouts = [("", f"{release}.btf in btf_dir")] + [(d, f"BTFHub layout {d}/ in btf_dir") for d in _hub_dirs()]
    for sub, reason in layouts:
        for suffix in (".btf", ".btf.tar.xz"):
            path = os.path.join(btf_dir, sub, release + suffix)
            fd = _open_checked(path, base=btf_dir)
            if fd is None:
                searched.append(f"{path} (absent)")
                continue
            if suffix == ".btf":
                _require_btf(fd, path, release)
                where = BtfLocation(release=release, source="btf_dir", path=path, reason=reason, searched=searched)
                return ResolvedBtf(where, fd)
            try:
                unpacked_fd, unpacked = _unpack(fd, path, release, cache_dir)
            finally:
                os.close(fd)
            where = BtfLocation(
                release=release,
                source="btf_dir",
                path=path,
                reason=f"{reason}, unpacked to {unpacked}",
                unpacked=unpacked,
                searched=searched,
            )
            return ResolvedBtf(where, unpacked_fd)
    return None


def locate(
    btf_path: str | None = None,
    btf_dir: str = DEFAULT_BTF_DIR,
    *,
    release: str | None = None,
    cache_dir: str = CACHE_DIR,
) -> BtfLocation:
    """What :func:`resolve` finds, without holding it open (reports)."""
    with resolve(btf_path, btf_dir, release=release, cache_dir=cache_dir) as found:
        return found.location


# --- making a small BTF file ---------------------------------------------------------------------


class MinimizeResult(msgspec.Struct, frozen=True):
    """What ``btf minimize`` made.

    Attributes:
        output: the file written.
        input_bytes: the size of the BTF it was made from.
        output_bytes: its size.
        objects: the objects whose relocations it covers.
    """

    output: str
    input_bytes: int
    output_bytes: int
    objects: list[str]


def packaged_objects() -> list[Path]:
    """Every compiled object packaged for this machine's architecture."""
    return sorted((PACKAGE_DIR / "bpf" / bpf_arch_of()).glob("*.bpf.o"))


def minimize(
    input_path: str, output_path: str, *, objects: Sequence[Path] | None = None, bpftool: str = "bpftool"
) -> MinimizeResult:
    """Write a BTF file holding only the types the objects relocate against
    (``bpftool gen min_core_btf``): a few KiB instead of a few MiB.

    A minimized file serves the objects it was made for: make it again
    after an upgrade of the package (its objects may read more types).
    Where bpftool cannot record the ring-buffer builds against the input
    (a kernel older than their kfunc), the file serves the perf builds,
    which are what a kernel without BTF of its own loads.

    Args:
        input_path: the kernel's full BTF (raw, or a vmlinux with .BTF).
        output_path: the file to write (replaced atomically).
        objects: the objects; every packaged one by default.
        bpftool: the bpftool to run (a name looked up in PATH, or a path).

    Raises:
        BtfFileError: the input is missing or not BTF, or the output is not
            BTF after all.
        EbpfSensorError: bpftool is missing or failed; no packaged objects.
    """
    objs = list(objects) if objects is not None else packaged_objects()
    if not objs:
        raise EbpfSensorError(
            f"btf minimize: no compiled objects in {PACKAGE_DIR / 'bpf' / bpf_arch_of()}; run `make bpf` first"
        )
    try:
        fd = os.open(input_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BtfFileError(
            input_path,
            "does not exist",
            "give the kernel's full BTF (/sys/kernel/btf/vmlinux on a kernel that has it, a "
            "`pahole --btf_encode_detached` output, or a BTFHub file)",
        ) from None
    try:
        input_bytes = os.fstat(fd).st_size
        problem = _btf_problem(fd)
    finally:
        os.close(fd)
    if problem:
        raise BtfFileError(input_path, problem, "give the kernel's full BTF (raw, or a vmlinux with a .BTF section)")
    tool = shutil.which(bpftool)
    if tool is None:
        where = "" if os.sep in bpftool else " in PATH"
        raise EbpfSensorError(
            f"btf minimize: {bpftool} not found{where}; install bpftool (Debian: apt install bpftool; "
            "Ubuntu: linux-tools-common; Fedora/RHEL: dnf install bpftool) or name it with --bpftool PATH"
        )
    output = os.path.abspath(output_path)
    if os.path.exists(output) and os.path.samefile(output, input_path):
        raise BtfFileError(output_path, "is the input too", "write the minimized BTF to another file")
    tmp = os.path.join(os.path.dirname(output), f".{os.path.basename(output)}.{secrets.token_hex(6)}")
    try:
        run = subprocess.run(
            [tool, "gen", "min_core_btf", input_path, tmp, *map(str, objs)],
            capture_output=True,
            text=True,
            check=False,
        )
        perf = [p for p in objs if ".perf." in p.name or ".v419." in p.name]
        if run.returncode != 0 and objects is None and perf and len(perf) < len(objs):
            # the ring builds name a kfunc and the verifier's kfunc list,
            # which an older kernel's BTF lacks and bpftool cannot record;
            # a kernel without BTF of its own loads the perf builds alone
            # (sources/ebpf/source.py, _transport), which the file then serves
            objs = perf
            run = subprocess.run(
                [tool, "gen", "min_core_btf", input_path, tmp, *map(str, objs)],
                capture_output=True,
                text=True,
                check=False,
            )
        if run.returncode != 0:
            lines = [line for line in (run.stderr + run.stdout).splitlines() if line.strip()]
            raise EbpfSensorError(
                f"btf minimize: `{tool} gen min_core_btf` failed (exit {run.returncode}): "
                f"{lines[-1] if lines else 'no message'}; min_core_btf needs bpftool from Linux 5.18 or later"
            )
        data = Path(tmp).read_bytes()
        problem = _raw_btf_problem(data, len(data))
        if problem:
            raise BtfFileError(output_path, f"bpftool wrote {problem}", "check bpftool's version")
        if Btf(data).struct("task_struct") is None:
            # bpftool keeps quiet about relocations the input cannot satisfy
            raise BtfFileError(
                input_path,
                "has none of the types the objects read (no struct task_struct): not a kernel's BTF",
                "give the kernel's full BTF",
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return MinimizeResult(output_path, input_bytes, len(data), [p.name for p in objs])
