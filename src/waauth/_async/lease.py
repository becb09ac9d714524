"""One runner per session: leases with a heartbeat, an expiry and a fencing token.

Two processes running one WhatsApp session get both disconnected ("Stream Errored
(conflict)") and overwrite each other's Signal state. A lease names the one process that may
run a session. It expires ``ttl`` seconds after its last heartbeat (by the database's clock),
so a crashed holder blocks a session for at most that long, and a clean close frees it at once.

Every write carries the holder's token and is refused in its own transaction once the lease
has passed to someone else; the stale writer gets :class:`~waauth.LeaseLost` and stops. Only
plain statements are used (no session-level advisory locks, no prepared statements), so leases
work behind PgBouncer in transaction mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

from psycopg import AsyncConnection

from .. import _queries
from .._acompat import AsyncCondition, AsyncWorker, acondition_wait, ajoin, aspawn
from ..errors import AccessDenied, ConfigurationError, LeaseHeld, LeaseLost
from ..layout import validate_session_id
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from .database import AsyncDatabase, AsyncSource, Operation

logger = logging.getLogger("waauth.lease")

DEFAULT_TTL = 30.0
"""Seconds a lease outlives its last heartbeat: how long a crashed holder blocks a session."""

_HOST = socket.gethostname()


class AsyncLeaseKeeper:
    """Takes, renews and frees the leases of one process, with one heartbeat for all."""

    def __init__(self, db: AsyncDatabase, *, ttl: float = DEFAULT_TTL) -> None:
        if not isinstance(ttl, int | float) or ttl <= 0:
            raise ConfigurationError(f"lease ttl must be a positive number of seconds, not {ttl!r}")
        self._db = db
        self.ttl = float(ttl)
        self._tokens: dict[str, int] = {}
        self._lost: set[str] = set()
        self._cond = AsyncCondition()
        self._stopping = False
        self._worker: AsyncWorker | None = None

    def token(self, session_id: str) -> int | None:
        """The token of a lease held; None if not held (or lost)."""
        return None if session_id in self._lost else self._tokens.get(session_id)

    def held(self) -> list[str]:
        """Sessions whose lease this process holds."""
        # A copy first: in the sync twin other threads take and free leases meanwhile.
        return [s for s in list(self._tokens) if s not in self._lost]

    def is_lost(self, session_id: str) -> bool:
        """Whether the lease of ``session_id`` passed to another holder while held."""
        return session_id in self._lost

    def check(self, session_id: str) -> None:
        """Raise :class:`~waauth.LeaseLost` if the lease of ``session_id`` passed to another."""
        if session_id in self._lost:
            raise LeaseLost(
                f"session {session_id!r}: the lease passed to another holder; this process "
                "no longer writes it"
            )

    def mark_lost(self, session_id: str) -> None:
        if session_id in self._tokens and session_id not in self._lost:
            self._lost.add(session_id)
            logger.error(
                "session %s: the lease passed to another holder; stopped writing",
                session_id,
                extra={"session_id": session_id},
            )

    async def acquire(self, session_id: str, *, wait: float = 0.0) -> int:
        """Take the lease; raise :class:`~waauth.LeaseHeld` naming the holder if a live one has
        it after ``wait`` seconds, and :class:`~waauth.AccessDenied` (taking nothing) if the
        session is another owner's than the database's ``owner_id``."""
        validate_session_id(session_id)
        deadline = time.monotonic() + max(0.0, wait)
        params = {
            "session_id": session_id,
            "owner": self._db.owner_id,
            "host": _HOST,
            "pid": os.getpid(),
            "ttl": self.ttl,
        }
        while True:
            token, holder = await self._db.run(
                f"take the lease of session {session_id!r}", self._take(params)
            )
            if token is not None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise held_error(session_id, holder)
            await asyncio.sleep(min(1.0, left))
        self._tokens[session_id] = token
        self._lost.discard(session_id)
        if self._worker is None:
            self._worker = aspawn(self._heartbeat, "waauth-lease-heartbeat")
        logger.info(
            "session %s: lease taken (token %d, ttl %.0f s)",
            session_id,
            token,
            self.ttl,
            extra={"session_id": session_id, "token": token},
        )
        return token

    def _take(self, params: dict[str, Any]) -> Operation[tuple[int | None, tuple[Any, ...] | None]]:
        async def take(conn: AsyncConnection[Any]) -> tuple[int | None, tuple[Any, ...] | None]:
            cur = await conn.execute(self._db.sql(_queries.ACQUIRE_LEASE), params)
            row = await cur.fetchone()
            assert row is not None
            token, refused = row
            if refused:
                raise AccessDenied(f"session {params['session_id']!r} belongs to another owner")
            if token is not None:
                return int(token), None
            cur = await conn.execute(self._db.sql(_queries.LEASE_HOLDER), params)
            return None, await cur.fetchone()

        return take

    async def release(self, session_id: str) -> None:
        """Free the lease at once (if still ours)."""
        token = self._tokens.pop(session_id, None)
        lost = session_id in self._lost
        self._lost.discard(session_id)
        if token is None or lost:
            return
        params = {"session_id": session_id, "token": token}

        async def release(conn: AsyncConnection[Any]) -> None:
            await conn.execute(self._db.sql(_queries.RELEASE_LEASE), params)

        await self._db.run(f"free the lease of session {session_id!r}", release)
        logger.info("session %s: lease freed", session_id, extra={"session_id": session_id})

    async def close(self) -> None:
        """Free every lease and stop the heartbeat."""
        async with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            await ajoin(self._worker, self._db.policy.connect_timeout + 1)
        for session_id in list(self._tokens):
            await self.release(session_id)

    async def _heartbeat(self) -> None:
        interval = self.ttl / 3
        while True:
            async with self._cond:
                if not self._stopping:
                    await acondition_wait(self._cond, interval)
                if self._stopping:
                    return
            held = self.held()
            if not held:
                continue
            await self._renew(held)

    async def _renew(self, held: list[str]) -> None:
        tokens = dict(self._tokens)  # a snapshot: a lease freed meanwhile is simply not renewed
        held = [s for s in held if s in tokens]
        params = {"sessions": held, "tokens": [tokens[s] for s in held], "ttl": self.ttl}

        async def renew(conn: AsyncConnection[Any]) -> set[str]:
            cur = await conn.execute(self._db.sql(_queries.RENEW_LEASES), params)
            return {row[0] for row in await cur.fetchall()}

        # A heartbeat that cannot reach the database must not outlive the lease it renews.
        policy = RetryPolicy(
            budget=self.ttl / 3,
            initial_delay=self._db.policy.initial_delay,
            max_delay=self._db.policy.max_delay,
            connect_timeout=min(self._db.policy.connect_timeout, self.ttl / 3),
        )
        try:
            renewed = await self._db.run("renew leases", renew, policy=policy)
        except Exception as exc:  # the heartbeat must keep beating
            # Unreachable: writes are fenced anyway; the next beat tries again.
            logger.warning("lease heartbeat failed (%s); retrying", type(exc).__name__)
            return
        for session_id in held:
            # Freed and taken again (a new token) while this beat ran: not lost.
            if session_id not in renewed and self._tokens.get(session_id) == tokens[session_id]:
                self.mark_lost(session_id)

    async def claim(self, limit: int, *, exclude: Iterable[str] = (), order: str = "") -> list[str]:
        """Take up to ``limit`` leases of active sessions that no live process holds.

        One set-based statement (race-free: two processes claiming at once never get the same
        session), scoped to the database's owner, never a session in ``exclude``. ``order``
        seeds the order in which free sessions are tried (give each process its own). Returns
        the sessions taken; their leases are then held and renewed like acquired ones.
        """
        if limit <= 0:
            return []
        params = {
            "limit": limit,
            "exclude": sorted(set(exclude)),
            "replica": order,
            "owner": self._db.owner_id,
            "host": _HOST,
            "pid": os.getpid(),
            "ttl": self.ttl,
        }

        async def claim(conn: AsyncConnection[Any]) -> list[tuple[str, int]]:
            cur = await conn.execute(self._db.sql(_queries.CLAIM_LEASES), params)
            return [(str(row[0]), int(row[1])) for row in await cur.fetchall()]

        taken = await self._db.run("claim sessions", claim)
        for session_id, token in taken:
            self._tokens[session_id] = token
            self._lost.discard(session_id)
        if taken and self._worker is None:
            self._worker = aspawn(self._heartbeat, "waauth-lease-heartbeat")
        if taken:
            logger.info("claimed %d sessions (ttl %.0f s)", len(taken), self.ttl)
        return [session_id for session_id, _ in taken]

    async def renew_now(self) -> list[str]:
        """Renew every held lease at once; return the sessions whose lease turned out lost."""
        held = self.held()
        if held:
            await self._renew(held)
        return [s for s in held if s in self._lost]


class AsyncLease:
    """The lease of one session, on its own: ``async with AsyncLease(dsn, "user_1") as lease:``.

    For a process that runs a session without a waauth state, e.g. a Python supervisor of a
    Node Baileys process. Raises :class:`~waauth.LeaseHeld` on entry if a live process holds it
    (after waiting up to ``wait`` seconds), and :class:`~waauth.AccessDenied` if the session
    is another owner's than ``owner_id``; ``lease.check()`` raises
    :class:`~waauth.LeaseLost` once it passed to someone else.
    """

    def __init__(
        self,
        source: AsyncSource,
        session_id: str,
        *,
        ttl: float = DEFAULT_TTL,
        wait: float = 0.0,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy = DEFAULT_POLICY,
        migrate: bool = True,
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self._db = AsyncDatabase(
            source,
            schema=schema,
            owner_id=owner_id,
            policy=retry,
            pool_size=1,
            name="waauth:lease",
        )
        self._keeper = AsyncLeaseKeeper(self._db, ttl=ttl)
        self._wait = wait
        self._migrate = migrate

    @property
    def token(self) -> int | None:
        """The fencing token while held."""
        return self._keeper.token(self.session_id)

    @property
    def lost(self) -> bool:
        """Whether the lease passed to another holder while we held it."""
        return self._keeper.is_lost(self.session_id)

    def check(self) -> None:
        """Raise :class:`~waauth.LeaseLost` if the lease passed to another holder."""
        self._keeper.check(self.session_id)

    async def acquire(self) -> None:
        await self._db.open(migrate=self._migrate)
        try:
            await self._keeper.acquire(self.session_id, wait=self._wait)
        except BaseException:
            await self._db.close()
            raise

    async def release(self) -> None:
        try:
            await self._keeper.close()
        finally:
            await self._db.close()

    async def __aenter__(self) -> AsyncLease:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        state = "lost" if self.lost else ("held" if self.token is not None else "not held")
        return f"<{type(self).__name__} session={self.session_id!r} {state}>"


async def alease_holder(db: AsyncDatabase, session_id: str) -> tuple[Any, ...] | None:
    """(host, pid, since, seconds left) of a live holder of the session's lease, or None."""

    async def look(conn: AsyncConnection[Any]) -> tuple[Any, ...] | None:
        cur = await conn.execute(db.sql(_queries.LEASE_HOLDER), {"session_id": session_id})
        return await cur.fetchone()

    return await db.run(f"look up the lease of session {session_id!r}", look)


def held_error(session_id: str, holder: tuple[Any, ...] | None) -> LeaseHeld:
    if holder is None:
        return LeaseHeld(f"session {session_id!r} is held by another process")
    host, pid, since, left = holder
    when = since.isoformat(timespec="seconds") if isinstance(since, datetime) else str(since)
    return LeaseHeld(
        f"session {session_id!r} is held by {host} pid {pid} since {when} "
        f"(its lease expires in {left:.0f} s unless renewed)",
        host=host,
        pid=pid,
        since=since,
    )
