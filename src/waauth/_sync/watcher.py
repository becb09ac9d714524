# WARNING: generated from waauth/_async/watcher.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""The mirror's file watcher: watchfiles' Rust notifier, looked at briskly while files change
and slowly while they do not.

The notifier collects events in its own thread; its ``watch`` call sleeps ``step`` between
looks at what it collected and returns once a look finds nothing new (or ``debounce`` after the
first change). Each look wakes a thread, which costs (a fixed 20 ms step was 0.4% of a core
here, doing nothing), and a change waits two looks at least. So the step changes with the
traffic: :data:`BUSY_STEP_MS` after a call that returned changes, :data:`IDLE_STEP_MS` after
one that timed out (watchfiles' own watch functions keep one step for their whole life).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from watchfiles._rust_notify import RustNotify

from .._compat import Event, to_thread

BUSY_STEP_MS: Final = 10
"""The step while files change: a change is reported 10-20 ms after it came."""
IDLE_STEP_MS: Final = 50
"""The step while nothing changes: the first change after a quiet spell waits 50-100 ms."""


def watch(root: Path, *, stop_event: Event, timeout_ms: int) -> Iterator[set[tuple[int, str]]]:
    """Yield the ``(change, path)`` pairs seen under ``root`` (recursively), grouped, and an
    empty set after each ``timeout_ms`` without any, until ``stop_event`` is set.

    Raises what the notifier raises (a path that is not UTF-8 among them), and RuntimeError if
    it was interrupted by a signal (never in a worker thread, where the mirror runs it).
    """
    step = IDLE_STEP_MS
    with RustNotify([str(root)], False, False, 300, True, False) as notify:
        while True:
            changes = to_thread(notify.watch, step, step, timeout_ms, stop_event)
            if changes == "stop":
                return
            if changes == "signal":
                raise RuntimeError("the file watcher was interrupted by a signal")
            if changes == "timeout":
                step = IDLE_STEP_MS
                yield set()
            else:
                step = BUSY_STEP_MS
                yield changes
