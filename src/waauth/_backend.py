"""What a storage back end other than PostgreSQL gives waauth: connections that run its statements.

Every statement of the auth state, its writer, leases, materialize and import passes through one
place, :meth:`waauth._async.database.AsyncDatabase.run`, as an operation on a connection:
``conn.execute(db.sql(_queries.X), params)``, ``conn.cursor()`` and ``conn.transaction()``,
nothing else. psycopg's connections are the main back end. A :class:`Backend` is any other: it
hands out objects with those three methods that run the statements of :mod:`waauth._queries`
its own way. ``waauth.testing.InMemoryStore`` is one (on dicts, in the process); another
database would be one more small file beside it.

The code above the boundary (the throttle, retries, outages, owner checks, leases and fencing,
stats) is the same whichever back end is used: that is the point.
"""

from __future__ import annotations

import abc
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any

from .errors import ConfigurationError


class Backend(abc.ABC):
    """A place that stores waauth's tables and runs waauth's statements on them."""

    @abc.abstractmethod
    def prepare(self, schema: str, *, migrate: bool) -> None:
        """Create (``migrate``) or check ``schema``, as the migrations do on PostgreSQL.

        Raises :class:`~waauth.SchemaError` as PostgreSQL's check does when ``schema`` is
        missing or older than this waauth and ``migrate`` is False.
        """

    @abc.abstractmethod
    def connection(self, schema: str) -> AbstractContextManager[Any]:
        """A connection for one operation of a sync state (``execute``, ``cursor``,
        ``transaction``, as psycopg's ``Connection`` has them), on the tables of ``schema``."""

    @abc.abstractmethod
    def aconnection(self, schema: str) -> AbstractAsyncContextManager[Any]:
        """The same for an async state, with ``AsyncConnection``'s awaitable methods."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What ``repr`` of a database on this back end says it is (never a secret)."""


def require_postgres(source: object, what: str) -> None:
    """Refuse a back end where ``what`` needs PostgreSQL (statements no back end runs but it):
    at construction, rather than as a failure on every push or claim later."""
    if isinstance(source, Backend):
        raise ConfigurationError(
            f"{what} needs a PostgreSQL database, and {source.describe()} does not run its "
            "statements: give it a DSN or a pool (in tests, the test database)"
        )
