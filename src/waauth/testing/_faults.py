"""Simulated database outages for users' tests: :func:`outage`.

An :class:`Outage` makes the database look away to the states and stores it is given, until it
ends (leaving a ``with`` block, :meth:`Outage.end`, or after ``seconds``). What the states do
meanwhile is what they do in a real outage (see ``docs/durability.md``): ``save_creds`` keeps
returning with the creds pending, a write-through ``keys.set`` retries for the retry budget and
then raises :class:`~waauth.StoreUnavailable`, ``flush`` raises with ``pending``, and what is
pending lands when the outage ends.

A hook before each attempt of a database (the one place every statement passes through) fails
the attempt as a lost connection would, with a retryable ``OperationalError``, while an outage
of that database, or of the in-memory store under it, is on. Everything around it (the retry
loop, the counting, the translation to ``StoreUnavailable``, the write-behind writer) is the
real code, for Postgres and in-memory states alike: they are the same classes.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psycopg

from .. import _hooks
from .._async.state import AsyncPostgresAuthState
from .._sync.state import PostgresAuthState
from ..errors import InvalidInput
from ._store import InMemoryStore

__all__ = ["Outage", "outage"]

SIMULATED = "the database is away (simulated by waauth.testing.outage)"
"""The message of the driver error a simulated outage raises (no SQLSTATE: retryable)."""


class Outage:
    """A simulated outage of the database, as :func:`outage` starts it.

    Use it as a context manager (the outage ends when the block is left), or call :meth:`end`;
    with ``seconds`` it also ends by itself. Ending twice is harmless.
    """

    def __init__(self, targets: tuple[object, ...], seconds: float | None) -> None:
        if not targets:
            raise InvalidInput("outage() needs at least one state or store")
        if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
            raise InvalidInput(f"outage seconds must be a number >= 0, not {seconds!r}")
        self._lock = threading.Lock()
        self._ended = False
        self._ends_at = None if seconds is None else time.monotonic() + seconds
        self._attached: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None
        try:
            for target in targets:
                self._attach(_where(target))
        except BaseException:
            self.end()
            raise
        if seconds is not None:
            self._timer = threading.Timer(seconds, self.end)
            self._timer.daemon = True  # never keeps a test run alive
            self._timer.start()

    def _attach(self, where: object) -> None:
        with _lock:
            _outages.setdefault(where, []).append(self)
            if _fail_if_down not in _hooks.attempt_hooks:
                _hooks.attempt_hooks.append(_fail_if_down)
        self._attached.append(lambda: _detach(where, self))

    @property
    def active(self) -> bool:
        """Whether the database still looks away."""
        if self._ended:
            return False
        return self._ends_at is None or time.monotonic() < self._ends_at

    def remaining(self) -> float | None:
        """Seconds until the outage ends by itself (None: until it is ended)."""
        if self._ended:
            return 0.0
        return None if self._ends_at is None else max(0.0, self._ends_at - time.monotonic())

    def end(self) -> None:
        """End the outage: each state writes what is pending on its writer's next attempt
        (``flush()`` waits for it)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            timer = self._timer
            detach, self._attached = self._attached, []
        if timer is not None:
            timer.cancel()
        for undo in detach:
            undo()

    def __enter__(self) -> Outage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()

    def __repr__(self) -> str:
        if not self.active:
            return "<Outage ended>"
        left = self.remaining()
        until = "until ended" if left is None else f"{left:.1f} s left"
        return f"<Outage active, {until}>"


def outage(*targets: object, seconds: float | None = None) -> Outage:
    """Make the database look away to ``targets`` until the outage ends; return the outage.

    ``targets`` are auth states (``InMemoryAuthState``, ``AsyncInMemoryAuthState``,
    ``PostgresAuthState``, ``AsyncPostgresAuthState``) or an ``InMemoryStore`` (every state on
    it, and every ``open`` on it, then sees the outage). The outage starts at once and ends when
    the ``with`` block is left, when :meth:`Outage.end` is called, or after ``seconds``::

        with waauth.testing.outage(state):
            state.save_creds()                 # returns; state.stats().pending == 1
            state.keys.set({...})              # retries for retry.budget, then StoreUnavailable
        state.flush()                          # what was pending is written

    Pass a short ``retry=RetryPolicy(budget=...)`` when opening the state, or tests wait the
    default 60 s budget.
    """
    return Outage(targets, seconds)


def _where(target: object) -> object:
    """What an outage of ``target`` is attached to: a state's database, or a store."""
    if isinstance(target, PostgresAuthState | AsyncPostgresAuthState):
        return target._db
    if isinstance(target, InMemoryStore):
        return target
    raise InvalidInput(
        "outage() takes auth states (in-memory or Postgres) and InMemoryStore objects, "
        f"not {type(target).__name__}"
    )


# The outages on, by database object or store; the hook runs only while one is attached.
_outages: weakref.WeakKeyDictionary[Any, list[Outage]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _detach(where: object, outage: Outage) -> None:
    with _lock:
        outages = _outages.get(where, [])
        if outage in outages:
            outages.remove(outage)
        if not outages:
            _outages.pop(where, None)
        if not _outages and _fail_if_down in _hooks.attempt_hooks:
            _hooks.attempt_hooks.remove(_fail_if_down)


def _fail_if_down(db: object) -> None:
    """Fail an attempt as a lost connection would, while an outage of its database (or of the
    store under it) is on."""
    backend = getattr(db, "backend", None)
    with _lock:
        outages = [*_outages.get(db, ()), *(_outages.get(backend, ()) if backend else ())]
    if any(o.active for o in outages):
        raise psycopg.OperationalError(SIMULATED)
