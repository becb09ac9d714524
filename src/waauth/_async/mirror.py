"""The live mirror: keeps Baileys session folders mirrored into PostgreSQL while Baileys runs.

Every subfolder of ``root`` is a session (its name is the session id). File events (from
``watchfiles``) mark a session for a push, and a rescan every ``rescan_interval`` seconds is
the safety net for events that never came. Each push writes a session's changed, new and
deleted files in one transaction, at most once per ``window`` seconds per session.

The first push of a session is a full sync: stored files that the folder no longer has are
deleted too. It is guarded like an import: creds of another account than the stored one are
refused (the session is then left alone and reported), and a folder without ``creds.json`` is
never mirrored (a wiped folder must not wipe the database).

The mirror never stops unnoticed: a failure of the watcher is logged as an error, counted in
:meth:`~AsyncMirror.stats` and the watcher restarts with backoff; if it keeps failing it is
given up and :meth:`~AsyncMirror.flush` / :meth:`~AsyncMirror.stop` raise
:class:`~waauth.WatcherFailed`. A session that cannot be read or pushed (a row no key opens) is
reported and tried again every ``failing_retry`` seconds; the other sessions go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg_pool import AsyncConnectionPool
from watchfiles import awatch

from .. import _folders
from .._acompat import AsyncEvent, AsyncLock, AsyncWorker, ajoin, aspawn, ato_thread, task_alive
from .._mirroring import MirrorStats, Tracker
from ..encryption import Keyring
from ..errors import (
    AccessDenied,
    ConfigurationError,
    IdentityConflict,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    StoreUnavailable,
    WaauthError,
    WatcherFailed,
)
from ..layout import validate_session_id
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from .database import AsyncDatabase
from .lease import DEFAULT_TTL, AsyncLeaseKeeper
from .ops import guarded_write

logger = logging.getLogger("waauth.mirror")

MAX_BACKOFF = 30.0
"""The longest pause before restarting a failed watcher, in seconds."""
_UNDECODABLE = "Unable to decode path"  # watchfiles' error for a file name that is not UTF-8

LAG_SAMPLES = 10_000
"""Lag observations kept for :meth:`AsyncMirror.drain_lags` between two scrapes."""


class AsyncMirror:
    """Mirror the live session folders under ``root`` into PostgreSQL.

    ``async with AsyncMirror(dsn, ".auth_sessions", keyring=...) as mirror:`` runs it in a
    task until the block ends, then pushes what is left. ``session_ids`` limits it to some
    folders. Files caught half-written are retried each tick and reported after
    ``broken_grace`` seconds.

    ``root`` may be relative: it is made absolute once, here. A failed watcher is restarted
    after ``watcher_backoff`` seconds, doubling up to ``MAX_BACKOFF`` (30 s), and given up after
    ``max_watcher_failures`` failures in a row. A session that cannot be mirrored is tried
    again every ``failing_retry`` seconds.
    """

    def __init__(
        self,
        source: str | AsyncConnectionPool[Any],
        root: str | os.PathLike[str],
        *,
        keyring: Keyring,
        session_ids: list[str] | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy = DEFAULT_POLICY,
        window: float = 1.0,
        rescan_interval: float = 30.0,
        broken_grace: float = 5.0,
        migrate: bool = True,
        lease: bool = True,
        lease_ttl: float = DEFAULT_TTL,
        watcher_backoff: float = 0.5,
        max_watcher_failures: int = 10,
        failing_retry: float = 30.0,
        leases: AsyncLeaseKeeper | None = None,
    ) -> None:
        """``leases`` shares a lease keeper (a fleet's): the mirror then writes under its
        leases, and closes it on :meth:`stop`."""
        if not isinstance(keyring, Keyring):
            raise ConfigurationError(
                f"keyring must be a waauth.Keyring, not {type(keyring).__name__}"
            )
        if window <= 0 or rescan_interval <= 0 or broken_grace < 0:
            raise ConfigurationError("window and rescan_interval must be > 0, broken_grace >= 0")
        if watcher_backoff <= 0 or max_watcher_failures < 1 or failing_retry <= 0:
            raise ConfigurationError(
                "watcher_backoff and failing_retry must be > 0, max_watcher_failures >= 1"
            )
        self._db = AsyncDatabase(
            source,
            schema=schema,
            owner_id=owner_id,
            policy=retry,
            pool_size=2,
            name="waauth:mirror",
        )
        # watchfiles reports absolute paths: resolve the root once, so that they map back to it.
        self._root = Path(root).resolve()
        self._keyring = keyring
        self._only = None if session_ids is None else {validate_session_id(s) for s in session_ids}
        self._window = window
        self._rescan_interval = rescan_interval
        self._broken_grace = broken_grace
        self._migrate = migrate
        # One runner per session: mirror only the sessions whose lease this process holds.
        if leases is None and lease:
            leases = AsyncLeaseKeeper(self._db, ttl=lease_ttl)
        self._leases = leases
        self._trackers: dict[str, Tracker] = {}
        self._last_push: dict[str, float] = {}
        self._lock = AsyncLock()
        self._stop = AsyncEvent()
        self._worker: AsyncWorker | None = None
        self._stats = MirrorStats()
        self._last_push_at: float | None = None
        self._watcher_backoff = watcher_backoff
        self._max_watcher_failures = max_watcher_failures
        self._failing_retry = failing_retry
        self._watching = False
        self._healthy = False  # the current watcher pass delivered at least once
        self._undecodable: set[str] = set()  # watchfiles' errors on non-UTF-8 names, said once
        self._watcher_error: str | None = None
        self._pending: dict[str, float] = {}  # session -> when its oldest unpushed change was seen
        # Metrics: recent lags, file change seen to commit (drained by drain_lags).
        self._lags: deque[tuple[str, float]] = deque(maxlen=LAG_SAMPLES)

    async def start(self) -> None:
        """Open the database, push every folder once, and start watching."""
        await self._db.open(migrate=self._migrate)
        await ato_thread(self._root.mkdir, parents=True, exist_ok=True)
        try:
            await self.flush()
        except BaseException:
            if self._leases is not None:
                await self._leases.close()
            await self._db.close()
            raise
        self._watching = True  # until the watcher says otherwise (it fails, or is given up)
        self._worker = aspawn(self._watch, "waauth-mirror")
        logger.info("mirroring %d session folders under %s", len(self._trackers), self._root)

    async def stop(self) -> None:
        """Stop watching and push what is left (the final flush)."""
        self._stop.set()
        try:
            if self._worker is not None:
                await ajoin(self._worker, self._window + 5)
            self._watching = False
            await self.flush()
        finally:
            try:
                if self._leases is not None:
                    await self._leases.close()
            finally:
                await self._db.close()

    async def flush(self) -> None:
        """Push every change of every folder now; raise StoreUnavailable if a push failed
        because the database is away, and :class:`~waauth.WatcherFailed` if the watcher was
        given up (the push is done first).

        Files that do not parse are left for later (see ``stats().broken``), and sessions that
        cannot be mirrored are reported (``stats().failing``), not an error.
        """
        again = await self._push(await ato_thread(self._folders), retry_failing=True)
        failed = {name for name in again if self._trackers[name].waiting_for_database}
        if self._watcher_error is not None:
            raise WatcherFailed(f"mirror: the watcher was given up: {self._watcher_error}")
        if failed:
            raise StoreUnavailable(
                f"mirror: {len(failed)} sessions could not be pushed ({', '.join(sorted(failed))})"
            )

    @property
    def watcher_error(self) -> str | None:
        """Why the watcher was given up (None while it runs or restarts)."""
        return self._watcher_error

    def stats(self) -> MirrorStats:
        """What the mirror has done so far, and what it is doing now."""
        trackers = list(self._trackers.values())
        broken = tuple(sorted(f"{t.session_id}/{n}" for t in trackers for n in t.broken))
        refused = tuple(sorted(f"{t.session_id}: {t.refused}" for t in trackers if t.refused))
        held = tuple(
            sorted(f"{t.session_id}: {t.held_elsewhere}" for t in trackers if t.held_elsewhere)
        )
        failing = tuple(sorted(f"{t.session_id}: {t.failing}" for t in trackers if t.failing))
        now = time.monotonic()
        since = None if self._last_push_at is None else now - self._last_push_at
        pending = list(self._pending.values())
        return replace(
            self._stats,
            held_elsewhere=held,
            sessions=len(trackers),
            broken=broken,
            refused=refused,
            last_push=since,
            watching=self._watching and task_alive(self._worker),
            pending_sessions=len(pending),
            oldest_pending=now - min(pending) if pending else None,
            failing=failing,
        )

    def drain_lags(self) -> list[tuple[str, float]]:
        """``(session, seconds)`` from a file change seen to its commit, since the last call."""
        # popleft, not copy-and-clear: the watcher may append meanwhile (thread-safe on a deque).
        return [self._lags.popleft() for _ in range(len(self._lags))]

    async def __aenter__(self) -> AsyncMirror:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _folders(self) -> list[str]:
        """Session folders under the root (hidden ones, such as materialize's, are not)."""
        found = []
        try:
            entries = list(os.scandir(self._root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            if self._only is not None and entry.name not in self._only:
                continue
            try:
                validate_session_id(entry.name)
            except InvalidInput:
                continue
            found.append(entry.name)
        return sorted(found)

    async def _watch(self) -> None:
        """Watch until stopped. A failed watcher is logged, counted and started again with
        backoff; after ``max_watcher_failures`` failures in a row it is given up."""
        in_a_row = 0
        while not self._stop.is_set():
            self._healthy = False
            try:
                await self._watch_once()
            except Exception as exc:  # anything: the mirror must never die unnoticed
                self._watching = False
                if self._healthy:
                    in_a_row = 0
                undecodable = _undecodable(exc)
                if undecodable is not None:
                    # watchfiles cannot report a file name that is not UTF-8 and drops the
                    # events with it; the next pass starts with a rescan (scan() skips it).
                    level = logging.DEBUG if undecodable in self._undecodable else logging.WARNING
                    self._undecodable.add(undecodable)
                    logger.log(level, "mirror: %s; rescanning and watching on", undecodable)
                    self._stats = _bump(self._stats, watcher_restarts=1)
                    continue
                in_a_row += 1
                self._stats = _bump(self._stats, watcher_failures=1, last_error=type(exc).__name__)
                logger.debug("mirror: the watcher failed", exc_info=True)
                if in_a_row >= self._max_watcher_failures:
                    self._watcher_error = f"{type(exc).__name__}: {exc}"
                    logger.error(
                        "mirror: the watcher failed %d times in a row (%s); giving up: "
                        "changes under %s are no longer mirrored",
                        in_a_row,
                        self._watcher_error,
                        self._root,
                    )
                    return
                delay = min(MAX_BACKOFF, self._watcher_backoff * 2 ** (in_a_row - 1))
                logger.error(
                    "mirror: the watcher failed (%s: %s); restarting it in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if await self._pause(delay):
                    self._stats = _bump(self._stats, watcher_restarts=1)
        self._watching = False

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped meanwhile; False if stopped."""
        until = time.monotonic() + seconds
        while not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.05))
        return False

    async def _watch_once(self) -> None:
        """One watcher's life: push the sessions that events (and rescans) mark, until stopped."""
        dirty: set[str] = set()
        # Changes made before this watcher started raise no event (after start()'s flush, or
        # while a failed watcher was down): the first pass rescans everything.
        last_rescan = float("-inf")
        self._watching = True
        async for changes in awatch(
            self._root,
            stop_event=self._stop,
            debounce=50,
            step=50,
            rust_timeout=max(50, int(self._window * 1000)),
            yield_on_timeout=True,
            watch_filter=None,
        ):
            self._healthy = True
            now = time.monotonic()
            for _change, path in changes:
                session = self._session_of(path)
                if session is None:
                    last_rescan = float("-inf")  # not under the root as we know it: look at all
                elif session:
                    dirty.add(session)
                    self._pending.setdefault(session, now)
            if now - last_rescan >= self._rescan_interval:
                dirty.update(await ato_thread(self._folders))
                last_rescan = now
            due = {s for s in dirty if now - self._last_push.get(s, float("-inf")) >= self._window}
            if due:
                # Failed pushes, and folders with files caught half-written, go again.
                dirty -= due - await self._push(sorted(due))

    def _session_of(self, path: str) -> str | None:
        """The session folder an event path is in: "" for the root itself and hidden entries,
        None for a path that does not map to the root (through a link, say)."""
        for candidate in (path, os.path.realpath(path)):
            try:
                parts = Path(candidate).relative_to(self._root).parts
            except ValueError:
                continue
            return parts[0] if parts and not parts[0].startswith(".") else ""
        return None

    async def _hold(self, tracker: Tracker) -> bool:
        """Take the session's lease if not held yet; False while another process holds it."""
        if self._leases is None or self._leases.token(tracker.session_id) is not None:
            return True
        if self._leases.is_lost(tracker.session_id):
            return False
        try:
            await self._leases.acquire(tracker.session_id)
        except AccessDenied as exc:  # another owner's session: refused before any lease
            tracker.refused = str(exc)
            logger.error(
                "mirror: not mirroring session %s: %s",
                tracker.session_id,
                exc,
                extra={"session_id": tracker.session_id},
            )
            return False
        except LeaseHeld as exc:
            if tracker.held_elsewhere is None:
                logger.warning(
                    "mirror: not mirroring %s for now: %s",
                    tracker.session_id,
                    exc,
                    extra={"session_id": tracker.session_id},
                )
            tracker.held_elsewhere = str(exc)
            return False
        tracker.held_elsewhere = None
        return True

    async def _tracker(self, name: str) -> Tracker | None:
        """The tracker of a session folder (made on first sight); None if it is not one."""
        if self._only is not None and name not in self._only:
            return None
        tracker = self._trackers.get(name)
        if tracker is None:
            folder = self._root / name
            if name.startswith(".") or not await ato_thread(folder.is_dir):
                return None
            try:
                validate_session_id(name)
            except InvalidInput:
                return None
            tracker = self._trackers[name] = Tracker(name, folder)
        return tracker

    async def _push(self, names: list[str], *, retry_failing: bool = False) -> set[str]:
        """Push the given sessions' changes; return those to try again (failed, broken, being
        rotated, or failing: those wait ``failing_retry`` unless ``retry_failing``)."""
        again: set[str] = set()
        async with self._lock:
            for name in names:
                tracker = await self._tracker(name)
                if tracker is None:
                    self._pending.pop(name, None)
                    continue
                try:
                    retry = await self._push_session(tracker, retry_failing)
                except StoreUnavailable as exc:
                    # The database is away: every tick tries again (flush() raises meanwhile).
                    tracker.waiting_for_database = True
                    self._stats = _bump(self._stats, failures=1, last_error=type(exc).__name__)
                    logger.warning(
                        "mirror: session %s not pushed yet: %s",
                        name,
                        exc,
                        extra={"session_id": name, "error": type(exc).__name__},
                    )
                    retry = True
                except Exception as exc:  # one session's trouble never stops the others
                    self._fail(tracker, exc)
                    retry = True
                if retry:
                    again.add(name)
                stuck = tracker.waiting_for_database or tracker.failing or tracker.unsettled
                if stuck and tracker.refused is None and tracker.held_elsewhere is None:
                    self._pending.setdefault(name, time.monotonic())
                else:
                    self._pending.pop(name, None)
        return again

    async def _push_session(self, tracker: Tracker, retry_failing: bool) -> bool:
        """Push one session if it is ours to push now; True if it must be tried again."""
        waiting = tracker.failing is not None and time.monotonic() < tracker.next_try
        if waiting and not retry_failing:
            return True
        if tracker.refused or not await self._hold(tracker):
            return False
        return not await self._push_one(tracker) or bool(tracker.broken) or tracker.unsettled

    def _fail(self, tracker: Tracker, exc: Exception) -> None:
        """A session that cannot be mirrored now: report it once, try it again later."""
        reason = str(exc) if isinstance(exc, WaauthError) else f"{type(exc).__name__}: {exc}"
        self._stats = _bump(self._stats, failures=1, last_error=type(exc).__name__)
        tracker.next_try = time.monotonic() + self._failing_retry
        if tracker.failing != reason:
            logger.error(
                "mirror: session %s cannot be mirrored: %s (tried again every %.0f s)",
                tracker.session_id,
                reason,
                self._failing_retry,
                extra={"session_id": tracker.session_id, "error": type(exc).__name__},
            )
            logger.debug("mirror: session %s failed", tracker.session_id, exc_info=True)
        tracker.failing = reason

    async def _push_one(self, tracker: Tracker) -> bool:
        """Push one session's changes; False if it must be tried again."""
        name = tracker.session_id
        plan = await ato_thread(tracker.plan, self._keyring, self._broken_grace)
        if plan is None:
            self._recovered(tracker)
            return True
        token = None if self._leases is None else self._leases.token(name)
        op = guarded_write(
            self._db, name, self._keyring, plan.batch, plan.creds, force=False, token=token
        )
        try:
            await self._db.run(f"mirror session {name!r}", op)
        except LeaseLost as exc:
            if self._leases is not None:
                self._leases.mark_lost(name)
            tracker.refused = str(exc)
            return True
        except (IdentityConflict, AccessDenied) as exc:  # no retry can fix these: not an outage
            tracker.refused = str(exc)
            logger.error(
                "mirror: not mirroring session %s: %s", name, exc, extra={"session_id": name}
            )
            return True
        tracker.done(plan)
        self._recovered(tracker)
        self._last_push[name] = self._last_push_at = time.monotonic()
        seen = self._pending.get(name)  # popped by _push once the session is settled
        if seen is not None:
            self._lags.append((name, self._last_push_at - seen))
        self._stats = _bump(
            self._stats,
            pushes=1,
            files_pushed=len(plan.signatures),
            files_deleted=len(plan.deleted),
        )
        return True

    def _recovered(self, tracker: Tracker) -> None:
        if tracker.failing is not None:
            logger.info(
                "mirror: session %s is mirrored again",
                tracker.session_id,
                extra={"session_id": tracker.session_id},
            )
        tracker.failing = None
        tracker.waiting_for_database = False

    async def add_session(self, session_id: str, *, restored: bool = False) -> bool:
        """Mirror one more folder from now on (a fleet's claim), pushing it at once.

        Only for a mirror made with ``session_ids``. ``restored``: the folder was just
        written from the database and nothing changed it since, so its files count as pushed
        (no first full push). False if the push failed (the watcher tries again).
        """
        validate_session_id(session_id)
        if self._only is None:
            raise ConfigurationError("add_session needs a mirror made with session_ids")
        self._only.add(session_id)
        if not restored:
            return session_id not in await self._push([session_id])
        async with self._lock:
            tracker = await self._tracker(session_id)
            if tracker is not None:
                tracker.pushed = (await ato_thread(_folders.scan, tracker.folder)).files
                tracker.synced = True
        return True

    async def remove_session(self, session_id: str, *, push: bool = True) -> bool:
        """Stop mirroring a folder, after a final push of it unless ``push`` is False.

        False if that push failed: the folder then stays mirrored (nothing it holds is lost),
        and the caller may try again. The session's lease is not freed here.
        """
        if push and session_id in await self._push([session_id]):
            tracker = self._trackers.get(session_id)
            if tracker is None or not tracker.broken:
                return False
        async with self._lock:
            if self._only is not None:
                self._only.discard(session_id)
            self._trackers.pop(session_id, None)
            self._last_push.pop(session_id, None)
        return True


def _undecodable(exc: BaseException) -> str | None:
    """watchfiles' error for an event on a file name that is not UTF-8 (anyio may wrap it in an
    exception group), or None if ``exc`` is another error."""
    if isinstance(exc, RuntimeError) and _UNDECODABLE in str(exc):
        return str(exc)
    inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())  # an ExceptionGroup
    return _undecodable(inner[0]) if len(inner) == 1 else None


def _bump(stats: MirrorStats, last_error: str | None = None, **add: int) -> MirrorStats:
    changes: dict[str, Any] = {k: getattr(stats, k) + v for k, v in add.items()}
    if last_error is not None:
        changes["last_error"] = last_error
    return replace(stats, **changes)
