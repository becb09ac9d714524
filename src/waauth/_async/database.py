"""Where the database is and how to talk to it: connections, retries, owner scope.

An :class:`AsyncDatabase` is made from a conninfo string, from the caller's pool (used, never
closed), or from another storage back end (a :class:`~waauth._backend.Backend`, such as
``waauth.testing.InMemoryStore``). The databases of one process (one event loop, in async
code) opened on the same conninfo share one pool, refcounted: made by the first to open, closed
by the last to close, and bounded by the largest ``pool_size`` asked for, however many sessions
use it. A bot with a thousand sessions then holds a handful of connections, not a thousand.

:meth:`AsyncDatabase.run` is the one boundary through which every statement passes: it takes a
connection, retries what the retry policy says is retryable (each attempt on a fresh
connection), and turns driver errors into waauth errors, keeping the driver's as ``__cause__``.
Everything above it is the same code whatever the back end.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast
from weakref import WeakKeyDictionary

import backoff
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .. import _hooks, retry
from .._acompat import AsyncLock, apool_scope
from .._backend import Backend
from .._queries import SET_OWNER
from ..config import check_conninfo
from ..errors import ConfigurationError, WaauthError
from ..schema import DEFAULT_SCHEMA, check_schema_name, check_version, render
from .migrations import acurrent_version, amigrate

logger = logging.getLogger("waauth.database")

T = TypeVar("T")

Operation = Callable[[AsyncConnection[Any]], Awaitable[T]]

AsyncSource = str | AsyncConnectionPool[Any] | Backend
"""Where a database is: a conninfo string, a pool of the caller's, or another back end."""

CHECK_AFTER_IDLE: Final = 5.0
"""Seconds a pooled connection may sit idle and still be handed out without a check.

Checking every checkout costs a round trip on every call (a third of a small ``keys.get``). A
connection used moments ago is almost surely alive; one that is not (the server restarted in
between) fails its statement as a lost connection does: the attempt is retried on another
connection, and the pool's idle connections are checked at once (see ``_attempt``)."""


class AsyncDatabase:
    """A conninfo or a pool, the schema to use, and the policy for retrying."""

    def __init__(
        self,
        source: AsyncSource,
        *,
        schema: str = DEFAULT_SCHEMA,
        owner_id: str | None = None,
        policy: retry.RetryPolicy = retry.DEFAULT_POLICY,
        pool_size: int | None = 4,
        name: str = "waauth",
    ) -> None:
        """``pool_size=None`` opens a new connection per operation instead of keeping a pool."""
        self.schema = check_schema_name(schema)
        self.owner_id = owner_id
        self.policy = policy
        self._pool_size = pool_size
        self._name = name
        self._conninfo: str | None = None
        self._pool: AsyncConnectionPool[Any] | None = None
        self.backend: Backend | None = None
        self._shared: _Shared | None = None
        self._secrets: tuple[str, ...] = ()
        if isinstance(source, str):
            # A malformed address fails here, at once: no retry can fix it.
            self._conninfo = check_conninfo(source)
            self._secrets = _passwords(source)
        elif isinstance(source, AsyncConnectionPool):
            self._pool = source
        elif isinstance(source, Backend):
            self.backend = source
        else:
            raise ConfigurationError(
                "expected a conninfo string or a psycopg_pool.AsyncConnectionPool, "
                f"not {type(source).__name__}"
            )
        if owner_id is not None and (not isinstance(owner_id, str) or not owner_id):
            raise ConfigurationError("owner_id must be a non-empty string (or None)")

    def sql(self, statement: str) -> str:
        """A statement with this database's schema filled in."""
        return render(statement, self.schema)

    async def open(self, *, migrate: bool) -> None:
        """Check (or bring up to date) the schema; for a conninfo, join (or make) its pool.

        The first contact with a conninfo goes through a direct connection, so that a server
        that refuses us (unknown database, bad password) is reported at once instead of as a
        pool time-out. A schema is prepared once per shared pool, not once per session.
        """
        prepare = self._prepare_schema(migrate)
        doing = f"open schema {self.schema!r}"
        if self._conninfo is None or not self._pool_size:  # a pool of the caller's, a back end
            await self.run(doing, prepare)
            return
        self._shared = shared = await _pools().join(
            self, self._conninfo, self._pool_size, doing, prepare
        )
        self._pool = shared.pool
        if self.schema in shared.schemas:
            return
        try:
            await self.run(doing, prepare)
        except BaseException:
            await self.close()
            raise
        shared.schemas.add(self.schema)

    def _new_pool(self, conninfo: str, size: int) -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=size,
            open=False,
            name=self._name,  # the first user's; the pool serves every user of the conninfo
            timeout=self.policy.connect_timeout,
            # A restarted server leaves stale idle connections: those idle for a while are
            # checked before they are handed out (the others only after an error).
            # (Stamped on return by _connection, not by a `reset` hook: with one, the pool
            # returns every connection through a worker, a thread hop per statement in the sync
            # twin, and the next statement finds it not back yet: 4 ms over R's 10 reads.)
            configure=_idle.stamp,
            check=_idle.check,
            # No server-side prepared statements: they break behind PgBouncer.
            kwargs={"autocommit": True, "prepare_threshold": None},
        )

    def _prepare_schema(self, upgrade: bool) -> Operation[None]:
        async def prepare(conn: AsyncConnection[Any]) -> None:
            if self.backend is not None:
                self.backend.prepare(self.schema, migrate=upgrade)
            elif upgrade:
                await amigrate(conn, self.schema)
            else:
                check_version(await acurrent_version(conn, self.schema), self.schema)

        return prepare

    async def close(self) -> None:
        """Leave the shared pool (the last user closes it); a caller's pool stays open."""
        shared, self._shared, self._pool = self._shared, None, None
        if shared is not None:
            await _pools().leave(shared)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        if self._pool is not None:
            async with self._pool.connection(timeout=self.policy.connect_timeout) as conn:
                yield conn
                _idle.mark(conn)  # not after an error: the pool's check looks at it next time
        elif self._conninfo is not None:
            async with await AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=max(1, round(self.policy.connect_timeout)),
            ) as conn:
                yield conn
        elif self.backend is not None:
            async with self.backend.aconnection(self.schema) as conn:
                # Not a psycopg connection: one with the methods waauth's operations use.
                yield cast(AsyncConnection[Any], conn)
        else:
            raise WaauthError("the database connection is closed")

    async def _attempt(self, op: Operation[T]) -> T:
        if _hooks.attempt_hooks:
            _hooks.before_attempt(self)  # waauth.testing's simulated outages
        try:
            async with self._connection() as conn:
                if self.owner_id is None:
                    return await op(conn)
                # Row-level security (optional) reads the owner from this setting.
                async with conn.transaction():
                    await conn.execute(SET_OWNER, {"owner": self.owner_id})
                    return await op(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if self._pool is not None and _connection_lost(exc):
                # The server may have restarted: weed out the other stale idle connections
                # now, so that the retry gets a live one instead of the next stale one.
                await self._pool.check()
            raise

    async def run(
        self,
        doing: str,
        op: Operation[T],
        *,
        policy: retry.RetryPolicy | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run ``op`` on a connection, retrying per the policy; ``doing`` names it in errors.

        Raises :class:`~waauth.StoreUnavailable` once the retry budget is spent, and the
        matching waauth error at once for anything not worth retrying.
        """
        policy = policy or self.policy

        def backing_off(details: Any) -> None:
            _log_retry(doing, details, self._secrets)
            if on_retry is not None:
                on_retry()

        retrying = backoff.on_exception(
            backoff.expo,
            Exception,
            factor=policy.initial_delay,
            max_value=policy.max_delay,
            max_time=policy.budget,
            jitter=backoff.full_jitter,
            giveup=lambda exc: not retry.is_retryable(exc),
            on_backoff=backing_off,
            logger=None,
        )
        try:
            return await retrying(self._attempt)(op)
        except psycopg.Error as exc:  # pool errors included; anything else is a bug: let it out
            gave_up = retry.is_retryable(exc)
            error = retry.translate(exc, doing, gave_up=gave_up, secrets=self._secrets)
            if gave_up and isinstance(exc, PoolTimeout):
                refusal = await self._why_no_connection()
                if refusal is not None:
                    error = retry.translate(refusal, doing, gave_up=True, secrets=self._secrets)
                    raise error from refusal
            raise error from exc

    async def _why_no_connection(self) -> psycopg.Error | None:
        """After a pool time-out: what the server says to a new connection (None: it is fine).

        A pool only reports that it had no connection to give; the cause (``too many
        clients``, a bad password set since) is in the connection attempts it made.
        """
        conninfo = self._conninfo or (self._pool.conninfo if self._pool is not None else None)
        if not isinstance(conninfo, str) or not conninfo:
            return None
        try:
            conn = await AsyncConnection.connect(
                conninfo, connect_timeout=max(1, round(self.policy.connect_timeout))
            )
        except psycopg.Error as exc:
            return exc
        await conn.close()
        return None

    def __repr__(self) -> str:
        if self.backend is not None:
            where = self.backend.describe()
        else:
            where = "conninfo" if self._conninfo is not None else "caller's pool"
        return f"<{type(self).__name__} schema={self.schema!r} via {where}>"


def _passwords(conninfo: str) -> tuple[str, ...]:
    password = conninfo_to_dict(conninfo).get("password")
    return (str(password),) if password else ()


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection itself is gone (not that a statement failed)."""
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate.startswith("57P")


class _IdleClock:
    """When each pooled connection was made or last returned: the pool's check skips the
    connections used within :data:`CHECK_AFTER_IDLE` seconds."""

    def __init__(self) -> None:
        self._since: WeakKeyDictionary[AsyncConnection[Any], float] = WeakKeyDictionary()

    def mark(self, conn: AsyncConnection[Any]) -> None:
        self._since[conn] = time.monotonic()

    async def stamp(self, conn: AsyncConnection[Any]) -> None:
        """The pool's ``configure`` hook: a new connection counts as just used."""
        self.mark(conn)

    async def check(self, conn: AsyncConnection[Any]) -> None:
        since = self._since.get(conn)
        if since is None or time.monotonic() - since > CHECK_AFTER_IDLE:
            await AsyncConnectionPool.check_connection(conn)


_idle = _IdleClock()


@dataclass(eq=False)
class _Shared:
    """A pool and the databases using it."""

    key: tuple[str, int]
    pool: AsyncConnectionPool[Any]
    users: int = 1
    schemas: set[str] = field(default_factory=set)
    """Schemas already checked (or migrated) through this pool."""


@dataclass(eq=False)
class _Failure:
    error: BaseException
    at: float


class _Pools:
    """The shared pools of one event loop (of the process, in the sync twin), by conninfo."""

    def __init__(self) -> None:
        self._lock = AsyncLock()
        self._open: dict[tuple[str, int], _Shared] = {}
        self._failed: dict[tuple[str, int], _Failure] = {}

    async def join(
        self, db: AsyncDatabase, conninfo: str, size: int, doing: str, prepare: Operation[None]
    ) -> _Shared:
        """The conninfo's pool, made (after a first contact that prepares the schema) if new."""
        key = (conninfo, os.getpid())  # a forked child never uses its parent's connections
        asked = time.monotonic()
        async with self._lock:
            shared = self._open.get(key)
            if shared is not None:
                shared.users += 1
                if size > shared.pool.max_size:
                    await shared.pool.resize(shared.pool.min_size, size)
                return shared
            failure = self._failed.get(key)
            if failure is not None and failure.at >= asked:
                # Opened together with one that just spent its retry budget on this conninfo:
                # fail alike rather than queue up for a budget each, one after the other.
                raise copy.copy(failure.error) from failure.error
            try:
                await db.run(doing, prepare)  # db has no pool yet: a direct connection
            except Exception as exc:
                self._failed[key] = _Failure(exc, time.monotonic())
                raise
            self._failed.pop(key, None)
            shared = _Shared(key, db._new_pool(conninfo, size), schemas={db.schema})
            await shared.pool.open(wait=False)
            self._open[key] = shared
            return shared

    async def leave(self, shared: _Shared) -> None:
        async with self._lock:
            shared.users -= 1
            if shared.users > 0 or self._open.get(shared.key) is not shared:
                return
            del self._open[shared.key]
        await shared.pool.close()


_scopes: WeakKeyDictionary[object, _Pools] = WeakKeyDictionary()
_scopes_lock = threading.Lock()


def _pools() -> _Pools:
    scope = apool_scope()
    with _scopes_lock:
        pools = _scopes.get(scope)
        if pools is None:
            pools = _scopes[scope] = _Pools()
        return pools


def _log_retry(doing: str, details: Any, secrets: tuple[str, ...]) -> None:
    exc = details.get("exception")
    sqlstate = getattr(exc, "sqlstate", None)
    logger.warning(
        "%s: attempt %d failed (%s%s: %s), retrying in %.2f s",
        doing,
        details["tries"],
        type(exc).__name__,
        f" [{sqlstate}]" if sqlstate else "",
        retry.cause(exc, secrets=secrets) if exc is not None else "",
        details["wait"],
        # Fields for structured logging (structlog, JSON handlers): never a secret.
        extra={
            "operation": doing,
            "attempt": details["tries"],
            "delay": details["wait"],
            "error": type(exc).__name__,
            "sqlstate": sqlstate,
        },
    )
