# SPDX-License-Identifier: Apache-2.0
"""Reproducer, found by tests/fuzz/ring_fuzz.py: BatchDecoder.transcode (and
RingBuffer.poll, which shares the code) raises KeyError from _retry_unknown
once the C cgroup table has filled up (ES_CGROUP_SLOTS / 2 ids) while some
cgroup ids were not yet in this host's cgroup tree.

_learn_container starts the table over with ``self._known = {cgroup_id: cid}``
but leaves ``self._unknown`` as it is; the next call's _retry_unknown then
does ``del self._known[cgroup_id]`` for an id no longer there.

Run from the repository root: PYTHONPATH=python:. python3 tests/fuzz/crashes/ring_cgroup_table_reset.py
Exit status 0 once fixed.
"""

from __future__ import annotations

import sys

from tests.recordgen import make_record

from ebpfsensor._ffi import lib
from ebpfsensor.events import EventType
from ebpfsensor.sources.ebpf.ring import BatchDecoder

# ids no cgroup on this host has (cgroup ids are inode numbers)
FIRST_ID = 0x7EB5_0000_0000_0000

dec = BatchDecoder()
for i in range(lib.ES_CGROUP_SLOTS // 2 + 2):
    try:
        dec.transcode([make_record(EventType.FORK, cgroup_id=FIRST_ID + i)])
    except KeyError as exc:
        print(f"record {i}: transcode raised KeyError({exc}) from _retry_unknown")
        sys.exit(1)
print("no KeyError")
