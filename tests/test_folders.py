"""materialize and import_folder: Baileys session folders to rows and back, byte for byte."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring, codec, layout

from .golden import golden
from .test_state import golden_creds, golden_keys, stored
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")

G6, G7 = golden("baileys6"), golden("baileys7")


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def copy_golden(version: str, dest: Path) -> Path:
    shutil.copytree(golden(version).folder, dest)
    return dest


async def test_import_then_materialize_is_byte_for_byte(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """A folder written by Baileys comes back identical, with private modes."""
    for version in ("baileys6", "baileys7"):
        session_id = f"imported-{version}"
        async with await twin.open(pg_dsn, session_id, keyring=keyring, schema=schema) as state:
            result = await state.import_folder(golden(version).folder)
            assert (result.imported, result.deleted, result.skipped) == (
                len(golden(version).files()),
                0,
                [],
            )
            assert state.creds == codec.decode(golden(version).files()[layout.CREDS_FILE])
            target = await state.materialize(tmp_path / "restored")
        assert target == tmp_path / "restored" / session_id
        assert folder_files(target) == golden(version).files()
        assert stat.S_IMODE(target.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in target.iterdir()} == {0o600}
        assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []


async def test_values_set_from_python_materialize_as_baileys_writes_them(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """creds and keys set through the API give the very files Baileys wrote for them."""
    async with await twin.open(pg_dsn, "api", keyring=keyring, schema=schema) as state:
        state.creds = golden_creds()
        await state.save_creds()
        await state.keys.set(golden_keys())
        target = await state.materialize(tmp_path)
    expected = dict(G7.files())
    del expected["x-waauth-edge-numeric-keys-numbers.json"]  # reads back as bytes, by design
    got = folder_files(target)
    got.pop("x-waauth-edge-numeric-keys-numbers.json")
    assert got == expected


async def test_materialize_replaces_stale_files(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """The folder holds exactly what is stored: deleted keys and stray files are gone."""
    async with await twin.open(pg_dsn, "s", keyring=keyring, schema=schema) as state:
        state.creds = golden_creds()
        await state.save_creds()
        await state.keys.set({"pre-key": {"1": {"v": 1}, "2": {"v": 2}}})
        target = await state.materialize(tmp_path)
        (target / "stray.json").write_text("{}")
        await state.keys.set({"pre-key": {"1": None}})
        await state.materialize(tmp_path)
    assert sorted(p.name for p in target.iterdir()) == ["creds.json", "pre-key-2.json"]


async def test_no_creds_is_not_materialized(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """A session without creds is not written (Baileys will pair anew) and is reported."""
    async with await twin.open(pg_dsn, "keys-only", keyring=keyring, schema=schema) as state:
        await state.keys.set({"pre-key": {"1": {"v": 1}}})
        with pytest.raises(waauth.SessionNotFound, match="no creds stored"):
            await state.materialize(tmp_path)
    async with await twin.open(pg_dsn, "paired", keyring=keyring, schema=schema) as state:
        state.creds = golden_creds()
        await state.save_creds()
    report = await twin.call(
        waauth.materialize, waauth.amaterialize, pg_dsn, tmp_path, keyring=keyring, schema=schema
    )
    assert list(report.written) == ["paired"]
    assert report.without_creds == []  # only active sessions are asked for by default
    report = await twin.call(
        waauth.materialize,
        waauth.amaterialize,
        pg_dsn,
        tmp_path,
        keyring=keyring,
        schema=schema,
        session_ids=["paired", "keys-only", "never-stored"],
    )
    assert list(report.written) == ["paired"]
    assert report.without_creds == ["keys-only", "never-stored"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paired"]


async def test_import_skips_non_records_and_deletes_what_is_gone(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Dotfiles and subfolders are skipped (with a warning), Baileys' own temp files silently;
    rows for files no longer in the folder are deleted."""
    folder = copy_golden("baileys7", tmp_path / "s")
    async with await twin.open(pg_dsn, "s", keyring=keyring, schema=schema) as state:
        await state.import_folder(folder)
        (folder / "pre-key-3.json").unlink()
        (folder / ".DS_Store").write_bytes(b"\x00")
        (folder / "creds.json.tmp").write_text("{")
        (folder / "sub").mkdir()
        with caplog.at_level(logging.WARNING, logger="waauth"):
            result = await state.import_folder(folder)
    assert sorted(result.skipped) == [".DS_Store", "sub"]
    assert result.deleted == 1
    assert "skipping '.DS_Store'" in caplog.text
    assert "pre-key-3.json" not in stored(conn, schema, "s", keyring)
    assert len(stored(conn, schema, "s", keyring)) == len(G7.files()) - 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("pre-key-99.json", b'{"private":', "not valid JSON"),
        ("session-x.json", b"", "not valid JSON"),
        ("creds.json", b'{"registered": true}', "creds lack noiseKey"),
    ],
)
async def test_one_bad_file_and_nothing_is_written(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    name: str,
    content: bytes,
    reason: str,
) -> None:
    """An invalid file raises CorruptRecord naming it; what is stored stays as it was."""
    async with await twin.open(pg_dsn, "s", keyring=keyring, schema=schema) as state:
        await state.import_folder(G7.folder)
        before = stored(conn, schema, "s", keyring)
        folder = copy_golden("baileys7", tmp_path / "s")
        (folder / name).write_bytes(content)
        with pytest.raises(waauth.CorruptRecord, match=f"session 's', file '{name}': {reason}"):
            await state.import_folder(folder)
    assert stored(conn, schema, "s", keyring) == before


async def test_import_refuses_to_replace_an_account(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """Another account's creds, or a folder without creds, do not overwrite stored creds
    unless forced."""
    async with await twin.open(pg_dsn, "s", keyring=keyring, schema=schema) as state:
        await state.import_folder(G7.folder)
        before = stored(conn, schema, "s", keyring)
        with pytest.raises(waauth.IdentityConflict, match="another account"):
            await state.import_folder(G6.folder)
        no_creds = copy_golden("baileys7", tmp_path / "no-creds")
        (no_creds / "creds.json").unlink()
        with pytest.raises(waauth.IdentityConflict, match=r"no creds\.json"):
            await state.import_folder(no_creds)
        assert stored(conn, schema, "s", keyring) == before
        # The same account (a newer folder of it) is fine, and force replaces anything.
        await state.import_folder(G7.folder)
        await state.import_folder(G6.folder, force=True)
        assert state.creds == codec.decode(G6.files()[layout.CREDS_FILE])
    assert stored(conn, schema, "s", keyring) == G6.files()


async def test_import_into_another_owners_session(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """An owner-scoped state cannot import over a session taken by another owner."""
    bob = await twin.open(pg_dsn, "taken", keyring=keyring, schema=schema, owner_id="bob")
    async with await twin.open(
        pg_dsn, "taken", keyring=keyring, schema=schema, owner_id="alice"
    ) as alice:
        await alice.import_folder(G7.folder)
    with pytest.raises(waauth.AccessDenied):
        await bob.import_folder(G6.folder, force=True)
    await bob.close()


def test_materialize_survives_kill_9_at_any_moment(tmp_path: Path) -> None:
    """A process killed at random moments while swapping folders in always leaves one whole
    folder: the old one or the new one, never a mix."""
    a = {name: data.decode() for name, data in G7.files().items()}
    a.update({f"pre-key-{i}.json": json.dumps({"a": i}) for i in range(1000, 1600)})
    b = {name: data.decode() for name, data in G6.files().items()}
    b.update({f"pre-key-{i}.json": json.dumps({"b": i}) for i in range(5000, 5500)})
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"a": a, "b": b}))
    root = tmp_path / "root"
    script = Path(__file__).with_name("folder_writer.py")
    rng = random.Random(4)
    seen: set[str] = set()
    kills = 0
    while kills < 20 or (seen != {"a", "b"} and kills < 40):
        kills += 1
        with subprocess.Popen(
            [sys.executable, str(script), str(root), str(spec)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "wrote 1"
            assert proc.stdout.readline().strip() == "wrote 2"
            between = time.monotonic()
            assert proc.stdout.readline().strip() == "wrote 3"
            one_write = time.monotonic() - between  # a build, a swap and a clean-up
            # Land the kill anywhere in the next two writes.
            time.sleep(rng.uniform(0, 2 * one_write))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        target = root / "s"
        files = {p.name: p.read_text() for p in target.iterdir()}
        assert files in (a, b), "a mix of two folders"
        seen.add("a" if files == a else "b")
    assert seen == {"a", "b"}, "the kills never landed between two different swaps"
