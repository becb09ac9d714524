"""The database schema: numbered SQL migrations shipped in the package, and how they are applied.

Migrations live in ``waauth/sql/migrations/NNNN_name.sql``. They are additive only (a later
file never drops or retypes a column) and are applied in one transaction under a transaction
advisory lock, so two processes migrating at once, or one migrating twice, is safe; transaction
locks also work behind PgBouncer in transaction mode, where session locks do not. Each applied
version is recorded in ``<schema>.schema_version``. A database whose schema is newer than this
code knows is refused with :class:`~waauth.SchemaError`.

Every statement names its tables through the ``{schema}`` placeholder, filled in with the
Postgres schema the tables live in (``waauth`` unless configured), so that tests and tenants can
keep separate sets of tables in one database.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from .errors import ConfigurationError, SchemaError

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "Migration", "check_version", "migrations"]

logger = logging.getLogger("waauth.schema")

DEFAULT_SCHEMA: Final = "waauth"
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_FILE_NAME: Final = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
VERSION_TABLE_SQL: Final = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version     integer     NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""
EXISTS_SQL: Final = "SELECT to_regclass(%s) IS NOT NULL"
_CURRENT_SQL: Final = "SELECT coalesce(max(version), 0) FROM {schema}.schema_version"
RECORD_SQL: Final = "INSERT INTO {schema}.schema_version (version, name) VALUES (%s, %s)"


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this version of waauth, in order."""
    folder = resources.files("waauth.sql").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError("the packaged migrations are not numbered 1, 2, 3, ... without gaps")
    return tuple(found)


SCHEMA_VERSION: Final = len(migrations())

RLS_SQL: Final = (resources.files("waauth.sql") / "row_level_security.sql").read_text(
    encoding="utf-8"
)
"""Optional: per-owner row-level security (see ``enable_row_level_security``)."""
"""The schema version this code expects: the number of the last migration."""


def check_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a plain lower-case Postgres identifier, else raise."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"schema name {schema!r} must be lower-case letters, digits and _ (at most 63)"
        )
    return schema


def render(sql: str, schema: str) -> str:
    """Put the (validated, hence safe to splice) schema name into a statement."""
    return sql.replace("{schema}", check_schema_name(schema))


def pending(current: int, schema: str) -> list[Migration]:
    """The migrations to apply to a schema at version ``current``; raises if it is too new."""
    if current > SCHEMA_VERSION:
        raise SchemaError(
            f"the database schema {schema!r} is at version {current}, newer than this waauth "
            f"knows ({SCHEMA_VERSION}): upgrade waauth before using this database"
        )
    return [m for m in migrations() if m.version > current]


def check_version(current: int, schema: str) -> None:
    """Raise :class:`~waauth.SchemaError` unless ``current`` is the version this code uses."""
    pending(current, schema)
    if current < SCHEMA_VERSION:
        raise SchemaError(
            f"the database schema {schema!r} is at version {current}, this waauth needs "
            f"{SCHEMA_VERSION}: run waauth.migrate() (or open with migrate=True)"
        )


def version_table(schema: str) -> str:
    """The qualified name of the version table, for ``to_regclass``."""
    return f"{check_schema_name(schema)}.schema_version"


def current_sql(schema: str) -> str:
    """The statement that reads the recorded version."""
    return render(_CURRENT_SQL, schema)


def lock_key(schema: str) -> str:
    """The advisory lock that serializes schema changes."""
    return f"waauth:migrate:{schema}"
