"""Reading stored sessions for :mod:`waauth.verify` (and ``waauth doctor``'s scan).

Rows are read in primary-key order, a batch per statement, and a session is checked as soon
as its last row has been read, so memory holds one session at a time however many are stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from .. import layout
from ..encryption import Keyring
from ..errors import SessionNotFound
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from ..verify import SessionVerdict, StoredRow, VerifyReport, check_session, unseal
from .database import AsyncDatabase
from .state import _listing

logger = logging.getLogger("waauth.verify")

BATCH_SIZE: Final = 500
"""Rows per statement: few round trips, bounded memory."""

SCAN: Final = """
SELECT r.session_id, r.file_name, r.type, r.record_id, r.value
FROM {schema}.records r
WHERE (r.session_id, r.file_name) > (%(after_session)s, %(after_file)s)
  AND (%(session_ids)s::text[] IS NULL OR r.session_id = ANY(%(session_ids)s::text[]))
ORDER BY r.session_id, r.file_name
LIMIT %(limit)s
"""
"""The next batch of rows (of some sessions, or all): session, file, type, id, sealed value."""


async def scan_batches(
    db: AsyncDatabase, *, session_ids: list[str] | None = None, batch_size: int = BATCH_SIZE
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Every stored row (of ``session_ids``), in ``(session_id, file_name)`` order, by batches.

    Each batch is its own retried statement, so an outage costs one batch, not the scan.
    """
    after = ("", "")  # session ids are never empty, so this sorts before every row
    while True:
        params = {
            "after_session": after[0],
            "after_file": after[1],
            "session_ids": session_ids,
            "limit": batch_size,
        }

        async def read(conn: AsyncConnection[Any], params: dict[str, Any] = params) -> list[Any]:
            async with conn.cursor(binary=True) as cur:
                await cur.execute(db.sql(SCAN), params)
                return await cur.fetchall()

        rows = await db.run("read records", read)
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        after = (rows[-1][0], rows[-1][1])


async def averify_sessions(
    source: str | AsyncConnectionPool[Any],
    *,
    keyring: Keyring,
    session_ids: Iterable[str] | None = None,
    schema: str = DEFAULT_SCHEMA,
    retry: RetryPolicy = DEFAULT_POLICY,
    batch_size: int = BATCH_SIZE,
) -> VerifyReport:
    """Check whether each stored session (``session_ids``, or all) will start cleanly in Baileys.

    Reads every row, decrypts and parses it, and checks the invariants of :mod:`waauth.verify`.
    Reads only: nothing is written, no lease is taken. A named session that is not stored
    raises :class:`~waauth.SessionNotFound`; one bad session never stops the others.
    """
    wanted = None if session_ids is None else [layout.validate_session_id(s) for s in session_ids]
    db = AsyncDatabase(source, schema=schema, policy=retry, pool_size=2, name="waauth:verify")
    verdicts: dict[str, SessionVerdict] = {}
    try:
        await db.open(migrate=False)
        infos = await db.run("list sessions", _listing(db, None, wanted))
        statuses = {info.session_id: info.status for info in infos}
        current: str | None = None
        rows: list[StoredRow] = []
        async for batch in scan_batches(db, session_ids=wanted, batch_size=batch_size):
            for row in batch:
                session_id = row[0]
                if session_id != current:
                    if current is not None:
                        verdicts[current] = check_session(
                            current, rows, status=statuses.get(current)
                        )
                    current, rows = session_id, []
                rows.append(unseal(keyring, row))
        if current is not None:
            verdicts[current] = check_session(current, rows, status=statuses.get(current))
    finally:
        await db.close()
    for session_id, status in statuses.items():
        if session_id not in verdicts:
            verdicts[session_id] = check_session(session_id, [], status=status)
    if wanted is not None:
        unknown = [s for s in wanted if s not in verdicts]
        if unknown:
            raise SessionNotFound(f"no session {unknown[0]!r} is stored")
    report = VerifyReport(tuple(verdicts[s] for s in sorted(verdicts)))
    logger.info("verified %d sessions: %s", len(report.sessions), report.level)
    return report
