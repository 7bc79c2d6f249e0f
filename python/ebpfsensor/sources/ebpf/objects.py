# SPDX-License-Identifier: Apache-2.0
"""BpfObject: a compiled .bpf.o, parsed without privileges, loaded on demand.

Programs are named ``handle_<hook>_<variant>``. A hook (``exec``, ``fork``,
...) comes in variants, tried best first (:data:`VARIANT_ORDER`); loading
keeps, for each hook, the first variant that the running kernel loads and
attaches, and records why the others failed. A hook with no working variant
is reported, and the rest of the object runs. A hook may run another hook's
program instead of its own (:data:`SHARED_SECTION`): loaded once for all the
hooks that want it, attached once for each place they name.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._ffi import capture_libbpf_log, check_ptr, check_ret, ffi, lib, make_error, strerror
from ...errors import ConfigError, EbpfSensorError, LibbpfError, PrivilegeError, VerifierError
from ...host import features
from ...host.arch import bpf_arch_of
from ...host.mounts import tracefs_events
from ...host.paths import BTF_VMLINUX, PACKAGE_DIR
from .. import VARIANT_ORDER

__all__ = [
    "ITER_VARIANTS",
    "MANIFEST",
    "SHARED_SECTION",
    "VARIANT_ORDER",
    "BpfObject",
    "HookStatus",
    "LoadedObject",
    "bpf_arch",
    "destroy_links",
    "detach_all",
    "packaged_object_path",
    "verify_object",
]

log = logging.getLogger("ebpfsensor")

#: iterator programs (iter.bpf.c): run once by their caller, never attached
#: to a hook; iter_s, sleepable (5.18), before iter
ITER_VARIANTS = ("iter_s", "iter")
_VARIANTS = VARIANT_ORDER + ITER_VARIANTS
_PROG_NAME = re.compile(r"^handle_(?P<hook>[a-z0-9_]+?)_(?P<variant>" + "|".join(_VARIANTS) + r")$")
#: the section naming hooks that run another hook's program (ES_SHARED_HOOK
#: in bpf_src/compat.bpf.h): a symbol ``es_shared_<hook>_<variant>`` each,
#: whose bytes are the program's name and the section it attaches at
SHARED_SECTION = ".es_shared"
_SHARED_NAME = re.compile(r"^es_shared_(?P<hook>[a-z0-9_]+?)_(?P<variant>" + "|".join(_VARIANTS) + r")$")
_FAILED_PROG = re.compile(r"prog '(?P<name>[^']+)': failed to load")
_LOG_BUF_BYTES = 1 << 20
# the verifier's log buffers, one a program, left unwritten: libbpf asks for
# a log only when a program failed to load (then retried, and only that
# program's buffer is written), so zeroing a MiB for each of a sensor's
# hundred-odd programs would fault in and clear memory that is never read
_new_log_buf = ffi.new_allocator(should_clear_after_alloc=False)
_STT_OBJECT, _STT_FUNC, _STB_GLOBAL = 1, 2, 1
_EM_BPF, _SHT_SYMTAB = 247, 2
#: the map holding an object's load-time settings where it has no global
#: data (the v419 builds: bpf_src/compat.bpf.h), and the struct of its value
SETTINGS_MAP, SETTINGS_STRUCT = "settings", "es_settings"
#: the setting that tells the ring builds libbpf relocates against the
#: kernel's own BTF (no btf_path): then their kfunc calls may name its types
KERNEL_BTF_SETTING = "cfg_kernel_btf"
#: the setting that tells an object the kernel creates task storage maps
#: (5.11); where it does not, the object's are not created, and its code
#: that uses them is behind the setting
TASK_STORAGE_SETTING = "cfg_task_storage"
# object bytes -> (programs, settings, settings map): see BpfObject.__init__
_PARSED: dict[bytes, tuple[tuple[ProgramSpec, ...], dict[str, tuple[int, int]], str | None]] = {}
_PARSED_MAX = 16
#: Next to the packaged objects: ``<sha256>  <name>.bpf.o`` per line
#: (sha256sum's format), written by ``make bpf`` when the objects are built.
MANIFEST = "MANIFEST"


def bpf_arch() -> str:
    """This machine's architecture under its kernel BPF name (x86, arm64)."""
    try:
        return bpf_arch_of()
    except ValueError as exc:
        raise EbpfSensorError(str(exc)) from None


def packaged_object_path(name: str) -> Path:
    """Where the package keeps a compiled object, e.g. ``process`` ->
    ``ebpfsensor/bpf/x86/process.bpf.o``."""
    return PACKAGE_DIR / "bpf" / bpf_arch() / f"{name}.bpf.o"


_REBUILD_HINT = "reinstall ebpfsensor (or, in a source tree, rebuild the objects with `make bpf`)"


def _read_manifest(path: Path) -> dict[str, str]:
    """name -> sha256 hex from a manifest file."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"line {n} is not '<sha256>  <name>'")
        out[name.strip()] = digest
    return out


def verify_object(path: Path, data: bytes) -> None:
    """Check an object's bytes against the MANIFEST next to it.

    The manifest is written when the objects are built (``make bpf``, and so
    every wheel and sdist build); an object that differs from its entry was
    changed after the build, and is refused rather than loaded into the kernel.

    Raises:
        LibbpfError: ENOENT without a manifest or an entry; EBADMSG for a
            malformed manifest or a checksum mismatch.
    """
    manifest = path.parent / MANIFEST
    try:
        entries = _read_manifest(manifest)
    except FileNotFoundError:
        raise LibbpfError(
            errno.ENOENT, f"no {MANIFEST} next to the object", "verify", str(path), _REBUILD_HINT
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise LibbpfError(errno.EBADMSG, f"malformed {manifest} ({exc})", "verify", str(path), _REBUILD_HINT) from None
    expected = entries.get(path.name)
    if expected is None:
        raise LibbpfError(errno.ENOENT, f"not listed in {manifest}", "verify", str(path), _REBUILD_HINT)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise LibbpfError(
            errno.EBADMSG,
            f"checksum mismatch: sha256 {actual[:16]}..., the build recorded {expected[:16]}...; "
            "the object was modified after it was built and is refused",
            "verify",
            str(path),
            _REBUILD_HINT,
        )


@dataclass(frozen=True)
class ProgramSpec:
    """A hook's variant, as the object's ELF describes it: the program that
    runs it and the section naming where it is attached. A program shared
    by several hooks (``ES_SHARED_HOOK``) has a spec for each, with the
    program's own section or another tracepoint of its kind, ``shared``
    for each hook but the one whose name the program bears."""

    name: str
    section: str
    hook: str
    variant: str
    shared: bool = False


@dataclass
class HookStatus:
    """What became of a hook: the variant attached, or why none was.

    Attributes:
        hook: the hook's name (``exec``, ``fork``, ...).
        variant: the variant attached, or None.
        failures: one line per variant that was tried and failed.
        error: the last failure as an exception, for callers that want details.
        object: the object file the hook's programs come from.
        program: the program that runs it (``handle_<hook>_<variant>``, or
            another hook's program that this hook shares), or None.
    """

    hook: str
    variant: str | None = None
    failures: list[str] = field(default_factory=list)
    error: LibbpfError | None = None
    object: str = ""
    program: str | None = None

    @property
    def attached(self) -> bool:
        return self.variant is not None


class BpfObject:
    """A compiled BPF object, parsed and checked without touching the kernel.

    Args:
        data: the ELF bytes.
        name: a short name for messages (``process.bpf.o``).

    Attributes:
        settings: load-time settings, name -> (offset, size) in ``.rodata``
            (``const volatile`` globals) or, where ``settings_map`` names a
            map, in that map's one value.
        settings_map: the map holding the settings (objects built without
            global data), or None.

    Raises:
        LibbpfError: (ENOEXEC) the bytes are not a BPF ELF object.
    """

    def __init__(self, data: bytes, name: str) -> None:
        self.name = name
        self.data = bytes(data)
        self.programs: list[ProgramSpec] = []
        self.settings: dict[str, tuple[int, int]] = {}
        self.settings_map: str | None = None
        # a sensor's every start opens the same objects: parse each once
        parsed = _PARSED.get(self.data)
        if parsed is not None:
            self.programs, self.settings, self.settings_map = list(parsed[0]), dict(parsed[1]), parsed[2]
            return
        try:
            self._parse()
        except (ValueError, KeyError, IndexError, OverflowError, struct.error) as exc:
            raise LibbpfError(
                errno.ENOEXEC,
                f"not a valid BPF ELF object ({exc})",
                "open",
                name,
                "the file is damaged: reinstall ebpfsensor or rebuild it with `make bpf`",
            ) from None
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[self.data] = (tuple(self.programs), dict(self.settings), self.settings_map)

    @classmethod
    def open(cls, path: str | Path) -> BpfObject:
        """Read and parse an object file.

        Raises:
            LibbpfError: missing file (ENOENT) or not a BPF object (ENOEXEC).
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LibbpfError(
                errno.ENOENT, "No such file or directory", "open", str(path), "build the objects with `make bpf`"
            ) from None
        return cls(data, path.name)

    @classmethod
    def packaged(cls, name: str) -> BpfObject:
        """Open one of the objects shipped in the package, e.g. ``process``,
        after checking it is the one the package was built with.

        Raises:
            LibbpfError: missing file (ENOENT), no or unreadable manifest
                (ENOENT, EBADMSG), checksum mismatch (EBADMSG), or not a BPF
                object (ENOEXEC).
        """
        path = packaged_object_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LibbpfError(errno.ENOENT, "No such file or directory", "open", str(path), _REBUILD_HINT) from None
        verify_object(path, data)
        return cls(data, path.name)

    def _parse(self) -> None:
        # the ELF headers and the symbol table read with struct: pyelftools
        # builds an object per section and symbol, which is slow where
        # start-up matters (every object of a sensor, at each process start)
        data = self.data
        if data[:4] != b"\x7fELF":
            raise ValueError("no ELF magic")
        if data[4] != 2:
            raise ValueError(f"ELF class {data[4]}, not 64")
        end = "<" if data[5] == 1 else ">"
        machine = struct.unpack_from(end + "H", data, 18)[0]
        if machine != _EM_BPF:
            raise ValueError(f"machine is {machine}, not EM_BPF ({_EM_BPF})")
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        if shentsize != 64 or not shnum or shoff + 64 * shnum > len(data):
            raise ValueError(f"section headers of {shentsize} bytes, {shnum} of them at {shoff}: not in the file")
        # (sh_name, sh_type, sh_offset, sh_size, sh_link) of every section
        headers = [
            (h[0], h[1], h[4], h[5], h[6])
            for h in (struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + 64 * k) for k in range(shnum))
        ]
        shstr_off, shstr_size = headers[shstrndx][2:4]
        shstr = data[shstr_off : shstr_off + shstr_size]
        names = [shstr[h[0] : shstr.index(b"\0", h[0])].decode() for h in headers]
        symtabs = [h for h in headers if h[1] == _SHT_SYMTAB]
        if not symtabs:
            raise ValueError("no symbol table")
        _, _, sym_off, sym_size, link = symtabs[0]
        str_off, str_size = headers[link][2:4]
        strtab = data[str_off : str_off + str_size]
        fmt = end + "IBBHQQ"  # Elf64_Sym
        shared: list[tuple[str, str, str, str]] = []
        for st_name, st_info, _other, shndx, value, size in struct.iter_unpack(fmt, data[sym_off : sym_off + sym_size]):
            if shndx == 0 or shndx >= 0xFF00:  # undefined, absolute, common
                continue
            kind, bind, sec = st_info & 0xF, st_info >> 4, names[shndx]
            program = kind == _STT_FUNC and bind == _STB_GLOBAL and sec != ".text"
            if not program and not (kind == _STT_OBJECT and sec in (".rodata", ".maps", SHARED_SECTION)):
                continue
            sym = strtab[st_name : strtab.index(b"\0", st_name)].decode()
            if sec == SHARED_SECTION:
                m = _SHARED_NAME.match(sym)
                if m is None:
                    raise ValueError(f"{SHARED_SECTION} symbol {sym} is not es_shared_<hook>_<variant>")
                start = headers[shndx][2] + value
                prog, _, section = data[start : start + size].rstrip(b"\0").decode().partition("\0")
                shared.append((m["hook"], m["variant"], prog, section))
            elif sec == ".maps":
                if sym == SETTINGS_MAP:
                    self.settings_map = sym
            elif not program:
                self.settings[sym] = (value, size)
            elif m := _PROG_NAME.match(sym):
                self.programs.append(ProgramSpec(sym, sec, m["hook"], m["variant"]))
        if not self.programs:
            raise ValueError("no handle_<hook>_<variant> programs")
        own = {p.name: p for p in self.programs}
        for hook, variant, prog, section in shared:
            spec = own.get(prog)
            if spec is None or spec.variant != variant:
                raise ValueError(f"hook {hook}'s {variant} variant is {prog}, which the object has not as {variant}")
            kind = spec.section.partition("/")[0]
            at_kind, _, target = section.partition("/")
            if section and (kind not in ("tp", "tracepoint") or at_kind != kind or target.count("/") != 1):
                raise ValueError(f"hook {hook}'s {variant} variant attaches {prog} ({spec.section}) at {section}")
            self.programs.append(ProgramSpec(prog, section or spec.section, hook, variant, shared=True))
        if self.settings_map is not None:
            # no global data: the settings are the members of the map's
            # value, as the object's BTF lays them out
            from ..._btf import Btf

            btf = [h for name, h in zip(names, headers, strict=True) if name == ".BTF"]
            if not btf:
                raise ValueError("no .BTF section (built without -g?)")
            found = Btf(data[btf[0][2] : btf[0][2] + btf[0][3]]).struct(SETTINGS_STRUCT)
            if found is None:
                raise ValueError(f"map {SETTINGS_MAP} without struct {SETTINGS_STRUCT} in .BTF")
            self.settings = {m.name: (m.offset, m.size) for m in found[1] if not m.name.startswith("_pad")}

    @property
    def sections(self) -> dict[str, str]:
        """Each program's own section (a hook that shares it may attach it elsewhere)."""
        return {p.name: p.section for p in self.programs if not p.shared}

    @property
    def hooks(self) -> dict[str, list[ProgramSpec]]:
        """Each hook's variants, best first."""
        out: dict[str, list[ProgramSpec]] = {}
        for p in sorted(self.programs, key=lambda p: _VARIANTS.index(p.variant)):
            out.setdefault(p.hook, []).append(p)
        return out

    def check_config(self, config: Mapping[str, int]) -> None:
        """Raise ConfigError for a setting the object does not have or that does not fit."""
        for key, value in config.items():
            if key not in self.settings:
                known = ", ".join(sorted(self.settings)) or "none"
                raise ConfigError(f"{self.name}: no load-time setting {key!r}; known: {known}")
            size = self.settings[key][1]
            if not 0 <= int(value) < 1 << (8 * size):
                raise ConfigError(f"{self.name}: {key}={value} does not fit in {size} bytes")

    def load(
        self,
        *,
        config: Mapping[str, int] | None = None,
        shared_maps: Mapping[str, int] | None = None,
        map_sizes: Mapping[str, int] | None = None,
        hooks: Iterable[str] | None = None,
        btf_path: str | None = None,
        variants: Iterable[str] | None = None,
        attach: bool = True,
        prepare: Callable[[Callable[[str], int]], None] | None = None,
    ) -> LoadedObject:
        """Load and attach, choosing a variant per hook.

        Args:
            config: values of ``const volatile`` settings, set before load.
            shared_maps: map name -> fd of maps owned by another object, reused.
            map_sizes: map name -> max_entries (ring sizes in bytes).
            hooks: the hooks wanted (default: all of the object's).
            btf_path: kernel BTF to relocate against, when the kernel has none.
            variants: the variants allowed (default: all), e.g. {"tp"} to
                force classic tracepoints.
            attach: False to load only (programs run by test-run or
                attached by the caller).
            prepare: called after load and before attach with a function
                from map name to fd, to fill maps the programs need from
                their first run (called again if a variant is retried).

        Returns:
            The loaded object; see ``LoadedObject.hooks`` for what attached.

        Raises:
            PrivilegeError: the caller may not load BPF.
            LibbpfError: the object could not be loaded at all.
        """
        config = dict(config or {})
        if KERNEL_BTF_SETTING in self.settings:
            # the kfunc type ids the objects pass are the kernel's only when
            # libbpf relocates against the kernel's own BTF (compat.bpf.h)
            config.setdefault(KERNEL_BTF_SETTING, int(btf_path is None))
        if TASK_STORAGE_SETTING in self.settings:
            config.setdefault(TASK_STORAGE_SETTING, int(features.task_storage().works))
        self.check_config(config)
        wanted = set(self.hooks) if hooks is None else set(hooks) & set(self.hooks)
        status = {h: HookStatus(h, object=self.name) for h in wanted}
        # a classic tracepoint the kernel does not have is known without a
        # load: skipping it saves a reload of the whole object, and the
        # detach of every link attached before the failure
        allowed = set(_VARIANTS if variants is None else variants)
        candidates: dict[str, list[ProgramSpec]] = {}
        for h in wanted:
            candidates[h] = []
            for p in self.hooks[h]:
                if p.variant not in allowed:
                    status[h].failures.append(f"{p.variant}: not among the allowed variants {sorted(allowed)}")
                    continue
                # a program type the kernel refuses cannot load, attached or
                # not; a missing tracepoint matters only to an attach
                missing = (_missing_tracepoint(p.section) if attach else None) or _refused_program_type(p.section)
                if missing:
                    status[h].failures.append(f"{p.variant}: {missing}")
                else:
                    candidates[h].append(p)
            if not candidates[h]:
                reasons = "; ".join(status[h].failures)
                log.warning("%s: no variant of hook %s works on this kernel: %s", self.name, h, reasons)
        choice = {h: 0 for h in wanted}
        while True:
            selected = {h: candidates[h][i] for h, i in choice.items() if i < len(candidates[h])}
            attempt = _Attempt(self, selected, config, shared_maps or {}, map_sizes or {}, btf_path, attach, prepare)
            try:
                failed = attempt.run()
            except BaseException:
                attempt.close()
                raise
            retry = not attempt.loaded
            for hook, variant, err in failed:
                status[hook].failures.append(f"{variant}: {err}")
                status[hook].error = err
                log.info("%s: hook %s variant %s unavailable: %s", self.name, hook, variant, err)
                choice[hook] += 1
                if choice[hook] < len(candidates[hook]):
                    retry = True
                    continue
                log.warning(
                    "%s: no variant of hook %s works on this kernel: %s",
                    self.name,
                    hook,
                    "; ".join(status[hook].failures),
                )
                if all(choice[h] >= len(candidates[h]) for h in choice) and isinstance(err, PrivilegeError):
                    attempt.close()
                    raise err
            if not retry:
                # what failed to attach has no other variant: keep the rest
                # attached rather than reload (its program stays loaded, unused)
                down = {hook for hook, _, _ in failed}
                for h, prog in selected.items():
                    if h not in down:
                        status[h].variant, status[h].program = prog.variant, prog.name
                return LoadedObject(attempt, status)
            attempt.close()

    def create_maps(
        self,
        names: Iterable[str],
        *,
        map_sizes: Mapping[str, int] | None = None,
        btf_path: str | None = None,
    ) -> LoadedObject:
        """Create some of the object's maps and no program: the maps that
        several objects share, made before any of them loads, so that all of
        them load side by side and reuse these (``load(shared_maps=...)``).
        libbpf creates them as a load would (types, sizes, flags, BTF).

        Args:
            names: the maps to create; the object's others are left out.
            map_sizes: map name -> max_entries, as for :meth:`load`.
            btf_path: as for :meth:`load`.

        Returns:
            An object with no hooks whose ``map_fd`` gives the maps; closing
            it closes them (those reused elsewhere live on there).

        Raises:
            PrivilegeError: the caller may not create BPF maps.
            LibbpfError: a map could not be created, or the object has no
                map of one of the names (ENOENT).
        """
        wanted = frozenset(names)
        attempt = _Attempt(self, {}, {}, {}, map_sizes or {}, btf_path, attach=False, only_maps=wanted)
        # no program loads: without .BTF.ext (the programs' CO-RE
        # relocations, line and function info) libbpf neither reads and
        # parses the kernel's BTF nor relocates the subprograms, two thirds
        # of the cost; the maps come from .maps and .BTF, left as they are
        attempt.data = _without_btf_ext(self.data)
        try:
            attempt.run()
            missing = sorted(wanted - attempt.maps.keys())
            if missing:
                raise LibbpfError(errno.ENOENT, f"no map {', '.join(missing)}", "create maps", self.name)
        except BaseException:
            attempt.close()
            raise
        return LoadedObject(attempt, {})


def _without_btf_ext(data: bytes) -> bytes:
    """The object with its .BTF.ext section renamed ``BTF.ext``, a name
    libbpf skips; the bytes are those of a parsed (and checked) object."""
    end = "<" if data[5] == 1 else ">"
    (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from(end + "HH", data, 0x3C)
    (shstr_off,) = struct.unpack_from(end + "Q", data, shoff + 64 * shstrndx + 24)
    out = bytearray(data)
    for k in range(shnum):
        (name,) = struct.unpack_from(end + "I", data, shoff + 64 * k)
        if data[shstr_off + name : shstr_off + name + 9] == b".BTF.ext\0":
            struct.pack_into(end + "I", out, shoff + 64 * k, name + 1)
    return bytes(out)


def _missing_tracepoint(section: str) -> str | None:
    """Why a tracepoint program cannot attach here, or None when it may (or
    when neither tracefs nor the kernel's BTF is there to tell)."""
    kind, _, name = section.partition("/")
    if kind in ("raw_tp", "raw_tracepoint", "tp_btf") and name:
        if features.raw_tracepoint_exists(name) is False:
            return f"tracepoint {name} does not exist on this kernel (no btf_trace_{name} in its BTF)"
        return None
    if kind not in ("tp", "tracepoint") or name.count("/") != 1:
        return None
    events = tracefs_events()
    if events is None or os.path.isdir(os.path.join(events, name)):
        return None
    return f"tracepoint {name} does not exist on this kernel"


def _refused_program_type(section: str) -> str | None:
    """Why a BPF LSM, fentry or kprobe program cannot run here, or None when
    it may: known before a load, where a refused variant would otherwise
    cost a reload of the whole object."""
    kind = section.partition("/")[0]
    if kind in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm") and not os.path.exists(BTF_VMLINUX):
        # attached by the kernel's own type ids: an external BTF file
        # relocates fields, but cannot stand in for those
        return f"{kind} programs need the kernel's own BTF ({BTF_VMLINUX}), which this kernel lacks"
    if kind in ("kprobe", "kretprobe"):
        status = features.kprobes()
    elif kind == "lsm":
        status = features.bpf_lsm_active()
    elif kind in ("fentry", "fexit", "fmod_ret"):
        if not features.program_type("tracing").works:
            return f"the kernel refuses {kind} programs here"
        return None
    else:
        return None
    return None if status.works else status.detail


def destroy_links(links: list[Any]) -> None:
    """Detach links, many at once.

    Detaching a classic tracepoint waits for RCU grace periods, which adds
    up over a sensor's links when they go one after another; from several
    threads the waits overlap. cffi releases the GIL around each call.
    """
    if len(links) < 4:
        for link in links:
            lib.bpf_link__destroy(link)
        return
    done = [False] * len(links)

    def destroy(i: int) -> None:
        lib.bpf_link__destroy(links[i])
        done[i] = True

    try:
        with ThreadPoolExecutor(max_workers=min(128, len(links)), thread_name_prefix="ebpfsensor-detach") as pool:
            for _ in pool.map(destroy, range(len(links))):
                pass
    except RuntimeError:
        # the interpreter is shutting down (a sensor closed from __del__ or
        # atexit): no new threads, one link after another
        for i, link in enumerate(links):
            if not done[i]:
                lib.bpf_link__destroy(link)


def detach_all(loaded: Iterable[LoadedObject]) -> None:
    """Detach the programs of several objects together (see destroy_links)."""
    objs = list(loaded)
    destroy_links([link for o in objs for link in o._a.links])
    for o in objs:
        o._a.links = []


class _Attempt:
    """One try at opening, loading and attaching a selection of programs."""

    def __init__(
        self,
        obj: BpfObject,
        selected: Mapping[str, ProgramSpec],
        config: Mapping[str, int],
        shared_maps: Mapping[str, int],
        map_sizes: Mapping[str, int],
        btf_path: str | None,
        attach: bool = True,
        prepare: Callable[[Callable[[str], int]], None] | None = None,
        only_maps: frozenset[str] | None = None,
    ) -> None:
        self.obj = obj
        #: the ELF handed to libbpf
        self.data = obj.data
        #: the maps to create (None: all); the others are not created
        self.only_maps = only_maps
        self.attach = attach
        self.prepare = prepare
        self.selected = selected
        self.config = config
        self.shared_maps = shared_maps
        self.map_sizes = map_sizes
        self.btf_path = btf_path
        self.ptr: Any = ffi.NULL
        self.links: list[Any] = []
        self.log_bufs: dict[str, Any] = {}
        self.maps: dict[str, Any] = {}
        self.programs: dict[str, Any] = {}
        self.loaded = False
        # lifetime: libbpf keeps pointers into the object bytes, the name and
        # the BTF path for as long as the bpf_object lives; they are released
        # in close(), after bpf_object__close
        self._keep: list[Any] = []

    def run(self) -> list[tuple[str, str, LibbpfError]]:
        """[] on success, else (hook, variant, error) of the program that
        failed to load, or of each that failed to attach (``loaded`` tells
        which: the attached links stay until close())."""
        o = self.obj
        data = ffi.from_buffer(self.data)
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        # "process" for process.bpf.o and process.perf.bpf.o alike: libbpf
        # names the object's internal maps after it
        name = ffi.new("char[]", o.name.split(".")[0].encode())
        opts.object_name = name
        self._keep += [data, opts, name]
        if self.btf_path:
            btf = ffi.new("char[]", self.btf_path.encode())
            opts.btf_custom_path = btf
            self._keep.append(btf)
        self.ptr = check_ptr(lib.bpf_object__open_mem(data, len(data), opts), "open", o.name)

        wanted = {p.name: p for p in self.selected.values()}
        prog = lib.bpf_object__next_program(self.ptr, ffi.NULL)
        while prog != ffi.NULL:
            pname = ffi.string(lib.bpf_program__name(prog)).decode()
            self.programs[pname] = prog
            lib.bpf_program__set_autoload(prog, pname in wanted)
            if pname in wanted:
                buf = _new_log_buf("char[]", _LOG_BUF_BYTES)
                buf[0] = b"\0"  # empty: _load_failure tells the failed program by its log
                self.log_bufs[pname] = buf
                check_ret(lib.bpf_program__set_log_buf(prog, buf, _LOG_BUF_BYTES), "set log buffer", pname)
            prog = lib.bpf_object__next_program(self.ptr, prog)

        m = lib.bpf_object__next_map(self.ptr, ffi.NULL)
        while m != ffi.NULL:
            mname = ffi.string(lib.bpf_map__name(m)).decode()
            self.maps[mname] = m
            if (self.only_maps is not None and mname not in self.only_maps) or (
                lib.bpf_map__type(m) == lib.BPF_MAP_TYPE_TASK_STORAGE and not self.config.get(TASK_STORAGE_SETTING)
            ):
                check_ret(lib.bpf_map__set_autocreate(m, False), "leave out map", mname)
            elif mname in self.shared_maps:
                check_ret(lib.bpf_map__reuse_fd(m, self.shared_maps[mname]), "reuse map", mname)
            elif mname in self.map_sizes:
                check_ret(lib.bpf_map__set_max_entries(m, self.map_sizes[mname]), "size map", mname)
            elif mname.endswith(".rodata") and self.config and o.settings_map is None:
                self._write_rodata(m)
            m = lib.bpf_object__next_map(self.ptr, m)

        with capture_libbpf_log() as lines:
            rc = lib.bpf_object__load(self.ptr)
        if rc < 0:
            return self._load_failure(rc, lines, wanted)
        self.loaded = True
        if o.settings_map is not None and self.only_maps is None:
            # before the first attach: no program runs on the zeroed value
            self._write_settings_map()
        if self.prepare is not None:
            self.prepare(lambda name: int(check_ret(lib.bpf_map__fd(self.maps[name]), "map fd", name)))
        failures = []
        # one attachment for the hooks a program's attachment covers, one a
        # tracepoint for the hooks that share a program at their own
        attachments: dict[tuple[str, str], list[str]] = {}
        for hook, spec in self.selected.items() if self.attach else ():
            attachments.setdefault((spec.name, spec.section), []).append(hook)
        own = o.sections
        for (pname, section), hooks in attachments.items():
            prog = self.programs[pname]
            if section == own[pname]:
                link = lib.bpf_program__attach(prog)
            else:
                # ProgramSpec: only a classic tracepoint program is attached elsewhere
                category, _, event = section.partition("/")[2].partition("/")
                link = lib.bpf_program__attach_tracepoint(prog, category.encode(), event.encode())
            if link == ffi.NULL:
                err = make_error(ffi.errno or errno.EINVAL, "attach", f"{o.name}:{pname} ({section})")
                failures += [(hook, self.selected[hook].variant, err) for hook in hooks]
                continue
            self.links.append(link)
        return failures

    def _write_rodata(self, m: Any) -> None:
        size = ffi.new("size_t *")
        ptr = lib.bpf_map__initial_value(m, size)
        if ptr == ffi.NULL:
            raise LibbpfError(errno.EINVAL, "no initial value", "configure", self.obj.name)
        self._fill(ffi.buffer(ptr, size[0]))

    def _write_settings_map(self) -> None:
        name = str(self.obj.settings_map)
        m = self.maps[name]
        value = ffi.new("char[]", lib.bpf_map__value_size(m))
        self._fill(ffi.buffer(value))
        key = ffi.new("uint32_t *", 0)
        fd = check_ret(lib.bpf_map__fd(m), "map fd", name)
        check_ret(lib.bpf_map_update_elem(fd, key, value, 0), "configure", f"{self.obj.name}:{name}")

    def _fill(self, data: Any) -> None:
        """Write the settings of config into their places in data."""
        for key, value in self.config.items():
            off, width = self.obj.settings[key]
            data[off : off + width] = int(value).to_bytes(width, sys.byteorder)

    def _load_failure(
        self, rc: int, lines: list[str], wanted: Mapping[str, ProgramSpec]
    ) -> list[tuple[str, str, LibbpfError]]:
        """The failure of every hook that selected the program that failed to
        load (several share one); raises when no program is to blame."""
        name = next((m["name"] for line in lines if (m := _FAILED_PROG.search(line))), None)
        if name is None:
            # a program's own log is filled only when that program failed
            name = next((n for n, b in self.log_bufs.items() if b[0] != b"\0"), None)
        if name is None or name not in wanted:
            # no program to blame: maps, BTF or privileges
            detail = "; ".join(line for line in lines if "error" in line.lower() or "failed" in line.lower())[-500:]
            failure = make_error(rc, "load", self.obj.name)
            if detail and not isinstance(failure, PrivilegeError):
                failure = LibbpfError(
                    failure.errno or errno.EINVAL, f"{failure.strerror}: {detail}", "load", self.obj.name
                )
            raise failure
        spec = wanted[name]
        text = ffi.string(self.log_bufs[name]).decode("utf-8", "replace")
        log_lines = text.splitlines() or [line for line in lines if name in line]
        err: LibbpfError
        if abs(rc) in (errno.EPERM,) and not text:
            err = make_error(rc, "load", f"{self.obj.name}:{name}", f"the kernel refuses {spec.variant} programs here")
        else:
            err = VerifierError(abs(rc), strerror(rc), "load", self.obj.name, name, log_lines)
        return [(hook, spec.variant, err) for hook, s in self.selected.items() if s.name == name]

    def close(self) -> None:
        destroy_links(self.links)
        self.links = []
        if self.ptr != ffi.NULL:
            lib.bpf_object__close(self.ptr)
            self.ptr = ffi.NULL
        self._keep = []
        self.log_bufs = {}


class LoadedObject:
    """A loaded and attached object; owns its programs, links and maps.

    Attributes:
        name: the object's name.
        hooks: per hook, the variant attached or why none was.
    """

    def __init__(self, attempt: _Attempt, hooks: dict[str, HookStatus]) -> None:
        self._a = attempt
        self._a.log_bufs = {}
        self.name = attempt.obj.name
        self.hooks = hooks

    def map_fd(self, name: str) -> int:
        """The fd of one of the object's maps.

        Raises:
            KeyError: no such map.
        """
        if self._a.ptr == ffi.NULL:
            raise ValueError(f"{self.name} is closed")
        return int(check_ret(lib.bpf_map__fd(self._a.maps[name]), "map fd", name))

    def program_fd(self, name: str) -> int:
        """The fd of a loaded program."""
        return int(check_ret(lib.bpf_program__fd(self._a.programs[name]), "program fd", name))

    def program_info(self, name: str) -> Any:
        """The kernel's ``struct bpf_prog_info`` of a loaded program (its
        run_time_ns and run_cnt, counted while kernel.bpf_stats_enabled is
        1; verified_insns, reported from 5.16)."""
        info = ffi.new("struct bpf_prog_info *")
        size = ffi.new("uint32_t *", ffi.sizeof("struct bpf_prog_info"))
        check_ret(lib.bpf_prog_get_info_by_fd(self.program_fd(name), info, size), "program info", name)
        return info

    @property
    def closed(self) -> bool:
        return bool(self._a.ptr == ffi.NULL)

    def detach(self) -> None:
        """Detach every program, keeping programs and maps (to read the maps
        of a program that must stop counting first); idempotent."""
        destroy_links(self._a.links)
        self._a.links = []

    def close(self) -> None:
        """Detach every program and free the object; idempotent."""
        self._a.close()

    def __enter__(self) -> LoadedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
