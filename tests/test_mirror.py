"""Mirror / AsyncMirror: live session folders kept in PostgreSQL while Baileys writes them."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring

from .golden import golden
from .test_state import stored
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")

G6, G7 = golden("baileys6"), golden("baileys7")


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.05)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


async def test_mirror_follows_a_live_folder(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """Changed, new and deleted files land; the stored session equals the folder each time."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1)
    await mirror.start()
    try:
        assert stored(conn, schema, "s1", keyring) == G7.files()
        folder = root / "s1"
        (folder / "pre-key-3.json").unlink()
        (folder / "pre-key-100.json").write_bytes(b'{"private":{"type":"Buffer","data":"AQ=="}}')
        (folder / "creds.json").write_bytes(
            G7.files()["creds.json"].replace(b'"nextPreKeyId":9', b'"nextPreKeyId":101')
        )
        await eventually(lambda: stored(conn, schema, "s1", keyring) == files_of(folder))
        # A new session folder appearing later is picked up too.
        shutil.copytree(G6.folder, root / "s2")
        await eventually(lambda: stored(conn, schema, "s2", keyring) == G6.files())
    finally:
        await mirror.stop()
    stats = mirror.stats()
    assert stats.sessions == 2
    assert stats.files_deleted == 1
    assert stats.failures == 0


async def test_half_written_files_wait_and_broken_ones_are_reported(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file that does not parse is never pushed: it is retried, and reported if it stays so."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    caplog.set_level(logging.WARNING, logger="waauth")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1, broken_grace=0.3)
    await mirror.start()
    try:
        session = root / "s1" / "session-5511888888888.3.json"
        good = session.read_bytes()
        session.write_bytes(good[: len(good) // 2])  # caught mid-write
        await eventually(lambda: "s1/session-5511888888888.3.json" in mirror.stats().broken)
        await eventually(lambda: "not valid JSON" in caplog.text)
        assert stored(conn, schema, "s1", keyring)[session.name] == good
        session.write_bytes(good + b" ")  # the write completes (a changed, valid file)
        await eventually(lambda: stored(conn, schema, "s1", keyring)[session.name] == good + b" ")
        assert mirror.stats().broken == ()
    finally:
        await mirror.stop()


async def test_a_wiped_folder_does_not_wipe_the_database(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """Deleting creds.json (or the whole folder) is not mirrored: the stored session stays."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1)
    await mirror.start()
    try:
        shutil.rmtree(root / "s1")
        (root / "s1").mkdir()
        (root / "s1" / "pre-key-1.json").write_text('{"fresh":true}')
        await asyncio.sleep(0.5)
        await mirror.flush()
    finally:
        await mirror.stop()
    assert stored(conn, schema, "s1", keyring) == G7.files()


async def test_another_accounts_creds_are_refused(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """A folder holding fresh creds of another account (a container that started Baileys before
    restoring) is not mirrored over the stored account, and is reported."""
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        await state.import_folder(G7.folder)
    root = tmp_path / "auth"
    shutil.copytree(G6.folder, root / "s1")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1)
    await mirror.start()
    try:
        (root / "s1" / "pre-key-500.json").write_text("{}")
        await asyncio.sleep(0.4)
        stats = mirror.stats()
    finally:
        await mirror.stop()
    assert len(stats.refused) == 1
    assert "another account" in stats.refused[0]
    assert stored(conn, schema, "s1", keyring) == G7.files()


async def test_stop_pushes_what_is_left(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """A change made just before stop is in the database once stop returns."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=30)
    await mirror.start()
    (root / "s1" / "pre-key-999.json").write_text('{"last":true}')
    await mirror.stop()
    assert stored(conn, schema, "s1", keyring)["pre-key-999.json"] == b'{"last":true}'


async def test_only_the_sessions_asked_for(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """session_ids limits the mirror; hidden folders (materialize's) are never sessions."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "wanted")
    shutil.copytree(G6.folder, root / "other")
    shutil.copytree(G6.folder, root / ".wanted.waauth-1234")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, session_ids=["wanted"])
    await mirror.start()
    await mirror.stop()
    infos = await twin.list_sessions(pg_dsn, schema=schema)
    assert [i.session_id for i in infos] == ["wanted"]
    with pytest.raises(waauth.InvalidInput):
        twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, session_ids=["../x"])
