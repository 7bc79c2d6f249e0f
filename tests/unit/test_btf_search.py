# SPDX-License-Identifier: Apache-2.0
"""The BTF search: its order, the checks on what it finds, archives, and the CLI.

Real files throughout: the running kernel's BTF copied into temporary
directories under a made-up release (the release is the search's one
input a test chooses; for any release but the running one, the running
kernel's own BTF does not apply, so the later steps are reached).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ebpfsensor._btf import Btf
from ebpfsensor.cli import main
from ebpfsensor.config import Config
from ebpfsensor.errors import ConfigError, NotSupportedError
from ebpfsensor.host import btf
from ebpfsensor.host.btf import CACHE_DIR, BtfFileError, BtfNotFoundError, locate, resolve
from ebpfsensor.host.capabilities import capabilities
from ebpfsensor.host.paths import BTF_VMLINUX
from ebpfsensor.host.support import read_os_release

RELEASE = "0.0.0-ebpfsensor-btf-test"
ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the other owner is another uid")


@pytest.fixture(scope="module")
def vmlinux() -> bytes:
    """The running kernel's BTF, as a real BTF file's content."""
    if not os.access(BTF_VMLINUX, os.R_OK):
        pytest.skip(f"this kernel has no readable {BTF_VMLINUX} to copy")
    return Path(BTF_VMLINUX).read_bytes()


def put(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@pytest.fixture
def btf_dir(tmp_path: Path) -> Path:
    d = tmp_path / "btf"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def cache(tmp_path: Path) -> str:
    return str(tmp_path / "run" / "btf")


def hub_dir(btf_dir: Path) -> Path:
    """BTFHub's <ID>/<VERSION_ID>/<arch> for this system."""
    dirs = btf._hub_dirs()
    if not dirs:
        pytest.skip("this system's os-release has no ID or VERSION_ID")
    return btf_dir / dirs[0]


def tar_xz(path: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    # the lowest preset: the test is about unpacking, not compressing
    with tarfile.open(fileobj=buf, mode="w:xz", preset=0) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return put(path, buf.getvalue())


def read_through(found: btf.ResolvedBtf) -> bytes:
    """What libbpf reads: the file behind the path it is given."""
    assert found.libbpf_path is not None and found.libbpf_path.startswith("/proc/self/fd/")
    return Path(found.libbpf_path).read_bytes()


# --- the order ------------------------------------------------------------------------


def test_kernel_btf_comes_before_btf_dir(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    put(btf_dir / f"{os.uname().release}.btf", vmlinux)
    with resolve(btf_dir=str(btf_dir), cache_dir=cache) as found:
        assert found.location.source == "kernel" and found.location.path == BTF_VMLINUX
        assert found.libbpf_path is None
        assert not found.location.external


def test_btf_path_comes_first_and_is_what_libbpf_reads(vmlinux: bytes, tmp_path: Path, btf_dir: Path) -> None:
    explicit = put(tmp_path / "given.btf", vmlinux)
    put(btf_dir / f"{RELEASE}.btf", vmlinux)
    with resolve(str(explicit), str(btf_dir), release=RELEASE) as found:
        loc = found.location
        assert (loc.source, loc.path, loc.reason, loc.release) == ("config", str(explicit), "Config.btf_path", RELEASE)
        assert os.readlink(found.libbpf_path or "") == str(explicit)
        assert read_through(found) == vmlinux
        path = found.libbpf_path
    assert not os.path.exists(path or "")  # closed with the block


def test_missing_btf_path_is_an_error_naming_it(tmp_path: Path, btf_dir: Path, vmlinux: bytes) -> None:
    put(btf_dir / f"{RELEASE}.btf", vmlinux)
    absent = tmp_path / "absent.btf"
    # named explicitly: nothing else is tried, not even the kernel's own
    for release in (None, RELEASE):
        with pytest.raises(BtfNotFoundError) as err:
            resolve(str(absent), str(btf_dir), release=release)
        assert f"the BTF file {absent} (Config.btf_path) does not exist" in str(err.value)
        assert isinstance(err.value, NotSupportedError)


def test_flat_file_in_btf_dir(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    file = put(btf_dir / f"{RELEASE}.btf", vmlinux)
    with resolve(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache) as found:
        loc = found.location
        assert (loc.source, loc.path, loc.unpacked) == ("btf_dir", str(file), "")
        assert loc.reason == f"{RELEASE}.btf in btf_dir"
        assert loc.searched == [f"{BTF_VMLINUX} (it describes the running kernel, {os.uname().release})"]
        assert read_through(found) == vmlinux
    assert locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache).describe() == (
        f"{RELEASE}: external BTF {file} ({RELEASE}.btf in btf_dir)"
    )
    assert not os.path.exists(cache)  # nothing unpacked for a plain file


def test_btfhub_layout_plain_file(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    hub = hub_dir(btf_dir)
    file = put(hub / f"{RELEASE}.btf", vmlinux)
    with resolve(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache) as found:
        loc = found.location
        assert (loc.source, loc.path) == ("btf_dir", str(file))
        assert loc.reason == f"BTFHub layout {hub.relative_to(btf_dir)}/ in btf_dir"
        assert loc.searched[1:] == [
            f"{btf_dir}/{RELEASE}.btf (absent)",
            f"{btf_dir}/{RELEASE}.btf.tar.xz (absent)",
        ]
        assert read_through(found) == vmlinux


def test_btfhub_directory_names() -> None:
    osr = read_os_release()
    dirs = btf._hub_dirs()
    if not (osr.id and osr.version_id):
        assert dirs == []
        return
    machine = {"x86_64": "x86_64", "aarch64": "arm64"}[os.uname().machine]
    assert dirs[0] == f"{osr.id}/{osr.version_id}/{machine}"
    major = osr.version_id.split(".")[0]
    assert dirs[1:] == ([f"{osr.id}/{major}/{machine}"] if major != osr.version_id else [])


def test_flat_file_comes_before_btfhub_layout(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    flat = put(btf_dir / f"{RELEASE}.btf", vmlinux)
    tar_xz(hub_dir(btf_dir) / f"{RELEASE}.btf.tar.xz", {f"{RELEASE}.btf": vmlinux})
    assert locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache).path == str(flat)


# --- BTFHub archives ----------------------------------------------------------------------


def test_tar_xz_is_unpacked_privately_and_checked(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    archive = tar_xz(hub_dir(btf_dir) / f"{RELEASE}.btf.tar.xz", {f"./{RELEASE}.btf": vmlinux})
    with resolve(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache) as found:
        loc = found.location
        assert (loc.source, loc.path) == ("btf_dir", str(archive))
        assert Path(loc.unpacked).parent == Path(cache) and loc.unpacked.endswith(".btf")
        assert loc.reason.endswith(f", unpacked to {loc.unpacked}")
        assert os.readlink(found.libbpf_path or "") == loc.unpacked
        assert read_through(found) == vmlinux
        first = os.stat(loc.unpacked)
    st = os.stat(cache)
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, os.geteuid())
    assert (first.st_mode & 0o777, first.st_uid) == (0o600, os.geteuid())
    # once per archive: the second search reads the same copy
    again = locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)
    assert again.unpacked == loc.unpacked and os.stat(again.unpacked).st_ino == first.st_ino
    # a replaced archive is unpacked again, and the old copy goes
    tar_xz(archive, {f"{RELEASE}.btf": vmlinux})
    os.utime(archive, ns=(first.st_mtime_ns + 10**9, first.st_mtime_ns + 10**9))
    newer = locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)
    assert newer.unpacked != loc.unpacked
    assert os.listdir(cache) == [os.path.basename(newer.unpacked)]


def test_flat_tar_xz(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    archive = tar_xz(btf_dir / f"{RELEASE}.btf.tar.xz", {f"{RELEASE}.btf": vmlinux})
    loc = locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)
    assert loc.path == str(archive) and Path(loc.unpacked).read_bytes() == vmlinux


@needs_root
def test_tar_xz_into_the_default_cache(vmlinux: bytes, btf_dir: Path) -> None:
    tar_xz(btf_dir / f"{RELEASE}.btf.tar.xz", {f"{RELEASE}.btf": vmlinux})
    loc = locate(btf_dir=str(btf_dir), release=RELEASE)
    try:
        assert Path(loc.unpacked).parent == Path(CACHE_DIR)
        st = os.stat(CACHE_DIR)
        assert (st.st_mode & 0o777, st.st_uid) == (0o700, 0)
        assert Path(loc.unpacked).read_bytes() == vmlinux
    finally:
        os.unlink(loc.unpacked)


def test_tar_xz_that_is_not_btf_is_refused(btf_dir: Path, cache: str) -> None:
    archive = tar_xz(btf_dir / f"{RELEASE}.btf.tar.xz", {f"{RELEASE}.btf": b"\x7fELF" + bytes(60)})
    with pytest.raises(BtfFileError, match=f"BTF file {archive}: its {RELEASE}.btf is a malformed ELF file"):
        locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)
    tar_xz(archive, {f"{RELEASE}.btf": b"\x00" * 64})
    with pytest.raises(BtfFileError, match=r"its 0\.0\.0-ebpfsensor-btf-test\.btf is not BTF \(starts 00000000"):
        locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)
    assert os.listdir(cache) == []  # no half-unpacked file left behind


def test_tar_xz_without_the_release_is_refused(vmlinux: bytes, btf_dir: Path, cache: str) -> None:
    tar_xz(btf_dir / f"{RELEASE}.btf.tar.xz", {"5.4.0-42-generic.btf": vmlinux})
    with pytest.raises(BtfFileError, match=f"the archive holds no {RELEASE}.btf; use this kernel's archive"):
        locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)
    put(btf_dir / f"{RELEASE}.btf.tar.xz", b"not xz at all")
    with pytest.raises(BtfFileError, match="cannot unpack"):
        locate(btf_dir=str(btf_dir), release=RELEASE, cache_dir=cache)


# --- what is refused ------------------------------------------------------------------------


def test_group_or_world_writable_file_is_refused(vmlinux: bytes, btf_dir: Path, tmp_path: Path) -> None:
    """The attack: a BTF file others may write lets them choose the offsets
    the programs read. Refused wherever it is found."""
    for mode in (0o666, 0o664):
        file = put(btf_dir / f"{RELEASE}.btf", vmlinux, mode)
        with pytest.raises(BtfFileError) as err:
            locate(btf_dir=str(btf_dir), release=RELEASE)
        assert str(err.value) == (
            f"BTF file {file}: it is writable by group or others (mode 0{mode:o}): whoever can replace a "
            f"BTF file decides the offsets the programs read; refusing it; run `chmod go-w {file}`"
        )
        with pytest.raises(BtfFileError, match="writable by group or others"):
            locate(str(file))
    os.unlink(file)
    hub = hub_dir(btf_dir)
    put(hub / f"{RELEASE}.btf", vmlinux)
    top = btf_dir / hub.relative_to(btf_dir).parts[0]
    os.chmod(top, 0o777)
    with pytest.raises(BtfFileError, match=f"its directory {top} is writable by group or others \\(mode 0777\\)"):
        locate(btf_dir=str(btf_dir), release=RELEASE)
    os.chmod(top, 0o755)
    os.chmod(btf_dir, 0o775)
    with pytest.raises(BtfFileError, match=f"its directory {btf_dir} is writable by group or others"):
        locate(btf_dir=str(btf_dir), release=RELEASE)


def test_sticky_shared_directory_is_accepted(vmlinux: bytes, tmp_path: Path) -> None:
    # others cannot rename or remove a file they do not own in a sticky directory (/tmp)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    file = put(shared / "k.btf", vmlinux)
    assert locate(str(file)).path == str(file)


@needs_root
def test_file_owned_by_another_user_is_refused(vmlinux: bytes, btf_dir: Path) -> None:
    file = put(btf_dir / f"{RELEASE}.btf", vmlinux)
    os.chown(file, 65534, 65534)
    with pytest.raises(BtfFileError) as err:
        locate(btf_dir=str(btf_dir), release=RELEASE)
    assert f"BTF file {file}: it is owned by uid 65534, not root: whoever can replace a BTF file" in str(err.value)
    assert str(err.value).endswith(f"run `chown root {file}`")
    os.chown(file, 0, 0)
    os.chown(btf_dir, 65534, 65534)
    with pytest.raises(BtfFileError, match=f"its directory {btf_dir} is owned by uid 65534"):
        locate(btf_dir=str(btf_dir), release=RELEASE)


def test_symlink_is_refused(vmlinux: bytes, btf_dir: Path, tmp_path: Path) -> None:
    real = put(tmp_path / "real.btf", vmlinux)
    (btf_dir / f"{RELEASE}.btf").symlink_to(real)
    with pytest.raises(BtfFileError, match="is a symlink; the sensor follows no symlink to a BTF file"):
        locate(btf_dir=str(btf_dir), release=RELEASE)


def test_a_file_that_is_not_btf_is_refused(btf_dir: Path) -> None:
    file = put(btf_dir / f"{RELEASE}.btf", Path(sys.executable).read_bytes())
    with pytest.raises(BtfFileError, match=f"BTF file {file}: an ELF file without a .BTF section"):
        locate(btf_dir=str(btf_dir), release=RELEASE)
    header = struct.Struct("<HBBIIIII")
    for fields, problem in (
        ((0xEB9F, 2, 0, 24, 0, 0, 0, 0), "BTF version 2, not 1"),
        ((0xEB9F, 1, 0, 0, 0, 0, 0, 0), "a BTF header of 0 bytes, shorter than 24"),
        ((0xEB9F, 1, 0, 24, 0, 4096, 4096, 1), "a truncated BTF file (its sections run past the end)"),
    ):
        put(file, header.pack(*fields) + bytes(64))
        with pytest.raises(BtfFileError, match=re.escape(f"BTF file {file}: {problem}; make one with `pahole")):
            locate(btf_dir=str(btf_dir), release=RELEASE)


def test_an_elf_with_btf_is_accepted(btf_dir: Path) -> None:
    # a vmlinux carries its BTF in a .BTF section; a compiled object is such an ELF
    obj = ROOT / "python" / "ebpfsensor" / "bpf"
    objects = sorted(obj.glob("*/process.bpf.o"))
    if not objects:
        pytest.skip("no compiled objects: run `make bpf` first")
    file = put(btf_dir / f"{RELEASE}.btf", objects[0].read_bytes())
    assert locate(btf_dir=str(btf_dir), release=RELEASE).path == str(file)


# --- where libbpf looks, and nothing found ---------------------------------------------------


@pytest.fixture
def place() -> Iterator[Callable[[str, bytes], Path]]:
    """Put a file where libbpf looks (made-up release), creating missing
    directories; everything created is removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the files go where libbpf looks (/boot, /usr/lib/debug)")
    made: list[Path] = []

    def put_there(path: str, data: bytes) -> Path:
        missing = [p for p in Path(path).parents if not p.exists()]
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            made.append(d)
        made.append(put(Path(path), data))
        return Path(path)

    yield put_there
    for p in reversed(made):
        p.rmdir() if p.is_dir() else p.unlink()


def test_libbpf_locations_skip_dwarf_only_vmlinux(
    vmlinux: bytes, place: Callable[[str, bytes], Path], btf_dir: Path
) -> None:
    no_btf = place(f"/boot/vmlinux-{RELEASE}", Path(sys.executable).read_bytes())
    with_btf = place(f"/usr/lib/debug/boot/vmlinux-{RELEASE}", vmlinux)
    with resolve(btf_dir=str(btf_dir), release=RELEASE) as found:
        loc = found.location
        assert (loc.source, loc.path) == ("libbpf", str(with_btf))
        assert loc.reason == "a vmlinux with BTF where libbpf also looks"
        assert loc.searched == [
            f"{BTF_VMLINUX} (it describes the running kernel, {os.uname().release})",
            f"{btf_dir}/{RELEASE}.btf (absent)",
            f"{btf_dir}/{RELEASE}.btf.tar.xz (absent)",
            *[f"{btf_dir}/{d}/{RELEASE}.btf{s} (absent)" for d in btf._hub_dirs() for s in ("", ".tar.xz")],
            f"{no_btf} (an ELF file without a .BTF section (DWARF only?))",
            *[f"{p.format(r=RELEASE)} (absent)" for p in btf.LIBBPF_LOCATIONS[1:4]],
        ]
        assert read_through(found) == vmlinux
    os.chmod(with_btf, 0o646)
    with pytest.raises(BtfFileError, match="writable by group or others"):
        locate(btf_dir=str(btf_dir), release=RELEASE)


def test_nothing_found_names_release_places_and_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(BtfNotFoundError) as err:
        locate(btf_dir=str(missing), release=RELEASE)
    text = str(err.value)
    assert text.startswith(f"no BTF for kernel {RELEASE}: searched {BTF_VMLINUX} (it describes the running kernel")
    assert f"{missing} (absent)" in text
    for pattern in btf.LIBBPF_LOCATIONS:
        assert f"{pattern.format(r=RELEASE)} (absent)" in text
    assert f"put {RELEASE}.btf in {missing} (owned by root, not writable by group or others)" in text
    assert f"pahole --btf_encode_detached={RELEASE}.btf VMLINUX" in text and "ebpfsensor btf minimize" in text
    assert err.value.release == RELEASE and len(err.value.searched) == 2 + len(btf.LIBBPF_LOCATIONS)
    assert "\n" not in text


def test_release_must_be_a_release_name() -> None:
    for bad in ("../etc", "a/b", ".."):
        with pytest.raises(ValueError, match="is not a kernel release"):
            locate(release=bad)


# --- the configuration and the capability report --------------------------------------------


def test_config_btf_dir() -> None:
    assert Config().btf_dir == "/var/lib/ebpfsensor/btf"
    with pytest.raises(ConfigError, match="btf_dir: 'relative/btf' is not an absolute path"):
        Config(btf_dir="relative/btf")
    with pytest.raises(ConfigError, match="btf_path: '' is not a file name"):
        Config(btf_path="")


def test_capabilities_name_the_source(vmlinux: bytes, tmp_path: Path) -> None:
    assert capabilities().btf_source == f"kernel ({BTF_VMLINUX})"
    file = put(tmp_path / "k.btf", vmlinux)
    assert capabilities(btf_path=str(file)).btf_source == f"external ({file}; Config.btf_path)"
    os.chmod(file, 0o666)
    assert capabilities(btf_path=str(file)).btf_source.startswith(f"none (BTF file {file}: it is writable")


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_locate(vmlinux: bytes, btf_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(tmp_path / "absent-config.json")
    assert main(["btf", "locate", "--config", config]) == 0
    assert capsys.readouterr().out == f"{os.uname().release}: kernel BTF {BTF_VMLINUX} (the running kernel's own)\n"
    file = put(btf_dir / f"{RELEASE}.btf", vmlinux)
    args = ["btf", "locate", "--config", config, "--btf-dir", str(btf_dir), "--release", RELEASE]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["release"], doc["source"], doc["path"]) == (RELEASE, "btf_dir", str(file))
    os.unlink(file)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"ebpfsensor: error: no BTF for kernel {RELEASE}")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebpfsensor", *args],
        capture_output=True,
        text=True,
        env={**(env or os.environ), "PYTHONPATH": str(ROOT / "python")},
    )


def test_cli_minimize_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "min.btf")
    run = run_cli("btf", "minimize", "--input", str(tmp_path / "absent"), "--output", out)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith(f"ebpfsensor: error: BTF file {tmp_path / 'absent'}: does not exist; give the kernel")
    run = run_cli("btf", "minimize", "--input", sys.executable, "--output", out)
    assert (run.returncode, run.stderr.count("\n")) == (2, 1)
    assert "an ELF file without a .BTF section" in run.stderr
    if not os.access(BTF_VMLINUX, os.R_OK):
        pytest.skip(f"no {BTF_VMLINUX} to minimize")
    # bpftool missing: a PATH without it
    run = run_cli("btf", "minimize", "--input", BTF_VMLINUX, "--output", out, env={"PATH": str(tmp_path)})
    assert (run.returncode, run.stderr.count("\n")) == (2, 1)
    assert "bpftool not found in PATH; install bpftool (Debian: apt install bpftool;" in run.stderr
    assert not os.path.exists(out)


def test_minimize_keeps_what_the_objects_read(vmlinux: bytes, tmp_path: Path) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    if not btf.packaged_objects():
        pytest.skip("no compiled objects: run `make bpf` first")
    out = tmp_path / "min.btf"
    made = btf.minimize(BTF_VMLINUX, str(out))
    assert made.objects == [p.name for p in btf.packaged_objects()]
    assert (made.input_bytes, made.output_bytes) == (len(vmlinux), out.stat().st_size)
    # far smaller: the few structs the programs read instead of the whole kernel
    assert made.output_bytes * 100 < made.input_bytes
    print(f"minimized BTF: {made.input_bytes} -> {made.output_bytes} bytes")
    small, full = Btf(out.read_bytes()), Btf(vmlinux)
    for name in ("task_struct", "mm_struct", "file", "sock"):
        small_struct, full_struct = small.struct(name), full.struct(name)
        assert small_struct is not None and full_struct is not None, name
        # each member kept is where the kernel has it
        # (flattened: nested structs' members share names, e.g. flags)
        full_members = set(full_struct[1])
        assert small_struct[0] == full_struct[0]
        assert all(m in full_members for m in small_struct[1] if m.name), name
