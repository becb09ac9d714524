"""A real PostgreSQL for tests that want one: a server, and a fresh schema of its own per test.

:func:`postgres_server` gives the address of a server: ``WAAUTH_TEST_DSN`` when set, else an
embedded one (``pip install 'waauth[embedded]'``) for as long as the ``with`` block runs.
:func:`postgres_sandbox` migrates a schema with a unique name on it and drops it afterwards, so
that tests never see each other's rows. The pytest plugin's ``waauth_postgres`` fixture is these
two, with the server kept for the whole test session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql

from .._acompat import AsyncOpener
from .._async.state import AsyncPostgresAuthState
from .._sync.migrations import migrate
from .._sync.state import PostgresAuthState, list_sessions, materialize
from ..encryption import Keyring
from ..errors import WaauthError
from ..sessions import MaterializeReport, SessionInfo

__all__ = ["DSN_ENV_VAR", "PostgresSandbox", "postgres_sandbox", "postgres_server"]

logger = logging.getLogger("waauth.testing")

DSN_ENV_VAR: Final = "WAAUTH_TEST_DSN"
"""The server tests use when set (a libpq connection string or URL)."""


@contextlib.contextmanager
def postgres_server(dsn: str | None = None) -> Iterator[str]:
    """The address of a PostgreSQL server for tests, for the duration of the block.

    ``dsn`` if given, else ``WAAUTH_TEST_DSN``, else a private embedded server started now and
    stopped (its data deleted) at the end of the block. The embedded server runs with
    ``fsync`` off: its data is thrown away anyway.
    """
    dsn = dsn or os.environ.get(DSN_ENV_VAR)
    if dsn:
        yield dsn
        return
    from ..embedded import EmbeddedPostgres  # noqa: PLC0415 - only when no server is given

    with EmbeddedPostgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            # A throw-away server: durability buys nothing here and costs seconds.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            conn.execute("SELECT pg_reload_conf()")
        yield server.dsn


class PostgresSandbox:
    """A migrated schema of its own on a real server, and the keyring for it.

    :meth:`open` and :meth:`aopen` open auth states on it (``schema`` and ``keyring`` filled
    in); :meth:`files` and :meth:`list_sessions` show what is stored, as the same methods of
    :class:`~waauth.testing.InMemoryStore` do, so assertions read the same on both.
    """

    def __init__(self, dsn: str, schema: str, keyring: Keyring) -> None:
        self.dsn = dsn
        """The server's address (may hold a password: it is never shown in the repr)."""
        self.schema = schema
        self.keyring = keyring
        self._opened: list[PostgresAuthState] = []

    def open(self, session_id: str, **options: Any) -> PostgresAuthState:
        """``PostgresAuthState.open`` on this schema; closed at the end of the sandbox if the
        test did not close it."""
        options.setdefault("keyring", self.keyring)
        options.setdefault("schema", self.schema)
        state = PostgresAuthState.open(self.dsn, session_id, **options)
        self._opened.append(state)
        return state

    def aopen(self, session_id: str, **options: Any) -> AsyncOpener[AsyncPostgresAuthState]:
        """``AsyncPostgresAuthState.open`` on this schema: await it or use ``async with``
        (close it in the test: its pool belongs to the test's event loop)."""
        options.setdefault("keyring", self.keyring)
        options.setdefault("schema", self.schema)
        return AsyncPostgresAuthState.open(self.dsn, session_id, **options)

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new autocommit connection to the server (close it, or use ``with``)."""
        return psycopg.connect(self.dsn, autocommit=True)

    def files(self, session_id: str) -> dict[str, bytes]:
        """Every stored file of a session, name -> exact bytes (decrypted)."""
        with self.connect() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT file_name, value FROM {}.records WHERE session_id = %s ORDER BY 1"
                ).format(sql.Identifier(self.schema)),
                [session_id],
            )
            rows = cur.fetchall()
        return {
            name: self.keyring.decrypt(bytes(value), session_id=session_id, file_name=name)
            for name, value in rows
        }

    def list_sessions(self, **options: Any) -> list[SessionInfo]:
        """``waauth.list_sessions`` on this schema."""
        options.setdefault("schema", self.schema)
        return list_sessions(self.dsn, **options)

    def materialize(self, root: str | os.PathLike[str], **options: Any) -> MaterializeReport:
        """``waauth.materialize`` from this schema into ``root``."""
        options.setdefault("keyring", self.keyring)
        options.setdefault("schema", self.schema)
        return materialize(self.dsn, Path(root), **options)

    def _close_states(self) -> None:
        for state in self._opened:
            try:
                state.close()
            except WaauthError as exc:  # e.g. an outage the test left on: nothing to save
                logger.warning("closing %r at the end of the test: %s", state, exc)
        self._opened.clear()

    def __repr__(self) -> str:
        return f"<PostgresSandbox schema={self.schema!r}>"


@contextlib.contextmanager
def postgres_sandbox(
    dsn: str, *, keyring: Keyring | None = None, prefix: str = "waauth_test"
) -> Iterator[PostgresSandbox]:
    """A fresh schema (``<prefix>_<random>``) on the server ``dsn``, migrated; dropped, with
    everything in it, at the end of the block. ``keyring`` defaults to a fresh random key."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn, schema)
    sandbox = PostgresSandbox(dsn, schema, keyring or Keyring([Keyring.generate_key()]))
    try:
        yield sandbox
    finally:
        try:
            sandbox._close_states()
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
