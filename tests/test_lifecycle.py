"""An auth state left open: what was saved still lands when the process ends normally.

Each test runs a real script (tests/exit_child.py) that saves creds and ends without close().
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
import waauth._exit
from waauth import Keyring

from .servers import OwnServer
from .test_state import stored

pytestmark = pytest.mark.usefixtures("schema")
CHILD = Path(__file__).with_name("exit_child.py")


def run_child(how: str, pg_dsn: str, schema: str, key: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(CHILD), how, pg_dsn, schema, "s", key],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(how, proc.returncode, f"{time.monotonic() - started:.1f} s", proc.stderr[-2000:])
    assert "saved" in proc.stdout
    return proc


def stored_creds(conn: psycopg.Connection[Any], schema: str, keyring: Keyring) -> Any:
    return waauth.codec.decode(stored(conn, schema, "s", keyring)["creds.json"])


@pytest.mark.parametrize("how", ["sys-exit", "raise", "keys", "async-exit", "async-raise"])
def test_pending_creds_land_at_exit(
    how: str, pg_dsn: str, schema: str, conn: psycopg.Connection[Any]
) -> None:
    """A script that saves creds and exits or raises without close() stores the newest."""
    key = Keyring.generate_key()
    keyring = Keyring([key])
    proc = run_child(how, pg_dsn, schema, key)
    assert proc.returncode == (1 if "raise" in how else 0)
    assert stored_creds(conn, schema, keyring)["nextPreKeyId"] == 2
    if how == "keys":
        assert stored(conn, schema, "s", keyring)["pre-key-7.json"] == b'{"v":7}'
    if how.startswith("async"):
        # The loop closed with the state open: said, naming the session.
        assert "session s: the event loop is ending with the auth state open" in proc.stderr


def test_a_collected_open_state_warns_and_still_lands(
    pg_dsn: str, schema: str, conn: psycopg.Connection[Any]
) -> None:
    """An open state garbage-collected warns (ResourceWarning); its pending creds still land."""
    key = Keyring.generate_key()
    proc = run_child("gc", pg_dsn, schema, key)
    assert proc.returncode == 0
    assert "ResourceWarning: the auth state of session 's' was never closed" in proc.stderr
    assert stored_creds(conn, schema, Keyring([key]))["nextPreKeyId"] == 2


def test_exit_with_the_database_down_is_bounded_and_names_the_session(
    own_server: OwnServer,
) -> None:
    """The database is down at exit: the script still ends, within the exit bound, and logs an
    error naming the session and what was not written."""
    key = Keyring.generate_key()
    with subprocess.Popen(
        [sys.executable, str(CHILD), "down", own_server.dsn, "waauth", "s", key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline().strip() == "saved"
        own_server.stop("immediate")
        started = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _out, err = proc.communicate(timeout=waauth._exit.EXIT_TIMEOUT + 30)
        took = time.monotonic() - started
    print(f"{took:.1f} s", err[-1500:])
    assert proc.returncode == 0
    assert took < waauth._exit.EXIT_TIMEOUT + 20
    assert "session s: the auth state was left open; at exit 1 saved records could not" in err
