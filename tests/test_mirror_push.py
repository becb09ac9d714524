"""The mirror's push path: many sessions' changes in one statement, each session guarded on its
own; the throttle; the rescans that stand in for events that never came."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
import waauth._async.database
import waauth._async.ops
import waauth._sync.database
import waauth._sync.ops
from waauth import Keyring, _folders, _records, codec, layout
from waauth.retry import RetryPolicy
from waauth.schema import DEFAULT_SCHEMA

from .golden import golden
from .servers import OwnServer
from .test_mirror import LIVE_PRE_KEY, eventually, watcher_module
from .test_state import stored
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")

G6, G7 = golden("baileys6"), golden("baileys7")


def batch_of(session_id: str, keyring: Keyring, files: dict[str, bytes]) -> _records.SessionWrite:
    """A session's write of ``files`` (creds included, decoded, when among them)."""
    batch = _records.Batch()
    creds = None
    for name in sorted(files):
        key_type, key_id = layout.parse_file_name(name)
        _records.add_row(
            batch, keyring, session_id, name, key_type=key_type, key_id=key_id, data=files[name]
        )
        if name == layout.CREDS_FILE:
            creds = codec.decode(files[name])
            batch.has_creds, batch.account = True, _records.account_of(creds)
    return _records.SessionWrite(session_id, batch, creds)


async def write_sessions(
    twin: Twin, dsn: str, schema: str, keyring: Keyring, writes: list[_records.SessionWrite]
) -> dict[str, int | waauth.WaauthError]:
    """One multi-session write as owner "A", through the twin's own database code."""
    if twin.is_async:
        adb = waauth._async.database.AsyncDatabase(dsn, schema=schema, owner_id="A", pool_size=None)
        await adb.open(migrate=False)
        try:
            return await adb.run("test", waauth._async.ops.write_sessions(adb, keyring, writes))
        finally:
            await adb.close()

    def write() -> dict[str, int | waauth.WaauthError]:
        db = waauth._sync.database.Database(dsn, schema=schema, owner_id="A", pool_size=None)
        db.open(migrate=False)
        try:
            return db.run("test", waauth._sync.ops.write_sessions(db, keyring, writes))
        finally:
            db.close()

    return await asyncio.to_thread(write)


async def test_one_statement_guards_each_session_on_its_own(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Six sessions in one write: the fenced one, another owner's, another account's creds and
    creds no key opens are each refused alone (nothing of them written); the others land, a
    replaced one losing exactly its files neither written nor kept."""
    other_key = Keyring([Keyring.generate_key()])
    for session_id, owner, ring, folder in [
        ("other", "B", keyring, G7.folder),
        ("conflict", "A", keyring, G7.folder),
        ("sealed", "A", other_key, G6.folder),
        ("replaced", "A", keyring, G7.folder),
    ]:
        async with await twin.open(
            pg_dsn, session_id, keyring=ring, schema=schema, owner_id=owner
        ) as state:
            await state.import_folder(folder)
    before = {s: stored(conn, schema, s, keyring) for s in ("other", "conflict", "replaced")}
    sealed_before = stored(conn, schema, "sealed", other_key)
    good = waauth.Lease(pg_dsn, "good", schema=schema, owner_id="A")
    fenced = waauth.Lease(pg_dsn, "fenced", schema=schema, owner_id="A")
    good.acquire()
    fenced.acquire()
    try:
        assert good.token is not None
        assert fenced.token is not None
        new = {"pre-key-900.json": LIVE_PRE_KEY}
        writes = {
            "good": batch_of("good", keyring, new),
            "fenced": batch_of("fenced", keyring, new),
            "other": batch_of("other", keyring, new),
            "conflict": batch_of("conflict", keyring, {"creds.json": G6.files()["creds.json"]}),
            "sealed": batch_of("sealed", keyring, {"creds.json": G6.files()["creds.json"]}),
            "replaced": batch_of(
                "replaced",
                keyring,
                {"creds.json": G7.files()["creds.json"], "pre-key-900.json": LIVE_PRE_KEY},
            ),
        }
        writes["good"].token = good.token
        writes["fenced"].token = fenced.token - 1  # the lease passed on: a newer token
        writes["replaced"].batch.replace = True
        writes["replaced"].batch.keep = ["pre-key-3.json"]
        outcomes = await write_sessions(twin, pg_dsn, schema, keyring, list(writes.values()))
    finally:
        good.release()
        fenced.release()
    print(outcomes)
    assert sorted(outcomes) == sorted(writes)
    assert isinstance(outcomes["fenced"], waauth.LeaseLost)
    assert isinstance(outcomes["other"], waauth.AccessDenied)
    assert isinstance(outcomes["conflict"], waauth.IdentityConflict)
    assert isinstance(outcomes["sealed"], waauth.DecryptionError)
    kept = {"creds.json", "pre-key-3.json", "pre-key-900.json"}
    assert outcomes["good"] == 0
    assert outcomes["replaced"] == len(G7.files()) - 2  # all but creds and the kept file
    assert stored(conn, schema, "good", keyring) == new
    assert stored(conn, schema, "fenced", keyring) == {}
    for session_id in ("other", "conflict"):
        assert stored(conn, schema, session_id, keyring) == before[session_id]
    assert stored(conn, schema, "sealed", other_key) == sealed_before
    assert stored(conn, schema, "replaced", keyring) == {
        name: data for name, data in {**before["replaced"], **new}.items() if name in kept
    }
    owners = dict(conn.execute(f"SELECT session_id, owner_id FROM {schema}.sessions").fetchall())
    assert owners == {
        "good": "A",
        "other": "B",
        "conflict": "A",
        "sealed": "A",
        "replaced": "A",
    }


async def test_sessions_changed_together_share_a_transaction(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """Changes in three folders at once are pushed in one transaction; a session whose lease
    passed to another process and one whose creds turned into another account's are refused
    in it, and the third is pushed all the same (and later changes still are)."""
    root = tmp_path / "auth"
    for session_id in ("s1", "s2", "s3"):
        shutil.copytree(G7.folder, root / session_id)
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1, lease_ttl=60)
    await mirror.start()
    try:
        await eventually(lambda: mirror.stats().pending_sessions == 0)
        await asyncio.sleep(0.3)  # the first pass of the watcher is done
        conn.execute(f"UPDATE {schema}.leases SET token = token + 1 WHERE session_id = 's2'")
        before = mirror.stats()
        for session_id in ("s1", "s2", "s3"):
            (root / session_id / "pre-key-500.json").write_bytes(LIVE_PRE_KEY)
        (root / "s3" / "creds.json").write_bytes(G6.files()["creds.json"])
        await eventually(lambda: "pre-key-500.json" in stored(conn, schema, "s1", keyring))
        await eventually(lambda: len(mirror.stats().refused) == 2)
        after = mirror.stats()
        print(after)
        assert (after.transactions - before.transactions, after.pushes - before.pushes) == (1, 1)
        assert [r.split(":")[0] for r in after.refused] == ["s2", "s3"]
        assert "another holder" in after.refused[0]
        assert "another account" in after.refused[1]
        for session_id in ("s2", "s3"):
            assert stored(conn, schema, session_id, keyring) == G7.files()
        (root / "s1" / "pre-key-501.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-501.json" in stored(conn, schema, "s1", keyring))
        assert mirror.stats().failures == 0
    finally:
        await mirror.stop()


async def test_a_file_changed_again_within_the_window_is_held_back(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """A new file goes at once; the same file rewritten right after is pushed once the window
    since its last push has passed (the newest bytes), not before; stop pushes a held file."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=3.0)
    await mirror.start()
    try:
        path = root / "s1" / "pre-key-600.json"
        written_at = time.monotonic()  # its push comes after: the held one 3 s later at least
        path.write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-600.json" in stored(conn, schema, "s1", keyring))
        for n in range(3):
            path.write_bytes(LIVE_PRE_KEY + b" " * (n + 1))
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert time.monotonic() - written_at < 3.0  # (the checks below need this)
        assert stored(conn, schema, "s1", keyring)["pre-key-600.json"] == LIVE_PRE_KEY
        assert mirror.stats().pending_sessions == 1
        await eventually(
            lambda: stored(conn, schema, "s1", keyring)["pre-key-600.json"] != LIVE_PRE_KEY
        )
        assert time.monotonic() - written_at >= 3.0
        assert stored(conn, schema, "s1", keyring)["pre-key-600.json"] == LIVE_PRE_KEY + b"   "
        path.write_bytes(b'{"last":true}')
    finally:
        await mirror.stop()
    assert stored(conn, schema, "s1", keyring)["pre-key-600.json"] == b'{"last":true}'


@pytest.fixture
def deaf(monkeypatch: pytest.MonkeyPatch, twin: Twin) -> None:
    """The mirror's watcher ticks as usual but reports no event (as when inotify drops them,
    or cannot see the writer): only the rescans can find changes."""
    module, name = watcher_module(twin)
    real = getattr(module, name)

    async def deaf_async(*args: Any, **kwargs: Any) -> AsyncIterator[set[Any]]:
        async for _changes in real(*args, **kwargs):
            yield set()

    def deaf_sync(*args: Any, **kwargs: Any) -> Iterator[set[Any]]:
        for _changes in real(*args, **kwargs):
            yield set()

    monkeypatch.setattr(module, name, deaf_async if twin.is_async else deaf_sync)


@pytest.mark.usefixtures("deaf")
async def test_rescans_find_what_no_event_reported(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no events at all, a new file is found by the next rescan (its folder changed) and a
    file rewritten in place (its folder did not) by the slower round of whole scans; a quiet
    rescan scans whole only the changed folders and a tenth of the others."""
    scans: list[str] = []
    real_scan = _folders.scan

    def counting(folder: Path) -> _folders.FolderScan:
        scans.append(folder.name)
        return real_scan(folder)

    monkeypatch.setattr(_folders, "scan", counting)
    root = tmp_path / "auth"
    names = [f"s{i:02d}" for i in range(20)]
    for session_id in names:
        shutil.copytree(G7.folder, root / session_id)
    mirror = twin.mirror(
        pg_dsn, root, keyring=keyring, schema=schema, window=0.1, rescan_interval=0.4
    )
    await mirror.start()
    try:
        await asyncio.sleep(1.0)  # the first pass, then quiet rescans
        scans.clear()
        await asyncio.sleep(2.0)  # five quiet rescans: 2 whole scans each (a tenth of 20)
        assert 4 <= len(scans) <= 14, scans
        (root / "s05" / "pre-key-700.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-700.json" in stored(conn, schema, "s05", keyring))
        in_place = root / "s13" / "pre-key-3.json"
        size = in_place.stat().st_size
        with open(in_place, "r+b") as f:  # the same inode and size, the folder untouched
            f.write(b"{}" + b" " * (size - 2))
        await eventually(
            lambda: stored(conn, schema, "s13", keyring)["pre-key-3.json"].startswith(b"{} "),
            timeout=15,
        )
    finally:
        await mirror.stop()


async def test_changes_made_during_an_outage_land_once_the_database_is_back(
    twin: Twin, own_server: OwnServer, keyring: Keyring, tmp_path: Path
) -> None:
    """With the server down, every session's change waits (pending, a flush raises
    StoreUnavailable, nothing is refused or given up); once it is back they all land."""
    root = tmp_path / "auth"
    names = ["s1", "s2", "s3"]
    for session_id in names:
        shutil.copytree(G7.folder, root / session_id)
    retry = RetryPolicy(budget=1, initial_delay=0.05, max_delay=0.2, connect_timeout=1)
    mirror = twin.mirror(own_server.dsn, root, keyring=keyring, window=0.1, retry=retry)
    await mirror.start()
    try:
        await eventually(lambda: mirror.stats().pending_sessions == 0)
        await asyncio.to_thread(own_server.stop, "fast")
        for session_id in names:
            (root / session_id / "pre-key-800.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: mirror.stats().pending_sessions == len(names))
        await eventually(lambda: mirror.stats().failures >= len(names))
        with pytest.raises(waauth.StoreUnavailable):
            await mirror.flush()
        stats = mirror.stats()
        assert (stats.refused, stats.failing, stats.watching) == ((), (), True)
        await asyncio.to_thread(own_server.start)
        with psycopg.connect(own_server.dsn, autocommit=True) as conn:
            for session_id in names:
                await eventually(
                    lambda s=session_id: (  # type: ignore[misc]
                        "pre-key-800.json" in stored(conn, DEFAULT_SCHEMA, s, keyring)
                    ),
                    timeout=30,
                )
        await eventually(lambda: mirror.stats().pending_sessions == 0)
        await mirror.flush()
    finally:
        await mirror.stop()
