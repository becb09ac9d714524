"""W9: many sessions in one bot. 1,000 states opened the README way (a DSN string per
``open``) in one process, all at once, then a concurrent ``keys.set`` on every one of them.

What it reports: the connections the process holds (``pg_stat_activity``, by a unique
``application_name``), the time to open them all, and the throughput of the writes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from waauth import AsyncPostgresAuthState, Keyring

from ._common import table
from .report import Target

SESSIONS = 1000
BOUND = 4
"""The default ``pool_size``: what the shared pool of one process and one DSN holds at most."""

HEADERS = ["sessions", "connections used", "open all (s)", "keys.set on all (s)", "writes/s"]


def _tagged(dsn: str, application: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={application}"


def _connections(conn: psycopg.Connection[Any], application: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application]
    ).fetchone()
    return int(row[0]) if row else 0


async def _run(dsn: str, keyring: Keyring, tag: str, sessions: int) -> list[Any]:
    application = f"waauth-bench-w9-{tag}"
    conninfo = _tagged(dsn, application)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        states = await asyncio.gather(
            *(
                AsyncPostgresAuthState.open(conninfo, f"bench-{tag}-w9-{i}", keyring=keyring)
                for i in range(sessions)
            )
        )
        opened = time.perf_counter() - started
        peak = _connections(conn, application)
        try:
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    s.keys.set({"pre-key": {str(i): {"private": bytes(32), "public": bytes(32)}}})
                    for i, s in enumerate(states)
                )
            )
            wrote = time.perf_counter() - started
            peak = max(peak, _connections(conn, application))
        finally:
            await asyncio.gather(*(s.close() for s in states))
    return [sessions, peak, f"{opened:.2f}", f"{wrote:.2f}", f"{sessions / wrote:,.0f}"]


def run(dsn: str, keyring: Keyring, tag: str, sessions: int = SESSIONS) -> tuple[str, Target]:
    """The W9 table and its target: every open and write done, on at most BOUND connections."""
    row = asyncio.run(_run(dsn, keyring, tag, sessions))
    holds = 1 <= row[1] <= BOUND
    target = Target(
        f"W9 {sessions:,} sessions by DSN in one process on <= {BOUND} connections, "
        "keys.set on all",
        f"{row[1]} connections, opened in {row[2]} s, {row[4]} writes/s",
        holds,
    )
    return table(HEADERS, [row]), target
