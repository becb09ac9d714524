"""Simulated database outages for users' tests: :func:`outage` and the waiting it causes.

An :class:`Outage` makes the database look away to the states and stores it is given, until it
ends (leaving a ``with`` block, :meth:`Outage.end`, or after ``seconds``). What the states do
meanwhile is what they do in a real outage (see ``docs/durability.md``): ``save_creds`` keeps
returning with the creds pending, a write-through ``keys.set`` retries for the retry budget and
then raises :class:`~waauth.StoreUnavailable`, ``flush`` raises with ``pending``, and what is
pending lands when the outage ends.

The in-memory states ask :func:`is_down` before every access to their store. A Postgres state
cannot be asked, so a hook before each of its database's attempts fails them as a lost
connection would, with a retryable ``OperationalError``: the real retry loop, stats, logs and
write-behind writer then run exactly as in an outage.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psycopg

from .. import _hooks, retry
from .._async.state import AsyncPostgresAuthState
from .._sync.state import PostgresAuthState
from ..errors import InvalidInput, WaauthError

__all__ = ["Outage", "OutageTarget", "outage"]

SIMULATED = "the database is away (simulated by waauth.testing.outage)"
"""The message of the driver error a simulated outage raises (no SQLSTATE: retryable)."""


class OutageTarget(abc.ABC):
    """An in-memory store or state: something an :class:`Outage` can be aimed at."""

    @abc.abstractmethod
    def _attach_outage(self, outage: Outage) -> None:
        """From now on, the database looks away while ``outage`` is active."""

    @abc.abstractmethod
    def _detach_outage(self, outage: Outage) -> None:
        """``outage`` is over for this target."""

    @abc.abstractmethod
    def _outage_ended(self) -> None:
        """Write what is pending, if the database is back (called after the detach)."""


class _Signal:
    """Wakes every waiter, in threads or in event loops, when an outage ends.

    Waiters read :meth:`generation` before they check whether the store is down, and wait only
    while it has not changed, so an outage that ends between the check and the wait is not
    missed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def generation(self) -> int:
        with self._cond:
            return self._generation

    def fire(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            futures, self._futures = self._futures, []
        for loop, future in futures:
            # Outages may end in a timer thread: resolve each future in its own loop.
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self, seen: int, timeout: float) -> None:
        """Block until the generation moves past ``seen``, or ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, max(timeout, 0.0))

    async def await_(self, seen: int, timeout: float) -> None:
        """The asyncio twin of :meth:`wait`; never blocks the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._generation != seen:
                return
            self._futures.append((loop, future))
        try:
            await asyncio.wait_for(future, max(timeout, 0.0))
        except asyncio.TimeoutError:
            pass
        finally:
            with self._cond:
                if (loop, future) in self._futures:
                    self._futures.remove((loop, future))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


SIGNAL = _Signal()


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
        self._landings: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None
        try:
            for target in targets:
                self._attach(target)
        except BaseException:
            self.end()
            raise
        if seconds is not None:
            self._timer = threading.Timer(seconds, self.end)
            self._timer.daemon = True  # never keeps a test run alive
            self._timer.start()

    def _attach(self, target: object) -> None:
        db = _postgres_database(target)
        if db is not None:
            _attach_postgres(db, self)
            self._attached.append(lambda: _detach_postgres(db, self))
            return
        if not isinstance(target, OutageTarget):
            raise InvalidInput(
                "outage() takes auth states (in-memory or Postgres) and InMemoryStore objects, "
                f"not {type(target).__name__}"
            )
        memory = target
        memory._attach_outage(self)
        self._attached.append(lambda: memory._detach_outage(self))
        self._landings.append(memory._outage_ended)

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
        """End the outage: in-memory states write what is pending at once; Postgres states
        write it on their writer's next attempt (``flush()`` waits for it)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            timer = self._timer
            detach, self._attached = self._attached, []
            landings, self._landings = self._landings, []
        if timer is not None:
            timer.cancel()
        for undo in detach:
            undo()
        for land in landings:
            land()
        SIGNAL.fire()

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


def is_down(outages: list[Outage]) -> bool:
    """Whether any of ``outages`` is still on."""
    return any(o.active for o in outages)


def next_end(outages: list[Outage]) -> float | None:
    """Seconds until the first of ``outages`` ends by itself, if any has a duration."""
    ends = [left for o in outages if (left := o.remaining()) is not None]
    return min(ends) if ends else None


def simulated_error(doing: str) -> WaauthError:
    """The :class:`~waauth.StoreUnavailable` a real state raises once its budget is spent on an
    outage, with the same message and a driver error as its cause."""
    cause = psycopg.OperationalError(SIMULATED)
    error = retry.translate(cause, doing, gave_up=True)
    error.__cause__ = cause
    return error


# -- Postgres states ----------------------------------------------------------------------------


def _postgres_database(target: object) -> Any:
    """The database object of a Postgres auth state, or None for anything else."""
    if isinstance(target, PostgresAuthState | AsyncPostgresAuthState):
        return target._db
    return None


# Outages of Postgres states, by database object: a hook on the database's attempts (the one
# place every statement passes through) fails while an outage is on; everything around it (the
# retry loop, ``on_retry`` counting, the translation to ``StoreUnavailable``, the write-behind
# writer) is the real code.
_postgres_outages: weakref.WeakKeyDictionary[Any, list[Outage]] = weakref.WeakKeyDictionary()
_postgres_lock = threading.Lock()


def _attach_postgres(db: Any, outage: Outage) -> None:
    with _postgres_lock:
        _postgres_outages.setdefault(db, []).append(outage)
        if _fail_if_down not in _hooks.attempt_hooks:
            _hooks.attempt_hooks.append(_fail_if_down)


def _detach_postgres(db: Any, outage: Outage) -> None:
    with _postgres_lock:
        outages = _postgres_outages.get(db, [])
        if outage in outages:
            outages.remove(outage)
        if not outages:
            _postgres_outages.pop(db, None)
        if not _postgres_outages and _fail_if_down in _hooks.attempt_hooks:
            _hooks.attempt_hooks.remove(_fail_if_down)


def _fail_if_down(db: object) -> None:
    """Fail an attempt as a lost connection would, while an outage of its database is on."""
    with _postgres_lock:
        outages = list(_postgres_outages.get(db, ()))
    if is_down(outages):
        raise psycopg.OperationalError(SIMULATED)
