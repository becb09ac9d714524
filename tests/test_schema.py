"""Migrations: fresh, repeated, concurrent, additive only, and a too-new schema refused."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

import waauth
from waauth import SCHEMA_VERSION, SchemaError
from waauth.schema import migrations

# What the code expects of the schema: table -> column -> (type, nullable).
EXPECTED_COLUMNS = {
    "schema_version": {
        "version": ("integer", False),
        "name": ("text", False),
        "applied_at": ("timestamp with time zone", False),
    },
    "sessions": {
        "session_id": ("text", False),
        "owner_id": ("text", True),
        "status": ("text", False),
        "account_id": ("text", True),
        "metadata": ("jsonb", False),
        "created_at": ("timestamp with time zone", False),
        "updated_at": ("timestamp with time zone", False),
    },
    "records": {
        "session_id": ("text", False),
        "file_name": ("text", False),
        "owner_id": ("text", True),
        "type": ("text", False),
        "record_id": ("text", False),
        "value": ("bytea", False),
        "version": ("bigint", False),
        "updated_at": ("timestamp with time zone", False),
    },
}
EXPECTED_COLUMNS["leases"] = {
    "session_id": ("text", False),
    "token": ("bigint", False),
    "host": ("text", False),
    "pid": ("integer", False),
    "acquired_at": ("timestamp with time zone", False),
    "expires_at": ("timestamp with time zone", False),
    "owner_id": ("text", True),  # version 4: who took the lease (RLS covers leases)
}
EXPECTED_PRIMARY_KEYS = {
    "leases": ["session_id"],
    "schema_version": ["version"],
    "sessions": ["session_id"],
    "records": ["session_id", "file_name"],
}
# 0003_replicas: the fleet's heartbeats.
EXPECTED_COLUMNS["replicas"] = {
    "replica_id": ("text", False),
    "owner_id": ("text", True),
    "host": ("text", False),
    "pid": ("integer", False),
    "started_at": ("timestamp with time zone", False),
    "expires_at": ("timestamp with time zone", False),
}
EXPECTED_PRIMARY_KEYS["replicas"] = ["replica_id"]


def columns(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> dict[str, dict[str, tuple[str, bool]]]:
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES'"
        " FROM information_schema.columns"
        " WHERE table_schema = %s ORDER BY table_name, ordinal_position",
        [schema],
    ).fetchall()
    found: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, data_type, nullable in rows:
        found.setdefault(str(table), {})[str(column)] = (str(data_type), bool(nullable))
    return found


def primary_keys(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc"
        " JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)"
        " WHERE tc.table_schema = %s AND tc.constraint_type = 'PRIMARY KEY'"
        " ORDER BY tc.table_name, kcu.ordinal_position",
        [schema],
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(str(table), []).append(str(column))
    return found


def test_fresh_migration_builds_the_expected_schema(
    conn: psycopg.Connection[tuple[object, ...]], bare_schema: str
) -> None:
    """Applying every migration to an empty schema gives exactly the tables the code uses."""
    assert waauth.migrate(conn, bare_schema) == SCHEMA_VERSION
    assert columns(conn, bare_schema) == EXPECTED_COLUMNS
    assert primary_keys(conn, bare_schema) == EXPECTED_PRIMARY_KEYS
    versions = conn.execute(
        f"SELECT version, name FROM {bare_schema}.schema_version ORDER BY 1"
    ).fetchall()
    assert versions == [(m.version, m.name) for m in migrations()]


def test_every_table_is_keyed_by_session_id_first(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> None:
    """Tables holding session data start their key with session_id (distributable by session)."""
    keys = primary_keys(conn, schema)
    assert [
        table
        for table, cols in keys.items()
        # schema_version and replicas hold no session data (Citus: reference tables)
        if table not in ("schema_version", "replicas") and cols[0] != "session_id"
    ] == []


def test_repeated_migration_is_a_no_op(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> None:
    """Migrating an up-to-date schema applies nothing and changes nothing."""
    before = columns(conn, schema)
    assert waauth.migrate(conn, schema) == 0
    assert waauth.migrate(conn, schema) == 0
    assert columns(conn, schema) == before


async def test_async_migration(
    aconn: psycopg.AsyncConnection[tuple[object, ...]],
    conn: psycopg.Connection[tuple[object, ...]],
    bare_schema: str,
) -> None:
    """amigrate does what migrate does."""
    assert await waauth.amigrate(aconn, bare_schema) == SCHEMA_VERSION
    assert await waauth.amigrate(aconn, bare_schema) == 0
    assert columns(conn, bare_schema) == EXPECTED_COLUMNS


def test_concurrent_migrations_from_two_processes(
    pg_dsn: str, conn: psycopg.Connection[tuple[object, ...]], bare_schema: str
) -> None:
    """Two processes migrating one schema at once both succeed and apply each version once."""
    script = textwrap.dedent(
        f"""
        import psycopg, waauth
        with psycopg.connect({pg_dsn!r}) as conn:
            print(waauth.migrate(conn, {bare_schema!r}))
        """
    )
    # Hold the migration lock so both processes start and queue on it, then let them race.
    with psycopg.connect(pg_dsn) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"waauth:migrate:{bare_schema}"],
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting and int(str(waiting[0])) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the two migrating processes never queued on the lock")
        holder.rollback()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    assert sorted(int(out) for out, _ in results) == [0, SCHEMA_VERSION]
    count = conn.execute(
        f"SELECT count(*), count(DISTINCT version) FROM {bare_schema}.schema_version"
    ).fetchone()
    assert count == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_newer_schema_is_refused(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> None:
    """A schema at a version this code does not know raises SchemaError and is left untouched."""
    conn.execute(
        f"INSERT INTO {schema}.schema_version (version, name) VALUES (%s, 'from_the_future')",
        [SCHEMA_VERSION + 1],
    )
    with pytest.raises(
        SchemaError,
        match=rf"version {SCHEMA_VERSION + 1}, newer than this waauth knows \({SCHEMA_VERSION}\)",
    ):
        waauth.migrate(conn, schema)
    assert columns(conn, schema) == EXPECTED_COLUMNS


def test_bad_schema_name(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Schema names are plain identifiers; anything else is a ConfigurationError before any SQL."""
    with pytest.raises(waauth.ConfigurationError, match="schema name"):
        waauth.migrate(conn, 'x"; DROP TABLE y; --')


@pytest.mark.parametrize("migration", migrations(), ids=lambda m: f"{m.version:04d}_{m.name}")
def test_migrations_are_additive(migration: waauth.schema.Migration) -> None:
    """No migration drops, renames or retypes anything: schema changes only add."""
    sql = re.sub(r"--[^\n]*", "", migration.sql).upper()
    for forbidden in (
        r"\bDROP\b",
        r"\bRENAME\b",
        r"\bALTER\s+COLUMN\b.*\bTYPE\b",
        r"\bTRUNCATE\b",
        r"\bDELETE\s+FROM\b",
    ):
        assert not re.search(forbidden, sql), f"{forbidden} in migration {migration.version}"


async def test_a_dsn_or_a_store_instead_of_a_connection_is_named(
    conn: psycopg.Connection[tuple[object, ...]], pg_dsn: str
) -> None:
    """The schema functions take a connection; a DSN, an in-memory store or the other flavour's
    connection gets a ConfigurationError naming the function, not an AttributeError."""
    from waauth.testing import InMemoryStore  # noqa: PLC0415

    cases = [
        (waauth.migrate, pg_dsn, "waauth.migrate takes an open psycopg Connection, not str"),
        (
            waauth.enable_row_level_security,
            InMemoryStore(),
            "waauth.enable_row_level_security takes an open psycopg Connection, not InMemoryStore",
        ),
    ]
    for function, wrong, message in cases:
        with pytest.raises(waauth.ConfigurationError, match=f"^{re.escape(message)}:"):
            function(wrong)  # type: ignore[arg-type]
    with pytest.raises(waauth.ConfigurationError, match=r"^waauth\.amigrate .* not Connection:"):
        await waauth.amigrate(conn)  # type: ignore[arg-type]
