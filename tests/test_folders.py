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
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring, _folders, codec, layout

from .golden import golden
from .test_state import golden_creds, golden_keys, stored
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")

G6, G7 = golden("baileys6"), golden("baileys7")


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def restore(twin: Twin, *args: Any, **options: Any) -> waauth.MaterializeReport:
    """``waauth.materialize(*args, **options)``, or ``amaterialize`` for the async twin."""
    report: waauth.MaterializeReport = await twin.call(
        waauth.materialize, waauth.amaterialize, *args, **options
    )
    return report


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
    report = await restore(twin, pg_dsn, tmp_path, keyring=keyring, schema=schema)
    assert list(report.written) == ["paired"]
    assert report.without_creds == []  # only active sessions are asked for by default
    report = await restore(
        twin,
        pg_dsn,
        tmp_path,
        keyring=keyring,
        schema=schema,
        session_ids=["paired", "keys-only", "never-stored"],
    )
    assert list(report.written) == ["paired"]
    assert report.without_creds == ["keys-only", "never-stored"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paired"]


async def test_first_deploy_on_an_empty_database_restores_nothing(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """materialize before anything was ever stored (a first deploy): nothing to restore, no
    error; with migrate=False, the missing schema is said."""
    bare_schema = f"{schema}_new"  # this module's `schema` is migrated already
    conn.execute(f"DROP SCHEMA IF EXISTS {bare_schema} CASCADE")
    with pytest.raises(waauth.SchemaError):
        await restore(
            twin,
            pg_dsn,
            tmp_path,
            keyring=keyring,
            schema=bare_schema,
            migrate=False,
        )
    report = await restore(
        twin,
        pg_dsn,
        tmp_path,
        keyring=keyring,
        schema=bare_schema,
    )
    assert (report.written, report.without_creds, report.failed) == ({}, [], {})
    conn.execute(f"DROP SCHEMA {bare_schema} CASCADE")


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


# -- concurrent restores, the fallback swap, hostile rows (issue 13) ---------------------------


def plant(
    conn: psycopg.Connection[Any],
    schema: str,
    session_id: str,
    files: dict[str, bytes],
    keyring: Keyring,
) -> None:
    """Store rows with raw SQL, as anyone with INSERT on ``records`` can, bypassing waauth's
    checks. The file-name CHECK is put back NOT VALID afterwards: the state of a database
    that held such rows before the migration that adds it."""
    shipped = [m for m in waauth.schema.migrations() if m.name == "file_names"]
    with conn.transaction():
        conn.execute(f"ALTER TABLE {schema}.records DROP CONSTRAINT IF EXISTS records_file_name")
        conn.execute(
            f"INSERT INTO {schema}.sessions (session_id, status) VALUES (%s, 'active')"
            " ON CONFLICT DO NOTHING",
            [session_id],
        )
        for name, data in files.items():
            conn.execute(
                f"INSERT INTO {schema}.records (session_id, file_name, type, record_id, value)"
                " VALUES (%s, %s, 'pre-key', '1', %s)"
                " ON CONFLICT (session_id, file_name) DO UPDATE SET value = excluded.value",
                [session_id, name, keyring.encrypt(data, session_id=session_id, file_name=name)],
            )
        for migration in shipped:
            conn.execute(waauth.schema.render(migration.sql, schema))


def tree(top: Path) -> list[str]:
    """Every path under ``top``, relative, sorted."""
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


HOSTILE_NAMES = ["../escape.json", "../../escape2.json", "a/b.json", "creds.txt", ".hidden.json"]


async def test_a_folder_the_disk_refuses_fails_its_session_only(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    conn: psycopg.Connection[Any],
    keyring: Keyring,
    tmp_path: Path,
) -> None:
    """Folders are written while the next sessions are fetched: a session whose folder cannot
    be written (its place taken by a file; its lock path a folder: OSError) fails alone,
    named, and every session before and after it is written, in order."""
    files = dict(G7.files())
    ids = [f"disk-{i}" for i in range(7)]
    for sid in ids:
        plant(conn, schema, sid, files, keyring)
    root = tmp_path / "root"
    root.mkdir()
    (root / "disk-2").write_bytes(b"not a folder")
    (root / ".disk-4.waauth-lock").mkdir()
    with pytest.raises(waauth.IncompleteRestore) as incomplete:
        await restore(
            twin,
            pg_dsn,
            root,
            keyring=keyring,
            schema=schema,
            session_ids=ids,
        )
    report = incomplete.value.report
    assert list(report.written) == ["disk-0", "disk-1", "disk-3", "disk-5", "disk-6"]
    assert sorted(report.failed) == ["disk-2", "disk-4"]
    assert "is not a folder" in str(report.failed["disk-2"])
    assert "session 'disk-4': its folder could not be written" in str(report.failed["disk-4"])
    assert isinstance(report.failed["disk-4"].__cause__, OSError)
    for sid in report.written:
        assert folder_files(root / sid) == files
    assert (root / "disk-2").read_bytes() == b"not a folder"


@pytest.mark.parametrize("plaintext", [False, True], ids=["sealed", "plaintext"])
async def test_hostile_file_names_write_nothing_outside(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    conn: psycopg.Connection[Any],
    tmp_path: Path,
    plaintext: bool,
) -> None:
    """A row whose file name would leave the folder (or that no reader of the folder would
    see) fails its session: named, nothing written anywhere, the old folder kept; the other
    sessions of a many-session restore are written."""
    keyring = Keyring.plaintext() if plaintext else Keyring([Keyring.generate_key()])
    files = dict(G7.files())
    plant(conn, schema, "good", files, keyring)
    root = tmp_path / "top" / "root"
    async with await twin.open(pg_dsn, "bad", keyring=keyring, schema=schema) as state:
        state.creds = golden_creds()
        await state.save_creds()
        before = await state.materialize(root)
        for name in HOSTILE_NAMES:
            plant(conn, schema, "bad", {name: b'{"x": 1}'}, keyring)
        with pytest.raises(waauth.CorruptRecord, match="not a safe record file name") as caught:
            await state.materialize(root)
        assert caught.value.session_id == "bad"
        assert caught.value.file_name in HOSTILE_NAMES
    assert folder_files(before) == {layout.CREDS_FILE: G7.files()[layout.CREDS_FILE]}
    assert tree(tmp_path) == ["top", "top/root", "top/root/bad", "top/root/bad/creds.json"]

    with pytest.raises(waauth.IncompleteRestore) as incomplete:
        await restore(twin, pg_dsn, root, keyring=keyring, schema=schema)
    report = incomplete.value.report
    assert list(report.written) == ["good"]
    assert list(report.failed) == ["bad"]
    assert "not a safe record file name" in str(report.failed["bad"])
    assert "session 'bad'" in str(incomplete.value)
    assert folder_files(root / "good") == files
    outside = [p for p in tree(tmp_path) if not p.startswith(("top/root/good", "top/root/bad"))]
    assert outside == ["top", "top/root"]
    assert folder_files(root / "bad") == {layout.CREDS_FILE: G7.files()[layout.CREDS_FILE]}


async def test_one_bad_session_does_not_stop_the_others(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    conn: psycopg.Connection[Any],
    keyring: Keyring,
    tmp_path: Path,
) -> None:
    """materialize of many: a row that does not decrypt, an id too long for a folder name and
    a hidden id each fail their session, by name; every good session is written."""
    files = dict(G7.files())
    for sid in ("a-good", "z-good", "0" + "日" * 90, ".hidden", "tampered"):
        plant(conn, schema, sid, files, keyring)
    conn.execute(
        f"UPDATE {schema}.records SET value = value || '\\x00'::bytea"
        " WHERE session_id = 'tampered' AND file_name = 'pre-key-3.json'"
    )
    with pytest.raises(waauth.IncompleteRestore) as caught:
        await restore(
            twin,
            pg_dsn,
            tmp_path,
            keyring=keyring,
            schema=schema,
        )
    report = caught.value.report
    assert sorted(report.written) == ["a-good", "z-good"]
    assert sorted(report.failed) == sorted(["0" + "日" * 90, ".hidden", "tampered"])
    tampered = report.failed["tampered"]
    assert isinstance(tampered, waauth.DecryptionError)
    assert tampered.file_name == "pre-key-3.json"
    assert "longer than 128 bytes" in str(report.failed["0" + "日" * 90])
    assert "starts with '.'" in str(report.failed[".hidden"])
    assert folder_files(tmp_path / "a-good") == files
    assert folder_files(tmp_path / "z-good") == files
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a-good",
        "z-good",
    ]


@pytest.mark.parametrize(
    "name",
    [*HOSTILE_NAMES, "nul\x00.json", "x" * 251 + ".json", "bad\udcff.json", "/abs.json", ".json"],
)
def test_write_folder_checks_every_name_before_touching_the_disk(tmp_path: Path, name: str) -> None:
    """One unsafe name among thousands of safe ones: CorruptRecord naming it, nothing written.
    Names that are safe but not plain ASCII (or at the 255-byte limit) are written."""
    files = {f"pre-key-{i}.json": b"{}" for i in range(2000)}
    with pytest.raises(waauth.CorruptRecord, match="not a safe record file name") as caught:
        _folders.write_folder(tmp_path / "root", "s", {**files, name: b"{}"})
    assert caught.value.file_name == name
    assert not (tmp_path / "root").exists()
    odd = {"session-é.json": b"{}", "x" * 250 + ".json": b"{}", "a:b-\u65e5.json": b"{}"}
    _folders.write_folder(tmp_path / "root", "s", {**files, **odd})
    assert folder_files(tmp_path / "root" / "s") == {**files, **odd}


def test_concurrent_writes_of_one_folder_end_complete(tmp_path: Path) -> None:
    """Threads restoring one session at once: each swap puts in a complete folder, so the
    last one standing is complete; a call that could not build one raises."""
    big = {f"pre-key-{i}.json": json.dumps({"k": i}).encode() for i in range(3000)}
    big[layout.CREDS_FILE] = G7.files()[layout.CREDS_FILE]
    errors: list[BaseException] = []

    def restore() -> None:
        try:
            _folders.write_folder(tmp_path, "s", big)
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _ in range(5):
        threads = [threading.Thread(target=restore) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert folder_files(tmp_path / "s") == big
        assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no lock or build left behind


def test_fallback_swap_interrupted_is_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without renameat2 the old folder is moved aside, then the new one in. A crash between
    the two renames leaves no folder; the next restore puts the old one back first, so even
    if that restore fails too, Baileys finds its session."""
    old = {layout.CREDS_FILE: b'{"old": 1}', "pre-key-1.json": b"{}"}
    new = {layout.CREDS_FILE: b'{"new": 1}'}
    _folders.write_folder(tmp_path, "s", old)
    monkeypatch.setattr(_folders, "_renameat2_exchange", lambda a, b: False)
    real_rename = os.rename
    calls: list[str] = []

    def crash_on_second(src: Any, dst: Any) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the two renames")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        _folders.write_folder(tmp_path, "s", new)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not (tmp_path / "s").exists()  # the crash left the old folder aside only

    def fail_swap(building: Path, target: Path) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(_folders, "_swap_in", fail_swap)
    with pytest.raises(OSError, match="disk went away"):
        _folders.write_folder(tmp_path, "s", new)
    assert folder_files(tmp_path / "s") == old
    monkeypatch.undo()
    monkeypatch.setattr(_folders, "_renameat2_exchange", lambda a, b: False)
    _folders.write_folder(tmp_path, "s", new)
    assert folder_files(tmp_path / "s") == new
    assert tree(tmp_path) == ["s", "s/creds.json"]


def test_file_name_check_is_a_second_wall_that_old_rows_do_not_block(
    conn: psycopg.Connection[Any], schema: str
) -> None:
    """After the migration that adds it, the database itself refuses a row whose name would
    leave its folder; a database that already holds one still migrates (NOT VALID)."""
    old = f"{schema}_old"  # this module's tests get `schema` already migrated
    try:
        _migrations_before_file_names(conn, old)
        conn.execute(f"INSERT INTO {old}.sessions (session_id) VALUES ('s')")
        insert = (
            f"INSERT INTO {old}.records (session_id, file_name, type, record_id, value)"
            " VALUES ('s', %s, 'pre-key', '1', '\\x00'::bytea)"
        )
        conn.execute(insert, ["../planted-before.json"])
        conn.commit()
        later = [m for m in waauth.schema.migrations() if m.version >= _file_names_version()]
        assert waauth.migrate(conn, old) == len(later)
        for name in ("../x.json", "a/b.json", "/a.json", ".", "..", ".h.json", "x.txt", "é" * 126):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(insert, [name])
        conn.execute(insert, ["pre-key-1.json"])
        names = conn.execute(f"SELECT file_name FROM {old}.records ORDER BY 1").fetchall()
        assert names == [("../planted-before.json",), ("pre-key-1.json",)]
    finally:
        conn.rollback()
        conn.execute(f"DROP SCHEMA IF EXISTS {old} CASCADE")
        conn.commit()


def _file_names_version() -> int:
    return next(m.version for m in waauth.schema.migrations() if m.name == "file_names")


def _migrations_before_file_names(conn: psycopg.Connection[Any], schema: str) -> None:
    """``schema`` as a waauth from before the file-name CHECK left it."""
    render = waauth.schema.render
    with conn.transaction():
        conn.execute(render(waauth.schema.VERSION_TABLE_SQL, schema))
        for m in waauth.schema.migrations():
            if m.name == "file_names":
                break
            conn.execute(render(m.sql, schema))
            conn.execute(render(waauth.schema.RECORD_SQL, schema), [m.version, m.name])


async def test_hidden_session_ids_are_refused_by_the_api(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """open, materialize and keys with a hidden id: InvalidInput saying why, nothing stored."""
    with pytest.raises(waauth.InvalidInput, match=r"starts with '\.'"):
        await twin.open(pg_dsn, ".bot", keyring=keyring, schema=schema)
    with pytest.raises(waauth.InvalidInput, match=r"starts with '\.'"):
        _folders.write_folder(tmp_path, ".bot", {layout.CREDS_FILE: b"{}"})
    async with await twin.open(pg_dsn, "bot", keyring=keyring, schema=schema) as state:
        with pytest.raises(waauth.InvalidInput, match="not a safe record file name"):
            await state.keys.set({".x": {"1": {"v": 1}}})
    assert list(tmp_path.iterdir()) == []


async def test_a_restore_paused_holding_the_lock_fails_that_session_only(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another restore of session 'a' holds its lock and is paused (SIGSTOP): this restore
    waits LOCK_WAIT for it, then fails 'a' alone, naming the lock; 'b' is restored. Once the
    paused one is killed, 'a' restores."""
    for session_id in ("a", "b"):
        async with await twin.open(pg_dsn, session_id, keyring=keyring, schema=schema) as state:
            await state.import_folder(golden("baileys7").folder)
    lock = tmp_path / ".a.waauth-lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        holder.send_signal(signal.SIGSTOP)
        monkeypatch.setattr(_folders, "LOCK_WAIT", 0.5)
        started = time.monotonic()
        with pytest.raises(waauth.IncompleteRestore) as info:
            await restore(
                twin,
                pg_dsn,
                tmp_path,
                keyring=keyring,
                schema=schema,
            )
        assert 0.5 <= time.monotonic() - started < 10
        report = info.value.report
        assert list(report.written) == ["b"]
        assert str(report.failed["a"]) == (
            f"session 'a': another restore has held its lock ({lock}) for 0.5 s (a process "
            "paused or stuck?); its folder was left as it was"
        )
        assert not (tmp_path / "a").exists()
        assert folder_files(tmp_path / "b") == golden("baileys7").files()
    finally:
        holder.kill()
        holder.communicate()
    report = await restore(twin, pg_dsn, tmp_path, keyring=keyring, schema=schema)
    assert sorted(report.written) == ["a", "b"]
    assert folder_files(tmp_path / "a") == golden("baileys7").files()
