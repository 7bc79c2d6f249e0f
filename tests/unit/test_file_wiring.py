# SPDX-License-Identifier: Apache-2.0
"""The file kinds are wired to programs that exist, and their settings check."""

from __future__ import annotations

import pytest

from ebpfsensor import Config
from ebpfsensor.errors import ConfigError
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
    assert all(
        v.variant == "tp" and v.section.startswith("tp/syscalls/sys_")
        for h, vs in syscall_hooks.items()
        for v in (vs[1:] if h in opens else vs)
    )
    # the open's hooks: fentry first, the one real program on do_filp_open and
    # empty peers elsewhere, so that the per-hook choice takes fentry for all
    # of them or for none
    assert {h: (vs[0].variant, vs[0].section) for h, vs in syscall_hooks.items() if h in opens} == {
        h: ("fentry", "fexit/do_filp_open" if h == "file_openat_exit" else "fexit/do_file_open_root") for h in opens
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


@pytest.mark.parametrize("value", [-1, 3_600_001])
def test_dedup_window_is_checked(value: int) -> None:
    with pytest.raises(ConfigError, match="file_dedup_ms"):
        Config(file_dedup_ms=value)


def test_dedup_is_off_by_default() -> None:
    assert Config().file_dedup_ms == 0
    assert Config(file_dedup_ms=250).file_dedup_ms == 250
