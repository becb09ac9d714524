"""The pool that the states of one process share: bounded however many sessions are open."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from waauth import Keyring, RetryPolicy, StoreUnavailable

from .servers import OwnServer
from .test_state import golden_creds
from .twins import Twin

SHORT_RETRY = RetryPolicy(budget=2, initial_delay=0.05, max_delay=0.5, connect_timeout=1)


def _tagged(dsn: str) -> tuple[str, str]:
    """The DSN with an application_name unique to the test, to count its connections."""
    name = f"waauth-pool-{uuid.uuid4().hex[:8]}"
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}", name


def _connections(dsn: str, application: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application]
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_two_hundred_states_opened_by_dsn_share_a_bounded_pool(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """200 sessions opened the README way (a DSN string each) hold at most pool_size
    connections, all of them working at once; the last close gives every connection back."""
    dsn, application = _tagged(pg_dsn)
    states = await asyncio.gather(
        *(twin.open(dsn, f"s{i}", keyring=keyring, schema=schema) for i in range(200))
    )
    try:
        # Every state writes at once: the 200 writes queue for the same few connections.
        async def write(i: int, state: Any) -> None:
            await state.keys.set({"pre-key": {str(i): {"private": bytes(32), "public": bytes(32)}}})

        await asyncio.gather(*(write(i, s) for i, s in enumerate(states)))
        used = _connections(pg_dsn, application)
        print(f"200 states: {used} connections")
        assert 1 <= used <= 4  # the default pool_size, not one pool (or connection) per state
        got = await states[123].keys.get("pre-key", ["123"])
        assert got == {"123": {"private": bytes(32), "public": bytes(32)}}
    finally:
        for state in states[:-1]:
            await state.close()
        # One user left: its pool stays open and working.
        states[-1].creds = golden_creds()
        await states[-1].save_creds()
        await states[-1].flush()
        assert _connections(pg_dsn, application) >= 1
        await states[-1].close()
    for _ in range(50):  # the server notices closed connections within moments
        if _connections(pg_dsn, application) == 0:
            break
        await asyncio.sleep(0.1)
    assert _connections(pg_dsn, application) == 0


async def test_a_call_gives_its_connection_back_before_it_returns(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """The next call never waits for the connection the last one used: it is back in the
    pool when a call returns (not handed to a pool worker to put back later)."""
    dsn, _ = _tagged(pg_dsn)
    state = await twin.open(dsn, "s", keyring=keyring, schema=schema, pool_size=1)
    try:
        await state.keys.set({"pre-key": {"1": {"private": bytes(32), "public": bytes(32)}}})
        pool = state._db._pool
        pool.pop_stats()
        for _ in range(50):
            assert (await state.keys.get("pre-key", ["1"]))["1"] is not None
        stats = pool.get_stats()
        assert stats.get("requests_num", 0) >= 50
        assert stats.get("requests_queued", 0) == 0, stats
    finally:
        await state.close()


async def test_a_server_out_of_connections_is_named_as_the_cause(
    twin: Twin, own_server: OwnServer, keyring: Keyring
) -> None:
    """With every connection slot taken, open fails naming the server's refusal ("too many
    clients"), not only the driver's error class."""
    hogs: list[psycopg.Connection[Any]] = []
    try:
        while True:
            try:
                hogs.append(psycopg.connect(own_server.dsn, autocommit=True))
            except psycopg.OperationalError as exc:
                refused = str(exc)
                break
        assert "too many clients" in refused
        with pytest.raises(StoreUnavailable) as caught:
            await twin.open(own_server.dsn, "full", keyring=keyring, retry=SHORT_RETRY)
    finally:
        for hog in hogs:
            hog.close()
    print(caught.value)
    assert "too many clients" in str(caught.value)
