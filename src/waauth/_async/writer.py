"""The write-behind writer: coalesces saves, writes them in order, and rides out outages.

``save_creds`` (and ``keys.set`` with ``throttle_keys=True``) only record the newest bytes of
each file in :class:`~waauth._pending.Pending` and return. A background worker (a task here, a
thread in the sync twin) writes everything pending in one statement when the throttle window
since its last write has passed: a trailing-edge throttle, so the newest save is always written
within one window and a burst of saves costs at most ceil(duration / window) + 1 writes (the
first at once, one per window while the saves go on, the trailing one).

A write-through ``keys.set`` takes everything pending along in its own statement, so stored
creds are never older than keys written after them. One lock serializes writes, so the
database sees snapshots in the order they were taken.

While the database is away, writes are retried (see :mod:`waauth.retry`); pending state stays
in memory, one entry per file, and lands when the database returns. A write the database
refuses (:class:`~waauth.AccessDenied`: a role without the rights, another owner's session) is
not an outage and no retry fixes it: what was pending is dropped, logged, and the next
``flush`` (or ``close``) raises the refusal.
"""

from __future__ import annotations

import asyncio  # async only
import logging
import time
from typing import TypeVar

from .. import _records, layout
from .._acompat import (
    AsyncCondition,
    AsyncLock,
    AsyncWorker,
    acondition_wait,
    ajoin,
    alock_acquire,
    aspawn,
    call_within,
    task_alive,
)
from .._exit import EXIT_TIMEOUT
from .._pending import Counters, Entry, Pending, Stats
from ..encryption import Keyring
from ..errors import AccessDenied, LeaseLost, StoreUnavailable, WaauthError
from ..retry import RetryPolicy
from .database import AsyncDatabase, Operation
from .lease import AsyncLeaseKeeper
from .ops import write_batch

T = TypeVar("T")

logger = logging.getLogger("waauth.writer")

# How often a waiting flush checks that the worker is still alive.
_LIVENESS_CHECK = 1.0


class AsyncWriter:
    """Holds one session's unsaved state and writes it."""

    def __init__(
        self,
        db: AsyncDatabase,
        session_id: str,
        keyring: Keyring,
        *,
        window: float,
        lease: AsyncLeaseKeeper | None = None,
    ) -> None:
        self._db = db
        self._lease = lease
        self._session_id = session_id
        self._fields = {"session_id": session_id}  # `extra` of every log line about it
        self._keyring = keyring
        self._window = window
        self._pending = Pending()
        self._counters = Counters()
        self._cond = AsyncCondition()
        self._write_lock = AsyncLock()
        self._flush_target = 0
        self._failed_attempts = 0
        self._last_error: WaauthError | None = None
        self._refused: AccessDenied | None = None  # dropped saves, not yet reported by a flush
        self._last_write = float("-inf")
        self._closing = False
        self._worker: AsyncWorker | None = None
        self._working = False  # a worker runs and will see new saves (set under ``_cond``)

    def _wake_worker(self) -> None:
        """Start the background worker if it is not running (hold ``_cond``).

        It runs only while something is pending, and ends once everything is written: an open
        state that saves nothing holds no task (no thread, in the sync twin), and a state can
        be opened before the event loop it is used in runs (a plain pytest fixture)."""
        if self._pending and not self._closing and not self._working:
            # The flag, not the task's liveness: a worker that has just decided to end (under
            # ``_cond``) is still alive for a moment, and would never see this save.
            self._working = True
            self._worker = aspawn(self._work, f"waauth-writer:{self._session_id}")

    def stats(self) -> Stats:
        """The persistence figures so far."""
        return self._counters.snapshot(len(self._pending))

    def lookup(self, file_name: str) -> Entry | None:
        """A file's pending (not yet written) state, if any."""
        return self._pending.lookup(file_name)

    async def save(
        self, planned: dict[str, tuple[str, str, bytes | None]], account: str | None = None
    ) -> None:
        """Record files to write; returns at once. ``account`` goes with ``creds.json``."""
        self._check_lease()
        async with self._cond:
            for name, (key_type, key_id, data) in planned.items():
                self._pending.put(name, key_type, key_id, data, account)
            self._wake_worker()
            self._cond.notify_all()

    def saved_creds(self) -> None:
        self._counters.saved_creds()

    async def write_through(
        self, planned: dict[str, tuple[str, str, bytes | None]], doing: str
    ) -> None:
        """Write ``planned`` now, with everything pending, in one statement; durable on return.

        Waits for a write in progress, and retries, for at most the retry budget in all; then
        raises :class:`~waauth.StoreUnavailable` and nothing of ``planned`` is written.
        """
        self._check_lease()
        policy = self._db.policy
        deadline = time.monotonic() + policy.budget
        if not await alock_acquire(self._write_lock, policy.budget):
            raise StoreUnavailable(
                f"{doing}: another write held the session for {policy.budget:.0f} s"
            )
        try:
            async with self._cond:
                seq, snapshot = self._pending.snapshot()
            remaining = RetryPolicy(
                budget=max(0.0, deadline - time.monotonic()),
                initial_delay=policy.initial_delay,
                max_delay=policy.max_delay,
                connect_timeout=policy.connect_timeout,
            )
            rows, account = _rows(snapshot)
            kept = len(rows)  # on failure, what was pending stays so; the call's own do not
            rows.update(planned)  # own entries are newer than anything pending for the file
            await self._write(rows, account, doing, remaining, kept=kept)
            async with self._cond:
                self._pending.written(seq, snapshot)
                self._cond.notify_all()
        finally:
            self._write_lock.release()

    async def replace_all(self, doing: str, op: Operation[T]) -> T:
        """Run ``op`` (a logout, an import) with no other write in between; once it succeeds,
        drop everything pending, which it replaced."""
        async with self._write_lock:
            result = await self._db.run(doing, op)
            async with self._cond:
                self._pending.discard()
                self._cond.notify_all()
            return result

    async def flush(self, timeout: float | None = None) -> None:
        """Return once everything saved before the call is in the database.

        Raises :class:`~waauth.StoreUnavailable` (saying how many records are pending) if a
        write fails after the call, or if ``timeout`` seconds pass first, and
        :class:`~waauth.AccessDenied` if the database refused a write whose saves were dropped
        since the last flush.
        """
        self._check_lease()  # what was pending when the lease was lost is gone, not durable
        self._check_refused()
        started = time.monotonic()
        async with self._cond:
            target = self._pending.seq
            failures = self._failed_attempts
            self._flush_target = max(self._flush_target, target)
            self._wake_worker()
            self._cond.notify_all()
            while self._pending.durable < target:
                self._check_lease()
                self._check_refused()
                if self._failed_attempts > failures:
                    raise self._unflushed("a write failed")
                if not task_alive(self._worker):
                    raise self._unflushed("the writer stopped")
                left = None if timeout is None else started + timeout - time.monotonic()
                if left is not None and left <= 0:
                    raise self._unflushed(f"not written within {timeout:g} s")
                await acondition_wait(
                    self._cond, _LIVENESS_CHECK if left is None else min(left, _LIVENESS_CHECK)
                )
            self._check_refused()  # a refusal drops what was pending: durable, but not written
        self._counters.flushed(time.monotonic() - started)

    def _check_refused(self) -> None:
        refused, self._refused = self._refused, None
        if refused is not None:
            raise refused

    def _unflushed(self, why: str) -> StoreUnavailable:
        last = f"; last error: {self._last_error}" if self._last_error else ""
        return StoreUnavailable(
            f"session {self._session_id!r}: {why}; {len(self._pending)} records pending{last}",
            pending=len(self._pending),
        )

    def pending(self) -> int:
        """How many records are saved but not written."""
        return len(self._pending)

    async def close(self, timeout: float) -> None:
        """Stop the worker (after the caller's final flush)."""
        async with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._worker is not None:
            await ajoin(self._worker, timeout)

    def drop(self) -> None:
        """Forget what is pending and let the worker end (the state is dropped unflushed)."""
        self._closing = True
        self._pending.discard()

    async def _work(self) -> None:
        try:
            while True:
                async with self._cond:
                    while True:
                        if self._closing or self._lease_lost():
                            return
                        wait = self._due_in()
                        if wait is None:
                            self._working = False  # all written: the next save starts one
                            return
                        if wait <= 0:
                            break
                        await acondition_wait(self._cond, wait)
                if not await self._write_pending():
                    # Each failed write already spent the retry budget; pause, then go again.
                    async with self._cond:
                        if not self._closing:
                            await acondition_wait(self._cond, self._db.policy.max_delay)
        except asyncio.CancelledError:  # async only
            await self._at_loop_end()  # async only
            raise  # async only
        except Exception:
            logger.exception(
                "session %s: the writer stopped on an unexpected error", self._session_id
            )
            raise

    async def _at_loop_end(self) -> None:
        """The event loop is ending (``asyncio.run`` cancels every task) with the state open:
        say so, and write what is pending while the loop still runs."""
        if self._closing:
            return  # close() gave up waiting for us
        logger.warning(
            "session %s: the event loop is ending with the auth state open (close() it); "
            "writing %d pending records",
            self._session_id,
            len(self._pending),
            extra=self._fields,
        )
        await call_within(self._write_pending, EXIT_TIMEOUT)
        if self._pending:
            logger.error(
                "session %s: the event loop ended with %d saved records not written",
                self._session_id,
                len(self._pending),
                extra=self._fields,
            )

    def _due_in(self) -> float | None:
        """Seconds until pending state is due to be written; None if nothing is pending."""
        if not self._pending:
            return None
        if self._pending.durable < self._flush_target:
            return 0.0
        return self._last_write + self._window - time.monotonic()

    async def _write_pending(self) -> bool:
        async with self._write_lock:
            async with self._cond:
                seq, snapshot = self._pending.snapshot()
            if not snapshot:
                return True
            rows, account = _rows(snapshot)
            try:
                await self._write(rows, account, f"write-behind of session {self._session_id!r}")
            except AccessDenied:
                return True  # dropped and reported: nothing to try again
            except WaauthError:
                return False
            async with self._cond:
                self._pending.written(seq, snapshot)
                self._cond.notify_all()
            return True

    def _lease_lost(self) -> bool:
        return self._lease is not None and self._lease.is_lost(self._session_id)

    def _check_lease(self) -> None:
        if self._lease is not None:
            self._lease.check(self._session_id)

    async def _write(
        self,
        rows: dict[str, tuple[str, str, bytes | None]],
        account: str | None,
        doing: str,
        policy: RetryPolicy | None = None,
        kept: int | None = None,
    ) -> None:
        """Seal and write ``rows``; ``kept`` is how many of them stay pending if it fails (all
        of them unless said)."""
        self._check_lease()
        batch = _records.sealed_batch(self._keyring, self._session_id, rows, account)
        token = None if self._lease is None else self._lease.token(self._session_id)
        op = write_batch(self._db, self._session_id, batch, token)
        self._last_write = time.monotonic()
        try:
            await self._db.run(doing, op, policy=policy, on_retry=self._counters.retried)
        except LeaseLost:
            # Another process runs the session now: what is pending must never be written.
            if self._lease is not None:
                self._lease.mark_lost(self._session_id)
            async with self._cond:
                self._pending.discard()
                self._cond.notify_all()
            raise
        except AccessDenied as exc:
            await self._refuse(exc)
            raise
        except WaauthError as exc:
            in_outage = self._counters.outage_started is not None
            self._counters.failed(exc)
            async with self._cond:
                self._failed_attempts += 1
                self._last_error = exc
                self._cond.notify_all()
            if not in_outage:
                logger.warning(
                    "%s; %d records kept pending",
                    exc,
                    len(rows) if kept is None else kept,
                    extra={**self._fields, "error": type(exc).__name__},
                )
            raise
        recovered = self._counters.outage_started is not None
        self._counters.wrote(len(batch), batch.has_creds)
        if recovered:
            logger.warning(
                "session %s: the database is back; wrote %d pending records after %.1f s",
                self._session_id,
                len(batch),
                self._counters.stats.last_recovery_seconds or 0.0,
                extra=self._fields,
            )

    async def _refuse(self, exc: AccessDenied) -> None:
        """The database refused the write: no retry can fix that, so drop what was pending."""
        self._counters.failed(exc, outage=False)
        async with self._cond:
            dropped = len(self._pending)
            self._pending.discard()
            self._last_error = exc
            if dropped:  # saves the caller of this write did not make: the next flush says so
                self._refused = AccessDenied(f"{exc}; {dropped} saved records were dropped")
            self._cond.notify_all()
        logger.error(
            "%s; dropped %d saved records: no retry can fix a refusal",
            exc,
            dropped,
            extra={**self._fields, "error": type(exc).__name__},
        )


def _rows(entries: dict[str, Entry]) -> tuple[dict[str, tuple[str, str, bytes | None]], str | None]:
    """What pending ``entries`` write, ``{file name: (type, id, bytes or None)}``, and the
    ``me.id`` that goes with their ``creds.json``."""
    creds = entries.get(layout.CREDS_FILE)
    rows = {name: (entry.type, entry.id, entry.data) for name, entry in entries.items()}
    return rows, None if creds is None else creds.account
