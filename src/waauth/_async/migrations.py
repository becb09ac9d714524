"""Applying the schema's migrations (the statements and rules are in ``waauth.schema``)."""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from ..errors import ConfigurationError
from ..schema import (
    DEFAULT_SCHEMA,
    EXISTS_SQL,
    LOCK_SQL,
    RECORD_SQL,
    RLS_SQL,
    VERSION_TABLE_SQL,
    current_sql,
    lock_key,
    pending,
    render,
    version_table,
)

logger = logging.getLogger("waauth.schema")


def _check_connection(conn: object, what: str) -> None:
    """Name the mistake (a DSN, a pool, an in-memory store passed) instead of letting an
    ``AttributeError`` come out of psycopg-shaped code."""
    if not isinstance(conn, AsyncConnection):
        raise ConfigurationError(
            f"waauth.{what} takes an open psycopg AsyncConnection, not {type(conn).__name__}: "
            "connect with psycopg.AsyncConnection.connect(dsn) (an in-memory store has no schema)"
        )


async def acurrent_version(conn: AsyncConnection[Any], schema: str = DEFAULT_SCHEMA) -> int:
    """The schema version recorded in ``schema`` (0 when waauth's tables are not there)."""
    _check_connection(conn, "acurrent_version")
    cur = await conn.execute(EXISTS_SQL, [version_table(schema)])
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute(current_sql(schema))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def amigrate(conn: AsyncConnection[Any], schema: str = DEFAULT_SCHEMA) -> int:
    """Bring ``schema`` up to the version this waauth uses; return how many migrations ran.

    An up-to-date schema is only read (no lock, no DDL, so a role without CREATE rights can
    call it). Otherwise every pending migration runs in one transaction (a savepoint if ``conn``
    is already in one) under a transaction advisory lock, so concurrent callers queue.
    """
    _check_connection(conn, "amigrate")
    if not pending(await acurrent_version(conn, schema), schema):
        return 0
    async with conn.transaction():
        await conn.execute(LOCK_SQL, [lock_key(schema)])
        await conn.execute(render(VERSION_TABLE_SQL, schema))
        cur = await conn.execute(current_sql(schema))
        row = await cur.fetchone()
        todo = pending(int(row[0]) if row else 0, schema)
        for migration in todo:
            logger.info(
                "migrating schema %s to version %d (%s)", schema, migration.version, migration.name
            )
            await conn.execute(render(migration.sql, schema))
            await conn.execute(render(RECORD_SQL, schema), [migration.version, migration.name])
    return len(todo)


async def aenable_row_level_security(
    conn: AsyncConnection[Any], schema: str = DEFAULT_SCHEMA
) -> None:
    """Turn on per-owner row-level security for ``schema`` (optional; safe to repeat).

    Afterwards a role that is neither superuser, table owner nor ``BYPASSRLS`` sees only the
    sessions whose ``owner_id`` equals the ``waauth.owner_id`` setting, which a state opened
    with ``owner_id`` sets in each of its transactions.
    """
    _check_connection(conn, "aenable_row_level_security")
    await amigrate(conn, schema)
    async with conn.transaction():
        await conn.execute(LOCK_SQL, [lock_key(schema)])
        await conn.execute(render(RLS_SQL, schema))
