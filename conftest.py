"""pytest configuration of the repository: the test server, and the docs' code blocks.

``pg_dsn`` is here, not in tests/, so that the pages' blocks (README.md, docs/*.md, collected by
Sybil: see tests/docblocks.py) and the test suite share one server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql
from tests import docblocks

import waauth
from waauth.embedded import EmbeddedPostgres

DSN_ENV_VAR = "WAAUTH_TEST_DSN"

# Variables a page's blocks must not inherit from the machine that runs the tests.
_CLEARED = ("DATABASE_URL", "WAAUTH_KEY_FILE", "WAAUTH_SCHEMA", "WAAUTH_INSECURE_PLAINTEXT")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The address of the PostgreSQL server the suite runs against."""
    dsn = os.environ.get(DSN_ENV_VAR)
    if dsn:
        yield dsn
        return
    with EmbeddedPostgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            # A throw-away server: durability buys nothing here and costs seconds.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")
        yield server.dsn


@pytest.fixture(scope="module")
def docs_page_env(
    request: pytest.FixtureRequest, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """What every block of one page runs in: a fresh folder (the current directory), a
    database of its own as ``WAAUTH_DSN``, a fresh key as ``WAAUTH_KEYS``, and the ``waauth``
    command under test on ``PATH``.

    README.md's Quick start is a newcomer's: its shell blocks run in a copy of the repository,
    with a virtualenv of their own and no database configured (the command's embedded server,
    with its data in a temporary folder); its Python blocks use the page's database.
    """
    name = f"waauth_docs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    folder = tmp_path_factory.mktemp("page")
    bin_dir = Path(sys.executable).parent
    shell_env: dict[str, str | None] = {}
    public_dir = Path(tempfile.mkdtemp(prefix="waauth-docs-"))
    public_dir.chmod(0o755)
    if Path(str(request.node.path)).name == "README.md":
        folder = docblocks.copy_repository(public_dir / "waauth")
        bin_dir = docblocks.make_venv(public_dir / "venv")
        shell_env = {
            "WAAUTH_DSN": None,
            "WAAUTH_KEYS": None,
            # Not under pytest's private temporary folder: run as root, the embedded server
            # opens up every parent of its data folder (and the command refuses that).
            "WAAUTH_DATA_DIR": str(public_dir / "pg"),
            "VIRTUAL_ENV": str(bin_dir.parent),
        }
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("WAAUTH_DSN", conninfo.make_conninfo(pg_dsn, dbname=name))
        mp.setenv("WAAUTH_KEYS", waauth.Keyring.generate_key())
        for var in _CLEARED:
            mp.delenv(var, raising=False)
        mp.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
        mp.setattr(docblocks, "shell_env", shell_env)
        yield folder
    shutil.rmtree(public_dir, ignore_errors=True)
    with psycopg.connect(pg_dsn, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


pytest_collect_file = docblocks.sybil(fixtures=["docs_page_env"]).pytest()
