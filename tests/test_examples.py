"""The examples in examples/ run as a newcomer runs them: no database configured."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

import waauth
from waauth import Keyring

from .golden import golden
from .test_interop import INTEROP, pair

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "pre-key 1: deleted, pre-key 2: present"),
        ("asyncio_bot.py", "after a redeploy: ['session restored, no QR code needed'"),
    ],
)
def test_example_runs_on_the_embedded_default(script: str, expected: str) -> None:
    """With no WAAUTH_DSN or DATABASE_URL the example starts its own server and succeeds."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WAAUTH_DSN", "DATABASE_URL", "WAAUTH_KEYS")
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "starting an embedded PostgreSQL" in result.stdout
    assert expected in result.stdout


def test_examples_leave_nothing_behind(pg_dsn: str) -> None:
    """quickstart.py then asyncio_bot.py, twice, on one database and each with a throw-away
    key: no run depends on (or trips over) what another left."""
    name = f"waauth_examples_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "WAAUTH_KEYS")}
        env["WAAUTH_DSN"] = psycopg.conninfo.make_conninfo(pg_dsn, dbname=name)
        for script, expected in [
            ("quickstart.py", "pre-key 1: deleted, pre-key 2: present"),
            ("asyncio_bot.py", "after a redeploy: ['session restored, no QR code needed'"),
        ] * 2:
            result = subprocess.run(
                [sys.executable, str(EXAMPLES / script)],
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=120,
            )
            assert result.returncode == 0, (script, result.stderr[-2000:])
            assert expected in result.stdout
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pair_in_database(node: str, pg_dsn: str, schema: str, key: str, tmp_path: Path) -> Path:
    """Two real Baileys sessions (A, B) stored in the database; returns the pair's folder."""
    made = tmp_path / "made"
    pair(node, "create", "7", "--dir", str(made))
    for party in ("A", "B"):
        with waauth.PostgresAuthState.open(
            pg_dsn, party, keyring=Keyring([key]), schema=schema
        ) as state:
            state.import_folder(made / party)
    root = tmp_path / "app" / ".auth_sessions"
    root.mkdir(parents=True)
    shutil.copy(made / "pair.json", root / "pair.json")  # the write loop's metadata, not a session
    return root


def _run_until_progress_then_stop(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Start an example, wait for 30 Baileys steps, SIGTERM it; return its exit status."""
    with subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith('{"step":30'):
                break
            if not line and proc.poll() is not None:
                pytest.fail("the example ended before the bot made progress")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)
        return proc.returncode


def _assert_database_has_the_folders(pg_dsn: str, schema: str, key: str, root: Path) -> None:
    ring = Keyring([key])
    with psycopg.connect(pg_dsn) as conn:
        for party in ("A", "B"):
            rows = conn.execute(
                f"SELECT file_name, value FROM {schema}.records WHERE session_id = %s", [party]
            ).fetchall()
            stored = {n: ring.decrypt(v, session_id=party, file_name=n) for n, v in rows}
            on_disk = {p.name: p.read_bytes() for p in (root / party).iterdir()}
            assert stored == on_disk, party


def test_node_sidecar_entrypoint(node: str, pg_dsn: str, schema: str, tmp_path: Path) -> None:
    """entrypoint.sh restores, runs the bot beside `waauth watch`, and on SIGTERM stops the bot
    and pushes what is left: the database then holds exactly the folders Baileys left."""
    key = Keyring.generate_key()
    root = _pair_in_database(node, pg_dsn, schema, key, tmp_path)
    bot = f"{node} {INTEROP / 'session_pair.mjs'} write-loop --baileys 7 --dir {root}"
    env = {
        **os.environ,
        "WAAUTH_DSN": pg_dsn,
        "WAAUTH_SCHEMA": schema,
        "WAAUTH_KEYS": key,
        "AUTH_ROOT": str(root),
        "BOT_CMD": bot,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    status = _run_until_progress_then_stop(
        ["sh", str(EXAMPLES / "node-sidecar" / "entrypoint.sh")], env, root.parent
    )
    assert status in (0, 128 + signal.SIGTERM)
    _assert_database_has_the_folders(pg_dsn, schema, key, root)


def test_python_bot(node: str, pg_dsn: str, schema: str, tmp_path: Path) -> None:
    """bot.py restores, mirrors while Node runs, and flushes on SIGTERM."""
    key = Keyring.generate_key()
    root = _pair_in_database(node, pg_dsn, schema, key, tmp_path)
    env = {
        **os.environ,
        "WAAUTH_DSN": pg_dsn,
        "WAAUTH_KEYS": key,
        "AUTH_ROOT": str(root),
        "WAAUTH_SCHEMA": schema,
    }
    command = [
        sys.executable,
        str(EXAMPLES / "python-bot" / "bot.py"),
        "--",
        node,
        str(INTEROP / "session_pair.mjs"),
        "write-loop",
        "--baileys",
        "7",
        "--dir",
        str(root),
    ]
    assert _run_until_progress_then_stop(command, env, root.parent) == 0
    _assert_database_has_the_folders(pg_dsn, schema, key, root)


def test_multi_session_starts_staggered_and_skips_leased(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    """start.py restores every session and starts one process per session, staggered, under
    its lease: a session another process runs is skipped."""
    key = Keyring.generate_key()
    for session_id, version in (("s1", "baileys7"), ("s2", "baileys6"), ("s3", "baileys7")):
        with waauth.PostgresAuthState.open(
            pg_dsn, session_id, keyring=Keyring([key]), schema=schema
        ) as state:
            state.import_folder(golden(version).folder)
    env = {
        **os.environ,
        "WAAUTH_DSN": pg_dsn,
        "WAAUTH_KEYS": key,
        "WAAUTH_SCHEMA": schema,
        "AUTH_ROOT": str(tmp_path / "auth"),
    }
    bot = [
        sys.executable,
        "-c",
        "import sys, time; print('ran', sys.argv[1], time.monotonic(), flush=True)",
    ]
    with waauth.Lease(pg_dsn, "s2", schema=schema):
        result = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "multi-session" / "start.py"),
                "--stagger",
                "0.5",
                "--",
                *bot,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    ran = [line.split() for line in result.stdout.splitlines() if line.startswith("ran ")]
    assert [r[1] for r in ran] == ["s1", "s3"]
    assert float(ran[1][2]) - float(ran[0][2]) >= 0.8  # s3 starts two staggers after s1
    assert "skipping s2: session 's2' is held by" in result.stdout
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == ["s1", "s2", "s3"]
