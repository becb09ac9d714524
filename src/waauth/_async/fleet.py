"""Replicas: N processes share the stored sessions, each session run by exactly one of them.

A fleet replica claims stored sessions that no live process holds (one set-based statement
that takes their leases), restores each claimed one into ``root/<id>/``, mirrors it while it
holds it, and tells the bot: ``on_claimed(session_id, folder)``, start Baileys on it;
``on_lost(session_id)``, stop it. Live replicas are known from their heartbeats; each holds
about its share, ``ceil(sessions / live replicas)``, so a new replica gets work when the others
hand over their surplus (stop, final push, free the lease; then the newcomer claims it), and a
dead replica's sessions are claimed by the others once its leases expire.

Never two holders: that is the lease's guarantee (its fencing token refuses a stale writer's
writes in their own transaction); the fleet only decides who asks for which session.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from .. import _folders, _queries
from .._acompat import AsyncCondition, AsyncWorker, acondition_wait, ajoin, aspawn, ato_thread
from .._backend import require_postgres
from ..encryption import Keyring
from ..errors import ConfigurationError, WaauthError
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from .database import AsyncDatabase
from .lease import DEFAULT_TTL, AsyncLeaseKeeper
from .mirror import AsyncMirror
from .state import amaterialize

logger = logging.getLogger("waauth.fleet")

DEFAULT_CLAIM_INTERVAL = 5.0
"""Seconds between two claim rounds: a dead replica's sessions run again within the lease TTL
plus this (plus the time to restore them)."""

DEFAULT_START_RATE = 5.0
"""Sessions started per second: reconnections are spaced, as WhatsApp likes them."""

PATIENCE = 10
"""Claim rounds a surplus waits for quiet sessions; then the least busy are handed over."""

RESTORE_BACKOFF = 60.0
"""Seconds a session that could not be restored here is left to other replicas."""

Claimed = Callable[[str, Path], Awaitable[None]]
Lost = Callable[[str], Awaitable[None]]


class AsyncFleet:
    """One replica of a fleet: claims its share of the stored sessions and runs them.

    ``async with AsyncFleet(dsn, ".auth_sessions", keyring=..., on_claimed=start,
    on_lost=stop):`` claims, restores and mirrors in a task until the block ends; then it
    calls ``on_lost`` for every session it holds, pushes what is left and frees the leases (a
    rolling deploy: the next replica claims them at once). Only sessions with creds stored
    (status ``active``) are claimed; with ``owner_id``, only that owner's.

    ``on_claimed(session_id, folder)`` is called once the folder is restored and mirrored;
    ``on_lost(session_id)`` when the session goes (handed over, lease lost, or the fleet
    stops). When a handover calls ``on_lost``, the folder's final push comes after it returns:
    stop Baileys before returning. A session whose lease passed to another holder (this
    process was paused past ``lease_ttl``) gets ``on_lost`` too, and nothing of it is written
    again from here.

    Each replica holds at most ``ceil(sessions / live replicas)`` (and at most
    ``max_sessions``), and hands over sessions above that plus ``slack`` (or above it while
    another live replica holds fewer than its share), choosing those whose
    folder has been quiet for ``quiet`` seconds (default: one claim interval; after
    ``PATIENCE`` rounds without enough quiet ones, the least busy). At most ``start_rate``
    sessions are started per second (None: no limit).
    """

    def __init__(
        self,
        source: str | AsyncConnectionPool[Any],
        root: str | os.PathLike[str],
        *,
        keyring: Keyring,
        on_claimed: Claimed | None = None,
        on_lost: Lost | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy = DEFAULT_POLICY,
        lease_ttl: float = DEFAULT_TTL,
        claim_interval: float = DEFAULT_CLAIM_INTERVAL,
        max_sessions: int | None = None,
        slack: int = 1,
        start_rate: float | None = DEFAULT_START_RATE,
        quiet: float | None = None,
        window: float = 1.0,
        rescan_interval: float = 30.0,
        migrate: bool = True,
    ) -> None:
        require_postgres(source, "waauth.AsyncFleet")
        if not isinstance(claim_interval, int | float) or claim_interval <= 0:
            raise ConfigurationError(f"claim_interval must be > 0 seconds, not {claim_interval!r}")
        if max_sessions is not None and max_sessions < 1:
            raise ConfigurationError(f"max_sessions must be at least 1, not {max_sessions!r}")
        if slack < 0 or (start_rate is not None and start_rate <= 0):
            raise ConfigurationError("slack must be >= 0 and start_rate > 0 (or None)")
        self._conninfo: str | None = None
        self._own_pool: AsyncConnectionPool[Any] | None = None
        if isinstance(source, str):
            # One small pool for all this replica does (claims, heartbeats, mirror, restores),
            # however many sessions it runs.
            self._conninfo = source
            source = self._own_pool = AsyncConnectionPool(
                source,
                min_size=1,
                max_size=4,
                open=False,
                name="waauth:fleet",
                timeout=retry.connect_timeout,
                check=AsyncConnectionPool.check_connection,
                # No server-side prepared statements: they break behind PgBouncer.
                kwargs={"autocommit": True, "prepare_threshold": None},
            )
        self._db = AsyncDatabase(
            source, schema=schema, owner_id=owner_id, policy=retry, name="waauth:fleet"
        )
        self._leases = AsyncLeaseKeeper(self._db, ttl=lease_ttl)
        # Absolute: the folders handed to the bot stay valid whatever its working directory.
        root = Path(root).absolute()
        self._mirror = AsyncMirror(
            source,
            root,
            keyring=keyring,
            session_ids=[],
            owner_id=owner_id,
            schema=schema,
            retry=retry,
            window=window,
            rescan_interval=rescan_interval,
            migrate=False,
            leases=self._leases,
        )
        self._source = source
        self._root = Path(root)
        self._keyring = keyring
        self._on_claimed = on_claimed
        self._on_lost = on_lost
        self._migrate = migrate
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This replica's name in the ``replicas`` table (host, pid and a random part)."""
        self.claim_interval = float(claim_interval)
        self.max_sessions = max_sessions
        self.slack = slack
        self.start_rate = start_rate
        self.quiet = self.claim_interval if quiet is None else quiet
        self._running: dict[str, Path] = {}
        self._failed: dict[str, float] = {}
        self._replicas = 1
        self._surplus_rounds = 0
        self._sessions = 0
        self._cond = AsyncCondition()
        self._stopping = False
        self._worker: AsyncWorker | None = None

    # -- what the bot sees ---------------------------------------------------------------------

    def held(self) -> dict[str, Path]:
        """The sessions this replica runs now (claimed, restored, not lost), and their folders."""
        return dict(self._running)

    def share(self) -> int:
        """How many sessions this replica aims to hold at the last claim round."""
        fair = math.ceil(self._sessions / max(1, self._replicas))
        return fair if self.max_sessions is None else min(fair, self.max_sessions)

    @property
    def replicas(self) -> int:
        """Live replicas (this one included) at the last claim round."""
        return self._replicas

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the schema, start mirroring, join the replicas; claiming starts one claim
        interval later."""
        if self._conninfo is not None:
            # A direct first contact: a server that refuses us says why at once (the pool
            # would only time out).
            first = AsyncDatabase(
                self._conninfo, schema=self._db.schema, policy=self._db.policy, pool_size=None
            )
            await first.open(migrate=self._migrate)
        if self._own_pool is not None:
            await self._own_pool.open(wait=False)
        try:
            await self._db.open(migrate=self._migrate and self._conninfo is None)
            await self._mirror.start()
        except BaseException:
            await self._close_pool()
            raise
        try:
            # Register only: the first claim comes one interval later, so that replicas
            # started together count each other and each claims its share, not all.
            await self._db.run("fleet heartbeat", self._beat)
        except WaauthError as exc:
            logger.warning("fleet: first heartbeat failed (%s); retrying", exc)
        self._worker = aspawn(self._loop, "waauth-fleet")
        logger.info("fleet replica %s started under %s", self.replica_id, self._root)

    async def stop(self) -> None:
        """Stop claiming; ``on_lost`` for every session held; final push; free the leases."""
        async with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            await ajoin(self._worker, self.claim_interval + self._db.policy.budget + 5)
        try:
            for session_id in list(self._running):
                await self._tell_lost(session_id)
            self._running.clear()
            # The mirror's stop pushes every folder once more, then frees every lease.
            await self._mirror.stop()
        finally:
            try:
                await self._db.run("leave the fleet", self._leave)
            except WaauthError as exc:
                logger.warning("fleet: could not leave the replicas table (%s)", exc)
            await self._close_pool()
        logger.info("fleet replica %s stopped", self.replica_id)

    async def _close_pool(self) -> None:
        await self._db.close()
        if self._own_pool is not None:
            await self._own_pool.close()

    async def __aenter__(self) -> AsyncFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.replica_id} holds {len(self._running)} of "
            f"{self._sessions} sessions, {self._replicas} replicas>"
        )

    # -- the claim loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            async with self._cond:
                if not self._stopping:
                    await acondition_wait(self._cond, self.claim_interval)
                if self._stopping:
                    return
            try:
                await self._round()
            except Exception as exc:  # the loop must keep claiming
                logger.warning("fleet: claim round failed (%s); retrying", type(exc).__name__)

    async def _round(self) -> None:
        """One claim round: drop what was lost, beat, then hand over or claim."""
        # Renewed first: a replica resumed after a pause learns here what it lost meanwhile.
        await self._leases.renew_now()
        for session_id in list(self._running):
            if self._leases.is_lost(session_id):
                await self._drop_lost(session_id)
        self._replicas, self._sessions, fewest = await self._db.run("fleet heartbeat", self._beat)
        share = self.share()
        held = len(self._running)
        # Above the share plus slack, or above it while another replica is below it (and
        # nothing may be free for it): hand over the surplus.
        surplus = held > share + self.slack or (held > share and fewest < share)
        per_round = (
            len(self._running) + self._sessions
            if self.start_rate is None
            else max(1, math.ceil(self.start_rate * self.claim_interval))
        )
        if surplus:
            self._surplus_rounds += 1
            await self._hand_over(min(per_round, len(self._running) - share))
            return
        self._surplus_rounds = 0
        if len(self._running) < share:
            await self._claim(min(per_round, share - len(self._running)))

    async def _claim(self, wanted: int) -> None:
        now = time.monotonic()
        self._failed = {s: until for s, until in self._failed.items() if until > now}
        taken = await self._leases.claim(
            wanted, exclude=[*self._running, *self._failed], order=self.replica_id
        )
        restored = await self._restore(taken)
        for session_id in taken:
            folder = restored.get(session_id)
            if folder is None:
                continue
            if self._stopping:
                await self._mirror.remove_session(session_id, push=False)
                await self._leases.release(session_id)
                continue
            started = time.monotonic()
            self._running[session_id] = folder
            if self._on_claimed is not None:
                try:
                    await self._on_claimed(session_id, folder)
                except Exception:
                    logger.exception("fleet: on_claimed failed for session %s", session_id)
            if self.start_rate is not None:
                # Staggered starts; the lease heartbeat runs on its own meanwhile.
                pause = 1 / self.start_rate - (time.monotonic() - started)
                async with self._cond:
                    if pause > 0 and not self._stopping:
                        await acondition_wait(self._cond, pause)

    async def _restore(self, taken: list[str]) -> dict[str, Path]:
        """Write the claimed sessions' folders from the database and start mirroring them.

        All in one pass; if that fails, one by one, so that one bad session never stops the
        rest (it is freed and left to other replicas for a while).
        """
        if not taken:
            return {}
        try:
            written = await self._materialize(taken)
        except WaauthError:
            written = {}
            for session_id in taken:
                try:
                    written.update(await self._materialize([session_id]))
                except WaauthError as exc:
                    logger.error("fleet: cannot restore session %s: %s", session_id, exc)
        for session_id in taken:
            if session_id in written:
                await self._mirror.add_session(session_id, restored=True)
            else:
                self._failed[session_id] = time.monotonic() + RESTORE_BACKOFF
                await self._leases.release(session_id)
        return written

    async def _materialize(self, session_ids: list[str]) -> dict[str, Path]:
        report = await amaterialize(
            self._source,
            self._root,
            keyring=self._keyring,
            session_ids=session_ids,
            owner_id=self._db.owner_id,
            schema=self._db.schema,
            retry=self._db.policy,
        )
        return report.written

    async def _hand_over(self, count: int) -> None:
        """Free ``count`` sessions whose folders are quiet, for replicas below their share."""
        # A busy session may never be quiet: after PATIENCE rounds, the least busy go anyway.
        anyway = self._surplus_rounds > PATIENCE
        quiet = await ato_thread(self._quiet_sessions, anyway)
        for session_id in quiet[:count]:
            await self._tell_lost(session_id)
            if not await self._mirror.remove_session(session_id):
                # The final push failed: keep the lease, so nothing is lost; try again later.
                logger.warning("fleet: final push of session %s failed; kept", session_id)
                continue
            self._running.pop(session_id, None)
            await self._leases.release(session_id)
            logger.info("fleet: handed session %s over", session_id)

    async def _drop_lost(self, session_id: str) -> None:
        """The lease passed to another holder: tell the bot; nothing more is written from here."""
        if session_id in self._running:
            await self._tell_lost(session_id)
            self._running.pop(session_id, None)
        await self._mirror.remove_session(session_id, push=False)
        await self._leases.release(session_id)  # lost: only forgets it locally

    async def _tell_lost(self, session_id: str) -> None:
        if self._on_lost is None:
            return
        try:
            await self._on_lost(session_id)
        except Exception:
            logger.exception("fleet: on_lost failed for session %s", session_id)

    def _quiet_sessions(self, anyway: bool) -> list[str]:
        """Held sessions whose folder has not changed for ``quiet`` seconds (``anyway``: all),
        quietest first."""
        now = time.time()  # file times are wall-clock times
        changed = {s: _last_change(folder) for s, folder in self._running.items()}
        quiet = [s for s, at in changed.items() if anyway or now - at >= self.quiet]
        return sorted(quiet, key=lambda s: changed[s])

    async def _beat(self, conn: AsyncConnection[Any]) -> tuple[int, int, int]:
        params = {
            "replica": self.replica_id,
            "owner": self._db.owner_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "ttl": self._leases.ttl,
        }
        cur = await conn.execute(self._db.sql(_queries.REPLICA_BEAT), params)
        row = await cur.fetchone()
        assert row is not None
        fewest = len(self._running) if row[2] is None else int(row[2])
        return max(1, int(row[0])), int(row[1]), fewest

    async def _leave(self, conn: AsyncConnection[Any]) -> None:
        await conn.execute(self._db.sql(_queries.REPLICA_LEAVE), {"replica": self.replica_id})


def _last_change(folder: Path) -> float:
    """When a record file of the folder last changed (its newest mtime); 0 for none."""
    return max((mtime for mtime, _size in _folders.scan(folder).files.values()), default=0) / 1e9
