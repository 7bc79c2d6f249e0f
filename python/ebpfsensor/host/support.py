# SPDX-License-Identifier: Apache-2.0
"""The support matrix and the deny-list: may the eBPF provider run here?

Both are data, in the versioned package file ``data/support.json``; this
module reads it and applies it to an os-release and a kernel release::

    verdict = evaluate(parse_os_release(text), os.uname().release, os.uname().machine)
    if verdict.allowed: ...            # try eBPF; the runtime probe has the last word

The verdict is one of:

- ``denied``: the kernel is on the deny-list (known to hang or panic with
  eBPF). Never load BPF programs; run the audit provider.
- not ``supported``: the distribution or its kernel is older than the matrix
  minimum, or the architecture has no build. The reason names the minimum.
- ``supported`` with ``matched_rule`` None: the distribution is not in the
  matrix. eBPF is still tried and the runtime probe decides.
- ``supported``: the matrix row in ``matched_rule`` is satisfied.

Each row also lists its kernel lines and the tier the runtime probe gives
them (``ebpf-ring-buffer``, ``ebpf-perf-buffer``, ``audit``,
``proc_connector``) with the reason: the verdict's ``tier`` is the one for
the running kernel's line. It is what to expect, for documentation and
``health``; the probe decides by the kernel's BPF features, never by this
module.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Literal, get_args

import msgspec

from ..errors import ConfigError
from .paths import PACKAGE_DIR

__all__ = [
    "DATA_VERSION",
    "TIERS",
    "KernelTier",
    "OsRelease",
    "SupportData",
    "SupportVerdict",
    "evaluate",
    "host_verdict",
    "kernel_version_tuple",
    "load_support_data",
    "parse_os_release",
    "read_os_release",
]

DATA_VERSION = 2
#: the tiers, best first (what ``ebpfsensor probe`` prints)
Tier = Literal["ebpf-ring-buffer", "ebpf-perf-buffer", "audit", "proc_connector"]
TIERS: tuple[str, ...] = get_args(Tier)
NOT_IN_MATRIX = "distribution not in the support matrix; relying on runtime probing"
OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")


class OsRelease(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of os-release(5) that the matrix uses; "" when absent.

    ``id_like`` is the space-separated ID_LIKE list as written.
    """

    id: str = ""
    id_like: str = ""
    version_id: str = ""
    name: str = ""
    pretty_name: str = ""
    variant_id: str = ""
    variant: str = ""


class SupportVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the eBPF provider may run, and why.

    Attributes:
        supported: the matrix (or its absence) lets eBPF be tried.
        denied: the kernel is deny-listed; eBPF must not be loaded.
        reason: one sentence for logs and ``health``.
        matched_rule: the matrix row or deny rule that decided; None when
            the distribution is not in the matrix.
        tier: the tier the row lists for this kernel line (see ``TIERS``);
            None where the row lists none.
    """

    supported: bool
    denied: bool
    reason: str
    matched_rule: str | None
    tier: str | None = None

    @property
    def allowed(self) -> bool:
        """eBPF may be tried (supported and not denied)."""
        return self.supported and not self.denied


class KernelTier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A kernel line of a matrix row and the tier the runtime probe gives it.

    ``kernel`` is one or more ``MAJOR.MINOR`` separated by ", ", a trailing
    "+" meaning that one or later; ``tested_on`` names the kernel the tier
    was measured on, "" where it follows from the kernel's features.
    """

    releases: str
    kernel: str
    tier: Tier
    why: str
    tested_on: str = ""

    def matches(self, kernel: tuple[int, ...]) -> bool:
        """The kernel line includes this kernel (compared on major.minor)."""
        for part in self.kernel.split(", "):
            line = _version_tuple(part.rstrip("+"))
            if kernel[:2] == line[:2] or (part.endswith("+") and kernel[:2] >= line[:2]):
                return True
        return False


class DistributionRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One row of the support matrix."""

    rule: str
    name: str
    ids: list[str]
    min_version: str
    min_kernel: str
    kernel_flavor: str | None = None
    follows: str | None = None
    note: str = ""
    tiers: list[KernelTier] = msgspec.field(default_factory=list)


class DenyRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A kernel known to hang or panic with eBPF; every condition given must hold."""

    rule: str
    name: str
    reason: str
    kernel_releases: list[str] | None = None
    ids: list[str] | None = None
    version_ids: list[str] | None = None
    sap: bool = False
    note: str = ""


class SupportData(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The contents of ``data/support.json``."""

    version: int
    architectures: list[str]
    ringbuf_min_kernel: str
    distributions: list[DistributionRule]
    deny: list[DenyRule]
    comment: str = ""


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
        if value and "\\" in value:
            value = re.sub(r"\\(.)", r"\1", value)
    return value


def parse_os_release(text: str) -> OsRelease:
    """Parse os-release(5) text (shell-style ``KEY=value`` lines).

    Unknown keys, comments and malformed lines are ignored; ID and ID_LIKE
    are lowercased as the format requires.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        fields[key.strip()] = _unquote(value)
    return OsRelease(
        id=fields.get("ID", "").lower(),
        id_like=fields.get("ID_LIKE", "").lower(),
        version_id=fields.get("VERSION_ID", ""),
        name=fields.get("NAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        variant_id=fields.get("VARIANT_ID", ""),
        variant=fields.get("VARIANT", ""),
    )


def read_os_release() -> OsRelease:
    """The running system's os-release; an empty OsRelease when there is none."""
    for path in OS_RELEASE_PATHS:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return parse_os_release(f.read())
        except OSError:
            continue
    return OsRelease()


_NUM_PREFIX = re.compile(r"\d+")


def _numeric_components(text: str, separators: str) -> tuple[list[int], bool]:
    """Leading numeric components of text; True if a non-numeric one stopped it."""
    out: list[int] = []
    for part in re.split(f"[{re.escape(separators)}]", text):
        m = _NUM_PREFIX.match(part)
        if not m:
            return out, True
        out.append(int(m.group()))
        if m.end() != len(part):
            return out, True
    return out, False


def kernel_version_tuple(release: str) -> tuple[int, ...]:
    """A kernel release as integers for numeric, component-wise comparison.

    The upstream version (``5.15.0``) comes first, then the leading numeric
    components of the distribution's part after the first ``-``, up to the
    first component that is not a number::

        "5.15.0-0.30.20.el8uek.x86_64" -> (5, 15, 0, 0, 30, 20)
        "3.10.0-957.10.1.el7.x86_64"   -> (3, 10, 0, 957, 10, 1)
        "4.19.0-26-amd64"              -> (4, 19, 0, 26)
        "6.18.44-fc-v657"              -> (6, 18, 44)

    A shorter tuple that is a prefix of a longer one compares lower, so
    ``3.10.0-957`` is below the minimum ``3.10.0-957.10``.

    Raises:
        ValueError: the release does not start with a number.
    """
    upstream, _, local = release.strip().partition("-")
    numbers, stopped = _numeric_components(upstream, ".+~_")
    if not numbers:
        raise ValueError(f"kernel release {release!r} does not start with a version number")
    if not stopped and local:
        numbers.extend(_numeric_components(local, ".-_")[0])
    return tuple(numbers)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(_numeric_components(version, ".-_")[0])


@functools.lru_cache(maxsize=1)
def load_support_data() -> SupportData:
    """The packaged support matrix and deny-list (read once).

    Raises:
        ConfigError: the data file is missing, malformed or of another version.
    """
    resource = PACKAGE_DIR / "data" / "support.json"
    try:
        raw = resource.read_bytes()
        data = msgspec.json.decode(raw, type=SupportData)
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigError(f"read ebpfsensor/data/support.json: {exc}; reinstall the ebpfsensor package") from exc
    if data.version != DATA_VERSION:
        raise ConfigError(
            f"ebpfsensor/data/support.json: version {data.version}, this library reads version {DATA_VERSION};"
            " install matching ebpfsensor package data"
        )
    return data


_SAP = re.compile(r"(?<![a-z])sap(?![a-z])", re.IGNORECASE)


def _has_sap_marker(osr: OsRelease) -> bool:
    return any(_SAP.search(v) for v in (osr.variant_id, osr.variant, osr.name, osr.pretty_name))


def _kernel_flavor(kernel_release: str) -> str:
    return "uek" if "uek" in kernel_release.lower() else "rhck"


def _denied_by(rule: DenyRule, osr: OsRelease, kernel_release: str, families: set[str]) -> bool:
    if rule.kernel_releases is not None and kernel_release not in rule.kernel_releases:
        return False
    if rule.ids is not None and not families & set(rule.ids):
        return False
    if rule.version_ids is not None and osr.version_id not in rule.version_ids:
        return False
    return not (rule.sap and not _has_sap_marker(osr))


def _version_at_least(have: tuple[int, ...], need: tuple[int, ...]) -> bool:
    """Distribution version have >= need; a VERSION_ID with fewer components
    (CentOS 7 says "7") is compared on those only; the kernel minimum decides."""
    if not have:
        return True  # no VERSION_ID (Debian testing): the kernel minimum decides
    return have >= need[: len(have)]


def evaluate(
    os_release: OsRelease, kernel_release: str, machine: str, data: SupportData | None = None
) -> SupportVerdict:
    """Apply the deny-list, then the support matrix.

    Args:
        os_release: the distribution, from :func:`parse_os_release`.
        kernel_release: ``uname -r``.
        machine: ``uname -m`` (``x86_64``, ``aarch64``).
        data: the matrix to use; the packaged one when omitted.

    Returns:
        The verdict; see the module docstring for its four shapes.
    """
    if data is None:
        data = load_support_data()
    osr = os_release
    row = next((r for r in data.distributions if osr.id in r.ids and _flavor_ok(r, kernel_release)), None)
    families = {osr.id} | ({row.follows} if row and row.follows else set())

    for deny in data.deny:
        if _denied_by(deny, osr, kernel_release, families):
            return SupportVerdict(
                supported=False,
                denied=True,
                reason=f"{deny.name} (kernel {kernel_release}): {deny.reason}; using the audit provider",
                matched_rule=deny.rule,
            )

    if machine not in data.architectures:
        return SupportVerdict(
            supported=False,
            denied=False,
            reason=f"architecture {machine} is not supported; builds exist for {', '.join(data.architectures)}",
            matched_rule=None,
        )

    if row is None:
        like = f" ({osr.id or 'no ID'}{', like ' + osr.id_like if osr.id_like else ''})"
        return SupportVerdict(supported=True, denied=False, reason=NOT_IN_MATRIX + like, matched_rule=None)

    try:
        kernel = kernel_version_tuple(kernel_release)
    except ValueError as exc:
        return SupportVerdict(supported=False, denied=False, reason=f"{row.name}: {exc}", matched_rule=row.rule)
    minimum = f"{row.name} {row.min_version} or later with kernel {row.min_kernel} or later"
    have_version = _version_tuple(osr.version_id)
    if not _version_at_least(have_version, _version_tuple(row.min_version)):
        return SupportVerdict(
            supported=False,
            denied=False,
            reason=f"{row.name} {osr.version_id or '(no VERSION_ID)'} is below the supported minimum: needs {minimum}",
            matched_rule=row.rule,
        )
    if kernel < kernel_version_tuple(row.min_kernel):
        return SupportVerdict(
            supported=False,
            denied=False,
            reason=f"kernel {kernel_release} is below the supported minimum: needs {minimum}",
            matched_rule=row.rule,
        )
    reason = f"supported: {minimum}"
    line = next((t for t in row.tiers if t.matches(kernel)), None)
    if line is not None:
        reason += f"; expected tier for kernel {line.kernel}: {line.tier} ({line.why})"
    elif kernel < kernel_version_tuple(data.ringbuf_min_kernel):
        reason += (
            f"; kernel {kernel_release} is older than Linux {data.ringbuf_min_kernel} (BPF ring buffers):"
            " unless the distribution backported them, the runtime probe chooses perf event arrays or kernel audit"
        )
    return SupportVerdict(
        supported=True, denied=False, reason=reason, matched_rule=row.rule, tier=line.tier if line else None
    )


def _flavor_ok(row: DistributionRule, kernel_release: str) -> bool:
    return row.kernel_flavor is None or row.kernel_flavor == _kernel_flavor(kernel_release)


def host_verdict() -> SupportVerdict:
    """The verdict for the running system (os-release and uname)."""
    uname = os.uname()
    return evaluate(read_os_release(), uname.release, uname.machine)
