"""``waauth verify`` and ``verify_sessions``: real Baileys sessions pass, each kind of damage fails.

The sessions are the golden folders real Baileys wrote (tests/data/golden) and a live pair made
by session_pair.mjs; the damage is done to the stored rows, as a lost write or a bad restore
would leave them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring, codec, verify

from .cli_support import Cli
from .golden import golden
from .test_interop import node, pair  # noqa: F401 (node is a fixture)
from .twins import Twin

Conn = psycopg.Connection[tuple[Any, ...]]
SID = "user_1"


@pytest.fixture
def cli(pg_dsn: str, schema: str) -> Cli:
    """The command on this test's schema, with a fresh key (``ring`` holds the same key)."""
    return Cli(pg_dsn, schema, Keyring.generate_key())


@pytest.fixture
def ring(cli: Cli) -> Keyring:
    """The keyring of ``cli``'s key."""
    assert cli.key is not None
    return Keyring([cli.key])


@pytest.fixture
def stored(pg_dsn: str, schema: str, ring: Keyring) -> str:
    """The Baileys 7 golden session as ``user_1`` and the Baileys 6 one as ``user_2``."""
    for sid, version in ((SID, "baileys7"), ("user_2", "baileys6")):
        with waauth.PostgresAuthState.open(pg_dsn, sid, keyring=ring, schema=schema) as state:
            state.import_folder(golden(version).folder)
    return schema


def _creds(conn: Conn, schema: str, ring: Keyring) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT value FROM {schema}.records WHERE session_id = %s AND file_name = 'creds.json'",
        [SID],
    ).fetchone()
    assert row is not None
    value = codec.decode(ring.decrypt(bytes(row[0]), session_id=SID, file_name="creds.json"))
    assert isinstance(value, dict)
    return value


def _put(conn: Conn, schema: str, ring: Keyring, name: str, data: bytes) -> None:
    """Store ``data`` under ``name`` as waauth would (sealed for this session and file)."""
    sealed = ring.encrypt(data, session_id=SID, file_name=name)
    conn.execute(
        f"INSERT INTO {schema}.records (session_id, file_name, type, record_id, value) "
        "VALUES (%s, %s, 'x', 'x', %s) "
        "ON CONFLICT (session_id, file_name) DO UPDATE SET value = excluded.value",
        [SID, name, sealed],
    )


def _put_before_check(conn: Conn, schema: str, ring: Keyring, name: str) -> None:
    """A row with ``name`` as a database from before the file-name CHECK may hold it."""
    conn.execute(f"ALTER TABLE {schema}.records DROP CONSTRAINT records_file_name")
    _put(conn, schema, ring, name, b"{}")


def _delete(conn: Conn, schema: str, name: str) -> None:
    cur = conn.execute(
        f"DELETE FROM {schema}.records WHERE session_id = %s AND file_name = %s", [SID, name]
    )
    assert cur.rowcount == 1


def _edit_creds(
    conn: Conn, schema: str, ring: Keyring, change: Callable[[dict[str, Any]], None]
) -> None:
    creds = _creds(conn, schema, ring)
    change(creds)
    _put(conn, schema, ring, "creds.json", codec.encode(creds))


def _verdict(pg_dsn: str, schema: str, ring: Keyring) -> verify.SessionVerdict:
    report = waauth.verify_sessions(pg_dsn, keyring=ring, session_ids=[SID], schema=schema)
    (verdict,) = report.sessions
    return verdict


async def test_golden_sessions_are_healthy(
    twin: Twin, pg_dsn: str, stored: str, ring: Keyring
) -> None:
    """Every row of both sessions real Baileys wrote passes every check (sync and async)."""
    report = await twin.call(
        waauth.verify_sessions,
        waauth.averify_sessions,
        pg_dsn,
        keyring=ring,
        schema=stored,
        batch_size=7,
    )
    assert [(s.session_id, s.level, s.findings) for s in report.sessions] == [
        (SID, "ok", ()),
        ("user_2", "ok", ()),
    ]
    assert report.sessions[0].records == len(golden("baileys7").files())
    assert report.ok


def _flip_byte(conn: Conn, schema: str, name: str) -> None:
    """Damage a sealed value in place (bit rot, a bad copy): it no longer authenticates."""
    cur = conn.execute(
        f"UPDATE {schema}.records SET value = set_byte(value, 29, get_byte(value, 29) # 255) "
        "WHERE session_id = %s AND file_name = %s",
        [SID, name],
    )
    assert cur.rowcount == 1


def _damage_unuploaded(conn: Conn, schema: str, ring: Keyring) -> None:
    # Pre-keys 6-8 made but not uploaded: Baileys hands them out next; 7 is lost.
    _edit_creds(conn, schema, ring, lambda c: c.update(firstUnuploadedPreKeyId=6))
    _delete(conn, schema, "pre-key-7.json")


DAMAGE: dict[str, tuple[Callable[[Conn, str, Keyring], None], str, str]] = {
    "pre-key Baileys would hand out": (_damage_unuploaded, "broken", "pre-key-unuploaded-missing"),
    "current pre-key": (
        lambda conn, schema, ring: _delete(conn, schema, "pre-key-8.json"),
        "broken",
        "pre-key-current-missing",
    ),
    "app-state sync key": (
        lambda conn, schema, ring: _delete(conn, schema, "app-state-sync-key-AAAAAPv__+w==.json"),
        "broken",
        "app-state-key-missing",
    ),
    "creds field": (
        lambda conn, schema, ring: _edit_creds(
            conn, schema, ring, lambda c: c["signedPreKey"].pop("signature")
        ),
        "broken",
        "creds-field",
    ),
    "undecryptable row": (
        lambda conn, schema, ring: _flip_byte(conn, schema, "session-5511888888888.0.json"),
        "unreadable",
        "undecryptable",
    ),
    "torn JSON row": (
        lambda conn, schema, ring: _put(
            conn, schema, ring, "pre-key-3.json", b'{"private":{"type":"Buffer","data":"AAA'
        ),
        "unreadable",
        "unparsable",
    ),
    "torn creds": (
        lambda conn, schema, ring: _put(conn, schema, ring, "creds.json", b'{"noiseKey":{"priv'),
        "unreadable",
        "unparsable",
    ),
    "name no folder can hold": (
        # Stored before the file-name CHECK (migration 0003, NOT VALID) existed.
        lambda conn, schema, ring: _put_before_check(conn, schema, ring, "session-a/b.json"),
        "unreadable",
        "bad-name",
    ),
    "name Baileys never reads": (
        lambda conn, schema, ring: _put(conn, schema, ring, "session-1:2.json", b"{}"),
        "broken",
        "bad-name",
    ),
    "pre-key of the wrong shape": (
        lambda conn, schema, ring: _put(conn, schema, ring, "pre-key-4.json", b'{"private":1}'),
        "broken",
        "bad-record",
    ),
    "creds gone": (
        lambda conn, schema, ring: _delete(conn, schema, "creds.json"),
        "broken",
        "no-creds",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_kind_of_damage_is_found(
    damage: str, pg_dsn: str, stored: str, ring: Keyring, conn: Conn
) -> None:
    """One check per kind of damage: found, at its level, in that session only."""
    assert _verdict(pg_dsn, stored, ring).level == "ok"
    do, level, code = DAMAGE[damage]
    do(conn, stored, ring)
    report = waauth.verify_sessions(pg_dsn, keyring=ring, schema=stored)
    by_id = {s.session_id: s for s in report.sessions}
    assert by_id["user_2"].level == "ok"  # one bad session never spoils the others
    verdict = by_id[SID]
    print(damage, [str(f) for f in verdict.findings])
    assert verdict.level == level
    assert code in [f.code for f in verdict.findings]
    assert not report.ok


def test_unuploaded_pre_keys_all_stored_is_healthy(
    pg_dsn: str, stored: str, ring: Keyring, conn: Conn
) -> None:
    """Pre-keys made and not uploaded yet are fine while every one of them is stored."""
    _edit_creds(conn, stored, ring, lambda c: c.update(firstUnuploadedPreKeyId=6))
    assert _verdict(pg_dsn, stored, ring).findings == ()


def test_no_secret_in_findings(pg_dsn: str, stored: str, ring: Keyring, conn: Conn) -> None:
    """Findings name files and ids, never a value (a torn row's bytes stay hidden)."""
    _put(conn, stored, ring, "pre-key-3.json", b'{"private":"SECRETSECRET')
    text = " ".join(str(f) for f in _verdict(pg_dsn, stored, ring).findings)
    assert "pre-key-3.json" in text
    assert "SECRET" not in text


def test_cli_exit_codes_and_json(cli: Cli, stored: str, conn: Conn, ring: Keyring) -> None:
    """0 when healthy, 7 when a session will not start cleanly, 8 when one cannot be read."""
    healthy = cli("verify", "--all")
    assert healthy.returncode == 0, healthy.stderr
    print(healthy.stdout)
    assert healthy.stdout.splitlines()[0].split()[:2] == ["ok", SID]
    _delete(conn, stored, "pre-key-8.json")
    broken = cli("verify", "--session", SID, "--json")
    assert broken.returncode == 7, broken.stderr
    body = broken.json()
    assert body["ok"] is False
    assert body["sessions"][0]["findings"][0]["code"] == "pre-key-current-missing"
    _put(conn, stored, ring, "pre-key-3.json", b'{"priv')
    unreadable = cli("verify", "--all")
    print(unreadable.stdout)
    assert unreadable.returncode == 8
    assert "UNREADABLE  user_1" in unreadable.stdout
    assert cli("verify", "--session", "nobody").returncode == 1
    assert cli("verify").returncode == 2


def test_pull_verify_refuses_an_unreadable_session(
    cli: Cli, stored: str, conn: Conn, tmp_path: Path
) -> None:
    """``pull --verify`` restores the readable sessions, not the unreadable one, and exits 8."""
    _flip_byte(conn, stored, "creds.json")
    root = tmp_path / "sessions"
    result = cli("pull", "--verify", "--all", str(root))
    assert result.returncode == 8, result.stderr
    assert f"session {SID!r} cannot be read: not restored" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["user_2"]
    # Without --verify, the same pull stops at the bad row (exit 1), as before.
    assert cli("pull", "--all", str(tmp_path / "plain")).returncode == 1


@pytest.mark.parametrize("version", ["7", "6"])
def test_sessions_real_baileys_made_are_healthy(
    node: str,  # noqa: F811 (the fixture)
    version: str,
    pg_dsn: str,
    schema: str,
    ring: Keyring,
    tmp_path: Path,
) -> None:
    """Two live sessions made and used by real Baileys (session_pair.mjs) pass every check,
    and lose their health when a pre-key that their creds refer to goes."""
    root = tmp_path / "pair"
    pair(node, "create", version, "--dir", str(root))
    pair(node, "exchange", version, "--dir", str(root), "--from", "A", "--to", "B")
    for sid in ("A", "B"):
        with waauth.PostgresAuthState.open(pg_dsn, sid, keyring=ring, schema=schema) as state:
            state.import_folder(root / sid)
    report = waauth.verify_sessions(pg_dsn, keyring=ring, schema=schema)
    print([(s.session_id, s.records, [str(f) for f in s.findings]) for s in report.sessions])
    assert [(s.session_id, s.level) for s in report.sessions] == [("A", "ok"), ("B", "ok")]
    creds = codec.decode((root / "A" / "creds.json").read_bytes())
    current = f"pre-key-{creds['nextPreKeyId'] - 1}.json"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            f"DELETE FROM {schema}.records WHERE session_id = 'A' AND file_name = %s", [current]
        )
    again = waauth.verify_sessions(pg_dsn, keyring=ring, schema=schema, session_ids=["A"])
    assert again.sessions[0].level == "broken"
    shutil.rmtree(root)
