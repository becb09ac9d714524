# WARNING: generated from waauth/_async/mirror.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""The live mirror: keeps Baileys session folders mirrored into PostgreSQL while Baileys runs.

Every subfolder of ``root`` is a session (its name is the session id). File events (from
``watchfiles``) name the files that changed; each tick (a few tens of milliseconds while files
change) pushes every session with changes, the changed, new and deleted files of many sessions
in one statement (one transaction, one round trip). A file is pushed at most once per
``window`` seconds: a change to a file not pushed within the last window goes at the next
tick, later ones within the window are held back and go, the newest bytes, when it ends.

A rescan every ``rescan_interval`` seconds is the safety net for events that never came: after
a period with events (inotify drops events when they flood, and watchfiles does not say so) it
scans every folder whole, a few per tick; after a quiet one, only the folders whose entries
changed and a tenth of the others in turn (for writers that no event reports).

The first push of a session is a full sync: stored files that the folder no longer has are
deleted too. It is guarded like an import: creds of another account than the stored one are
refused (the session is then left alone and reported), and a folder without ``creds.json`` is
never mirrored (a wiped folder must not wipe the database).

The mirror never stops unnoticed: a failure of the watcher is logged as an error, counted in
:meth:`~Mirror.stats` and the watcher restarts with backoff; if it keeps failing it is
given up and :meth:`~Mirror.flush` / :meth:`~Mirror.stop` raise
:class:`~waauth.WatcherFailed`. A session that cannot be read or pushed (a row no key opens) is
reported and tried again every ``failing_retry`` seconds; the other sessions go on.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg_pool import ConnectionPool

from .. import _folders, _records, layout
from .._backend import require_postgres
from .._compat import Event, Lock, Worker, join, spawn, task_alive, to_thread
from .._mirroring import MirrorStats, Plan, Tracker
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
from .database import Database
from .lease import DEFAULT_TTL, LeaseKeeper
from .ops import write_sessions
from .watcher import watch

logger = logging.getLogger("waauth.mirror")

MAX_BACKOFF = 30.0
"""The longest pause before restarting a failed watcher, in seconds."""
_UNDECODABLE = "Unable to decode path"  # watchfiles' error for a file name that is not UTF-8

LAG_SAMPLES = 10_000
"""Lag observations kept for :meth:`Mirror.drain_lags` between two scrapes."""

QUIET_ROUNDS = 10
"""A quiet rescan scans this share of the folders whole (1/10), in turn."""
RESCAN_FILES_PER_TICK = 2_000
"""Files a tick scans for the rescan at most (at least one folder): pushes stay prompt."""
MAX_WRITE_ROWS = 1_000
MAX_WRITE_BYTES = 2 * 1024 * 1024
"""Bounds of one multi-session statement (a session is never split between two)."""


class Mirror:
    """Mirror the live session folders under ``root`` into PostgreSQL.

    ``with Mirror(dsn, ".auth_sessions", keyring=...) as mirror:`` runs it in a
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
        source: str | ConnectionPool[Any],
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
        leases: LeaseKeeper | None = None,
    ) -> None:
        """``leases`` shares a lease keeper (a fleet's): the mirror then writes under its
        leases, and closes it on :meth:`stop`."""
        require_postgres(source, "waauth.Mirror")
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
        self._db = Database(
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
            leases = LeaseKeeper(self._db, ttl=lease_ttl)
        self._leases = leases
        self._trackers: dict[str, Tracker] = {}
        # The rescan: folders to scan whole, a few per tick; whether events came since the
        # last one; when the next one is due.
        self._rescans: deque[str] = deque()
        self._active = False
        self._next_sweep = 0.0
        self._tick = min(0.25, max(0.05, window / 4))  # the idle watcher's wake-up
        self._prefix = os.path.join(self._root, "")
        self._lock = Lock()
        self._stop = Event()
        self._worker: Worker | None = None
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

    def start(self) -> None:
        """Open the database, push every folder once, and start watching."""
        self._db.open(migrate=self._migrate)
        to_thread(self._root.mkdir, 0o700, parents=True, exist_ok=True)  # private if new
        try:
            self.flush()
        except BaseException:
            if self._leases is not None:
                self._leases.close()
            self._db.close()
            raise
        self._watching = True  # until the watcher says otherwise (it fails, or is given up)
        self._worker = spawn(self._watch, "waauth-mirror")
        logger.info("mirroring %d session folders under %s", len(self._trackers), self._root)

    def stop(self) -> None:
        """Stop watching and push what is left (the final flush)."""
        self._stop.set()
        try:
            if self._worker is not None:
                join(self._worker, self._window + 5)
            self._watching = False
            self.flush()
        finally:
            try:
                if self._leases is not None:
                    self._leases.close()
            finally:
                self._db.close()

    def flush(self) -> None:
        """Push every change of every folder now; raise StoreUnavailable if a push failed
        because the database is away, and :class:`~waauth.WatcherFailed` if the watcher was
        given up (the push is done first).

        Files that do not parse are left for later (see ``stats().broken``), and sessions that
        cannot be mirrored are reported (``stats().failing``), not an error.
        """
        again = self._push(to_thread(self._folders), retry_failing=True, flush=True)
        failed = {
            name
            for name in again
            if name in self._trackers and self._trackers[name].waiting_for_database
        }
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

    def __enter__(self) -> Mirror:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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

    def _watch(self) -> None:
        """Watch until stopped. A failed watcher is logged, counted and started again with
        backoff; after ``max_watcher_failures`` failures in a row it is given up."""
        in_a_row = 0
        while not self._stop.is_set():
            self._healthy = False
            try:
                self._watch_once()
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
                if self._pause(delay):
                    self._stats = _bump(self._stats, watcher_restarts=1)
        self._watching = False

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped meanwhile; False if stopped."""
        until = time.monotonic() + seconds
        while not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False

    def _watch_once(self) -> None:
        """One watcher's life: push what events (and rescans) mark, until stopped."""
        again: set[str] = set()
        self._next_sweep = float("-inf")  # the first pass scans every folder whole
        self._watching = True
        for changes in watch(
            self._root, stop_event=self._stop, timeout_ms=round(self._tick * 1000)
        ):
            self._healthy = True
            now = time.monotonic()
            events: dict[str, dict[str, float]] = {}
            full: set[str] = set()
            for _change, path in changes:
                where = self._where(path)
                if where is None:  # not under the root as we know it: rescan everything
                    self._next_sweep = float("-inf")
                    continue
                session, name = where
                if not session or name == "":
                    continue  # the root, a hidden entry, a file that is no record
                if name is None:
                    full.add(session)  # the folder itself: made, replaced (a restore), removed
                else:
                    events.setdefault(session, {}).setdefault(name, now)
                self._pending.setdefault(session, now)
            self._active = self._active or bool(changes)
            if now >= self._next_sweep:
                full |= self._sweep(now)
            full |= self._rescan_share()
            names = again | events.keys() | full
            if names:
                again = self._push(sorted(names), events=events, full=full)

    def _where(self, path: str) -> tuple[str, str | None] | None:
        """(session, record name) of an event path: ("", None) for the root itself and hidden
        entries, (session, None) for a session folder itself, (session, "") for an entry that
        is not a record; None for a path that does not map to the root (through a link, say).
        Baileys' ``X.json.tmp`` and ``X.json.bak`` name record ``X.json``."""
        if not path.startswith(self._prefix):
            path = os.path.realpath(path)
            if path == str(self._root):
                return "", None
            if not path.startswith(self._prefix):
                return None
        parts = path[len(self._prefix) :].split(os.sep, 2)
        session = parts[0]
        if not session or session.startswith("."):
            return "", None
        if len(parts) == 1:
            return session, None
        name = parts[1]
        record = _folders.companion_of(name)
        if record is not None:
            return session, record
        return session, name if layout.is_record_file(name) else ""

    def _sweep(self, now: float) -> set[str]:
        """The rescan: queue folders to scan whole (see the module's docstring); return the
        folders to push now: new ones, those whose lease to try again, and on a watcher's first
        pass every one (changes made while no watcher ran raised no event)."""
        folders = to_thread(self._folders)
        if self._next_sweep == float("-inf"):
            self._rescans.clear()
            self._active = False
            self._next_sweep = now + self._rescan_interval
            return set(folders)
        # Copies: in the sync twin other threads add and remove sessions meanwhile.
        trackers = dict(self._trackers)
        known = [trackers[f] for f in folders if f in trackers]
        if self._active:
            rescan = known
        else:
            changed = to_thread(_changed_folders, known)
            share = math.ceil(len(known) / QUIET_ROUNDS)
            rescan = changed + sorted(known, key=lambda t: t.scanned_at)[:share]
        queued = set(self._rescans)
        for tracker in rescan:
            if tracker.session_id not in queued:
                queued.add(tracker.session_id)
                self._rescans.append(tracker.session_id)
        self._active = False
        self._next_sweep = now + self._rescan_interval
        held = {t.session_id for t in trackers.values() if t.held_elsewhere}
        return {f for f in folders if f not in trackers} | held

    def _rescan_share(self) -> set[str]:
        """This tick's folders from the rescan queue: RESCAN_FILES_PER_TICK files' worth."""
        taken: set[str] = set()
        files = 0
        while self._rescans and (not taken or files < RESCAN_FILES_PER_TICK):
            name = self._rescans.popleft()
            tracker = self._trackers.get(name)
            if tracker is not None:
                taken.add(name)
                files += len(tracker.pushed)
        return taken

    def _hold(self, tracker: Tracker) -> bool:
        """Take the session's lease if not held yet; False while another process holds it."""
        if self._leases is None or self._leases.token(tracker.session_id) is not None:
            return True
        if self._leases.is_lost(tracker.session_id):
            return False
        try:
            self._leases.acquire(tracker.session_id)
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

    def _tracker(self, name: str) -> Tracker | None:
        """The tracker of a session folder (made on first sight); None if it is not one."""
        if self._only is not None and name not in self._only:
            return None
        tracker = self._trackers.get(name)
        if tracker is None:
            folder = self._root / name
            if name.startswith(".") or not to_thread(folder.is_dir):
                return None
            try:
                validate_session_id(name)
            except InvalidInput:
                return None
            tracker = self._trackers[name] = Tracker(name, folder)
        return tracker

    def _push(
        self,
        names: list[str],
        *,
        retry_failing: bool = False,
        events: Mapping[str, Mapping[str, float]] | None = None,
        full: Collection[str] = (),
        flush: bool = False,
    ) -> set[str]:
        """Push the given sessions' changes; return those to try again (failed, broken, being
        rotated, with files held back by the throttle, or failing: those wait
        ``failing_retry`` unless ``retry_failing``).

        ``events``: the record names seen changing, per session; ``full``: sessions to scan
        whole; ``flush``: scan every one whole and hold nothing back.
        """
        again: set[str] = set()
        with self._lock:
            trackers: list[Tracker] = []
            for name in names:
                tracker = self._tracker(name)
                if tracker is None:
                    self._pending.pop(name, None)
                    continue
                trackers.append(tracker)
                for file_name, seen in (events or {}).get(name, {}).items():
                    tracker.touch(file_name, seen)
                if flush or name in full:
                    tracker.full = True
            self._push_ready(self._ready(trackers, retry_failing), 0.0 if flush else self._window)
            for tracker in trackers:
                if self._settled(tracker):
                    self._pending.pop(tracker.session_id, None)
                else:
                    again.add(tracker.session_id)
                    self._pending.setdefault(tracker.session_id, time.monotonic())
        return again

    def _ready(self, trackers: list[Tracker], retry_failing: bool) -> list[Tracker]:
        """The sessions to plan now: ours to push (lease held), not waiting to be retried,
        and with something a plan may find."""
        now = time.monotonic()
        ready = []
        for tracker in trackers:
            waiting = tracker.failing is not None and now < tracker.next_try
            if waiting and not retry_failing:
                continue
            if tracker.refused or not self._hold(tracker):
                continue
            if tracker.due(now):
                ready.append(tracker)
        return ready

    def _push_ready(self, todo: list[Tracker], window: float) -> None:
        """Plan and push sessions, a statement's worth at a time (so that the sealed rows of
        a first push of every folder are never all in memory at once)."""
        while todo:
            planned, todo = to_thread(self._plan, todo, window)
            pushes: list[tuple[Tracker, Plan]] = []
            for tracker, plan in planned:
                if isinstance(plan, Exception):  # one session's trouble never stops the others
                    self._fail(tracker, plan)
                elif plan is None:
                    self._recovered(tracker)
                else:
                    pushes.append((tracker, plan))
            for chunk in _chunks(pushes):
                self._commit(chunk)

    def _settled(self, tracker: Tracker) -> bool:
        """Whether a session has nothing left to push for now (or is not ours to push)."""
        if tracker.refused is not None or tracker.held_elsewhere is not None:
            return True
        return not (
            tracker.waiting_for_database
            or tracker.failing
            or tracker.unsettled
            or tracker.broken
            or tracker.hold_until
        )

    def _plan(
        self, trackers: list[Tracker], window: float
    ) -> tuple[list[tuple[Tracker, Plan | Exception | None]], list[Tracker]]:
        """Plan sessions (file I/O and encryption: a worker thread in the async twin) until
        they fill a statement: (each one's plan, or the error that kept its folder from being
        read; the sessions left to plan)."""
        planned: list[tuple[Tracker, Plan | Exception | None]] = []
        rows = size = 0
        for n, tracker in enumerate(trackers):
            if rows >= MAX_WRITE_ROWS or size >= MAX_WRITE_BYTES:
                return planned, trackers[n:]
            try:
                plan = tracker.plan(self._keyring, self._broken_grace, window=window)
            except Exception as exc:  # reported per session by _push
                planned.append((tracker, exc))
                continue
            planned.append((tracker, plan))
            if plan is not None:
                rows, size = rows + len(plan.batch) + 1, size + plan.size
        return planned, []

    def _commit(self, chunk: list[tuple[Tracker, Plan]]) -> None:
        """Write many sessions' plans in one transaction, and account for each session."""
        writes = [
            _records.SessionWrite(
                tracker.session_id,
                plan.batch,
                plan.creds,
                None if self._leases is None else self._leases.token(tracker.session_id),
            )
            for tracker, plan in chunk
        ]
        doing = (
            f"mirror session {chunk[0][0].session_id!r}"
            if len(chunk) == 1
            else f"mirror {len(chunk)} sessions"
        )
        try:
            outcomes = self._db.run(doing, write_sessions(self._db, self._keyring, writes))
        except StoreUnavailable as exc:
            # The database is away: every tick tries again (flush() raises meanwhile).
            for tracker, _plan in chunk:
                tracker.waiting_for_database = True
                tracker.full = True  # what this plan looked at is found again by a full scan
            self._stats = _bump(self._stats, failures=len(chunk), last_error=type(exc).__name__)
            logger.warning(
                "mirror: %s not pushed yet: %s",
                f"session {chunk[0][0].session_id}"
                if len(chunk) == 1
                else f"{len(chunk)} sessions",
                exc,
                extra={"sessions": len(chunk), "error": type(exc).__name__},
            )
            return
        except Exception as exc:  # not an outage (a refusal, a bug): whose is it?
            if len(chunk) == 1:
                tracker, plan = chunk[0]
                self._account(tracker, plan, exc, time.monotonic())
                return
            logger.debug(
                "mirror: a write of %d sessions failed; one by one", len(chunk), exc_info=True
            )
            for item in chunk:
                self._commit([item])
            return
        self._stats = _bump(self._stats, transactions=1)
        pushed_at = time.monotonic()
        for tracker, plan in chunk:
            self._account(tracker, plan, outcomes[tracker.session_id], pushed_at)

    def _account(
        self, tracker: Tracker, plan: Plan, outcome: int | Exception, pushed_at: float
    ) -> None:
        """One session's outcome of a write: pushed, or refused, or failing."""
        name = tracker.session_id
        if isinstance(outcome, LeaseLost):
            if self._leases is not None:
                self._leases.mark_lost(name)
            tracker.refused = str(outcome)
            return
        if isinstance(outcome, IdentityConflict | AccessDenied):  # no retry can fix these
            tracker.refused = str(outcome)
            logger.error(
                "mirror: not mirroring session %s: %s", name, outcome, extra={"session_id": name}
            )
            return
        if isinstance(outcome, Exception):  # stored creds no key opens, a bug...
            tracker.full = True
            self._fail(tracker, outcome)
            return
        tracker.done(plan)
        self._recovered(tracker)
        self._last_push_at = pushed_at
        seen = self._pending.pop(name, None)
        if seen is not None:
            self._lags.append((name, pushed_at - seen))
        if tracker.touched:  # files held back by the throttle: pending since first seen
            self._pending[name] = min(tracker.touched.values())
        self._stats = _bump(
            self._stats,
            pushes=1,
            files_pushed=len(plan.signatures),
            files_deleted=len(plan.deleted),
        )

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

    def _recovered(self, tracker: Tracker) -> None:
        if tracker.failing is not None:
            logger.info(
                "mirror: session %s is mirrored again",
                tracker.session_id,
                extra={"session_id": tracker.session_id},
            )
        tracker.failing = None
        tracker.waiting_for_database = False

    def add_session(self, session_id: str, *, restored: bool = False) -> bool:
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
            return session_id not in self._push([session_id])
        with self._lock:
            tracker = self._tracker(session_id)
            if tracker is not None:
                tracker.pushed = (to_thread(_folders.scan, tracker.folder)).files
                tracker.synced = True
        return True

    def remove_session(self, session_id: str, *, push: bool = True) -> bool:
        """Stop mirroring a folder, after a final push of it unless ``push`` is False.

        False if that push failed: the folder then stays mirrored (nothing it holds is lost),
        and the caller may try again. The session's lease is not freed here.
        """
        if push and session_id in self._push([session_id], flush=True):
            tracker = self._trackers.get(session_id)
            if tracker is None or not tracker.broken:
                return False
        with self._lock:
            if self._only is not None:
                self._only.discard(session_id)
            self._trackers.pop(session_id, None)
        return True


def _changed_folders(trackers: list[Tracker]) -> list[Tracker]:
    """The folders with entries made, removed or renamed since their last whole scan."""
    return [t for t in trackers if _folders.stamp(t.folder) != t.stamp]


def _chunks(pushes: list[tuple[Tracker, Plan]]) -> list[list[tuple[Tracker, Plan]]]:
    """Sessions' plans grouped into statements of at most MAX_WRITE_ROWS rows and
    MAX_WRITE_BYTES bytes (a session larger than that goes alone)."""
    chunks: list[list[tuple[Tracker, Plan]]] = []
    rows = size = 0
    for item in pushes:
        n, b = len(item[1].batch) + 1, item[1].size
        if chunks and rows + n <= MAX_WRITE_ROWS and size + b <= MAX_WRITE_BYTES:
            chunks[-1].append(item)
            rows, size = rows + n, size + b
        else:
            chunks.append([item])
            rows, size = n, b
    return chunks


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
