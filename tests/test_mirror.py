"""Mirror / AsyncMirror: live session folders kept in PostgreSQL while Baileys writes them."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
import waauth._async.mirror
import waauth._sync.mirror
from waauth import Keyring

from . import cli_support
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


# -- the mirror never stops mirroring unnoticed (issue 13) --------------------------------------


def watcher_module(twin: Twin) -> tuple[Any, str]:
    """The module holding the mirror's watch function, and that function's name."""
    if twin.is_async:
        return waauth._async.mirror, "awatch"
    return waauth._sync.mirror, "watch"


def break_watcher(
    monkeypatch: pytest.MonkeyPatch, twin: Twin, failing: Callable[[int], bool]
) -> list[int]:
    """Make the n-th start of the mirror's watcher raise where ``failing(n)``; return the count."""
    module, name = watcher_module(twin)
    real = getattr(module, name)
    starts = [0]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        starts[0] += 1
        if failing(starts[0]):
            raise RuntimeError("injected watcher failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    return starts


LIVE_PRE_KEY = (
    b'{"private":{"type":"Buffer","data":"AQ=="},"public":{"type":"Buffer","data":"Ag=="}}'
)


async def test_a_relative_root_is_mirrored_live(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`Mirror(dsn, ".auth_sessions")`, as every documented entry point writes it: changes reach
    the database while the mirror runs, not only at the final push."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(G7.folder, tmp_path / ".auth_sessions" / "s1")
    mirror = twin.mirror(pg_dsn, ".auth_sessions", keyring=keyring, schema=schema, window=0.1)
    await mirror.start()
    try:
        (tmp_path / ".auth_sessions" / "s1" / "pre-key-100.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-100.json" in stored(conn, schema, "s1", keyring))
        # A session folder that appears later is found through the same relative root.
        shutil.copytree(G6.folder, tmp_path / ".auth_sessions" / "s2")
        await eventually(lambda: stored(conn, schema, "s2", keyring) == G6.files())
        stats = mirror.stats()
        assert stats.watching
        assert stats.watcher_failures == 0
    finally:
        await mirror.stop()


async def test_a_failed_watcher_is_logged_counted_and_restarted(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The watcher raising is an error in the log and in stats(); it comes back and mirrors."""
    caplog.set_level(logging.ERROR, logger="waauth")
    starts = break_watcher(monkeypatch, twin, lambda n: n <= 2)
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1)
    await mirror.start()
    try:
        # The default backoff: 0.5 s, then 1 s.
        await eventually(lambda: starts[0] >= 3 and mirror.stats().watching)
        (root / "s1" / "pre-key-100.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-100.json" in stored(conn, schema, "s1", keyring))
        stats = mirror.stats()
    finally:
        await mirror.stop()
    assert (stats.watcher_failures, stats.watcher_restarts) == (2, 2)
    assert "injected watcher failure" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_a_watcher_that_cannot_restart_is_reported(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After max_watcher_failures failures in a row the mirror gives up: stats() says it no
    longer watches, and flush() and stop() raise WatcherFailed."""
    break_watcher(monkeypatch, twin, lambda n: True)
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    mirror = twin.mirror(
        pg_dsn,
        root,
        keyring=keyring,
        schema=schema,
        window=0.1,
        watcher_backoff=0.05,
        max_watcher_failures=3,
    )
    await mirror.start()
    try:
        await eventually(lambda: mirror.stats().watcher_failures == 3)
        await eventually(lambda: not mirror.stats().watching)
        with pytest.raises(waauth.WatcherFailed, match="injected watcher failure"):
            await mirror.flush()
    finally:
        with pytest.raises(waauth.WatcherFailed):
            await mirror.stop()
    assert mirror.stats().watcher_restarts == 2


def test_watch_exits_with_its_code_when_the_watcher_cannot_restart(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    """`waauth watch` whose watcher keeps failing exits 5 (documented), naming the cause."""
    shutil.copytree(G7.folder, tmp_path / "auth" / "s1")
    code = (
        "import sys, waauth._sync.mirror as m\n"
        "def broken(*a, **k):\n"
        "    raise RuntimeError('injected watcher failure')\n"
        "m.watch = broken\n"
        "m.MAX_BACKOFF = 0.1  # ten failures in a row in a second, not in two minutes\n"
        "from waauth.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = cli_support.environment({"WAAUTH_KEYS": Keyring.generate_key()})
    args = ["--dsn", pg_dsn, "--schema", schema, "watch", "auth"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 5, result.stderr
    assert "injected watcher failure" in result.stderr


async def test_odd_entries_are_skipped_and_stop_returns(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A folder, a FIFO and a symlink named like records are reported once and never read; the
    other files and sessions go on, and stop() returns at once."""
    caplog.set_level(logging.WARNING, logger="waauth")
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    shutil.copytree(G6.folder, root / "s2")
    outside = tmp_path / "secret.json"
    outside.write_text('{"outside":true}')
    folder = root / "s1"
    (folder / "pre-key-97.json").mkdir()
    os.mkfifo(folder / "pre-key-99.json")
    (folder / "pre-key-98.json").symlink_to(outside)
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1)
    try:
        await asyncio.wait_for(mirror.start(), 20)
        # The same entries appearing while it runs, in the other session.
        os.mkfifo(root / "s2" / "pre-key-99.json")
        (root / "s2" / "pre-key-98.json").symlink_to(outside)
        (folder / "pre-key-100.json").write_bytes(LIVE_PRE_KEY)
        (root / "s2" / "pre-key-100.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-100.json" in stored(conn, schema, "s1", keyring))
        await eventually(lambda: "pre-key-100.json" in stored(conn, schema, "s2", keyring))
        await asyncio.sleep(0.5)  # more ticks: each entry is still reported once only
        started = time.monotonic()
        await asyncio.wait_for(mirror.stop(), 20)
        assert time.monotonic() - started < 5
    finally:
        for fifo in (folder / "pre-key-99.json", root / "s2" / "pre-key-99.json"):
            unblock(fifo)
    for session in ("s1", "s2"):
        names = set(stored(conn, schema, session, keyring))
        assert not names & {"pre-key-97.json", "pre-key-98.json", "pre-key-99.json"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for session, name in (
        ("s1", "pre-key-97.json"),
        ("s1", "pre-key-98.json"),
        ("s1", "pre-key-99.json"),
        ("s2", "pre-key-99.json"),
    ):
        said = [w for w in warnings if f"session {session}" in w and name in w]
        assert len(said) == 1, (session, name, warnings)
    assert mirror.stats().failures == 0


def unblock(fifo: Path) -> None:
    """Open a FIFO's write end, so that a reader blocked on it (today's bug) goes on."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # nobody reads it
    os.write(fd, b"{}")
    os.close(fd)


async def test_a_file_name_that_is_not_utf8_does_not_stop_the_mirror(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """watchfiles raises on a name it cannot decode: later writes of good files, in that session
    and in another, still reach the database while the mirror runs."""
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "s1")
    shutil.copytree(G6.folder, root / "s2")
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.1)
    await mirror.start()
    try:
        bad = os.fsencode(root / "s1") + b"/pre-key-\xff.json"
        with open(bad, "wb") as f:
            f.write(LIVE_PRE_KEY)
        await asyncio.sleep(0.5)
        for round_ in range(3):
            for session in ("s1", "s2"):
                name = f"pre-key-{200 + round_}.json"
                (root / session / name).write_bytes(LIVE_PRE_KEY)
                await eventually(
                    lambda s=session, n=name: n in stored(conn, schema, s, keyring)  # type: ignore[misc]
                )
            with open(bad, "ab") as f:
                f.write(b" ")  # another event on the bad name
        stats = mirror.stats()
        assert stats.watching
    finally:
        await mirror.stop()
    new = set(stored(conn, schema, "s1", keyring)) - set(G7.files())
    assert new == {"pre-key-200.json", "pre-key-201.json", "pre-key-202.json"}


async def test_an_unreadable_session_does_not_stop_the_others(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A session sealed by a key not configured is reported (stats, log) and retried; every other
    session is mirrored live."""
    caplog.set_level(logging.WARNING, logger="waauth")
    other = Keyring([Keyring.generate_key()])
    async with await twin.open(pg_dsn, "sealed", keyring=other, schema=schema) as state:
        await state.import_folder(G6.folder)
    root = tmp_path / "auth"
    shutil.copytree(G7.folder, root / "good")
    shutil.copytree(G6.folder, root / "sealed")
    mirror = twin.mirror(
        pg_dsn, root, keyring=keyring, schema=schema, window=0.1, failing_retry=0.3
    )
    await mirror.start()
    try:
        (root / "good" / "pre-key-100.json").write_bytes(LIVE_PRE_KEY)
        await eventually(lambda: "pre-key-100.json" in stored(conn, schema, "good", keyring))
        stats = mirror.stats()
        assert [line.split(":")[0] for line in stats.failing] == ["sealed"]
        assert "session sealed cannot be mirrored" in caplog.text
        assert stats.pending_sessions == 1  # its folder is not in the database
        assert stats.oldest_pending is not None
        assert stats.oldest_pending > 0
        await mirror.flush()  # a failing session is reported, not a flush error
        assert stored(conn, schema, "sealed", other) == G6.files()  # left as it was
        # Retried at a slow pace (every 0.3 s here), not every tick (0.1 s), logged once.
        before = mirror.stats().failures
        await asyncio.sleep(1.5)
        assert 2 <= mirror.stats().failures - before <= 7
        assert caplog.text.count("session sealed cannot be mirrored") == 1
        # Once the obstacle is gone (the sealed session removed), a retry mirrors it.
        conn.execute(f"DELETE FROM {schema}.sessions WHERE session_id = 'sealed'")
        await eventually(lambda: mirror.stats().failing == ())
        await eventually(lambda: stored(conn, schema, "sealed", keyring) == G6.files())
        await eventually(lambda: mirror.stats().pending_sessions == 0)
        assert mirror.stats().oldest_pending is None
    finally:
        await mirror.stop()
    assert "will retry" not in caplog.text


def _good_mirrored_then_sigterm(
    watch: cli_support.Background,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    schema: str,
    ring: Keyring,
) -> tuple[int, str]:
    """Once watching, a new file in the session ``good`` reaches the database while the
    command runs; then SIGTERM: (exit status, stderr)."""
    try:
        watch.wait_for("watching")
        (tmp_path / "auth" / "good" / "pre-key-100.json").write_bytes(LIVE_PRE_KEY)
        deadline = time.monotonic() + 20
        while "pre-key-100.json" not in stored(conn, schema, "good", ring):
            assert time.monotonic() < deadline, watch.stderr
            assert watch.proc.poll() is None, watch.stderr
            time.sleep(0.1)
        watch.proc.send_signal(signal.SIGTERM)
        code, _, stderr = watch.finish()
    finally:
        watch.kill()
    return code, stderr


def test_watch_exits_non_zero_when_a_session_was_never_mirrored(
    pg_dsn: str, schema: str, tmp_path: Path, conn: psycopg.Connection[Any]
) -> None:
    """`waauth watch` keeps mirroring the good session and exits 6 at the end, naming the bad
    one; it promises no retry it does not make."""
    key = Keyring.generate_key()
    other = Keyring([Keyring.generate_key()])
    with waauth.PostgresAuthState.open(pg_dsn, "sealed", keyring=other, schema=schema) as state:
        state.import_folder(G6.folder)
    shutil.copytree(G7.folder, tmp_path / "auth" / "good")
    shutil.copytree(G6.folder, tmp_path / "auth" / "sealed")
    env = {"WAAUTH_KEYS": key}
    watch = cli_support.Background(
        "--dsn", pg_dsn, "--schema", schema, "watch", str(tmp_path / "auth"), env=env
    )
    code, stderr = _good_mirrored_then_sigterm(watch, tmp_path, conn, schema, Keyring([key]))
    assert code == 6, stderr
    assert "sealed" in stderr
    assert "will retry" not in stderr


def test_watch_exits_non_zero_when_a_session_was_refused(
    pg_dsn: str, schema: str, tmp_path: Path, conn: psycopg.Connection[Any]
) -> None:
    """A folder holding another account's creds than the stored session is refused (never
    mirrored over it): `waauth watch` mirrors the others, names it and exits 6, as for any
    session it could not mirror, so that a supervisor sees it."""
    key = Keyring.generate_key()
    ring = Keyring([key])
    with waauth.PostgresAuthState.open(pg_dsn, "bot", keyring=ring, schema=schema) as state:
        state.import_folder(G7.folder)
    shutil.copytree(G7.folder, tmp_path / "auth" / "good")
    shutil.copytree(G6.folder, tmp_path / "auth" / "bot")  # another account's fresh login
    watch = cli_support.Background(
        "--dsn",
        pg_dsn,
        "--schema",
        schema,
        "watch",
        "auth",
        env={"WAAUTH_KEYS": key},
        cwd=tmp_path,
    )
    code, stderr = _good_mirrored_then_sigterm(watch, tmp_path, conn, schema, ring)
    assert code == 6, stderr
    assert "bot" in stderr
    assert "another account" in stderr
    # Both logins name the same number: the message says what differs.
    assert "another identity key" in stderr
    assert stored(conn, schema, "bot", ring) == G7.files()


def test_sigterm_stops_watch_beside_a_fifo(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    """A FIFO named like a record never blocks `waauth watch`: SIGTERM ends it."""
    shutil.copytree(G7.folder, tmp_path / "auth" / "s1")
    fifo = tmp_path / "auth" / "s1" / "pre-key-99.json"
    os.mkfifo(fifo)
    watch = cli_support.Background(
        "--dsn",
        pg_dsn,
        "--schema",
        schema,
        "watch",
        str(tmp_path / "auth"),
        env={"WAAUTH_KEYS": Keyring.generate_key()},
    )
    try:
        try:
            watch.wait_for("watching", timeout=20)
        finally:
            unblock(fifo)  # today's watch is stuck reading it: let it go on, then fail
        watch.proc.send_signal(signal.SIGTERM)
        code, _, stderr = watch.finish(timeout=20)
    finally:
        watch.kill()
    assert code == 0, stderr


# -- Baileys' next writer (PR #2575): X.json.tmp, X.json -> X.json.bak, X.json.tmp -> X.json ----


def atomic_write(folder: Path, name: str, data: bytes, pause: float) -> None:
    """One write exactly as Baileys' atomic writer does it, with the gap widened by ``pause``."""
    path = folder / name
    Path(f"{path}.tmp").write_bytes(data)
    if path.exists():
        os.replace(path, f"{path}.bak")
    time.sleep(pause)  # X.json is absent here; only .bak and .tmp are there
    os.replace(f"{path}.tmp", path)


def atomic_delete(folder: Path, name: str) -> None:
    for suffix in ("", ".tmp", ".bak"):
        Path(f"{folder / name}{suffix}").unlink(missing_ok=True)


async def test_baileys_atomic_writer_never_looks_like_a_delete(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While a writer rotates files (creds.json too), no stored row ever disappears, no .tmp or
    .bak is stored, nothing is warned; a real delete (all three gone) is mirrored."""
    caplog.set_level(logging.WARNING, logger="waauth")
    root = tmp_path / "auth"
    folder = root / "s1"
    shutil.copytree(G7.folder, folder)
    names = sorted(G7.files())
    mirror = twin.mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.05)
    await mirror.start()
    done = threading.Event()

    def writer() -> None:
        for n in range(400):
            if done.is_set():
                return
            name = names[n % len(names)]
            data = G7.files()[name] + b" " * (n % 2)
            atomic_write(folder, name, data, pause=0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        polls = 0
        while thread.is_alive():
            now = set(stored(conn, schema, "s1", keyring))
            assert now >= set(names), f"rows disappeared during a rotation: {set(names) - now}"
            assert not [n for n in now if n.endswith((".tmp", ".bak"))]
            polls += 1
            await asyncio.sleep(0.01)
        assert polls > 50
        assert mirror.stats().pushes > 20  # pushed live, not at the end
        atomic_delete(folder, "pre-key-3.json")
        await eventually(lambda: "pre-key-3.json" not in stored(conn, schema, "s1", keyring))
    finally:
        done.set()
        thread.join()
        await mirror.stop()
    records = {n: d for n, d in files_of(folder).items() if waauth.layout.is_record_file(n)}
    assert stored(conn, schema, "s1", keyring) == records
    assert [r.getMessage() for r in caplog.records] == []


async def test_import_takes_the_bak_where_baileys_would(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """import_folder reads X.json.bak where X.json is missing or torn, as Baileys' reader does,
    and does not list Baileys' own .tmp/.bak files as skipped (a FIFO and a link it does)."""
    folder = tmp_path / "s1"
    shutil.copytree(G7.folder, folder)
    torn = "session-5511888888888.3.json"
    os.replace(folder / "pre-key-3.json", folder / "pre-key-3.json.bak")  # killed mid-rotation
    shutil.copy(folder / torn, folder / f"{torn}.bak")
    (folder / torn).write_bytes(G7.files()[torn][:10])
    (folder / "pre-key-1.json.tmp").write_bytes(b'{"half')
    # The mirror's rule for what is read holds here too: no FIFO opened, no link followed.
    os.mkfifo(folder / "pre-key-99.json")
    (tmp_path / "outside.json").write_text("{}")
    (folder / "pre-key-98.json").symlink_to(tmp_path / "outside.json")
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        result = await state.import_folder(folder)
    assert stored(conn, schema, "s1", keyring) == G7.files()
    assert result.skipped == ["pre-key-98.json", "pre-key-99.json"]
