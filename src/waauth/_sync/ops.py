# WARNING: generated from waauth/_async/ops.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""Database operations shared by the auth state, materialize and the mirror.

Each function returns an operation for :meth:`Database.run`, which retries it as a whole.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from .. import _folders, _queries, _records, layout
from ..encryption import Keyring
from ..errors import AccessDenied, IdentityConflict, LeaseLost
from .database import Database, Operation


def read_records(db: Database, session_id: str, keyring: Keyring) -> Operation[dict[str, bytes]]:
    def read(conn: Connection[Any]) -> dict[str, bytes]:
        with conn.cursor(binary=True) as cur:
            cur.execute(
                db.sql(_queries.ALL_RECORDS), {"session_id": session_id, "owner": db.owner_id}
            )
            rows = cur.fetchall()
        return dict(keyring.decrypt_many(rows, session_id=session_id))

    return read


def guarded_write(
    db: Database,
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

    def run(conn: Connection[Any]) -> int:
        with conn.transaction():
            if batch.replace or creds is not None:
                _check_account(conn, db, session_id, keyring, creds, force=force)
            return write(conn)

    return run


def write_batch(
    db: Database, session_id: str, batch: _records.Batch, token: int | None
) -> Operation[int]:
    """Write ``batch`` in one statement (fenced by the lease ``token``); return rows deleted.

    Raises :class:`~waauth.LeaseLost` if the lease passed to another holder, and
    :class:`~waauth.AccessDenied` if the session belongs to another owner: nothing is written.
    """
    params = batch.params(session_id, db.owner_id, token)

    def run(conn: Connection[Any]) -> int:
        cur = conn.execute(db.sql(_queries.WRITE), params)
        counts = cur.fetchone()
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


def _check_account(
    conn: Connection[Any],
    db: Database,
    session_id: str,
    keyring: Keyring,
    creds: dict[str, Any] | None,
    *,
    force: bool,
) -> None:
    with conn.cursor(binary=True) as cur:
        cur.execute(
            db.sql(_queries.LOCK_FOR_IMPORT),
            {"session_id": session_id, "creds_file": layout.CREDS_FILE},
        )
        row = cur.fetchone()
    if row is None:
        return
    owner, sealed = row
    if db.owner_id is not None and owner != db.owner_id:
        raise AccessDenied(f"session {session_id!r} belongs to another owner")
    if sealed is not None and not force:
        stored = _records.open_creds(keyring, session_id, sealed)
        _check_same_account(session_id, stored, creds)


def load_creds(db: Database, session_id: str, keyring: Keyring) -> Any:
    def load(conn: Connection[Any]) -> dict[str, Any] | None:
        with conn.cursor(binary=True) as cur:
            cur.execute(
                db.sql(_queries.LOAD), {"session_id": session_id, "creds_file": layout.CREDS_FILE}
            )
            row = cur.fetchone()
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
            f"the stored creds{_of_account(held)} (pass force=True to do it anyway)"
        )
    incoming = _folders.identity_of(creds)
    if not held.same_account(incoming):
        raise IdentityConflict(
            f"session {session_id!r}: the folder holds another account's creds"
            f"{_of_account(incoming)} than the stored ones{_of_account(held)}; "
            "pass force=True to replace them"
        )


def _of_account(identity: _folders.Identity) -> str:
    return f" ({identity.account})" if identity.account else ""
