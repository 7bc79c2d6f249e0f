# SPDX-License-Identifier: Apache-2.0
"""Error types and messages, and what the loader says before touching the kernel."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest

from ebpfsensor import Config, ConfigError, LibbpfError, PrivilegeError, VerifierError
from ebpfsensor._ffi import make_error
from ebpfsensor.sources.ebpf import objects
from ebpfsensor.sources.ebpf.objects import BpfObject, packaged_object_path

# the end of a real verifier log (this kernel, a path walk without a mask)
RECORDED_LOG = """\
; dst[pos & PATH_MASK] = '/'; @ task.bpf.h:102
960: (b7) r1 = 47                     ; R1=47
961: (73) *(u8 *)(r4 +0) = r1
invalid access to map value, value_size=24776 off=24777 size=1
R4 max value is outside of the allowed memory range
processed 496742 insns (limit 1000000) max_states_per_insn 20 total_states 17952 peak_states 437 mark_read 0
"""


def test_verifier_error_message() -> None:
    err = VerifierError(
        errno.EACCES, "Permission denied", "load", "process.bpf.o", "handle_exec_btf", RECORDED_LOG.splitlines()
    )
    text = str(err)
    assert text.startswith("load process.bpf.o: Permission denied (EACCES): program handle_exec_btf rejected: ")
    assert "R4 max value is outside of the allowed memory range" in text
    assert "(5 lines omitted)" in text
    assert err.log[-1].startswith("processed 496742")
    assert isinstance(err, OSError) and err.errno == errno.EACCES


def test_privilege_error_hint() -> None:
    err = make_error(-errno.EPERM, "load", "process.bpf.o")
    assert isinstance(err, PrivilegeError) and isinstance(err, PermissionError)
    assert (
        str(err) == "load process.bpf.o: Operation not permitted (EPERM); "
        "needs root or CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8)"
    )


def test_libbpf_words() -> None:
    # libbpf's own codes read as words, not numbers
    err = make_error(-4003, "load", "x.bpf.o")
    assert "4003" not in err.strerror or "libbpf" in err.strerror.lower()


def test_missing_object(tmp_path: Path) -> None:
    with pytest.raises(LibbpfError) as info:
        BpfObject.open(tmp_path / "nope.bpf.o")
    assert info.value.errno == errno.ENOENT
    assert "make bpf" in str(info.value)


def test_corrupted_object(tmp_path: Path) -> None:
    path = packaged_object_path("process")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    data = bytearray(path.read_bytes())
    bad = tmp_path / "process.bpf.o"
    for damage in (
        lambda d: d[: len(d) // 3],
        lambda d: d[:18] + b"\x3e\x00" + d[20:],
        lambda d: b"\x7fELF" + bytes(60),
    ):
        bad.write_bytes(bytes(damage(data)))
        with pytest.raises(LibbpfError) as info:
            BpfObject.open(bad)
        assert info.value.errno == errno.ENOEXEC
        assert str(info.value).startswith("open process.bpf.o: not a valid BPF ELF object")
        assert "reinstall" in str(info.value)


def test_any_damage_to_an_object_is_a_clear_error() -> None:
    path = packaged_object_path("process")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    data = path.read_bytes()
    rng = random.Random(7)
    refused = 0
    for i in range(3000):
        d = bytearray(data)
        if i % 3 == 0:
            d = d[: rng.randrange(len(d))]
        else:
            # the headers (section offsets and counts) or anywhere
            span = 4096 if i % 3 == 1 else len(d)
            for _ in range(rng.randrange(1, 30)):
                d[rng.randrange(min(span, len(d)))] = rng.randrange(256)
        objects._PARSED.clear()
        try:
            BpfObject(bytes(d), "process.bpf.o")
        except LibbpfError as exc:
            assert exc.errno == errno.ENOEXEC, exc
            refused += 1
    assert refused > 1000


def test_object_parse_without_privileges() -> None:
    path = packaged_object_path("process")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    obj = BpfObject.open(path)
    assert [p.variant for p in obj.hooks["exec"]] == ["btf", "raw", "tp"]
    assert {"cfg_wakeup_bytes", "cfg_report_threads"} <= set(obj.settings)
    with pytest.raises(ConfigError, match="no load-time setting 'cfg_nope'"):
        obj.check_config({"cfg_nope": 1})
    with pytest.raises(ConfigError, match="does not fit"):
        obj.check_config({"cfg_report_threads": 256})


def test_v419_settings_from_the_map_value() -> None:
    # no global data in the v419 build: the settings are the members of the
    # settings map's value, laid out as the object's BTF says
    path = packaged_object_path("process.v419")
    if not path.exists():
        pytest.skip("no compiled objects: run `make bpf` first")
    obj = BpfObject.open(path)
    assert obj.settings_map == "settings"
    assert obj.settings == {"cfg_wakeup_bytes": (0, 8), "cfg_report_threads": (8, 1)}
    assert BpfObject.open(packaged_object_path("process.perf")).settings_map is None
    with pytest.raises(ConfigError, match="does not fit"):
        obj.check_config({"cfg_report_threads": 256})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": frozenset({"process_exec", "bogus"})}, "unknown event kind"),
        ({"lifecycle_ring_bytes": 3000}, "lifecycle_ring_bytes: 3000 is not a power of two"),
        ({"max_latency_ms": 0}, "max_latency_ms"),
        ({"hook_variants": frozenset({"uprobe"})}, "hook_variants"),
        # sizes that failed at start with OverflowError or MemoryError, not our errors
        ({"activity_ring_bytes": 1 << 32}, "activity_ring_bytes: 4294967296 is not a power of two from 4096"),
        ({"lifecycle_ring_bytes": 1 << 31}, "lifecycle_ring_bytes: 2147483648 is not a power of two from 4096"),
        ({"batch_bytes": 1 << 40}, r"batch_bytes: 1099511627776 is outside 262144\.\.1073741824"),
        ({"provider": "audit-please"}, "provider: 'audit-please' is not one of auto, ebpf"),
    ],
)
def test_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**kwargs)  # type: ignore[arg-type]


def test_fallback_is_read_as_proc_connector() -> None:
    """Configurations written before the providers had one name each."""
    assert Config(provider="fallback").provider == "proc_connector"
