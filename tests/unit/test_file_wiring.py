# SPDX-License-Identifier: Apache-2.0
"""The file kinds are wired to programs that exist, and their settings check."""

from __future__ import annotations

import errno

import pytest

from ebpfsensor import Config
from ebpfsensor.errors import ConfigError, LibbpfError
from ebpfsensor.events import KINDS
from ebpfsensor.sources.ebpf.hooks import KIND_HOOKS
from ebpfsensor.sources.ebpf.objects import BpfObject, packaged_object_path

FILE_KINDS = {k for k in KINDS if k.startswith(("file_", "dir_"))}


def test_every_kind_has_a_source() -> None:
    # every kind from BPF has a source; user_login comes from audit
    assert set(KIND_HOOKS) == set(KINDS) - {"user_login"}
    assert FILE_KINDS == {
        "file_open",
        "file_create",
        "file_unlink",
        "dir_create",
        "file_rename",
        "file_chmod",
        "file_chown",
        "file_link",
        "file_symlink",
    }


def test_file_hooks_exist_in_the_object() -> None:
    path = packaged_object_path("file")
    if not path.exists():
        pytest.skip("file.bpf.o is not built: run `make bpf` first")
    obj = BpfObject.open(path)
    hooks = obj.hooks
    used: set[str] = set()
    for kind in FILE_KINDS:
        name, wanted = KIND_HOOKS[kind]
        assert name == "file"
        present = [h for h in wanted if h in hooks]
        # every syscall of the kind has its enter and exit program here
        assert present, kind
        assert {h.rsplit("_", 1)[0] for h in present if h.endswith("_enter")} == {
            h.rsplit("_", 1)[0] for h in present if h.endswith("_exit")
        }
        used |= set(present)
    # and no program of the object is left without a kind
    assert used == set(hooks)
    checks = {h: vs for h, vs in hooks.items() if h == "rename_target" or h.startswith("path_")}
    syscall_hooks = {h: vs for h, vs in hooks.items() if h not in checks}
    opens = {h for h in syscall_hooks if h.startswith(("file_open", "file_creat"))}
    assert opens >= {"file_openat_enter", "file_openat_exit", "file_openat2_enter", "file_openat2_exit"}
    # every syscall hook on its own tracepoint: an enter program each, and
    # one exit program per operation, shared by its calls' exit hooks
    for h, vs in syscall_hooks.items():
        tp = vs[-1]
        call, side = h.removeprefix("file_").rsplit("_", 1)
        assert (tp.variant, tp.section) == ("tp", f"tp/syscalls/sys_{side}_{call}")
        if side == "enter":
            assert tp.name == f"handle_{h}_tp"
    exits: dict[str, set[str]] = {}
    for h, vs in syscall_hooks.items():
        if h.endswith("_exit"):
            exits.setdefault(vs[-1].name, set()).add(h)
    programs = {p.name for p in obj.programs}
    assert set(exits) <= programs
    assert exits["handle_file_openat_exit_tp"] == {h for h in opens if h.endswith("_exit")}
    assert exits["handle_file_renameat2_exit_tp"] >= {"file_renameat_exit", "file_renameat2_exit"}
    assert len(exits) == 9
    # the open's hooks: fentry first, every one of them the one program on
    # do_filp_open, so that they take fentry together or not at all
    assert {h: (vs[0].variant, vs[0].name, vs[0].section) for h, vs in syscall_hooks.items() if h in opens} == {
        h: ("fentry", "handle_file_openat_exit_fentry", "fexit/do_filp_open") for h in opens
    }
    assert all(len(syscall_hooks[h]) == 2 for h in opens)
    # whether a rename replaced a file: the rename permission check, best hook first
    assert [(v.variant, v.section) for v in hooks["rename_target"]] == [
        ("lsm", "lsm/inode_rename"),
        ("fentry", "fentry/security_inode_rename"),
        ("kprobe", "kprobe/security_inode_rename"),
    ]
    # the paths the kernel resolved: its path checks, best hook first
    names = ("unlink", "rmdir", "mkdir", "mknod", "rename", "chmod", "chown", "link", "symlink")
    assert set(checks) == {"rename_target", *(f"path_{name}" for name in names)}
    for name in names:
        assert [(v.variant, v.section) for v in hooks[f"path_{name}"]] == [
            ("lsm", f"lsm/path_{name}"),
            ("fentry", f"fentry/security_path_{name}"),
            ("kprobe", f"kprobe/security_path_{name}"),
        ]
    assert "cfg_file_dedup_ns" in obj.settings


def test_a_hook_sharing_a_program_the_object_lacks_is_refused() -> None:
    path = packaged_object_path("file")
    if not path.exists():
        pytest.skip("file.bpf.o is not built: run `make bpf` first")
    data = path.read_bytes()
    shared = b"handle_file_openat_exit_tp\0tp/syscalls/sys_exit_openat2\0"
    assert data.count(shared) == 1
    with pytest.raises(LibbpfError, match="file_openat2_exit's tp variant is handle_file_openat_exit_tq") as exc:
        BpfObject(data.replace(shared, shared.replace(b"exit_tp", b"exit_tq")), "file.bpf.o")
    assert exc.value.errno == errno.ENOEXEC
    # a classic tracepoint program is attached at other tracepoints only
    with pytest.raises(LibbpfError, match="attaches handle_file_openat_exit_tp"):
        BpfObject(data.replace(shared, shared.replace(b"tp/syscalls", b"tq/syscalls")), "file.bpf.o")
    # and at a tracepoint named as category/event
    with pytest.raises(LibbpfError, match="at tp/syscalls_sys_exit_openat2"):
        BpfObject(data.replace(shared, shared.replace(b"syscalls/sys", b"syscalls_sys")), "file.bpf.o")
    # the sharing hooks' specs say so; the program's own does not
    specs = [p for p in BpfObject(data, "file.bpf.o").programs if p.name == "handle_file_openat_exit_tp"]
    assert {(p.hook, p.shared) for p in specs} >= {("file_openat_exit", False), ("file_openat2_exit", True)}
    assert len([p for p in specs if not p.shared]) == 1


@pytest.mark.parametrize("value", [-1, 3_600_001])
def test_dedup_window_is_checked(value: int) -> None:
    with pytest.raises(ConfigError, match="file_dedup_ms"):
        Config(file_dedup_ms=value)


def test_dedup_is_off_by_default() -> None:
    assert Config().file_dedup_ms == 0
    assert Config(file_dedup_ms=250).file_dedup_ms == 250
