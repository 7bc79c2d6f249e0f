# SPDX-License-Identifier: Apache-2.0
"""The sensor on an external BTF file, as on a kernel without its own.

The file is made the way an administrator makes one (`ebpfsensor btf
minimize` from the kernel's full BTF) and given as Config.btf_path; libbpf
then relocates against it instead of /sys/kernel/btf/vmlinux, which the
second test proves by giving it a BTF that lacks the types.
"""

from __future__ import annotations

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
