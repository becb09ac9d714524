"""The live mirror: keeps Baileys session folders mirrored into PostgreSQL while Baileys runs.

Every subfolder of ``root`` is a session (its name is the session id). File events (from
``watchfiles``) mark a session for a push, and a rescan every ``rescan_interval`` seconds is
the safety net for events that never came. Each push writes a session's changed, new and
deleted files in one transaction, at most once per ``window`` seconds per session.

The first push of a session is a full sync: stored files that the folder no longer has are
deleted too. It is guarded like an import: creds of another account than the stored one are
refused (the session is then left alone and reported), and a folder without ``creds.json`` is
never mirrored (a wiped folder must not wipe the database).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg_pool import AsyncConnectionPool
from watchfiles import awatch

from .. import _folders
from .._acompat import AsyncEvent, AsyncLock, AsyncWorker, ajoin, aspawn, ato_thread
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
)
from ..layout import validate_session_id
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from .database import AsyncDatabase
from .lease import DEFAULT_TTL, AsyncLeaseKeeper
from .ops import guarded_write

logger = logging.getLogger("waauth")


class AsyncMirror:
    """Mirror the live session folders under ``root`` into PostgreSQL.

    ``async with AsyncMirror(dsn, ".auth_sessions", keyring=...) as mirror:`` runs it in a
    task until the block ends, then pushes what is left. ``session_ids`` limits it to some
    folders. Files caught half-written are retried each tick and reported after
    ``broken_grace`` seconds.
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
        self._db = AsyncDatabase(
            source,
            schema=schema,
            owner_id=owner_id,
            policy=retry,
            pool_size=2,
            name="waauth:mirror",
        )
        self._root = Path(root)
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
        self._worker = aspawn(self._watch, "waauth-mirror")
        logger.info("mirroring %d session folders under %s", len(self._trackers), self._root)

    async def stop(self) -> None:
        """Stop watching and push what is left (the final flush)."""
        self._stop.set()
        try:
            if self._worker is not None:
                await ajoin(self._worker, self._window + 5)
            await self.flush()
        finally:
            try:
                if self._leases is not None:
                    await self._leases.close()
            finally:
                await self._db.close()

    async def flush(self) -> None:
        """Push every change of every folder now; raise StoreUnavailable if a push failed.

        Files that do not parse are left for later (see ``stats().broken``), not an error.
        """
        again = await self._push(await ato_thread(self._folders))
        failed = {name for name in again if not self._trackers[name].broken}
        if failed:
            raise StoreUnavailable(
                f"mirror: {len(failed)} sessions could not be pushed ({', '.join(sorted(failed))})"
            )

    def stats(self) -> MirrorStats:
        """What the mirror has done so far."""
        broken = tuple(
            sorted(f"{t.session_id}/{n}" for t in self._trackers.values() for n in t.broken)
        )
        refused = tuple(
            sorted(f"{t.session_id}: {t.refused}" for t in self._trackers.values() if t.refused)
        )
        since = None if self._last_push_at is None else time.monotonic() - self._last_push_at
        held = tuple(
            sorted(
                f"{t.session_id}: {t.held_elsewhere}"
                for t in self._trackers.values()
                if t.held_elsewhere
            )
        )
        return MirrorStats(
            held_elsewhere=held,
            sessions=len(self._trackers),
            pushes=self._stats.pushes,
            files_pushed=self._stats.files_pushed,
            files_deleted=self._stats.files_deleted,
            failures=self._stats.failures,
            broken=broken,
            refused=refused,
            last_push=since,
            last_error=self._stats.last_error,
        )

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
        dirty: set[str] = set()
        # Changes made between start()'s flush and the watcher starting raise no event: the
        # first pass (the watcher is running by then) rescans everything.
        last_rescan = float("-inf")
        async for changes in awatch(
            self._root,
            stop_event=self._stop,
            debounce=50,
            step=50,
            rust_timeout=max(50, int(self._window * 1000)),
            yield_on_timeout=True,
            watch_filter=None,
        ):
            for _change, path in changes:
                parts = Path(path).relative_to(self._root).parts
                if parts and not parts[0].startswith("."):
                    dirty.add(parts[0])
            now = time.monotonic()
            if now - last_rescan >= self._rescan_interval:
                dirty.update(await ato_thread(self._folders))
                last_rescan = now
            due = {s for s in dirty if now - self._last_push.get(s, float("-inf")) >= self._window}
            if due:
                # Failed pushes, and folders with files caught half-written, go again.
                dirty -= due - await self._push(sorted(due))

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
            logger.error("mirror: not mirroring session %s: %s", tracker.session_id, exc)
            return False
        except LeaseHeld as exc:
            if tracker.held_elsewhere is None:
                logger.warning("mirror: not mirroring %s for now: %s", tracker.session_id, exc)
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

    async def _push(self, names: list[str]) -> set[str]:
        """Push the given sessions' changes; return those to try again (failed or broken)."""
        again: set[str] = set()
        async with self._lock:
            for name in names:
                tracker = await self._tracker(name)
                if tracker is None or tracker.refused or not await self._hold(tracker):
                    continue
                if not await self._push_one(tracker) or tracker.broken:
                    again.add(name)
        return again

    async def _push_one(self, tracker: Tracker) -> bool:
        """Push one session's changes; False if it must be tried again."""
        name = tracker.session_id
        plan = await ato_thread(tracker.plan, self._keyring, self._broken_grace)
        if plan is None:
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
            logger.error("mirror: not mirroring session %s: %s", name, exc)
            return True
        except WaauthError as exc:
            self._stats = _bump(self._stats, failures=1, last_error=type(exc).__name__)
            logger.warning("mirror: %s; will retry", exc)
            return False
        tracker.done(plan)
        self._last_push[name] = self._last_push_at = time.monotonic()
        self._stats = _bump(
            self._stats,
            pushes=1,
            files_pushed=len(plan.signatures),
            files_deleted=len(plan.deleted),
        )
        return True

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
                tracker.pushed = await ato_thread(_folders.scan, tracker.folder)
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


def _bump(stats: MirrorStats, last_error: str | None = None, **add: int) -> MirrorStats:
    changes: dict[str, Any] = {k: getattr(stats, k) + v for k, v in add.items()}
    if last_error is not None:
        changes["last_error"] = last_error
    return replace(stats, **changes)
