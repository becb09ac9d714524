# WARNING: generated from waauth/_async/migrations.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""Applying the schema's migrations (the statements and rules are in ``waauth.schema``)."""

from __future__ import annotations

import logging
from typing import Any

from psycopg import Connection

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
    if not isinstance(conn, Connection):
        raise ConfigurationError(
            f"waauth.{what} takes an open psycopg Connection, not {type(conn).__name__}: "
            "connect with psycopg.Connection.connect(dsn) (an in-memory store has no schema)"
        )


def current_version(conn: Connection[Any], schema: str = DEFAULT_SCHEMA) -> int:
    """The schema version recorded in ``schema`` (0 when waauth's tables are not there)."""
    _check_connection(conn, "current_version")
    cur = conn.execute(EXISTS_SQL, [version_table(schema)])
    row = cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = conn.execute(current_sql(schema))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection[Any], schema: str = DEFAULT_SCHEMA) -> int:
    """Bring ``schema`` up to the version this waauth uses; return how many migrations ran.

    An up-to-date schema is only read (no lock, no DDL, so a role without CREATE rights can
    call it). Otherwise every pending migration runs in one transaction (a savepoint if ``conn``
    is already in one) under a transaction advisory lock, so concurrent callers queue.
    """
    _check_connection(conn, "migrate")
    if not pending(current_version(conn, schema), schema):
        return 0
    with conn.transaction():
        conn.execute(LOCK_SQL, [lock_key(schema)])
        conn.execute(render(VERSION_TABLE_SQL, schema))
        cur = conn.execute(current_sql(schema))
        row = cur.fetchone()
        todo = pending(int(row[0]) if row else 0, schema)
        for migration in todo:
            logger.info(
                "migrating schema %s to version %d (%s)", schema, migration.version, migration.name
            )
            conn.execute(render(migration.sql, schema))
            conn.execute(render(RECORD_SQL, schema), [migration.version, migration.name])
    return len(todo)


def enable_row_level_security(conn: Connection[Any], schema: str = DEFAULT_SCHEMA) -> None:
    """Turn on per-owner row-level security for ``schema`` (optional; safe to repeat).

    Afterwards a role that is neither superuser, table owner nor ``BYPASSRLS`` sees only the
    sessions whose ``owner_id`` equals the ``waauth.owner_id`` setting, which a state opened
    with ``owner_id`` sets in each of its transactions.
    """
    _check_connection(conn, "enable_row_level_security")
    migrate(conn, schema)
    with conn.transaction():
        conn.execute(LOCK_SQL, [lock_key(schema)])
        conn.execute(render(RLS_SQL, schema))
