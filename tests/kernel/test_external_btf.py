# SPDX-License-Identifier: Apache-2.0
"""The sensor on an external BTF file, as on a kernel without its own.

The file is made the way an administrator makes one (`ebpfsensor btf
minimize` from the kernel's full BTF) and given as Config.btf_path; libbpf
then relocates against it instead of /sys/kernel/btf/vmlinux, which the
second test proves by giving it a BTF that lacks the types.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tests.kernel.conftest import wait_for
from tests.kernel.test_resources import bpf_ids, wait_gone

import ebpfsensor
from ebpfsensor import ProcessExec
from ebpfsensor.host import features
from ebpfsensor.host.btf import BtfFileError, locate
from ebpfsensor.host.capabilities import capabilities
from ebpfsensor.host.paths import BTF_VMLINUX

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parents[2]
TRUE = os.path.realpath("/bin/true")
NOBODY = 65534


def kernel_btf() -> str:
    """The kernel's full BTF: its own, or (5.4, 4.19: none in sysfs) the
    file the sensor finds where an administrator placed it."""
    found = locate()
    assert found.source in ("kernel", "btf_dir"), found.describe()
    assert (found.source == "kernel") == os.path.exists(BTF_VMLINUX)
    return found.path


@pytest.fixture(scope="module")
def minimized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BTF file made by `ebpfsensor btf minimize` from the kernel's."""
    if shutil.which("bpftool") is None:
        pytest.fail("bpftool is needed (the kernel tier uses it throughout)")
    out = tmp_path_factory.mktemp("btf") / "minimized.btf"
    source = kernel_btf()
    run = subprocess.run(
        [sys.executable, "-m", "ebpfsensor", "btf", "minimize", "--input", source, "--output", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "python")},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    full, small = os.path.getsize(source), out.stat().st_size
    assert run.stdout.startswith(f"{out}: {small} bytes from {full} (")
    return out


def test_minimized_btf_is_much_smaller(minimized: Path) -> None:
    source = kernel_btf()
    full, small = os.path.getsize(source), minimized.stat().st_size
    print(f"BTF: {source} {full} bytes, minimized {small} bytes ({full / small:.0f}x smaller)")
    assert small * 100 < full


def test_sensor_on_minimized_btf_reports_exec_field_by_field(minimized: Path, tmp_path: Path) -> None:
    with ebpfsensor.Sensor(kinds={"process_exec"}, btf_path=str(minimized), fail_closed=True) as sensor:
        health = sensor.health()
        assert health.ebpf and health.supplementary_events_subsystem == "ebpf"
        assert health.capabilities.btf_source == f"external ({minimized}; Config.btf_path)"
        exec_health = health.kinds["process_exec"]
        assert exec_health.live and exec_health.source.startswith("ebpf:"), exec_health
        hook = sensor.hooks()["exec"]
        assert hook.variant is not None and exec_health.source == f"ebpf:{hook.variant}", hook

        argv = [TRUE, "external", "btf", str(minimized)]
        p = subprocess.Popen(argv, cwd=tmp_path)
        p.wait()
        (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    # every field read through a CO-RE relocation against the file is the kernel's truth
    assert (e.pid, e.tid, e.old_tid, e.ppid) == (p.pid, p.pid, p.pid, os.getpid())
    assert (e.uid, e.gid, e.euid, e.egid, e.suid, e.sgid, e.fsuid, e.fsgid) == (os.getuid(), os.getgid()) + (
        os.geteuid(),
        os.getegid(),
    ) * 3
    with open("/proc/self/loginuid") as f:
        assert e.loginuid == int(f.read())
    with open("/proc/self/sessionid") as f:
        assert e.sessionid == int(f.read())
    assert (e.pid_ns, e.mnt_ns, e.net_ns, e.user_ns) == tuple(
        os.stat(f"/proc/self/ns/{n}").st_ino for n in ("pid", "mnt", "net", "user")
    )
    assert (e.comm, e.exe, e.argv) == ("true", TRUE, argv)
    assert e.cwd == os.path.realpath(tmp_path)
    assert e.parent_comm == Path("/proc/self/comm").read_text().strip()
    assert e.parent_exe == os.path.realpath("/proc/self/exe")
    assert not (e.argv_truncated or e.exe_truncated or e.cwd_truncated or e.parent_exe_truncated)
    assert 0 < e.start_time_ns <= e.ts_ns <= time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def tiny_btf() -> bytes:
    """A valid BTF holding one type, `int`, and none the programs read."""
    strings = b"\0int\0"
    types = struct.pack("<IIII", 1, 1 << 24, 4, 32)  # name "int", kind INT, size 4; 32 bits
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


def test_the_file_is_what_the_programs_are_relocated_against(tmp_path: Path) -> None:
    """With the kernel's own BTF present, a file lacking the types makes every
    load fail: libbpf relocated against the file, not the kernel's BTF."""
    empty = tmp_path / "no-types.btf"
    empty.write_bytes(tiny_btf())
    before = bpf_ids()
    with pytest.raises(ebpfsensor.EbpfSensorError, match=r"failed to resolve CO-RE relocation .* struct task_struct"):
        ebpfsensor.Sensor(kinds={"process_exec"}, btf_path=str(empty), fail_closed=True).start()
    assert wait_gone("prog", bpf_ids()["prog"] - before["prog"]) == set()
    assert bpf_ids() == before


def test_btf_file_others_can_write_is_refused(minimized: Path) -> None:
    """The attack: a BTF file another user can replace chooses the offsets the
    programs read, and so what events say. Such a file is never loaded."""
    shared = Path(tempfile.mkdtemp(prefix="ebpfsensor-btf-"))
    try:
        os.chmod(shared, 0o755)
        file = shared / "vmlinux.btf"
        shutil.copy(minimized, file)
        os.chmod(file, 0o666)
        # the attacker, uid 65534, can indeed replace its content with a forgery
        forged = tiny_btf()
        subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", "tee", str(file)],
            input=forged,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        assert file.read_bytes() == forged
        before = bpf_ids()
        with pytest.raises(BtfFileError, match=f"BTF file {file}: it is writable by group or others \\(mode 0666\\)"):
            ebpfsensor.Sensor(kinds={"process_exec"}, btf_path=str(file), fail_closed=True).start()
        assert capabilities(btf_path=str(file)).btf_source.startswith(f"none (BTF file {file}: it is writable")
        # owned by the attacker, even read-only for others: refused too
        shutil.copy(minimized, file)
        os.chmod(file, 0o644)
        os.chown(file, NOBODY, NOBODY)
        with pytest.raises(BtfFileError, match=f"BTF file {file}: it is owned by uid {NOBODY}, not root"):
            ebpfsensor.Sensor(kinds={"process_exec"}, btf_path=str(file), fail_closed=True).start()
        assert bpf_ids() == before
    finally:
        shutil.rmtree(shared)


# run in a child whose mount namespace hides the kernel's own BTF (an empty
# file over it), as on a kernel built without CONFIG_DEBUG_INFO_BTF: libbpf
# and the sensor look there, the verifier keeps the kernel's BTF regardless
_HIDDEN_CHILD = """
import json, os, subprocess, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/python"]
import ebpfsensor
from ebpfsensor import EbpfSensorError, ProcessExec
from ebpfsensor.diagnostic import Diagnostic
from ebpfsensor.host import features
from tests.kernel.conftest import wait_for

btf, true = sys.argv[2], sys.argv[3]
out = {"own_btf": features.own_btf().works, "ring": features.ring_buffer().works}
try:
    ebpfsensor.Sensor(kinds={"process_exec"}, btf_path=btf, transport="ring", fail_closed=True).start().close()
    out["ring_refused"] = ""
except EbpfSensorError as exc:
    out["ring_refused"] = f"{type(exc).__name__}: {exc}"
try:
    Diagnostic(btf_path=btf).start().close()
    out["diagnostic_refused"] = ""
except EbpfSensorError as exc:
    out["diagnostic_refused"] = f"{type(exc).__name__}: {exc}"
with ebpfsensor.Sensor(kinds={"process_exec"}, btf_path=btf, fail_closed=True) as sensor:
    out["transport"] = sensor.health().transport
    out["objects"] = sorted({h.object for h in sensor.hooks().values() if h.variant})
    argv = [true, "hidden", "btf"]
    p = subprocess.Popen(argv, cwd="/")
    p.wait()
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    out["exec"] = [e.pid, e.ppid, e.exe, e.argv, e.cwd, e.parent_exe]
    out["child"] = p.pid
    out["self"] = os.getpid()
    out["self_exe"] = os.path.realpath("/proc/self/exe")
print(json.dumps(out))
"""


def test_without_the_kernels_own_btf_the_perf_objects_run(tmp_path: Path) -> None:
    """A kernel with ring buffers but without BTF of its own: the ring builds
    load through BTF-typed pointers and resolve a kfunc against that BTF,
    which a file cannot stand in for. Given the file, the sensor picks the
    perf builds and reports; "ring" and the diagnostic (a ring build) are
    refused saying why, and nothing stays loaded."""
    btf = tmp_path / "vmlinux.btf"
    shutil.copy(kernel_btf(), btf)
    os.chmod(btf, 0o644)
    code = [sys.executable, "-c", _HIDDEN_CHILD, str(ROOT), str(btf), TRUE]
    hide = os.path.exists(BTF_VMLINUX)
    if hide:
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        # the kernel's file hidden in the child's own mount namespace only
        mount = f'mount --bind "$0" {BTF_VMLINUX} && exec "$@"'
        code = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount, str(empty), *code]
    before = bpf_ids()
    run = subprocess.run(code, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["own_btf"] is False
    assert out["transport"] == "perf"
    assert out["objects"] and all(".perf" in o or ".v419" in o for o in out["objects"]), out["objects"]
    assert out["exec"] == [out["child"], out["self"], TRUE, [TRUE, "hidden", "btf"], "/", out["self_exe"]]
    assert out["diagnostic_refused"].startswith("NotSupportedError"), out["diagnostic_refused"]
    if out["ring"]:
        # ring buffers exist: refused only for the BTF, saying what to do
        assert "the ring-buffer objects" in out["ring_refused"], out["ring_refused"]
        assert "set Config.transport to 'auto' or 'perf'" in out["ring_refused"]
        assert "the diagnostic's object" in out["diagnostic_refused"]
    else:
        assert "BPF ring buffer" in out["ring_refused"], out["ring_refused"]
    assert wait_gone("prog", bpf_ids()["prog"] - before["prog"]) == set()


def test_an_unreadable_kernel_btf_is_said_to_be_unreadable(tmp_path: Path) -> None:
    """The kernel's own BTF there but not readable by the process (root
    without the capabilities that bypass file modes): the probes say the
    file cannot be read and that their answer is unknown, not that the
    kernel was built without BTF, which would send an administrator after
    the wrong cause."""
    if not os.path.exists(BTF_VMLINUX):
        # nothing to make unreadable: the kernel's want of BTF is what is said
        status = features.own_btf()
        assert (status.outcome, status.detail) == (
            "not_supported",
            "the kernel is built without CONFIG_DEBUG_INFO_BTF",
        )
        return
    locked = tmp_path / "vmlinux"
    locked.write_bytes(b"x")
    locked.chmod(0o600)
    os.chown(locked, NOBODY, NOBODY)
    probe = (
        "import json; from ebpfsensor.host import features as f; "
        "print(json.dumps([[s.outcome, s.detail, s.errno] for s in (f.own_btf(), f.task_iter())]))"
    )
    caps = "-dac_override,-dac_read_search"
    mount = f'mount --bind "$0" {BTF_VMLINUX} && exec "$@"'
    code = [
        "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount, str(locked),
        "setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--",
        "env", f"PYTHONPATH={ROOT / 'python'}", sys.executable, "-c", probe,
    ]  # fmt: skip
    run = subprocess.run(code, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    own, task_iter = json.loads(run.stdout.strip().splitlines()[-1])
    assert own == ["probe_failed", f"cannot read {BTF_VMLINUX}: Permission denied (run as root)", 13]
    assert task_iter == own
