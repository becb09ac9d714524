"""W5, the creds storm: 10,000 save_creds in about a second.

Baileys fires creds.update in bursts (dozens a second at login and history sync). Counted for
each system: database writes issued (from the database's own row version counter), and
whether the final creds are what is stored. waauth must issue at most
ceil(duration / window) + 1 writes (the first at once, one per window, the trailing one) and
store the final creds; the two patterns from the seed notes are run the same way: a write per
save, and a throttle that drops saves within 30 s of the last backup.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from waauth import AsyncPostgresAuthState, Keyring, PostgresAuthState, codec, migrate

SAVES = 10_000
SECONDS = 1.0
WINDOW = 1.0


def creds() -> dict[str, Any]:
    pair = {"private": os.urandom(32), "public": os.urandom(32)}
    return {
        "noiseKey": pair,
        "signedIdentityKey": pair,
        "signedPreKey": {"keyPair": pair, "signature": os.urandom(64), "keyId": 1},
        "registrationId": 1,
        "nextPreKeyId": 0,
    }


def paced(save: Callable[[int], None]) -> float:
    """Call save(1..SAVES) spread evenly over about SECONDS; return the time taken."""
    started = time.perf_counter()
    for i in range(1, SAVES + 1):
        save(i)
        if i % 10 == 0:
            ahead = started + SECONDS * i / SAVES - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    return time.perf_counter() - started


async def apaced(save: Callable[[int], Awaitable[None]]) -> float:
    started = time.perf_counter()
    for i in range(1, SAVES + 1):
        await save(i)
        if i % 10 == 0:
            ahead = started + SECONDS * i / SAVES - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
    return time.perf_counter() - started


def stored(dsn: str, session_id: str, keyring: Keyring) -> tuple[int, int]:
    """(writes the database saw for creds.json, nextPreKeyId stored)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT version, value FROM waauth.records"
            " WHERE session_id = %s AND file_name = 'creds.json'",
            [session_id],
        ).fetchone()
    assert row is not None
    value = codec.decode(keyring.decrypt(row[1], session_id=session_id, file_name="creds.json"))
    return int(row[0]), int(value["nextPreKeyId"])


def waauth_sync(dsn: str, keyring: Keyring) -> tuple[float, int]:
    with PostgresAuthState.open(dsn, "storm-sync", keyring=keyring, window=WINDOW) as state:
        state.creds = creds()

        def save(i: int) -> None:
            state.creds["nextPreKeyId"] = i  # type: ignore[index]
            state.save_creds()

        duration = paced(save)
        state.flush()
        return duration, state.stats().creds_writes


async def waauth_async(dsn: str, keyring: Keyring) -> tuple[float, int]:
    async with AsyncPostgresAuthState.open(
        dsn, "storm-async", keyring=keyring, window=WINDOW
    ) as state:
        state.creds = creds()

        async def save(i: int) -> None:
            state.creds["nextPreKeyId"] = i  # type: ignore[index]
            await state.save_creds()

        duration = await apaced(save)
        await state.flush()
        return duration, state.stats().creds_writes


def write_every_save(
    dsn: str, keyring: Keyring, session_id: str, drop_within: float | None
) -> float:
    """The seed notes' patterns: an upsert per save, or dropping saves within drop_within s."""
    value = creds()
    sql = (
        "INSERT INTO waauth.records AS r (session_id, file_name, type, record_id, value)"
        " VALUES (%s, 'creds.json', 'creds', '', %s) ON CONFLICT (session_id, file_name)"
        " DO UPDATE SET value = EXCLUDED.value, version = r.version + 1"
    )
    last_backup = float("-inf")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO waauth.sessions (session_id) VALUES (%s) ON CONFLICT DO NOTHING",
            [session_id],
        )

        def save(i: int) -> None:
            nonlocal last_backup
            value["nextPreKeyId"] = i
            now = time.monotonic()
            if drop_within is not None and now - last_backup < drop_within:
                return  # the update is dropped, not deferred
            last_backup = now
            sealed = keyring.encrypt(
                codec.encode(value), session_id=session_id, file_name="creds.json"
            )
            conn.execute(sql, [session_id, sealed])

        return paced(save)


def run(dsn: str | None = None) -> tuple[list[list[Any]], bool]:
    """Run W5 for every system; return the table rows and whether waauth's targets hold.

    Without ``dsn``, on a database of its own (see ``bench._common.database``).
    """
    if dsn is None:
        from ._common import database  # noqa: PLC0415

        with database() as own:
            return run(own)
    keyring = Keyring([Keyring.generate_key()])
    rows = []
    holds = True
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    systems: list[tuple[str, str, Callable[[], tuple[float, int | None]]]] = [
        ("waauth sync", "storm-sync", lambda: waauth_sync(dsn, keyring)),
        ("waauth async", "storm-async", lambda: asyncio.run(waauth_async(dsn, keyring))),
        (
            "write per save (seed 000/002)",
            "storm-each",
            lambda: (write_every_save(dsn, keyring, "storm-each", None), None),
        ),
        (
            "drop within 30 s (seed 001/003)",
            "storm-drop",
            lambda: (write_every_save(dsn, keyring, "storm-drop", 30.0), None),
        ),
    ]
    for name, session_id, system in systems:
        duration, own_count = system()
        writes, final = stored(dsn, session_id, keyring)
        bound = math.ceil(duration / WINDOW) + 1
        is_waauth = name.startswith("waauth")
        ok = writes <= bound and final == SAVES
        if is_waauth:
            holds = holds and ok and own_count == writes
        rows.append(
            [
                name,
                SAVES,
                f"{duration:.2f}",
                writes,
                bound if is_waauth else "-",
                "yes" if final == SAVES else f"no (has {final})",
                ("yes" if ok else "NO") if is_waauth else "-",
            ]
        )
    return rows, holds


HEADERS = [
    "W5 system",
    "saves",
    "seconds",
    "db writes",
    "bound",
    "final creds stored",
    "target holds",
]
