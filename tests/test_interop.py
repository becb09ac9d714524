"""Interop with real Baileys (7.0.0-rc14 and 6.7.24) under Node: folders in, folders out.

Node drives Baileys through tests/interop/session_pair.mjs (two paired accounts, A and B, with
real libsignal sessions and a group). Without Node these tests are skipped with a reason on a
developer's machine; in CI (the CI variable set) a missing Node fails them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring, PostgresAuthState, codec, layout

INTEROP = Path(__file__).parent / "interop"
VERSIONS = ("6", "7")


@pytest.fixture(scope="session")
def node() -> str:
    """Node, with both Baileys versions installed from the committed lock files."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("Node and npm are required to run the Baileys interop tests in CI")
        pytest.skip("Node/npm not found: the Baileys interop tests need them")
    for folder in ("baileys6", "baileys7"):
        if not (INTEROP / folder / "node_modules").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=INTEROP / folder,
                check=True,
                timeout=600,
            )
    return found


def pair(node: str, command: str, version: str, *args: str, check: bool = True) -> dict[str, Any]:
    """Run one session_pair.mjs command and return its JSON answer."""
    # Node's stderr is never shown: libsignal logs whole session records (private keys) there.
    result = subprocess.run(
        [node, str(INTEROP / "session_pair.mjs"), command, "--baileys", version, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=300,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": "no output"}
    if check:
        assert result.returncode == 0, (command, answer)
        assert answer.get("ok"), (command, answer)
    return answer


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def exchange_all_ways(node: str, version: str, root: Path) -> None:
    """A->B, B->A and a group message decrypt with the restored folders."""
    for args in (
        ["--from", "A", "--to", "B"],
        ["--from", "B", "--to", "A"],
        ["--from", "A", "--group"],
    ):
        answer = pair(node, "exchange", version, "--dir", str(root), *args)
        assert answer["decrypted"], answer


def import_pair(dsn: str, schema: str, keyring: Keyring, root: Path, prefix: str) -> None:
    for party in ("A", "B"):
        with PostgresAuthState.open(
            dsn, f"{prefix}{party}", keyring=keyring, schema=schema
        ) as state:
            state.import_folder(root / party)


def restore_pair(dsn: str, schema: str, keyring: Keyring, root: Path, prefix: str) -> None:
    """Delete A and B, then rebuild them from the database (as a container start does)."""
    for party in ("A", "B"):
        shutil.rmtree(root / party)
        with PostgresAuthState.open(
            dsn, f"{prefix}{party}", keyring=keyring, schema=schema
        ) as state:
            built = state.materialize(root / "_restore")
        os.rename(built, root / party)
    (root / "_restore").rmdir()


@pytest.mark.parametrize("version", VERSIONS)
def test_import_delete_materialize_and_baileys_goes_on(
    node: str, version: str, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """import -> delete the folders -> materialize: Baileys reads every key back equal, and
    new messages between the two restored sessions still decrypt."""
    root = tmp_path / "pair"
    created = pair(node, "create", version, "--dir", str(root))
    assert created["a"]["files"] > 20
    before = {p: folder_bytes(root / p) for p in ("A", "B")}
    dumps = {p: pair(node, "dump", version, "--dir", str(root / p)) for p in ("A", "B")}

    import_pair(pg_dsn, schema, keyring, root, "s")
    restore_pair(pg_dsn, schema, keyring, root, "s")

    for party in ("A", "B"):
        assert folder_bytes(root / party) == before[party]
        after = pair(node, "dump", version, "--dir", str(root / party))
        assert (after["creds"], after["keys"]) == (dumps[party]["creds"], dumps[party]["keys"])
        assert after["unreadable"] == {}
    exchange_all_ways(node, version, root)


@pytest.mark.parametrize("version", VERSIONS)
def test_state_written_from_python_is_read_back_by_baileys(
    node: str, version: str, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """The same data written through creds / keys.set -> materialize -> Baileys reads it back
    equal, and goes on with it."""
    root = tmp_path / "pair"
    pair(node, "create", version, "--dir", str(root))
    dump_before = pair(node, "dump", version, "--dir", str(root / "A"))
    files = folder_bytes(root / "A")
    keys: dict[str, dict[str, Any]] = {}
    for name, data in files.items():
        if name != layout.CREDS_FILE:
            key_type, key_id = layout.parse_file_name(name)
            keys.setdefault(key_type, {})[key_id] = codec.decode(data)
    with PostgresAuthState.open(pg_dsn, "py", keyring=keyring, schema=schema) as state:
        state.creds = codec.decode(files[layout.CREDS_FILE])
        state.save_creds()
        state.keys.set(keys)
        shutil.rmtree(root / "A")
        os.rename(state.materialize(root / "_restore"), root / "A")

    dump_after = pair(node, "dump", version, "--dir", str(root / "A"))
    assert (dump_after["creds"], dump_after["keys"]) == (dump_before["creds"], dump_before["keys"])
    assert folder_bytes(root / "A") == files  # Python encodes exactly as Baileys wrote
    exchange_all_ways(node, version, root)


@pytest.mark.parametrize(("writer", "reader"), [("6", "7"), ("7", "6")])
def test_one_version_writes_the_other_reads(
    node: str, writer: str, reader: str, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """6.x writes, 7.x reads after a round trip through the database, and the reverse (7.x with
    phone-number addressing: 6.x cannot read 7.x LID sessions at all, with or without waauth)."""
    root = tmp_path / "pair"
    pair(node, "create", writer, "--dir", str(root), *(["--pn-only"] if writer == "7" else []))
    before = {p: folder_bytes(root / p) for p in ("A", "B")}
    import_pair(pg_dsn, schema, keyring, root, "x")
    restore_pair(pg_dsn, schema, keyring, root, "x")
    assert {p: folder_bytes(root / p) for p in ("A", "B")} == before
    exchange_all_ways(node, reader, root)


def _stored(dsn: str, schema: str, session_id: str, keyring: Keyring) -> dict[str, bytes]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT file_name, value FROM {schema}.records WHERE session_id = %s", [session_id]
        ).fetchall()
    return {n: keyring.decrypt(v, session_id=session_id, file_name=n) for n, v in rows}


def _mirror_a_writer(
    node: str,
    version: str,
    dsn: str,
    schema: str,
    keyring: Keyring,
    root: Path,
    stop: signal.Signals,
) -> dict[str, dict[str, bytes]]:
    """Baileys writes while a Mirror runs; the writer is stopped with ``stop``; the mirror's
    final flush runs. Return what the folders held at the end."""
    with waauth.Mirror(dsn, root, keyring=keyring, schema=schema, window=0.2):
        proc = subprocess.Popen(
            [
                node,
                str(INTEROP / "session_pair.mjs"),
                "write-loop",
                "--baileys",
                version,
                "--dir",
                str(root),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        steps = 0
        deadline = time.monotonic() + 60
        while steps < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith('{"step"'):
                steps = json.loads(line)["step"]
        proc.send_signal(stop)
        proc.communicate(timeout=60)
        assert steps >= 40, "the Baileys writer made too little progress"
    return {p: folder_bytes(root / p) for p in ("A", "B")}


@pytest.mark.parametrize("version", VERSIONS)
def test_mirror_beside_a_running_baileys(
    node: str, version: str, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """Baileys keeps writing while Mirror runs; it is stopped; the folders are deleted and
    materialized; Baileys continues from them and decrypts new messages."""
    root = tmp_path / "pair"
    pair(node, "create", version, "--dir", str(root))
    shutil.copy(root / "pair.json", tmp_path / "pair.json")  # outside the mirrored root's sessions
    final = _mirror_a_writer(node, version, pg_dsn, schema, keyring, root, signal.SIGTERM)
    for party in ("A", "B"):
        assert _stored(pg_dsn, schema, party, keyring) == final[party]
    restore_pair(pg_dsn, schema, keyring, root, "")
    exchange_all_ways(node, version, root)


def test_mirror_never_pushes_a_torn_file(
    node: str, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """Killed with SIGKILL mid-write, Baileys may leave a torn (often empty) file: the database
    keeps that file's last whole version, and every other file as the folder has it. When the
    kill tore nothing, the restored pair goes on exchanging messages."""
    for attempt in range(4):
        root = tmp_path / f"pair{attempt}"
        pair(node, "create", "7", "--dir", str(root))
        final = _mirror_a_writer(node, "7", pg_dsn, schema, keyring, root, signal.SIGKILL)
        torn = []
        for party in ("A", "B"):
            stored = _stored(pg_dsn, schema, party, keyring)
            for name, data in final[party].items():
                try:
                    json.loads(data)
                except ValueError:
                    torn.append(name)
                    assert name not in stored or json.loads(stored[name]) is not None
                else:
                    assert stored[name] == data, name
            # A torn new file was never pushed; nothing the folder lacks is stored.
            assert set(final[party]) - set(stored) <= set(torn)
            assert set(stored) <= set(final[party])
        if not torn:
            restore_pair(pg_dsn, schema, keyring, root, "")
            exchange_all_ways(node, "7", root)
            return
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {schema}.sessions")
    pytest.fail("every SIGKILL tore a file; the restore after a clean kill was never checked")
