"""Fault tests: the database stops, restarts, kills our connections, or we are killed.

Each test runs its own embedded PostgreSQL (the ``own_server`` fixture), never a shared one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring, RetryPolicy, codec

from .servers import OwnServer
from .test_state import golden_creds
from .twins import Twin

FAST_RETRY = RetryPolicy(budget=30, initial_delay=0.05, max_delay=0.5, connect_timeout=2)


def rows(server: OwnServer, session_id: str, keyring: Keyring) -> dict[str, Any]:
    """Every record of a session, decrypted and decoded (so a torn value would raise)."""
    with psycopg.connect(server.dsn) as conn:
        found = conn.execute(
            "SELECT file_name, value FROM waauth.records WHERE session_id = %s", [session_id]
        ).fetchall()
    return {
        name: codec.decode(keyring.decrypt(value, session_id=session_id, file_name=name))
        for name, value in found
    }


@pytest.mark.parametrize("mode", ["immediate", "fast"])
async def test_server_restart_in_a_storm(
    twin: Twin, own_server: OwnServer, keyring: Keyring, mode: str
) -> None:
    """Writers keep going through a stop/restart: no error reaches them, nothing is lost."""
    state = await twin.open(own_server.dsn, "storm", keyring=keyring, window=0.1, retry=FAST_RETRY)
    state.creds = golden_creds()
    acknowledged: list[tuple[int, int]] = []

    async def keys_writer(w: int) -> None:
        for i in range(30):
            await state.keys.set(
                {
                    "session": {f"{w}.{i}": {"w": w, "i": i, "pad": "x" * 300}},
                    "pre-key": {f"{w}-{i}": {"private": bytes(32), "public": bytes(32)}},
                }
            )
            acknowledged.append((w, i))
            await asyncio.sleep(0.02)

    async def creds_writer() -> None:
        for i in range(1, 201):
            state.creds["nextPreKeyId"] = i
            await state.save_creds()
            await asyncio.sleep(0.01)

    async def outage() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(own_server.stop, mode)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(own_server.start)

    await asyncio.gather(*(keys_writer(w) for w in range(4)), creds_writer(), outage())
    await state.flush()
    stats = state.stats()
    await state.close()

    stored = rows(own_server, "storm", keyring)
    assert len(acknowledged) == 120
    for w, i in acknowledged:
        assert stored[f"session-{w}.{i}.json"] == {"w": w, "i": i, "pad": "x" * 300}
        assert f"pre-key-{w}-{i}.json" in stored
    assert len(stored) == 2 * 120 + 1  # no duplicates, no strays: keys and one creds
    assert stored["creds.json"]["nextPreKeyId"] == 200
    assert stats.retries >= 1
    assert stats.pending == 0


async def _terminate_writes(conn: psycopg.Connection[Any], done: asyncio.Event) -> int:
    """Terminate backends running waauth's write statement until one is caught or done is set."""
    while not done.is_set():
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE state = 'active' AND query LIKE '%%fence AS%%'"  # the write statement's start
            " AND pid <> pg_backend_pid()"
        ).fetchone()
        if row and row[0]:
            return int(row[0])
        await asyncio.sleep(0.002)
    return 0


async def test_terminated_backend_mid_transaction(
    twin: Twin, own_server: OwnServer, keyring: Keyring
) -> None:
    """pg_terminate_backend on the connection writing a big keys.set: it is retried and lands."""
    state = await twin.open(own_server.dsn, "term", keyring=keyring, retry=FAST_RETRY)
    terminated = 0
    with psycopg.connect(own_server.dsn, autocommit=True) as killer:
        for attempt in range(5):
            keys = {
                f"{attempt}-{i}": {"private": bytes(32), "public": i.to_bytes(32, "big")}
                for i in range(20000)
            }
            done = asyncio.Event()

            async def write(keys: dict[str, Any], done: asyncio.Event) -> None:
                await state.keys.set({"pre-key": keys})
                done.set()

            caught, _ = await asyncio.gather(_terminate_writes(killer, done), write(keys, done))
            terminated += caught
            if terminated:
                assert await state.keys.get("pre-key", list(keys)) == keys
                break
    assert terminated >= 1, "never caught the write in flight"
    assert state.stats().retries >= 1
    await state.close()


def test_kill_9_writer_at_random_moments(own_server: OwnServer) -> None:
    """A writer process killed at any moment leaves each keys.set whole or absent, and creds
    never older than its last completed flush."""
    key = Keyring.generate_key()
    keyring = Keyring([key])
    script = Path(__file__).with_name("fault_writer.py")
    rng = random.Random(20261122)
    last_flushed = 0
    for _ in range(10):
        proc = subprocess.Popen(
            [sys.executable, str(script), own_server.dsn, key], stdout=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(0.6, 1.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        flushed = [int(line.split()[1]) for line in out.splitlines() if line.startswith("flushed")]
        if flushed:
            last_flushed = max(flushed)

        stored = rows(own_server, "k9", keyring)
        groups = Counter(
            value["n"] for name, value in stored.items() if name.startswith("session-")
        )
        assert set(groups.values()) <= {10}, "a keys.set was stored in part"
        pre_keys = [value["n"] for name, value in stored.items() if name.startswith("pre-key-")]
        assert len(pre_keys) <= 1, "a pre-key delete and its insert were split"
        if groups:
            assert pre_keys == [max(groups)]
        # Killed before its first creds write (a slow start), a writer may have stored keys
        # only; once a flush returned, creds are there and never older than it.
        if last_flushed:
            assert stored["creds.json"]["nextPreKeyId"] >= last_flushed
    assert last_flushed > 0, "no writer ever reached a flush"


async def test_outage_longer_than_the_budget(
    twin: Twin, own_server: OwnServer, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the budget: keys.set and flush raise StoreUnavailable, save_creds keeps returning,
    and what was pending lands when the server is back."""
    policy = RetryPolicy(budget=1.0, initial_delay=0.05, max_delay=0.2, connect_timeout=0.2)
    caplog.set_level(logging.INFO, logger="waauth")
    state = await twin.open(own_server.dsn, "long", keyring=keyring, window=0.1, retry=policy)
    state.creds = golden_creds()
    await state.save_creds()
    await state.flush()

    own_server.stop("immediate")
    for i in range(1, 778):  # memory is one entry per file, however many saves
        state.creds["nextPreKeyId"] = i
        await state.save_creds()
    assert state.stats().pending == 1
    with pytest.raises(waauth.StoreUnavailable):
        await state.keys.set({"pre-key": {"9": {"never": "stored"}}})
    with pytest.raises(waauth.StoreUnavailable, match="records pending") as info:
        await state.flush()
    assert info.value.pending >= 1
    stats = state.stats()
    assert stats.failures >= 1
    assert stats.outage_seconds is not None
    assert stats.last_error is not None
    assert stats.success_rate < 1

    own_server.start()
    deadline = time.monotonic() + 20
    while state.stats().pending and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await state.flush()
    stats = state.stats()
    await state.close()

    stored = rows(own_server, "long", keyring)
    assert stored["creds.json"]["nextPreKeyId"] == 777
    assert "pre-key-9.json" not in stored
    assert stats.pending == 0
    assert stats.last_recovery_seconds is not None
    messages = [r.getMessage() for r in caplog.records]
    assert any("attempt" in m and "retrying in" in m for m in messages)
    assert any("the database is back" in m for m in messages)


async def test_a_failed_keys_set_counts_only_what_stays_pending(
    twin: Twin, own_server: OwnServer, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning when a keys.set cannot be written counts the records kept pending, not the
    call's own: those are not kept (the caller got StoreUnavailable for them)."""
    policy = RetryPolicy(budget=0.5, initial_delay=0.05, max_delay=0.1, connect_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="waauth")
    state = await twin.open(own_server.dsn, "wt", keyring=keyring, window=30, retry=policy)
    state.creds = golden_creds()
    await state.save_creds()
    await state.flush()
    own_server.stop("immediate")
    with pytest.raises(waauth.StoreUnavailable):
        await state.keys.set({"pre-key": {str(i): {"never": "stored"} for i in range(1, 4)}})
    assert state.stats().pending == 0
    warnings = [r.getMessage() for r in caplog.records if "kept pending" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("keys.set for session 'wt'")
    assert warnings[0].endswith("; 0 records kept pending")
    own_server.start()
    await state.close()
    assert "pre-key-1.json" not in rows(own_server, "wt", keyring)


async def test_flush_timeout(twin: Twin, own_server: OwnServer, keyring: Keyring) -> None:
    """flush(timeout) gives up after the timeout with the pending count, the state still usable."""
    state = await twin.open(own_server.dsn, "t", keyring=keyring, window=0.1, retry=FAST_RETRY)
    state.creds = golden_creds()
    own_server.stop("fast")
    await state.save_creds()
    started = time.monotonic()
    with pytest.raises(waauth.StoreUnavailable, match=r"not written within 0\.5 s") as info:
        await state.flush(timeout=0.5)
    assert time.monotonic() - started < 5
    assert info.value.pending == 1
    own_server.start()
    await state.flush()
    await state.close()
    assert rows(own_server, "t", keyring)["creds.json"] == golden_creds()
