# SPDX-License-Identifier: Apache-2.0
"""Where events come from: every source behind one small interface.

A :class:`Source` is started by its constructor's owner, then polled: the
sensor waits on every source's :meth:`~Source.fileno` and calls
:meth:`~Source.poll` on those that are ready, without knowing which is which.

- :mod:`.ebpf`: the eBPF programs and their ring buffers (every kind but
  logins);
- :mod:`.audit_provider`: kernel audit with rules of its own, the fallback
  for every syscall kind where eBPF cannot run (fork and exit excepted);
- :mod:`.proc_connector`: the netlink process connector, the fallback for
  process lifecycle events where eBPF cannot run, and for fork and exit
  beside the audit provider;
- :mod:`.audit`: kernel audit's read-only group, for login events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..events import Event
    from ..status import KindHealth

__all__ = ["PROVIDERS", "VARIANT_ORDER", "Source", "SourceStats"]

#: the providers of the supplementary (non-login) events, best first; a name
#: used alike in Config.provider, health and the CLI
PROVIDERS = ("ebpf", "audit", "proc_connector")

#: the eBPF hook variants (tiers), best first: BPF LSM and fentry (BTF
#: trampolines) where the kernel allows them, then BTF-typed and raw
#: tracepoints, classic tracepoints, and kprobes last; a program is named
#: ``handle_<hook>_<variant>``
VARIANT_ORDER = ("lsm", "fentry", "btf", "raw", "tp", "kprobe")


class Source(Protocol):
    """One origin of events.

    Attributes:
        name: the provider's name (``ebpf``, ``audit``, ``proc_connector``;
            the login source is ``audit`` too).
        kinds: the event kinds this source delivers.
    """

    name: str
    kinds: frozenset[str]

    def fileno(self) -> int:
        """An fd that becomes readable when :meth:`poll` has events."""
        ...

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Wait up to timeout seconds, then return what is waiting (one batch)."""
        ...

    def stats(self) -> SourceStats:
        """The source's counters."""
        ...

    def kind_health(self, kind: str) -> KindHealth:
        """Whether this source delivers a kind, through what, or why not."""
        ...

    def close(self) -> None:
        """Release every kernel resource; idempotent."""
        ...


class SourceStats(Protocol):
    """What every source's counters have, whatever else they hold."""

    @property
    def delivered(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def undecodable(self) -> int: ...
