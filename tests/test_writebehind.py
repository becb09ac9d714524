"""Throttled writes that never lose the newest state (no faults here; see test_faults.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring, codec, layout

from .test_state import golden_creds, stored
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")


def stored_creds(
    conn: psycopg.Connection[Any], schema: str, session_id: str, keyring: Keyring
) -> Any:
    data = stored(conn, schema, session_id, keyring).get(layout.CREDS_FILE)
    return None if data is None else codec.decode(data)


async def test_save_creds_coalesces_and_the_newest_lands(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """A burst of saves costs a few writes, and the last one is what is stored."""
    state = await twin.open(pg_dsn, "burst", keyring=keyring, schema=schema, window=0.5)
    state.creds = golden_creds()
    started = time.monotonic()
    for i in range(1, 2001):
        state.creds["nextPreKeyId"] = i
        await state.save_creds()
    elapsed = time.monotonic() - started
    await state.flush()
    stats = state.stats()
    assert stats.creds_saves == 2000
    assert 1 <= stats.creds_writes <= elapsed / 0.5 + 2  # the flush may add one
    assert stored_creds(conn, schema, "burst", keyring)["nextPreKeyId"] == 2000
    await state.close()


async def test_save_creds_returns_at_once(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """save_creds does no I/O on the caller's path: thousands take well under a second."""
    async with await twin.open(pg_dsn, "fast", keyring=keyring, schema=schema, window=60) as state:
        state.creds = golden_creds()
        started = time.monotonic()
        for _ in range(1000):
            await state.save_creds()
        assert time.monotonic() - started < 5  # includes thread hand-offs of the test adapter
        assert state.stats().writes <= 1


async def test_trailing_edge_writes_without_flush(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """The last save of a burst is written within one window even if nobody flushes."""
    async with await twin.open(
        pg_dsn, "trail", keyring=keyring, schema=schema, window=0.3
    ) as state:
        state.creds = golden_creds()
        for i in range(5):
            state.creds["nextPreKeyId"] = 100 + i
            await state.save_creds()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            found = stored_creds(conn, schema, "trail", keyring)
            if found and found["nextPreKeyId"] == 104:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the newest creds were not written within the window")
        assert state.stats().pending == 0


async def test_keys_carry_pending_creds_in_the_same_statement(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Creds saved before a keys.set are stored when it returns: never older than later keys."""
    async with await twin.open(
        pg_dsn, "order", keyring=keyring, schema=schema, window=3600
    ) as state:
        state.creds = golden_creds()
        state.creds["nextPreKeyId"] = 1
        await state.save_creds()  # after idle: written at once (leading edge)
        await state.flush()
        state.creds["nextPreKeyId"] = 31
        await state.save_creds()  # within the window of that write: pending
        assert stored_creds(conn, schema, "order", keyring)["nextPreKeyId"] == 1
        assert state.stats().pending == 1
        await state.keys.set(
            {"pre-key": {str(i): {"private": b"k", "public": b"p"} for i in range(1, 31)}}
        )
        assert stored_creds(conn, schema, "order", keyring)["nextPreKeyId"] == 31
        stats = state.stats()
        assert (stats.writes, stats.pending, stats.creds_writes) == (2, 0, 2)


async def test_throttled_keys(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """With throttle_keys, keys.set returns at once, reads see it, and flush stores it."""
    async with await twin.open(
        pg_dsn, "lazy", keyring=keyring, schema=schema, window=3600, throttle_keys=True
    ) as state:
        await state.keys.set({"session": {"a.0": {"v": 0}}})  # after idle: written at once
        await state.flush()
        await state.keys.set({"session": {"a.1": {"v": 1}, "a.2": {"v": 2}}})
        await state.keys.set({"session": {"a.2": None, "a.3": {"v": 3}}})
        assert stored(conn, schema, "lazy", keyring) == {"session-a.0.json": b'{"v":0}'}
        assert await state.keys.get("session", ["a.1", "a.2", "a.3"]) == {
            "a.1": {"v": 1},
            "a.2": None,
            "a.3": {"v": 3},
        }
        assert state.stats().pending == 3
        await state.flush()
        assert stored(conn, schema, "lazy", keyring) == {
            "session-a.0.json": b'{"v":0}',
            "session-a.1.json": b'{"v":1}',
            "session-a.3.json": b'{"v":3}',
        }
        assert state.stats().flush_seconds is not None


async def test_close_flushes(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Leaving the context manager writes what is pending."""
    async with await twin.open(pg_dsn, "bye", keyring=keyring, schema=schema, window=3600) as state:
        state.creds = golden_creds()
        await state.save_creds()
    assert stored_creds(conn, schema, "bye", keyring) == golden_creds()


async def test_delete_drops_pending_state(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """A logout is not undone by creds that were still pending."""
    async with await twin.open(
        pg_dsn, "gone", keyring=keyring, schema=schema, window=3600
    ) as state:
        state.creds = golden_creds()
        await state.save_creds()
        await state.keys.set({"pre-key": {"1": {"v": 1}}})
        state.creds["nextPreKeyId"] = 999
        await state.save_creds()
        await state.delete()
        await state.flush()
    assert stored(conn, schema, "gone", keyring) == {}


async def test_stats_start_clean(twin: Twin, pg_dsn: str, schema: str, keyring: Keyring) -> None:
    """A fresh state reports no writes, full success and no error; stats hold no secret."""
    async with await twin.open(pg_dsn, "s", keyring=keyring, schema=schema) as state:
        stats = state.stats()
        assert (stats.writes, stats.failures, stats.pending, stats.success_rate) == (0, 0, 0, 1.0)
        assert stats.last_error is None
        await state.keys.set({"pre-key": {"1": {"v": 1}}})
        stats = state.stats()
        assert (stats.writes, stats.records_written) == (1, 1)
        assert stats.last_success is not None


async def test_bad_window(twin: Twin, pg_dsn: str, schema: str, keyring: Keyring) -> None:
    """A negative window is a configuration error."""
    with pytest.raises(waauth.ConfigurationError, match="window"):
        await twin.open(pg_dsn, "s", keyring=keyring, schema=schema, window=-1)
