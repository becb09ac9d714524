# WARNING: generated from waauth/_async/database.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""Where the database is and how to talk to it: connections, retries, owner scope.

An :class:`Database` is made from a conninfo string (waauth then owns a pool, opened and
closed with it) or from the caller's pool (used, never closed). :meth:`Database.run` is the
one boundary through which every statement passes: it takes a connection, retries what the
retry policy says is retryable (each attempt on a fresh connection), and turns driver errors
into waauth errors, keeping the driver's as ``__cause__``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import backoff
import psycopg
from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from .. import _hooks, retry
from .._queries import SET_OWNER
from ..config import check_conninfo
from ..errors import ConfigurationError, WaauthError
from ..schema import DEFAULT_SCHEMA, check_schema_name, check_version, render
from .migrations import current_version, migrate

logger = logging.getLogger("waauth")

T = TypeVar("T")

Operation = Callable[[Connection[Any]], T]


class Database:
    """A conninfo or a pool, the schema to use, and the policy for retrying."""

    def __init__(
        self,
        source: str | ConnectionPool[Any],
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
        self._pool: ConnectionPool[Any] | None = None
        self._owns_pool = False
        self._secrets: tuple[str, ...] = ()
        if isinstance(source, str):
            # A malformed address fails here, at once: no retry can fix it.
            self._conninfo = check_conninfo(source)
            self._secrets = _passwords(source)
        elif isinstance(source, ConnectionPool):
            self._pool = source
        else:
            raise ConfigurationError(
                "expected a conninfo string or a psycopg_pool.ConnectionPool, "
                f"not {type(source).__name__}"
            )
        if owner_id is not None and (not isinstance(owner_id, str) or not owner_id):
            raise ConfigurationError("owner_id must be a non-empty string (or None)")

    def sql(self, statement: str) -> str:
        """A statement with this database's schema filled in."""
        return render(statement, self.schema)

    def open(self, *, migrate: bool) -> None:
        """Check (or bring up to date) the schema; then, for a conninfo, open the pool.

        The first contact goes through a direct connection, so that a server that refuses us
        (unknown database, bad password) is reported at once instead of as a pool time-out.
        """
        self.run(f"open schema {self.schema!r}", self._prepare_schema(migrate))
        if self._conninfo is not None and self._pool_size:
            self._pool = ConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._pool_size,
                open=False,
                name=self._name,
                timeout=self.policy.connect_timeout,
                # A restarted server leaves stale idle connections: check before handing out.
                check=ConnectionPool.check_connection,
                # No server-side prepared statements: they break behind PgBouncer.
                kwargs={"autocommit": True, "prepare_threshold": None},
            )
            self._owns_pool = True
            self._pool.open(wait=False)

    def _prepare_schema(self, upgrade: bool) -> Operation[None]:
        def prepare(conn: Connection[Any]) -> None:
            if upgrade:
                migrate(conn, self.schema)
            else:
                check_version(current_version(conn, self.schema), self.schema)

        return prepare

    def close(self) -> None:
        """Close the pool if waauth opened it; a caller's pool stays open."""
        if self._owns_pool and self._pool is not None:
            self._pool.close()
        self._pool = None

    @contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        if self._pool is not None:
            with self._pool.connection(timeout=self.policy.connect_timeout) as conn:
                yield conn
        elif self._conninfo is not None:
            with Connection.connect(
                self._conninfo,
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=max(1, round(self.policy.connect_timeout)),
            ) as conn:
                yield conn
        else:
            raise WaauthError("the database connection is closed")

    def _attempt(self, op: Operation[T]) -> T:
        if _hooks.attempt_hooks:
            _hooks.before_attempt(self)  # waauth.testing's simulated outages
        with self._connection() as conn:
            if self.owner_id is None:
                return op(conn)
            # Row-level security (optional) reads the owner from this setting.
            with conn.transaction():
                conn.execute(SET_OWNER, {"owner": self.owner_id})
                return op(conn)

    def run(
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
            return retrying(self._attempt)(op)
        except psycopg.Error as exc:  # pool errors included; anything else is a bug: let it out
            raise retry.translate(
                exc, doing, gave_up=retry.is_retryable(exc), secrets=self._secrets
            ) from exc

    def __repr__(self) -> str:
        where = "caller's pool" if self._pool is not None and not self._owns_pool else "conninfo"
        return f"<{type(self).__name__} schema={self.schema!r} via {where}>"


def _passwords(conninfo: str) -> tuple[str, ...]:
    password = conninfo_to_dict(conninfo).get("password")
    return (str(password),) if password else ()


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
    )
