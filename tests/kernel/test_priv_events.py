# SPDX-License-Identifier: Apache-2.0
"""Privilege and integrity events from real syscalls, mostly in children."""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import subprocess
from typing import Any

import pytest
from _sysevents import Header, check_header, collect, in_child, nr, proc_caps

from ebpfsensor.events import BpfCall, CredChange, Kill, MemfdCreate, ModuleLoad, Mount, Ptrace, Setsid, Umount
from ebpfsensor.host import features

pytestmark = pytest.mark.bpf

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
NOBODY = 65534
CAP_NET_RAW = 13


def ids() -> list[int]:
    """uid, euid, suid, fsuid, gid, egid, sgid, fsgid of this process."""
    with open("/proc/self/status") as f:
        rows = dict(line.split(":", 1) for line in f)
    uid, gid = [int(x) for x in rows["Uid"].split()], [int(x) for x in rows["Gid"].split()]
    return uid + gid


def check_cred(e: Any, before: dict[str, Any], after: dict[str, Any], args: tuple[int, int, int]) -> None:
    names = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid")
    assert isinstance(e, CredChange)
    assert [getattr(e, f"old_{n}") for n in names] == before["ids"]
    assert [getattr(e, f"new_{n}") for n in names] == after["ids"]
    caps = (("inheritable", "CapInh"), ("permitted", "CapPrm"), ("effective", "CapEff"))
    assert {c: getattr(e, f"old_cap_{c}") for c, _ in caps} == {c: before["caps"][k] for c, k in caps}
    assert {c: getattr(e, f"new_cap_{c}") for c, _ in caps} == {c: after["caps"][k] for c, k in caps}
    assert (e.arg0, e.arg1, e.arg2) == args


def snapshot() -> dict[str, Any]:
    return {"ids": ids(), "caps": proc_caps()}


def test_setuid_in_child(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        before = snapshot()
        os.setuid(1000)
        return {"before": before, "after": snapshot()}

    out = in_child(child)
    (e,) = collect(sensor, out["header"], (CredChange,), 1)
    check_header(e, out["header"], "setuid", 0)
    assert out["after"]["ids"] == [1000] * 4 + [0] * 4
    # from root to a user: permitted and effective capabilities are gone
    assert out["before"]["caps"]["CapEff"] != 0 and out["after"]["caps"]["CapEff"] == 0
    check_cred(e, out["before"], out["after"], (1000, 0, 0))


def test_setres_and_fs_ids_and_a_refusal(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        steps = [snapshot()]
        os.setresgid(1, 2, 3)
        steps.append(snapshot())
        assert _libc.setfsuid(1234) == 0  # returns the previous fsuid
        steps.append(snapshot())
        os.setresuid(4, 5, 6)
        steps.append(snapshot())
        try:
            os.setuid(0)
        except PermissionError:
            pass
        steps.append(snapshot())
        return {"steps": steps}

    out = in_child(child)
    s = out["steps"]
    resgid, fsuid, resuid, refused = collect(sensor, out["header"], (CredChange,), 4)
    header = {**out["header"], "uid": 4}
    check_header(resgid, {**header, "uid": 0, "gid": 1}, "setresgid", 0)
    check_cred(resgid, s[0], s[1], (1, 2, 3))
    assert s[1]["ids"][4:] == [1, 2, 3, 2]
    check_header(fsuid, {**header, "uid": 0, "gid": 1}, "setfsuid", 0)
    check_cred(fsuid, s[1], s[2], (1234, 0, 0))
    check_header(resuid, {**header, "gid": 1}, "setresuid", 0)
    check_cred(resuid, s[2], s[3], (4, 5, 6))
    assert s[3]["ids"][:4] == [4, 5, 6, 5]
    # as a user, setuid(0) fails: reported with EPERM, nothing changed
    check_header(refused, {**header, "gid": 1}, "setuid", -1)
    check_cred(refused, s[3], s[4], (0, 0, 0))
    assert s[3] == s[4]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def test_capset_drops_a_capability(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        before = snapshot()
        hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)()
        assert _libc.syscall(nr("capget"), ctypes.byref(hdr), data) == 0
        data[0].effective &= ~(1 << CAP_NET_RAW)
        assert _libc.syscall(nr("capset"), ctypes.byref(hdr), data) == 0
        return {"before": before, "after": snapshot()}

    out = in_child(child)
    (e,) = collect(sensor, out["header"], (CredChange,), 1)
    check_header(e, out["header"], "capset", 0)
    check_cred(e, out["before"], out["after"], (0, 0, 0))
    assert e.new_cap_effective == e.old_cap_effective & ~(1 << CAP_NET_RAW)
    assert e.new_cap_permitted == e.old_cap_permitted


def test_kill_tkill_tgkill(sensor: Any) -> None:
    with subprocess.Popen(["sleep", "30"]) as target:
        gone = subprocess.Popen(["true"])
        gone.wait()
        h = Header()
        filtered = sensor.stats().kinds["kill"].filtered
        os.kill(os.getpid(), 0)  # a probe of ourselves: not reported
        os.kill(target.pid, signal.SIGCONT)
        assert _libc.syscall(nr("tkill"), target.pid, signal.SIGCONT) == 0
        assert _libc.syscall(nr("tgkill"), target.pid, target.pid, signal.SIGWINCH) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(gone.pid, signal.SIGTERM)
        target.terminate()
        kill, tkill, tgkill, failed, term = collect(sensor, h, (Kill,), 5)
    check_header(kill, h, "kill", 0)
    assert (kill.target_pid, kill.target_tid, kill.signal) == (target.pid, 0, signal.SIGCONT)
    check_header(tkill, h, "tkill", 0)
    assert (tkill.target_pid, tkill.target_tid, tkill.signal) == (0, target.pid, signal.SIGCONT)
    check_header(tgkill, h, "tgkill", 0)
    assert (tgkill.target_pid, tgkill.target_tid, tgkill.signal) == (target.pid, target.pid, signal.SIGWINCH)
    check_header(failed, h, "kill", -3)  # ESRCH
    assert (failed.target_pid, failed.target_tid, failed.signal) == (gone.pid, 0, signal.SIGTERM)
    check_header(term, h, "kill", 0)
    assert (term.target_pid, term.signal) == (target.pid, signal.SIGTERM)
    assert sensor.stats().kinds["kill"].filtered >= filtered + 1


def test_setsid_twice(sensor: Any) -> None:
    def child() -> dict[str, Any]:
        os.setsid()
        sid = os.getsid(0)
        try:
            os.setsid()
        except PermissionError:
            return {"sid": sid}
        raise AssertionError("a session leader could call setsid() again")

    out = in_child(child)
    first, second = collect(sensor, out["header"], (Setsid,), 2)
    check_header(first, out["header"], "setsid", out["pid"])
    assert out["sid"] == out["pid"]
    check_header(second, out["header"], "setsid", -1)  # EPERM
    assert second.errno == 1


PTRACE_ATTACH, PTRACE_DETACH, PTRACE_PEEKDATA = 16, 17, 2


def test_ptrace_attach(sensor: Any) -> None:
    _libc.ptrace.restype = ctypes.c_long
    _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    with subprocess.Popen(["sleep", "30"]) as target:
        gone = subprocess.Popen(["true"])
        gone.wait()
        h = Header()
        filtered = sensor.stats().kinds["ptrace"].filtered
        try:
            assert _libc.ptrace(PTRACE_ATTACH, target.pid, None, None) == 0
            os.waitpid(target.pid, 0)  # the stop that ATTACH causes
            _libc.ptrace(PTRACE_PEEKDATA, target.pid, None, None)  # a read: counted, not sent
            assert _libc.ptrace(PTRACE_DETACH, target.pid, None, None) == 0
            assert _libc.ptrace(PTRACE_ATTACH, gone.pid, None, None) == -1
            attach, failed = collect(sensor, h, (Ptrace,), 2)
        finally:
            target.kill()
    check_header(attach, h, "ptrace", 0)
    assert (attach.request, attach.target_pid, attach.addr, attach.data) == (PTRACE_ATTACH, target.pid, 0, 0)
    check_header(failed, h, "ptrace", -3)  # ESRCH
    assert (failed.request, failed.target_pid) == (PTRACE_ATTACH, gone.pid)
    # PEEKDATA and DETACH
    assert sensor.stats().kinds["ptrace"].filtered >= filtered + 2


def test_memfd_create(sensor: Any) -> None:
    name = "ebpfsensor-memfd-\u00e9"
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    h = Header()
    fd = os.memfd_create(name, flags)
    try:
        with pytest.raises(OSError) as bad:
            os.memfd_create("bad-flags", 0x7FFF0000)
        created, failed = collect(sensor, h, (MemfdCreate,), 2)
    finally:
        os.close(fd)
    check_header(created, h, "memfd_create", fd)
    assert (created.name, created.flags) == (name, flags)
    check_header(failed, h, "memfd_create", -bad.value.errno)
    assert failed.errno == 22 and (failed.name, failed.flags) == ("bad-flags", 0x7FFF0000)


BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_PROG_LOAD = 0, 1, 5
BPF_PROG_TYPE_SOCKET_FILTER = 1


def _bpf(cmd: int, attr: bytearray) -> tuple[int, int]:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    ret = _libc.syscall(nr("bpf"), cmd, buf, len(attr))
    return ret, ctypes.get_errno()


def test_bpf_prog_load_and_map_create(sensor: Any) -> None:
    # r0 = 0; exit
    insns = (ctypes.c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = bytearray(128)
    struct.pack_into(
        "<IIQQ", attr, 0, BPF_PROG_TYPE_SOCKET_FILTER, 2, ctypes.addressof(insns), ctypes.addressof(license_)
    )
    attr[48:58] = b"ebpfs_test"
    bad = bytearray(attr)
    struct.pack_into("<I", bad, 0, 9999)
    map_attr = bytearray(72)
    struct.pack_into("<IIII", map_attr, 0, 2, 4, 8, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 8, 1 entry
    h = Header()
    filtered = sensor.stats().kinds["bpf_call"].filtered
    prog_fd, _ = _bpf(BPF_PROG_LOAD, attr)
    failed, err = _bpf(BPF_PROG_LOAD, bad)
    map_fd, _ = _bpf(BPF_MAP_CREATE, map_attr)
    try:
        assert prog_fd >= 0 and map_fd >= 0 and failed == -1
        lookup = bytearray(32)
        key, value = ctypes.c_uint32(0), ctypes.c_uint64()
        struct.pack_into("<IIQQ", lookup, 0, map_fd, 0, ctypes.addressof(key), ctypes.addressof(value))
        assert _bpf(BPF_MAP_LOOKUP_ELEM, lookup)[0] == 0  # counted, not sent
        load, refused, create = collect(sensor, h, (BpfCall,), 3)
    finally:
        os.close(prog_fd)
        os.close(map_fd)
    check_header(load, h, "bpf", prog_fd)
    assert (load.cmd, load.prog_type, load.insn_cnt, load.attr_size, load.prog_name) == (
        BPF_PROG_LOAD, BPF_PROG_TYPE_SOCKET_FILTER, 2, 128, "ebpfs_test",
    )  # fmt: skip
    check_header(refused, h, "bpf", -err)
    assert (refused.cmd, refused.prog_type, refused.insn_cnt, refused.prog_name) == (
        BPF_PROG_LOAD,
        9999,
        2,
        "ebpfs_test",
    )
    check_header(create, h, "bpf", map_fd)
    assert (create.cmd, create.prog_type, create.insn_cnt, create.attr_size, create.prog_name) == (
        BPF_MAP_CREATE, 0, 0, 72, "",
    )  # fmt: skip
    assert sensor.stats().kinds["bpf_call"].filtered >= filtered + 1


CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 1 << 14, 1 << 18


def test_mount_umount_in_private_namespace(sensor: Any, tmp_path: Any) -> None:
    base = os.path.realpath(tmp_path)
    target = os.path.join(base, "mnt")
    missing = os.path.join(base, "missing")
    os.mkdir(target)
    os.mkdir(os.path.join(base, "rel"))

    def call(ret: int) -> int:
        return 0 if ret == 0 else -ctypes.get_errno()

    def child() -> dict[str, Any]:
        assert _libc.unshare(CLONE_NEWNS) == 0
        results = [
            call(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)),
            call(_libc.mount(b"ebpfsensor-src", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m")),
            call(_libc.mount(b"x", target.encode(), b"nosuchfs-ebpfsensor", 0, None)),
            call(_libc.mount(b"ebpfsensor-src", missing.encode(), b"tmpfs", 0, None)),
        ]
        os.chdir(base)  # a target relative to the working directory
        results.append(call(_libc.mount(b"ebpfsensor-rel", b"rel", b"tmpfs", 0, None)))
        with open("/proc/self/mounts") as f:
            mounted = {line.split()[1] for line in f} >= {target, os.path.join(base, "rel")}
        results += [call(_libc.umount2(target.encode(), 0)), call(_libc.umount2(target.encode(), 0))]
        results.append(call(_libc.umount2(b"./rel", 0)))
        return {"results": results, "mounted": mounted}

    out = in_child(child)
    assert out["mounted"]
    assert out["results"] == [0, 0, -19, -2, 0, 0, -22, 0]  # ENODEV, ENOENT, EINVAL
    private, tmpfs, nodev, noent, rel, umount, again, unrel = collect(sensor, out["header"], (Mount, Umount), 8)
    want = [
        (private, 0, MS_REC | MS_PRIVATE, "none", "/", "", "/"),
        (tmpfs, 0, MS_NOSUID | MS_NODEV, "ebpfsensor-src", target, "tmpfs", target),
        (nodev, -19, 0, "x", target, "nosuchfs-ebpfsensor", target),
        (noent, -2, 0, "ebpfsensor-src", missing, "tmpfs", missing),
        (rel, 0, 0, "ebpfsensor-rel", "rel", "tmpfs", os.path.join(base, "rel")),
    ]
    for e, result, flags, source, where, fstype, path in want:
        assert isinstance(e, Mount)
        check_header(e, out["header"], "mount", result)
        assert (e.flags, e.source, e.target, e.fstype, e.path, e.path_truncated) == (
            flags, source, where, fstype, path, False,
        )  # fmt: skip
    for e, result, where, path in (
        (umount, 0, target, target),
        (again, -22, target, target),
        (unrel, 0, "./rel", os.path.join(base, "./rel")),  # the string as given: "." is not folded
    ):
        assert isinstance(e, Umount)
        check_header(e, out["header"], "umount2", result)
        assert (e.flags, e.target, e.path, e.path_truncated) == (0, where, path, False)


def test_module_load(sensor: Any, tmp_path: Any) -> None:
    """finit_module of a file that is no module: reported with the error and
    the file's path. Without module support (CONFIG_MODULES=n) the kernel has
    no such syscalls: the hooks must say so, not fail silently."""
    hooks = sensor.hooks()
    names = ("init_module_enter", "init_module_exit", "finit_module_enter", "finit_module_exit")
    if not os.path.exists("/proc/modules"):
        for name in names:
            call, end = name.rsplit("_", 1)
            assert hooks[name].variant is None
            assert hooks[name].failures == [f"tp: tracepoint syscalls/sys_{end}_{call} does not exist on this kernel"]
        assert hooks["module_load"].variant is None
        # known before any load (no btf_trace_module_load in the kernel's
        # BTF, no tracefs event): no reload of the object for it
        assert all("does not exist on this kernel" in f for f in hooks["module_load"].failures)
        btf = os.path.exists("/sys/kernel/btf/vmlinux")
        assert features.raw_tracepoint_exists("module_load") is (False if btf else None)
        assert features.raw_tracepoint_exists("sched_process_exec") is (True if btf else None)
        return
    for name in names:
        assert hooks[name].variant == "tp"
    image = tmp_path / "not-a-module.ko"
    image.write_bytes(b"\x7fELF" + bytes(60))
    h = Header()
    with open(image, "rb") as f:
        ret = _libc.syscall(nr("finit_module"), f.fileno(), b"debug=1", 0)
        err = ctypes.get_errno()
        fd = f.fileno()
    assert ret == -1
    (e,) = collect(sensor, h, (ModuleLoad,), 1)
    check_header(e, h, "finit_module", -err)
    assert (e.fd, e.flags, e.image_len, e.name, e.args) == (fd, 0, 0, "", "debug=1")
    assert (e.path, e.path_truncated) == (str(image), False)
    _load_a_real_module(sensor, tmp_path)


# a module with no dependencies whose loading changes nothing on its own
# (a dummy network driver: no device until one is created)
_HARMLESS_MODULE = ("kernel/drivers/net", "dummy")


def _load_a_real_module(sensor: Any, tmp_path: Any) -> None:
    """finit_module and init_module of a real module of the running kernel:
    reported with the module's own name, then unloaded."""
    import lzma
    import zlib

    where, name = _HARMLESS_MODULE
    # under tools/vm/run.sh the guest kernel's modules are in its package's tree
    tree = os.environ.get("VMTEST_KERNEL_MODULES") or f"/lib/modules/{os.uname().release}"
    base = f"{tree}/{where}/{name}.ko"
    found = [base + ext for ext in ("", ".xz", ".gz", ".zst") if os.path.exists(base + ext)]
    with open("/proc/modules") as f:
        loaded_already = any(line.startswith(f"{name} ") for line in f)
    if loaded_already:
        pytest.fail(f"{name} is loaded already: this test loads and unloads it")
    if not found:
        # a kernel with modules has its tree; tools/vm/run.sh links the
        # guest kernel's own into the guest
        pytest.skip(f"no {base}[.xz|.gz|.zst]: this kernel's modules are not installed")
    with open(found[0], "rb") as f:
        raw = f.read()
    if found[0].endswith(".xz"):
        raw = lzma.decompress(raw)
    elif found[0].endswith(".gz"):
        raw = zlib.decompress(raw, 47)
    elif found[0].endswith(".zst"):
        raw = subprocess.run(["zstd", "-qdc", found[0]], check=True, capture_output=True).stdout
    image = tmp_path / f"{name}.ko"
    image.write_bytes(raw)

    def unload() -> int:
        return 0 if _libc.syscall(nr("delete_module"), name.encode(), os.O_NONBLOCK) == 0 else -ctypes.get_errno()

    h = Header()
    with open(image, "rb") as f:
        loaded = _libc.syscall(nr("finit_module"), f.fileno(), b"numdummies=0", 0)
        fd = f.fileno()
    assert loaded == 0, f"finit_module({image}): {os.strerror(ctypes.get_errno())}"
    assert unload() == 0
    buf = ctypes.create_string_buffer(raw, len(raw))
    assert _libc.syscall(nr("init_module"), buf, ctypes.c_ulong(len(raw)), b"") == 0
    assert unload() == 0
    by_file, by_image = collect(sensor, h, (ModuleLoad,), 2)
    check_header(by_file, h, "finit_module", 0)
    assert (by_file.name, by_file.fd, by_file.flags, by_file.args) == (name, fd, 0, "numdummies=0")
    assert (by_file.path, by_file.path_truncated, by_file.image_len) == (str(image), False, 0)
    check_header(by_image, h, "init_module", 0)
    assert (by_image.name, by_image.fd, by_image.image_len, by_image.args, by_image.path) == (
        name, -1, len(raw), "", "",
    )  # fmt: skip


def test_only_enabled_kinds_are_loaded_and_sent() -> None:
    import ebpfsensor

    with ebpfsensor.Sensor(kinds={"setsid"}) as s:
        # the priv hooks of the one kind only (the lifecycle hooks are always there)
        assert {h for h, i in s.hooks().items() if i.variant} == {"setsid_enter", "setsid_exit", "exec", "fork", "exit"}

        def child() -> None:
            os.setuid(1000)
            os.setsid()

        out = in_child(child)
        (e,) = collect(s, out["header"], (CredChange, Setsid), 1)
        assert isinstance(e, Setsid) and e.result == out["pid"]
        assert s.stats().kinds["cred_change"].produced == 0
