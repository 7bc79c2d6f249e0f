# SPDX-License-Identifier: Apache-2.0
"""Every program passes the verifier, also those whose hook this kernel lacks
(module loading without CONFIG_MODULES, say): they must work where it exists."""

from __future__ import annotations

import pytest

from ebpfsensor import objects
from ebpfsensor.objects import BpfObject

pytestmark = pytest.mark.bpf

# what a missing hook looks like: no tracepoint to attach to (ENOENT), no BTF
# target for tp_btf (ESRCH), no record type for a tracepoint's context
_MISSING_HOOK = ("(ENOENT)", "(ESRCH)", "failed to resolve CO-RE relocation")


@pytest.mark.parametrize("name", ["process", "net", "priv"])
def test_every_program_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # try the tracepoints tracefs says are missing too
    monkeypatch.setattr(objects, "_missing_tracepoint", lambda section: None)
    with BpfObject.packaged(name).load() as loaded:
        problems = [
            f"{hook}: {failure}"
            for hook, status in loaded.hooks.items()
            for failure in status.failures
            if not any(m in failure for m in _MISSING_HOOK)
        ]
        assert not problems
        # each hook has a working variant on this kernel, or none exists
        assert all(s.variant or s.failures for s in loaded.hooks.values())
