"""Database operations shared by the auth state, materialize and the mirror.

Each function returns an operation for :meth:`AsyncDatabase.run`, which retries it as a whole.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from .. import _folders, _queries, _records, layout
from ..encryption import Keyring
from ..errors import AccessDenied, IdentityConflict, LeaseLost, WaauthError
from .database import AsyncDatabase, Operation


def read_records(
    db: AsyncDatabase, session_id: str, keyring: Keyring
) -> Operation[dict[str, bytes]]:
    async def read(conn: AsyncConnection[Any]) -> dict[str, bytes]:
        async with conn.cursor(binary=True) as cur:
            await cur.execute(
                db.sql(_queries.ALL_RECORDS), {"session_id": session_id, "owner": db.owner_id}
            )
            rows = await cur.fetchall()
        return dict(keyring.decrypt_many(rows, session_id=session_id))

    return read


def guarded_write(
    db: AsyncDatabase,
    session_id: str,
    keyring: Keyring,
    batch: _records.Batch,
    creds: dict[str, Any] | None,
    *,
    force: bool,
    token: int | None = None,
) -> Operation[int]:
    """Write ``batch`` unless it would replace the stored account's creds (then raise
    :class:`IdentityConflict` and write nothing); return the number of rows deleted.

    ``creds`` is the decoded ``creds.json`` the batch writes, or None if it writes none. The
    check runs when the batch writes creds or replaces the session (an import), with the
    session row locked until the write commits.
    """

    write = write_batch(db, session_id, batch, token)

    async def run(conn: AsyncConnection[Any]) -> int:
        async with conn.transaction():
            if batch.replace or creds is not None:
                await _check_account(conn, db, session_id, keyring, creds, force=force)
            return await write(conn)

    return run


def write_batch(
    db: AsyncDatabase, session_id: str, batch: _records.Batch, token: int | None
) -> Operation[int]:
    """Write ``batch`` in one statement (fenced by the lease ``token``); return rows deleted.

    Raises :class:`~waauth.LeaseLost` if the lease passed to another holder, and
    :class:`~waauth.AccessDenied` if the session belongs to another owner: nothing is written.
    """
    params = batch.params(session_id, db.owner_id, token)

    async def run(conn: AsyncConnection[Any]) -> int:
        cur = await conn.execute(db.sql(_queries.WRITE), params)
        counts = await cur.fetchone()
        assert counts is not None
        return check_written(session_id, counts, deleted_at=2)

    return run


def check_written(session_id: str, counts: tuple[Any, ...], *, deleted_at: int) -> int:
    """Read a fenced statement's result: (sessions, ..., fenced); return its deleted count."""
    if not counts[-1]:
        raise LeaseLost(
            f"session {session_id!r}: the lease passed to another holder; nothing was written"
        )
    if not counts[0]:
        raise AccessDenied(f"session {session_id!r} belongs to another owner")
    return int(counts[deleted_at])


def write_sessions(
    db: AsyncDatabase, keyring: Keyring, writes: list[_records.SessionWrite]
) -> Operation[dict[str, int | WaauthError]]:
    """Write many sessions' batches in one transaction: per session, the number of rows
    deleted, or the error that kept it from being written (nothing of it was).

    Each session is guarded as :func:`guarded_write` guards one (never forced): its stored
    account checked when it writes creds or replaces, its owner checked, its lease token
    fenced, all on its own: :class:`IdentityConflict`, :class:`AccessDenied`,
    :class:`LeaseLost`, or the error of stored creds no key opens, for that session alone.
    Anything else (an outage, a bug) fails the whole operation, which the caller may retry.
    """

    async def run(conn: AsyncConnection[Any]) -> dict[str, int | WaauthError]:
        checked = [w for w in writes if w.checked]
        if not checked:  # one statement is one transaction: no BEGIN/COMMIT round trips
            return await _write_many(conn, db, writes, {})
        async with conn.transaction():
            refused: dict[str, int | WaauthError] = {}
            async with conn.cursor(binary=True) as cur:
                await cur.execute(
                    db.sql(_queries.LOCK_MANY_FOR_IMPORT),
                    {
                        "session_ids": sorted(w.session_id for w in checked),
                        "creds_file": layout.CREDS_FILE,
                    },
                )
                stored = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
            for w in checked:
                if w.session_id in stored:
                    try:
                        owner, sealed = stored[w.session_id]
                        _check_stored(
                            db, w.session_id, keyring, owner=owner, sealed=sealed, creds=w.creds
                        )
                    except WaauthError as exc:
                        refused[w.session_id] = exc
            return await _write_many(conn, db, writes, refused)

    return run


async def _write_many(
    conn: AsyncConnection[Any],
    db: AsyncDatabase,
    writes: list[_records.SessionWrite],
    outcomes: dict[str, int | WaauthError],
) -> dict[str, int | WaauthError]:
    """WRITE_MANY of the sessions not refused yet; their outcomes added to ``outcomes``."""
    left = [w for w in writes if w.session_id not in outcomes]
    if left:
        replacing = any(w.batch.replace for w in left)
        statement = _queries.WRITE_MANY_REPLACING if replacing else _queries.WRITE_MANY
        cur = await conn.execute(db.sql(statement), _records.many_params(left, db.owner_id))
        for session_id, fence_passed, written, upserted, deleted in await cur.fetchall():
            try:
                outcomes[session_id] = check_written(
                    session_id, (written, upserted, deleted, fence_passed), deleted_at=2
                )
            except (LeaseLost, AccessDenied) as exc:
                outcomes[session_id] = exc
    return outcomes


async def _check_account(
    conn: AsyncConnection[Any],
    db: AsyncDatabase,
    session_id: str,
    keyring: Keyring,
    creds: dict[str, Any] | None,
    *,
    force: bool,
) -> None:
    async with conn.cursor(binary=True) as cur:
        await cur.execute(
            db.sql(_queries.LOCK_FOR_IMPORT),
            {"session_id": session_id, "creds_file": layout.CREDS_FILE},
        )
        row = await cur.fetchone()
    if row is None:
        return
    owner, sealed = row
    _check_stored(
        db, session_id, keyring, owner=owner, sealed=None if force else sealed, creds=creds
    )


def _check_stored(
    db: AsyncDatabase,
    session_id: str,
    keyring: Keyring,
    *,
    owner: str | None,
    sealed: bytes | None,
    creds: dict[str, Any] | None,
) -> None:
    """Refuse to write over a stored session of another owner, or another account's creds."""
    if db.owner_id is not None and owner != db.owner_id:
        raise AccessDenied(f"session {session_id!r} belongs to another owner")
    if sealed is not None:
        stored = _records.open_creds(keyring, session_id, sealed)
        _check_same_account(session_id, stored, creds)


def load_creds(db: AsyncDatabase, session_id: str, keyring: Keyring) -> Any:
    async def load(conn: AsyncConnection[Any]) -> dict[str, Any] | None:
        async with conn.cursor(binary=True) as cur:
            await cur.execute(
                db.sql(_queries.LOAD), {"session_id": session_id, "creds_file": layout.CREDS_FILE}
            )
            row = await cur.fetchone()
        if row is None:
            return None  # never stored: the one case where creds are None without a row
        owner, sealed = row
        if db.owner_id is not None and owner != db.owner_id:
            raise AccessDenied(f"session {session_id!r} belongs to another owner")
        return None if sealed is None else _records.open_creds(keyring, session_id, sealed)

    return load


def _check_same_account(
    session_id: str, stored: dict[str, Any], creds: dict[str, Any] | None
) -> None:
    """Refuse an import that would replace the stored account's creds."""
    held = _folders.identity_of(stored)
    if creds is None:
        raise IdentityConflict(
            f"session {session_id!r}: the folder has no creds.json; importing it would remove "
            f"the stored creds{_of_account(held)} (force=True, `waauth push --force`, does it "
            "anyway)"
        )
    incoming = _folders.identity_of(creds)
    if not held.same_account(incoming):
        if incoming.account and incoming.account == held.account:
            # A new login of the same number: only the identity key tells the two apart.
            which = f"than the stored ones (another identity key, though both name {held.account})"
        else:
            which = f"{_of_account(incoming)} than the stored ones{_of_account(held)}".lstrip()
        raise IdentityConflict(
            f"session {session_id!r}: the folder holds another account's creds {which}; "
            "force=True (`waauth push --force`) replaces them"
        )


def _of_account(identity: _folders.Identity) -> str:
    return f" ({identity.account})" if identity.account else ""
