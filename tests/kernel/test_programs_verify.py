# SPDX-License-Identifier: Apache-2.0
"""Every program passes the verifier, also those whose hook this kernel lacks
(module loading without CONFIG_MODULES, say): they must work where it exists."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ebpfsensor._ffi import check_ret, lib
from ebpfsensor.host import features
from ebpfsensor.host.btf import resolve as resolve_btf
from ebpfsensor.sources.ebpf import objects
from ebpfsensor.sources.ebpf.objects import BpfObject
from ebpfsensor.sources.ebpf.source import _refused_whole

pytestmark = pytest.mark.bpf

# what a missing hook looks like: no tracepoint to attach to (ENOENT), no BTF
# target for tp_btf (ESRCH), no record type for a tracepoint's context; a
# program type the kernel refuses, no kprobes, the BPF LSM not active
_MISSING_HOOK = (
    "(ENOENT)",
    "(ESRCH)",
    "failed to resolve CO-RE relocation",
    "the kernel refuses",
    "has no kprobes",
    "BPF LSM is not active",
    # trampolines (LSM, fentry) of kernels that cannot pass a struct by value,
    # as security_path_chown takes its kuid_t (Debian 11's 5.10)
    "type STRUCT is unsupported",
    # the sleepable task iterator (argv through bpf_copy_from_user_task, 5.18)
    # before sleepable programs could use a per-CPU array (Debian 11's 5.10):
    # the plain iterator seeds, argv from /proc
    "Sleepable programs can only use array and hash maps",
    # tp_btf without the kernel's own BTF (5.4 on an external file): the raw variant runs
    "tp_btf programs need the kernel's own BTF",
)


# instructions the verifier may walk for one program: it verifies every
# program at each load, so one far above the heaviest (the file exit
# programs) makes a sensor slow to start, above all under emulation
MAX_VERIFIED_INSNS = 30_000
# the v419 build has no global functions: its path walk is verified at each
# of its 24 call sites (173k for exec on 6.18's verifier). It is loaded only
# where the verifier lacks global data or loops, and 4.19's budget of 131072
# takes it (docs/kernels.md)
MAX_VERIFIED_INSNS_V419 = 200_000


@pytest.mark.parametrize("name", ["process", "process.v419", "file", "net", "priv", "diag", "iter"])
def test_every_program_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # try the tracepoints tracefs says are missing too
    monkeypatch.setattr(objects, "_missing_tracepoint", lambda section: None)
    # the objects the sensor would load here: the perf builds without ring buffers
    perf = not features.ring_buffer().works
    if perf and name in ("diag", "iter"):
        # built for the ring tier only: the diagnostic refuses such a kernel
        # (test_diagnostic), the task iterator is 5.8's too (seeding from /proc)
        assert features.ring_buffer().outcome == "not_supported"
        assert not features.program_type("tracing").works
        return
    # (the v419 build is a perf build already)
    obj = BpfObject.packaged(name + ".perf" if perf and not name.endswith(".v419") else name)
    # lifetime: the checked BTF file stays open until the programs are loaded
    with resolve_btf() as btf:
        refused = _refused_whole(obj, btf.libbpf_path) if perf else None
        if refused:
            # 5.4's budget: the file programs' calls verified inline at every
            # site (the log outgrows its buffer: ENOSPC)
            assert name == "file" and "the kernel's verifier refuses" in refused, refused
            return
        loaded = obj.load(btf_path=btf.libbpf_path)
    with loaded:
        problems = [
            f"{hook}: {failure}"
            for hook, status in loaded.hooks.items()
            for failure in status.failures
            if not any(m in failure for m in _MISSING_HOOK)
        ]
        assert not problems
        # each hook has a working variant on this kernel, or none exists
        assert all(s.variant or s.failures for s in loaded.hooks.values())
        # what the verifier walked (reported since 5.16; 0 before)
        walked = {}
        for status in loaded.hooks.values():
            if status.program:
                walked[status.program] = int(loaded.program_info(status.program).verified_insns)
        assert walked
        limit = MAX_VERIFIED_INSNS_V419 if name.endswith(".v419") else MAX_VERIFIED_INSNS
        assert {p: n for p, n in walked.items() if n > limit} == {}


def test_libbpf_debug_messages_reach_python_only_when_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    # thousands per load (every CO-RE relocation), each a call into Python
    logger = logging.getLogger("ebpfsensor.libbpf")
    seen: list[tuple[int, str]] = []
    monkeypatch.setattr(logger, "log", lambda level, fmt, text: seen.append((level, text)))
    obj = BpfObject.packaged("process" if features.ring_buffer().works else "process.perf")
    before = logger.level
    try:
        with resolve_btf() as btf:
            logger.setLevel(logging.INFO)
            with obj.load(hooks={"exec"}, variants={"raw"}, attach=False, btf_path=btf.libbpf_path):
                pass
            assert not [t for lvl, t in seen if lvl == logging.DEBUG]
            logger.setLevel(logging.DEBUG)
            with obj.load(hooks={"exec"}, variants={"raw"}, attach=False, btf_path=btf.libbpf_path):
                pass
    finally:
        logger.setLevel(before)
    debug = [t for lvl, t in seen if lvl == logging.DEBUG]
    assert any("CO-RE relocating" in t for t in debug), debug[:20]


def test_a_hook_runs_the_program_it_shares_at_its_own_tracepoint(tmp_path: Path) -> None:
    """file_fchmod_exit alone: chmod's exit program (fchmodat's hook's) is
    loaded for it, though that hook is not wanted, and attached at
    sys_exit_fchmod only: each fchmod runs it, fchmodat calls do not."""
    perf = not features.ring_buffer().works
    obj = BpfObject.packaged("file.perf" if perf else "file")
    with resolve_btf() as btf:
        if perf and _refused_whole(obj, btf.libbpf_path):
            # 5.4: the file programs are refused whole (test_every_program_loads)
            return
        loaded = obj.load(hooks={"file_fchmod_exit"}, btf_path=btf.libbpf_path)
    f = tmp_path / "m"
    f.write_text("x")
    fd = os.open(f, os.O_RDONLY)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    with loaded:
        stats = check_ret(lib.bpf_enable_stats(lib.BPF_STATS_RUN_TIME), "enable", "BPF run-time statistics")
        try:
            status = loaded.hooks["file_fchmod_exit"]
            assert set(loaded.hooks) == {"file_fchmod_exit"}
            assert (status.variant, status.program, status.failures) == ("tp", "handle_file_fchmodat_exit_tp", [])

            def runs() -> int:
                return int(loaded.program_info("handle_file_fchmodat_exit_tp").run_cnt)

            before = runs()
            for _ in range(100):
                os.chmod(fd, 0o600)
            between = runs()
            for _ in range(100):
                os.chmod("m", 0o640, dir_fd=dfd)  # fchmodat
            after = runs()
        finally:
            os.close(stats)
            os.close(fd)
            os.close(dfd)
    assert between - before >= 100
    assert after - between < 100
