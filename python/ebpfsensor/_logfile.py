# SPDX-License-Identifier: Apache-2.0
"""The library's rotating log file, beside the `logging` records callers see."""

from __future__ import annotations

import logging
import logging.handlers
import os

log = logging.getLogger("ebpfsensor")
_handlers: dict[str, logging.Handler] = {}


def enable(path: str | None) -> str | None:
    """Log the ``ebpfsensor`` loggers to a rotating file (5 x 10 MiB).

    Returns the path in use, or None when there is none (or it cannot be
    written: that is logged, not raised — a sensor does not stop for it).
    """
    if not path:
        return None
    if path in _handlers:
        return path
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=10 << 20, backupCount=5, delay=True)
    except OSError as exc:
        log.warning("log file %s unavailable: %s", path, exc.strerror)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # the logger's level stays the caller's: warnings (provider switches,
    # drops, unavailable hooks) by default, more if they ask for it
    log.addHandler(handler)
    _handlers[path] = handler
    return path
