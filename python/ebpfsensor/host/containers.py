# SPDX-License-Identifier: Apache-2.0
"""Container ids from cgroup ids: the cgroup's path names the container."""

from __future__ import annotations

import os
import re
import time

from .mounts import find_mount

__all__ = ["CgroupResolver", "find_cgroup2_root", "parse_container_id"]

# docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope
# (systemd driver), or a bare <id> directory (cgroupfs driver: /docker/<id>,
# /kubepods/.../<id>, /libpod_parent/...)
_SCOPE = re.compile(r"^(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$")
_BARE = re.compile(r"^([0-9a-f]{64})$")
_REWALK_S = 1.0


def parse_container_id(cgroup_path: str) -> str:
    """The container id in a cgroup path, or "" when it is not a container's."""
    for part in reversed(cgroup_path.split("/")):
        m = _SCOPE.match(part) or _BARE.match(part)
        if m:
            return m.group(1)
    return ""


def find_cgroup2_root() -> str | None:
    """The cgroup v2 mount point, or None."""
    return find_mount("cgroup2")


class CgroupResolver:
    """Maps cgroup ids (cgroup v2 directory inodes) to container ids, caching.

    The cgroup tree is walked when an unknown id shows up, at most once a
    second; an id still unknown after that (a cgroup made since the last
    walk, or one already gone) resolves to None: ask again later.
    """

    def __init__(self, root: str | None = None) -> None:
        self._root = root if root is not None else find_cgroup2_root()
        self._paths: dict[int, str] = {}
        self._walked = 0.0

    def container_id(self, cgroup_id: int) -> str | None:
        """The container id ("" outside a container), or None while the
        cgroup is not known."""
        path = self._paths.get(cgroup_id)
        if path is None and self._root and time.monotonic() - self._walked >= _REWALK_S:
            self._walk()
            path = self._paths.get(cgroup_id)
        if path is None:
            return None if self._root else ""
        return parse_container_id(path)

    def _walk(self) -> None:
        self._walked = time.monotonic()
        assert self._root is not None
        paths: dict[int, str] = {}
        for dirpath, _dirs, _files in os.walk(self._root):
            try:
                paths[os.stat(dirpath).st_ino] = dirpath[len(self._root) :] or "/"
            except OSError:
                continue
        self._paths = paths
