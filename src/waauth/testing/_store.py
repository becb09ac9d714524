"""The in-memory stand-in for the database: waauth's tables in this process, as a back end.

An :class:`InMemoryStore` holds what the ``sessions``, ``records`` and ``leases`` tables hold, per
schema (:mod:`._engine` runs waauth's statements on them), and hands out connections on which
the real states, writer, leases, materialize and import run unchanged
(:class:`waauth._backend.Backend`). States opened on one store see each other's writes, and a
state opened again on it finds what the last one wrote, as after a redeploy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .. import layout
from .._backend import Backend
from .._queries import SET_OWNER
from .._sync.state import list_sessions, materialize
from ..encryption import plaintext_keyring
from ..errors import ConfigurationError
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA, SCHEMA_VERSION, check_schema_name, check_version
from ..sessions import MaterializeReport, SessionInfo
from ._engine import Params, Row, Tables, handler

__all__ = ["InMemoryStore", "reset_shared_stores", "shared_store", "store_of"]


class InMemoryStore(Backend):
    """Stands in for the PostgreSQL database in tests: pass it as the ``source`` of
    ``InMemoryAuthState.open`` / ``AsyncInMemoryAuthState.open`` (or of ``PostgresAuthState``'s,
    ``waauth.materialize``, ``waauth.list_sessions``, ``waauth.Lease``: they all run on it).

    Safe to share between threads and event loops. Nothing leaves the process; a new store is
    an empty database. Nothing is encrypted: rows hold the files in the clear (behind the
    one-byte header of :meth:`waauth.Keyring.plaintext`).
    """

    def __init__(self) -> None:
        # Re-entrant: a transaction holds it while its statements take it again.
        self.lock = threading.RLock()
        self._schemas: dict[str, Tables] = {}

    # -- the back end ------------------------------------------------------------------------------

    def prepare(self, schema: str, *, migrate: bool) -> None:
        with self.lock:
            tables = self._schemas.get(schema)
            if migrate:
                if tables is None:
                    tables = self._schemas[schema] = Tables()
                tables.version = SCHEMA_VERSION
            else:
                check_version(0 if tables is None else tables.version, schema)

    @contextmanager
    def connection(self, schema: str) -> Iterator[_Connection]:
        yield _Connection(self, schema)

    @asynccontextmanager
    async def aconnection(self, schema: str) -> AsyncIterator[_AsyncConnection]:
        yield _AsyncConnection(_Connection(self, schema))

    def describe(self) -> str:
        return "InMemoryStore"

    def tables(self, schema: str) -> Tables:
        """The tables of ``schema`` (empty if it was never created); hold ``lock``."""
        return self._schemas.get(schema) or Tables()

    # -- inspection, for tests --------------------------------------------------------------

    def files(self, session_id: str, *, schema: str = DEFAULT_SCHEMA) -> dict[str, bytes]:
        """Every stored file of a session, name -> exact bytes (what Postgres holds, decrypted).

        Only what is written: saves still pending in a state's writer are not here.
        """
        session_id = layout.validate_session_id(session_id)
        ring = plaintext_keyring()
        with self.lock:
            rows = dict(self.tables(check_schema_name(schema)).records.get(session_id, {}))
        return {
            name: ring.decrypt(row.value, session_id=session_id, file_name=name)
            for name, row in sorted(rows.items())
        }

    def list_sessions(
        self,
        *,
        owner_id: str | None = None,
        status: str | None = None,
        session_ids: Iterable[str] | None = None,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> list[SessionInfo]:
        """:func:`waauth.list_sessions` on this store: by id, never a secret.

        ``bytes`` counts the stored bytes as they are: one byte a record more than the file
        (Postgres counts them sealed: 37 bytes more).
        """
        self.prepare(check_schema_name(schema), migrate=True)
        return list_sessions(
            self,
            owner_id=owner_id,
            status=status,
            session_ids=session_ids,
            schema=schema,
            retry=retry,
        )

    def materialize(
        self,
        root: str | os.PathLike[str],
        *,
        session_ids: Iterable[str] | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        fsync: bool = False,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> MaterializeReport:
        """:func:`waauth.materialize` on this store: ``root/<id>/`` for every active session
        (or ``session_ids``), byte for byte; sessions without creds are listed in
        ``without_creds``, and one that cannot be restored raises
        :class:`~waauth.IncompleteRestore` once the others are written."""
        return materialize(
            self,
            root,
            keyring=plaintext_keyring(),
            session_ids=session_ids,
            owner_id=owner_id,
            schema=schema,
            retry=retry,
            fsync=fsync,
        )

    def clear(self) -> None:
        """Forget every session and lease (states already open keep their loaded creds)."""
        with self.lock:
            for tables in self._schemas.values():
                tables.sessions.clear()
                tables.records.clear()
                tables.leases.clear()

    def __repr__(self) -> str:
        with self.lock:
            count = sum(len(tables.sessions) for tables in self._schemas.values())
        return f"<InMemoryStore sessions={count}>"


class _Cursor:
    """What a statement returned, read as psycopg's cursor reads it."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._rows: list[Row] = []

    def execute(self, query: str, params: Params | None = None) -> _Cursor:
        self._rows = self._conn.run(query, params or {})
        return self

    def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._rows = []


class _Connection:
    """A connection to the store, with the part of psycopg's ``Connection`` waauth's
    operations use: ``execute``, ``cursor`` and ``transaction``."""

    def __init__(self, store: InMemoryStore, schema: str) -> None:
        self._store = store
        self._schema = schema

    def run(self, query: str, params: Params) -> list[Row]:
        run = handler(self._schema, query)
        with self._store.lock:
            tables = self._store._schemas.get(self._schema)
            if tables is None:
                if query != SET_OWNER:  # said before every statement of an owner's state
                    raise ConfigurationError(f"schema {self._schema!r} was never created")
                tables = Tables()
            return run(tables, params)

    def execute(self, query: str, params: Params | None = None) -> _Cursor:
        return _Cursor(self).execute(query, params)

    def cursor(self, **_options: Any) -> _Cursor:
        return _Cursor(self)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: the store's lock is held throughout (no other writer comes in
        between, as under PostgreSQL's row locks), and an error puts the tables back."""
        with self._store.lock:
            before = self._store._schemas.get(self._schema)
            snapshot = None if before is None else before.copy()
            try:
                yield
            except BaseException:
                if snapshot is not None:
                    self._store._schemas[self._schema] = snapshot
                raise


class _AsyncCursor:
    def __init__(self, cursor: _Cursor) -> None:
        self._cursor = cursor

    async def execute(self, query: str, params: Params | None = None) -> _AsyncCursor:
        self._cursor.execute(query, params)
        return self

    async def fetchone(self) -> Row | None:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()

    async def __aenter__(self) -> _AsyncCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.__exit__()


class _AsyncConnection:
    """The async twin of :class:`_Connection`. Nothing in it ever waits, so no other task runs
    in the middle of a statement or a transaction."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    async def execute(self, query: str, params: Params | None = None) -> _AsyncCursor:
        return _AsyncCursor(self._conn.execute(query, params))

    def cursor(self, **_options: Any) -> _AsyncCursor:
        return _AsyncCursor(self._conn.cursor())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        with self._conn.transaction():
            yield


_shared: dict[str, InMemoryStore] = {}
_shared_lock = threading.Lock()


def shared_store(name: str) -> InMemoryStore:
    """The process-wide store that a string ``source`` (a DSN, say) names.

    This is what lets bot code that passes its configured DSN run unchanged on the in-memory
    states: every open with the same string finds the same data. The name is never shown (it
    may hold a password). Call :func:`reset_shared_stores` between tests; the pytest plugin
    does it after each test.
    """
    if not isinstance(name, str):
        raise TypeError(f"a shared store is named by a string, not {type(name).__name__}")
    with _shared_lock:
        store = _shared.get(name)
        if store is None:
            store = _shared[name] = InMemoryStore()
        return store


def reset_shared_stores() -> None:
    """Forget every store named by a string ``source``."""
    with _shared_lock:
        _shared.clear()


def store_of(source: object) -> InMemoryStore:
    """The store an in-memory state opened on ``source`` uses: the store itself, or the shared
    store that a conninfo string (or a pool's conninfo) names."""
    if isinstance(source, InMemoryStore):
        return source
    if isinstance(source, ConnectionPool | AsyncConnectionPool):
        source = source.conninfo
    if isinstance(source, str):
        return shared_store(source)
    raise ConfigurationError(
        "expected an InMemoryStore, a conninfo string or a pool (each naming a shared "
        f"in-memory store), not {type(source).__name__}"
    )
