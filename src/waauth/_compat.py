"""Sync counterparts of ``_acompat.py``, for the code generated into ``waauth/_sync``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from threading import Condition, Event, Lock
from typing import Any, TypeVar

__all__ = [
    "Condition",
    "Event",
    "Lock",
    "Worker",
    "call_within",
    "condition_wait",
    "join",
    "lock_acquire",
    "run_at_exit",
    "spawn",
    "task_alive",
    "to_thread",
]

Worker = threading.Thread


def condition_wait(cond: threading.Condition, timeout: float | None) -> bool:
    """Wait, holding ``cond``, until notified (True) or ``timeout`` seconds pass (False)."""
    return cond.wait(timeout)


def lock_acquire(lock: threading.Lock, timeout: float) -> bool:
    """Acquire ``lock`` within ``timeout`` seconds; False if it could not."""
    return lock.acquire(timeout=max(timeout, 0))


def spawn(target: Callable[[], None], name: str) -> threading.Thread:
    """Run ``target`` in a daemon thread (a task in the async twin)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``thread`` to end (a daemon thread is then left)."""
    thread.join(timeout)


def task_alive(thread: threading.Thread | None) -> bool:
    """Whether a background thread is still running."""
    return thread is not None and thread.is_alive()


R = TypeVar("R")


def to_thread(func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """Call ``func`` (the async twin runs it in a worker thread)."""
    return func(*args, **kwargs)


def run_at_exit(func: Callable[..., None], /, *args: Any) -> bool:
    """Call ``func`` at interpreter exit (True); the async twin cannot. See waauth._exit."""
    func(*args)
    return True


def call_within(func: Callable[[], object], timeout: float) -> None:
    """Call ``func`` (the async twin bounds it by ``timeout``; the sync writer never calls it:
    a thread is not cancelled when an event loop ends)."""
    func()
