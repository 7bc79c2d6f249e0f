# SPDX-License-Identifier: Apache-2.0
"""Provider selection for every reason, the fallback's real events, health output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.kernel.conftest import wait_for

import ebpfsensor
from ebpfsensor import ProcessExec, ProcessExit
from ebpfsensor.cli import main
from ebpfsensor.host import support

pytestmark = pytest.mark.bpf

TRUE = os.path.realpath("/bin/true")
SLEEP = os.path.realpath("/bin/sleep")
ROOT = Path(__file__).resolve().parents[2]

OL88 = support.parse_os_release(
    'NAME="Oracle Linux Server"\nVERSION="8.8"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="8.8"\n'
)


def exec_and_exit(sensor: ebpfsensor.Sensor, argv: list[str]) -> tuple[ProcessExec, ProcessExit]:
    p = subprocess.Popen(argv)
    (e,) = wait_for(sensor, lambda e: isinstance(e, ProcessExec) and e.pid == p.pid)
    p.wait()
    (x,) = wait_for(sensor, lambda e: isinstance(e, ProcessExit) and e.pid == p.pid)
    return e, x


def assert_fallback(sensor: ebpfsensor.Sensor, reason: str, provider: str = "proc_connector") -> None:
    h = sensor.health()
    assert h.supplementary_events_subsystem == provider and not h.ebpf
    assert reason in h.reason, h.reason
    assert h.kinds["process_exec"].source == provider and h.kinds["process_exec"].live
    assert h.kinds["process_exit"].source == "proc_connector" and h.kinds["process_exit"].live
    assert sensor.hooks() == {}
    # the connector's events are enriched from /proc when they arrive: a
    # process that lives a moment is described completely
    e, x = exec_and_exit(sensor, [SLEEP, "0.3"])
    assert (e.exe, e.argv, e.ppid, e.uid) == (SLEEP, [SLEEP, "0.3"], os.getpid(), os.getuid())
    assert (x.exit_code, x.exit_signal) == (0, 0)
    assert sensor.stats().provider == provider


def test_ebpf_by_default() -> None:
    with ebpfsensor.Sensor(kinds={"process_exec", "process_exit"}) as s:
        h = s.health()
        assert h.supplementary_events_subsystem == "ebpf" and h.ebpf
        # exec from eBPF on every kernel (4.19: the v419 process object)
        exec_hook = s.hooks()["exec"]
        assert exec_hook.variant is not None, exec_hook.failures
        assert h.kinds["process_exec"].source == f"ebpf:{exec_hook.variant}"
        assert h.kinds["process_fork"].reason == "not collected (configuration)"
        e, _ = exec_and_exit(s, [TRUE, "ebpf"])
        assert e.argv == [TRUE, "ebpf"]


def test_disabled_in_managed_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"features": {"ebpfSupplementaryEventProvider": "disabled"}}))
    os.chmod(cfg, 0o600)
    # eBPF disabled reverts to kernel audit, as the reference agent does
    with ebpfsensor.Sensor.from_managed_config(str(cfg)) as s:
        assert_fallback(s, "eBPF disabled by configuration", "audit")
    # the process connector only where the file asks for it
    cfg.write_text(
        json.dumps(
            {"features": {"ebpfSupplementaryEventProvider": "disabled"}, "sensor": {"provider": "proc_connector"}}
        )
    )
    with ebpfsensor.Sensor.from_managed_config(str(cfg)) as s:
        assert_fallback(s, "eBPF disabled by configuration")


def test_deny_listed_kernel_never_gets_ebpf(monkeypatch: pytest.MonkeyPatch) -> None:
    # the host identity is a recorded one; the matching is the real data
    monkeypatch.setattr(
        support, "host_verdict", lambda: support.evaluate(OL88, "5.15.0-0.30.20.el8uek.x86_64", "x86_64")
    )
    with ebpfsensor.Sensor(provider="ebpf") as s:
        assert_fallback(s, "hang")
    with pytest.raises(ebpfsensor.EbpfSensorError, match="fail-closed"):
        ebpfsensor.Sensor(fail_closed=True, log_file=None).start()


def test_missing_btf_falls_back(tmp_path: Path) -> None:
    bad = tmp_path / "vmlinux.btf"
    bad.write_bytes(b"\x9f\xeb\x01\x00" + os.urandom(64))
    # auto: eBPF, then the audit provider
    with ebpfsensor.Sensor(btf_path=str(bad)) as s:
        assert_fallback(s, "eBPF failed to start", "audit")
    with ebpfsensor.Sensor(btf_path=str(tmp_path / "absent.btf")) as s:
        assert_fallback(s, "does not exist", "audit")
    with pytest.raises(ebpfsensor.EbpfSensorError):
        ebpfsensor.Sensor(btf_path=str(bad), fail_closed=True).start()


def test_load_failure_falls_back() -> None:
    # the lifecycle hooks have no kprobe variant: nothing can attach
    with ebpfsensor.Sensor(kinds={"process_exec", "process_fork", "process_exit"}, hook_variants={"kprobe"}) as s:
        assert_fallback(s, "no hook could be attached", "audit")


def test_health_cli_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The health command, run in this process (the module's entry point,
    `python -m ebpfsensor`, is the recording tests'): JSON, then text after
    the configuration command disabled eBPF."""
    cfg = tmp_path / "config.json"
    assert main(["health", "--json", "--config", str(cfg)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["supplementary_events_subsystem"] == "ebpf" and doc["ebpf"] is True
    assert doc["capabilities"]["kernel_release"] == os.uname().release
    exec_kind = doc["kinds"]["process_exec"]
    assert exec_kind["source"].startswith("ebpf:") and exec_kind["live"]
    assert set(doc["counters"]) >= {"delivered", "dropped", "undecodable"}
    # the sensor's own process, excluded by default, listed with its hits
    assert [(r["id"], r["rule"]) for r in doc["exclusions"]] == [(0, {"type": "self"})]
    assert main(["config", "ebpf-supplementary-event-provider", "--value", "disabled", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["health", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "supplementary_events_subsystem: audit" in text
    assert "ebpf: false (eBPF disabled by configuration)" in text
    assert "process_exec     live  audit" in text


def test_probe_reports_real_loads() -> None:
    report = ebpfsensor.probe()
    assert report.provider == "ebpf"
    # the kernel's own BTF where it has one, else (5.4, 4.19) the file in the BTF directory
    own_btf = os.path.exists("/sys/kernel/btf/vmlinux")
    assert report.capabilities.btf_source.startswith("kernel" if own_btf else "external (/var/lib/ebpfsensor/btf/")
    lifecycle = {h: i.variant for h, i in report.hooks.items() if h in ("exec", "fork", "exit")}  # type: ignore[attr-defined]
    if report.capabilities.ring_buffer:
        assert report.tier == "ebpf-ring-buffer"
        assert lifecycle == {"exec": "btf", "fork": "btf", "exit": "btf"}
    else:
        # perf event arrays; no tp_btf without the kernel's own BTF: raw
        # tracepoints (4.19: from the v419 process object)
        assert (report.tier, own_btf) == ("ebpf-perf-buffer", False)
        assert set(lifecycle.values()) <= {"raw", "tp"}, lifecycle
        for kind in ("process_exec", "process_fork", "process_exit"):
            assert report.kinds[kind].live and report.kinds[kind].source.startswith("ebpf:"), kind
    assert report.hooks["connect_exit"].variant == "tp"  # type: ignore[attr-defined]


def test_hooks_cli_names_the_program_each_hook_runs() -> None:
    """`ebpfsensor hooks --json`: each hook's variant and the program that
    runs it, which `bpftool prog` shows; the exit hooks of chmod's calls
    all run chmod's one exit program."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    out = subprocess.run(
        [sys.executable, "-m", "ebpfsensor", "hooks", "--json", "--kinds", "file_chmod"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    doc = json.loads(out.stdout)
    assert doc["exec"]["variant"] and doc["exec"]["program"] == f"handle_exec_{doc['exec']['variant']}"
    exits = {h: v for h, v in doc.items() if h.startswith("file_") and h.endswith("_exit")}
    assert {"file_chmod_exit", "file_fchmod_exit", "file_fchmodat_exit"} & set(exits)
    attached = {h: v for h, v in exits.items() if v["variant"]}
    if not attached:
        # the file object refused whole by this kernel's verifier (5.4, 4.19): none runs
        assert all(v["program"] is None and v["failures"] for v in exits.values()), exits
        return
    assert {(v["variant"], v["program"]) for v in attached.values()} == {("tp", "handle_file_fchmodat_exit_tp")}
    for hook, info in doc.items():
        if info["variant"] and hook.endswith("_enter"):
            assert info["program"] == f"handle_{hook}_{info['variant']}"
        elif not info["variant"]:
            assert info["program"] is None
