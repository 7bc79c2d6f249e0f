# SPDX-License-Identifier: Apache-2.0
"""The support matrix and deny-list, on recorded os-release and uname values."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import re
from pathlib import Path

import msgspec
import pytest

from ebpfsensor.errors import ConfigError
from ebpfsensor.host.support import (
    DATA_VERSION,
    NOT_IN_MATRIX,
    TIERS,
    OsRelease,
    SupportData,
    evaluate,
    kernel_version_tuple,
    load_support_data,
    parse_os_release,
)

ROOT = Path(__file__).resolve().parents[2]

# /etc/os-release as shipped by each distribution (trimmed of URLs)
UBUNTU_1604 = """NAME="Ubuntu"
VERSION="16.04.7 LTS (Xenial Xerus)"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 16.04.7 LTS"
VERSION_ID="16.04"
VERSION_CODENAME=xenial
UBUNTU_CODENAME=xenial
"""
UBUNTU_2204 = """PRETTY_NAME="Ubuntu 22.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.3 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
"""
UBUNTU_1404 = """NAME="Ubuntu"
VERSION="14.04.6 LTS, Trusty Tahr"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 14.04.6 LTS"
VERSION_ID="14.04"
"""
FEDORA_33 = """NAME=Fedora
VERSION="33 (Server Edition)"
ID=fedora
VERSION_ID=33
VERSION_CODENAME=""
PLATFORM_ID="platform:f33"
PRETTY_NAME="Fedora 33 (Server Edition)"
ANSI_COLOR="0;38;2;60;110;180"
CPE_NAME="cpe:/o:fedoraproject:fedora:33"
VARIANT="Server Edition"
VARIANT_ID=server
"""
CENTOS_7 = """NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
"""
RHEL_76 = """NAME="Red Hat Enterprise Linux Server"
VERSION="7.6 (Maipo)"
ID="rhel"
ID_LIKE="fedora"
VARIANT="Server"
VARIANT_ID="server"
VERSION_ID="7.6"
PRETTY_NAME="Red Hat Enterprise Linux Server 7.6 (Maipo)"
"""
RHEL_75 = RHEL_76.replace("7.6", "7.5")
RHEL_81 = """NAME="Red Hat Enterprise Linux"
VERSION="8.1 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.1"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Red Hat Enterprise Linux 8.1 (Ootpa)"
"""
RHEL_81_SAP = RHEL_81 + 'VARIANT="SAP Solutions"\nVARIANT_ID="sap"\n'
RHEL_82_SAP = RHEL_81_SAP.replace("8.1", "8.2")
SLES_15_SP2 = """NAME="SLES"
VERSION="15-SP2"
VERSION_ID="15.2"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP2"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15:sp2"
"""
SLES_12_SP5 = SLES_15_SP2.replace("15-SP2", "12-SP5").replace('"15.2"', '"12.5"').replace("15 SP2", "12 SP5")
DEBIAN_9 = """PRETTY_NAME="Debian GNU/Linux 9 (stretch)"
NAME="Debian GNU/Linux"
VERSION_ID="9"
VERSION="9 (stretch)"
VERSION_CODENAME=stretch
ID=debian
"""
DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
DEBIAN_TESTING = """PRETTY_NAME="Debian GNU/Linux trixie/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=trixie
ID=debian
"""
OL_79 = """NAME="Oracle Linux Server"
VERSION="7.9"
ID="ol"
ID_LIKE="fedora"
VARIANT="Server"
VARIANT_ID="server"
VERSION_ID="7.9"
PRETTY_NAME="Oracle Linux Server 7.9"
"""
OL_88 = """NAME="Oracle Linux Server"
VERSION="8.8"
ID="ol"
ID_LIKE="fedora"
VARIANT="Server"
VARIANT_ID="server"
VERSION_ID="8.8"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Oracle Linux Server 8.8"
"""
AMZN_2 = """NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"
"""
ROCKY_88 = """NAME="Rocky Linux"
VERSION="8.8 (Green Obsidian)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="8.8"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Rocky Linux 8.8 (Green Obsidian)"
"""
ALMA_92 = """NAME="AlmaLinux"
VERSION="9.2 (Turquoise Kodkod)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.2"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.2 (Turquoise Kodkod)"
"""
ARCH = """NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
"""
MINT_21 = """NAME="Linux Mint"
VERSION="21.2 (Victoria)"
ID=linuxmint
ID_LIKE="ubuntu debian"
PRETTY_NAME="Linux Mint 21.2"
VERSION_ID="21.2"
"""

OL8_DENIED = ("5.15.0-0.30.20.el8uek.x86_64", "5.15.0-0.30.20.1.el8uek.x86_64")


def verdict(os_release: str, kernel: str, machine: str = "x86_64") -> tuple[bool, bool, str | None, str]:
    v = evaluate(parse_os_release(os_release), kernel, machine)
    return v.supported, v.denied, v.matched_rule, v.reason


# (os-release, uname -r, supported, denied, matched rule)
MATRIX_CASES = [
    pytest.param(UBUNTU_1604, "4.15.0-142-generic", True, False, "ubuntu", id="ubuntu-16.04-hwe-4.15"),
    pytest.param(UBUNTU_1604, "4.4.0-210-generic", False, False, "ubuntu", id="ubuntu-16.04-4.4-below"),
    pytest.param(UBUNTU_2204, "5.15.0-91-generic", True, False, "ubuntu", id="ubuntu-22.04"),
    pytest.param(UBUNTU_1404, "4.4.0-148-generic", False, False, "ubuntu", id="ubuntu-14.04-below"),
    pytest.param(FEDORA_33, "5.8.15-301.fc33.x86_64", True, False, "fedora", id="fedora-33"),
    pytest.param(FEDORA_33, "5.8.13-300.fc33.x86_64", False, False, "fedora", id="fedora-33-old-kernel"),
    pytest.param(CENTOS_7, "3.10.0-957.10.1.el7.x86_64", True, False, "centos", id="centos-7.6-957.10"),
    pytest.param(CENTOS_7, "3.10.0-1160.119.1.el7.x86_64", True, False, "centos", id="centos-7.9"),
    pytest.param(CENTOS_7, "3.10.0-957.1.3.el7.x86_64", False, False, "centos", id="centos-7.6-957.1-below"),
    pytest.param(CENTOS_7, "3.10.0-862.el7.x86_64", False, False, "centos", id="centos-7.5-below"),
    pytest.param(RHEL_76, "3.10.0-957.10.1.el7.x86_64", True, False, "rhel", id="rhel-7.6"),
    pytest.param(RHEL_75, "3.10.0-957.10.1.el7.x86_64", False, False, "rhel", id="rhel-7.5-below"),
    pytest.param(RHEL_81, "4.18.0-147.el8.x86_64", True, False, "rhel", id="rhel-8.1-not-sap"),
    pytest.param(RHEL_82_SAP, "4.18.0-193.el8.x86_64", True, False, "rhel", id="rhel-8.2-sap"),
    pytest.param(SLES_15_SP2, "5.3.18-24.37-default", True, False, "sles", id="sles-15-sp2"),
    pytest.param(SLES_15_SP2, "5.3.18-18.47-default", True, False, "sles", id="sles-15-minimum"),
    pytest.param(SLES_15_SP2, "5.3.18-18.21-default", False, False, "sles", id="sles-15-below"),
    pytest.param(SLES_12_SP5, "4.12.14-122.37-default", False, False, "sles", id="sles-12-below"),
    pytest.param(DEBIAN_9, "4.19.0-0.bpo.19-amd64", True, False, "debian", id="debian-9-bpo-4.19"),
    pytest.param(DEBIAN_9, "4.9.0-19-amd64", False, False, "debian", id="debian-9-4.9-below"),
    pytest.param(DEBIAN_12, "6.1.0-13-amd64", True, False, "debian", id="debian-12"),
    pytest.param(DEBIAN_12, "6.18.44-fc-v657", True, False, "debian", id="debian-12-custom-kernel"),
    pytest.param(DEBIAN_TESTING, "6.5.0-4-amd64", True, False, "debian", id="debian-testing-no-version-id"),
    pytest.param(OL_79, "3.10.0-1160.el7.x86_64", True, False, "oracle-rhck", id="ol-7.9-rhck"),
    pytest.param(OL_79, "3.10.0-1127.el7.x86_64", False, False, "oracle-rhck", id="ol-7.9-rhck-below"),
    pytest.param(OL_79, "5.4.17-2102.201.3.el7uek.x86_64", True, False, "oracle-uek", id="ol-7.9-uek6"),
    pytest.param(OL_79, "4.14.35-2047.510.5.5.el7uek.x86_64", False, False, "oracle-uek", id="ol-7.9-uek5-below"),
    pytest.param(OL_88, "5.15.0-200.131.27.el8uek.x86_64", True, False, "oracle-uek", id="ol-8.8-later-uek"),
    pytest.param(OL_88, "5.15.0-0.30.21.el8uek.x86_64", True, False, "oracle-uek", id="ol-8.8-next-uek"),
    pytest.param(OL_88, "4.18.0-477.10.1.el8_8.x86_64", True, False, "oracle-rhck", id="ol-8.8-rhck"),
    pytest.param(AMZN_2, "5.4.261-174.360.amzn2.x86_64", True, False, "amazon-linux", id="amzn-2-minimum"),
    pytest.param(AMZN_2, "5.10.199-190.747.amzn2.x86_64", True, False, "amazon-linux", id="amzn-2-5.10"),
    pytest.param(AMZN_2, "5.4.258-171.360.amzn2.x86_64", False, False, "amazon-linux", id="amzn-2-5.4.258-below"),
    pytest.param(AMZN_2, "4.14.326-245.539.amzn2.x86_64", False, False, "amazon-linux", id="amzn-2-4.14-below"),
    pytest.param(ROCKY_88, "4.18.0-477.10.1.el8_8.x86_64", True, False, "rocky", id="rocky-8.8"),
    pytest.param(ALMA_92, "5.14.0-284.11.1.el9_2.x86_64", True, False, "alma", id="alma-9.2"),
    pytest.param(OL_88, OL8_DENIED[0], False, True, "oracle-8.8-uek-5.15.0-0.30.20", id="ol-8.8-denied"),
    pytest.param(OL_88, OL8_DENIED[1], False, True, "oracle-8.8-uek-5.15.0-0.30.20", id="ol-8.8-denied-.1"),
    pytest.param(RHEL_81_SAP, "4.18.0-147.el8.x86_64", False, True, "rhel-8.1-sap", id="rhel-8.1-sap-denied"),
]


@pytest.mark.parametrize(("os_release", "kernel", "supported", "denied", "rule"), MATRIX_CASES)
def test_matrix(os_release: str, kernel: str, supported: bool, denied: bool, rule: str) -> None:
    got = verdict(os_release, kernel)
    assert got[:3] == (supported, denied, rule), got[3]


def test_below_minimum_reason_names_the_minimum() -> None:
    _, _, _, reason = verdict(DEBIAN_9, "4.9.0-19-amd64")
    assert (
        reason
        == "kernel 4.9.0-19-amd64 is below the supported minimum: needs Debian 9 or later with kernel 4.19.0 or later"
    )
    _, _, _, reason = verdict(UBUNTU_1604, "4.4.0-210-generic")
    assert "needs Ubuntu 16.04 or later with kernel 4.15.0 or later" in reason
    _, _, _, reason = verdict(RHEL_75, "3.10.0-957.10.1.el7.x86_64")
    assert reason.startswith("Red Hat Enterprise Linux 7.5 is below the supported minimum: needs")


def test_denied_reason() -> None:
    for kernel in OL8_DENIED:
        v = evaluate(parse_os_release(OL_88), kernel, "x86_64")
        assert v.denied and not v.allowed
        assert "known to hang/panic with eBPF" in v.reason and kernel in v.reason


def test_deny_matches_kernel_whatever_the_os_release() -> None:
    v = evaluate(OsRelease(), OL8_DENIED[0], "x86_64")
    assert v.denied


def test_sap_marker_variants() -> None:
    for extra in ('VARIANT_ID="sap"\n', 'VARIANT="SAP"\n', 'PRETTY_NAME="Red Hat Enterprise Linux 8.1 for SAP"\n'):
        assert evaluate(parse_os_release(RHEL_81 + extra), "4.18.0-147.el8.x86_64", "x86_64").denied, extra
    for extra in ('VARIANT_ID="server"\n', 'VARIANT="Sapphire"\n'):
        assert not evaluate(parse_os_release(RHEL_81 + extra), "4.18.0-147.el8.x86_64", "x86_64").denied, extra


def test_unknown_distribution_is_allowed() -> None:
    for text, kernel in ((ARCH, "6.6.1-arch1-1"), (MINT_21, "5.15.0-91-generic"), ("", "6.1.0")):
        v = evaluate(parse_os_release(text), kernel, "x86_64")
        assert (v.supported, v.denied, v.matched_rule, v.allowed) == (True, False, None, True)
        assert v.reason.startswith(NOT_IN_MATRIX)
    assert "like ubuntu debian" in evaluate(parse_os_release(MINT_21), "5.15.0", "x86_64").reason


def test_old_kernel_supported_by_matrix_defers_to_the_probe() -> None:
    v = evaluate(parse_os_release(UBUNTU_1604), "4.15.0-142-generic", "x86_64")
    assert v.allowed and v.tier == "audit"
    assert "expected tier for kernel 4.15: audit (no raw tracepoints" in v.reason
    # a kernel line the row does not list: the ring-buffer minimum, and the probe decides
    v = evaluate(parse_os_release(UBUNTU_1604), "4.18.0-25-generic", "x86_64")
    assert v.allowed and v.tier is None
    assert "older than Linux 5.8 (BPF ring buffers)" in v.reason and "perf event arrays or kernel audit" in v.reason
    v = evaluate(parse_os_release(DEBIAN_12), "6.1.0-13-amd64", "aarch64")
    assert v.allowed and "older than" not in v.reason and v.tier == "ebpf-ring-buffer"


@pytest.mark.parametrize(
    ("os_release", "kernel", "tier"),
    [
        (UBUNTU_2204.replace('VERSION_ID="22.04"', 'VERSION_ID="20.04"'), "5.4.0-150-generic", "ebpf-perf-buffer"),
        (UBUNTU_2204, "5.15.0-91-generic", "ebpf-ring-buffer"),
        (UBUNTU_2204, "5.19.0-50-generic", None),
        (DEBIAN_12.replace('VERSION_ID="12"', 'VERSION_ID="10"'), "4.19.0-26-amd64", "ebpf-perf-buffer"),
        (DEBIAN_12, "6.1.0-13-amd64", "ebpf-ring-buffer"),
        (FEDORA_33, "6.11.4-301.fc41.x86_64", "ebpf-ring-buffer"),
        (RHEL_76, "3.10.0-1160.el7.x86_64", "audit"),
        (RHEL_81.replace('VERSION_ID="8.1"', 'VERSION_ID="8.9"'), "4.18.0-513.5.1.el8_9.x86_64", "ebpf-ring-buffer"),
    ],
)
def test_the_row_names_the_tier_of_the_kernel_line(os_release: str, kernel: str, tier: str | None) -> None:
    v = evaluate(parse_os_release(os_release), kernel, "x86_64")
    assert v.allowed and v.tier == tier, v.reason


def test_every_row_says_which_tier_runs_and_why() -> None:
    for row in load_support_data().distributions:
        assert row.tiers, f"{row.rule} lists no kernel line"
        for line in row.tiers:
            assert line.tier in TIERS and line.why and line.releases
            for part in line.kernel.split(", "):
                assert re.fullmatch(r"\d+\.\d+\+?", part), (row.rule, line.kernel)
    # a tier outside the known ones is refused, naming where
    raw = json.loads((importlib.resources.files("ebpfsensor") / "data" / "support.json").read_bytes())
    raw["distributions"][0]["tiers"][0]["tier"] = "ebpf-fast"
    with pytest.raises(msgspec.ValidationError, match=r"distributions\[0\]\.tiers\[0\]\.tier"):
        msgspec.json.decode(json.dumps(raw), type=SupportData)


def test_kernels_doc_shows_the_packaged_tiers() -> None:
    spec = importlib.util.spec_from_file_location("gen_support_doc", ROOT / "tools" / "gen-support-doc.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for path, text in gen.generate().items():
        assert path.read_text() == text, f"{path.name} is stale: run `make docs`"


def test_architecture() -> None:
    v = evaluate(parse_os_release(DEBIAN_12), "6.1.0-13-powerpc64le", "ppc64le")
    assert not v.supported and not v.denied
    assert "ppc64le" in v.reason and "x86_64" in v.reason


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("5.15.0-0.30.20.el8uek.x86_64", (5, 15, 0, 0, 30, 20)),
        ("5.15.0-0.30.20.1.el8uek.x86_64", (5, 15, 0, 0, 30, 20, 1)),
        ("6.18.44-fc-v657", (6, 18, 44)),
        ("3.10.0-957.10.1.el7.x86_64", (3, 10, 0, 957, 10, 1)),
        ("4.19.0-26-amd64", (4, 19, 0, 26)),
        ("4.19.0-0.bpo.19-amd64", (4, 19, 0, 0)),
        ("5.3.18-150300.59.43-default", (5, 3, 18, 150300, 59, 43)),
        ("4.18.0-477.10.1.el8_8.x86_64", (4, 18, 0, 477, 10, 1)),
        ("6.1.0-rc3", (6, 1, 0)),
        ("5.10.0+", (5, 10, 0)),
        ("6.8", (6, 8)),
    ],
)
def test_kernel_version_tuple(release: str, expected: tuple[int, ...]) -> None:
    assert kernel_version_tuple(release) == expected


def test_kernel_version_ordering() -> None:
    k = kernel_version_tuple
    assert k("3.10.0-957.10.1.el7.x86_64") >= k("3.10.0-957.10")
    assert k("3.10.0-957.el7.x86_64") < k("3.10.0-957.10")
    assert k("3.10.0-1160.el7") > k("3.10.0-957.10.1.el7")  # numeric, not lexical
    assert k("5.15.0-0.30.20.1.el8uek.x86_64") > k("5.15.0-0.30.20.el8uek.x86_64")
    with pytest.raises(ValueError, match="does not start with a version number"):
        k("generic")


def test_parse_os_release_quoting() -> None:
    osr = parse_os_release('# comment\nID="RHEL"\nNAME=\'Red Hat\'\nPRETTY_NAME="A \\"quoted\\" name"\nbroken line\n')
    assert osr.id == "rhel"
    assert osr.name == "Red Hat"
    assert osr.pretty_name == 'A "quoted" name'
    assert osr.version_id == ""


def test_packaged_data_loads() -> None:
    raw = (importlib.resources.files("ebpfsensor") / "data" / "support.json").read_bytes()
    assert json.loads(raw)["version"] == DATA_VERSION
    data = load_support_data()
    assert {r.rule for r in data.distributions} >= {
        "ubuntu",
        "fedora",
        "centos",
        "rhel",
        "sles",
        "debian",
        "oracle-rhck",
        "oracle-uek",
        "amazon-linux",
        "rocky",
        "alma",
    }
    for row in data.distributions:
        kernel_version_tuple(row.min_kernel)
    assert {r.follows for r in data.distributions if r.rule in ("rocky", "alma")} == {"rhel"}


def test_data_version_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    import ebpfsensor.host.support as support

    future = msgspec.structs.replace(load_support_data(), version=DATA_VERSION + 1)
    load_support_data.cache_clear()
    monkeypatch.setattr(msgspec.json, "decode", lambda *_a, **_k: future)
    try:
        with pytest.raises(ConfigError, match=f"version {DATA_VERSION + 1}, this library reads version {DATA_VERSION}"):
            support.load_support_data()
    finally:
        monkeypatch.undo()
        load_support_data.cache_clear()


def test_injected_data() -> None:
    data = msgspec.structs.replace(load_support_data(), deny=[])
    assert isinstance(data, SupportData)
    assert not evaluate(parse_os_release(OL_88), OL8_DENIED[0], "x86_64", data=data).denied
