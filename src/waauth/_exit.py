"""Auth states still open when the interpreter exits: their saves are written there.

``save_creds`` only records the newest creds; a background writer (a daemon thread in the sync
API) writes them. A script that saves and then exits or raises without ``close()`` would lose
them with the thread. Every open state registers here a function that flushes and closes it;
at exit those run, sharing :data:`EXIT_TIMEOUT` seconds, and a state that could not be flushed
is logged as an error naming its session. Registration holds the writer, never the state, so an
open state can still be garbage-collected (it then warns with ``ResourceWarning``).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

logger = logging.getLogger("waauth.writer")

EXIT_TIMEOUT: Final = 10.0
"""Seconds the states still open at exit have, in all, to write what is pending."""

_open: dict[int, Callable[[float], None]] = {}
_lock = threading.Lock()


def track(key: object, at_exit: Callable[[float], None]) -> None:
    """Run ``at_exit(seconds left)`` at interpreter exit unless :func:`untrack` is called."""
    with _lock:
        _open[id(key)] = at_exit


def untrack(key: object) -> None:
    """The state of ``key`` was closed: nothing to do for it at exit."""
    with _lock:
        _open.pop(id(key), None)


@atexit.register
def _close_open_states() -> None:
    with _lock:
        pending = list(_open.values())
        _open.clear()
    deadline = time.monotonic() + EXIT_TIMEOUT
    for at_exit in pending:
        try:
            at_exit(max(0.0, deadline - time.monotonic()))
        except Exception:  # one state must not keep the others from being written
            logger.exception("closing an auth state left open at exit failed")
