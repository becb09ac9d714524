# WARNING: generated from waauth/_async/restore.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""Restoring many session folders at once: what ``materialize`` and ``waauth pull`` run.

A restore is bound by the disk (creating thousands of small files) and by the database (fetching
and decrypting each session's rows). It does both at once: one thread writes a session's folder
while the next session is fetched and decrypted, so that a deploy waits for about the slower of
the two, not for their sum.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from psycopg import Connection

from .. import _folders, _queries, layout
from ..encryption import Keyring
from ..errors import LeaseHeld, StoreUnavailable, WaauthError
from ..sessions import MaterializeReport
from .database import Database, Operation
from .lease import alease_holder, held_error
from .ops import read_records

logger = logging.getLogger("waauth.state")

AHEAD = 2
"""Sessions fetched and decrypted ahead of the one whose folder is being written: enough to
ride out a slow query without the disk waiting, while at most three sessions' files (these,
and the one being fetched) are held in memory."""


def restore_sessions(
    db: Database,
    root: Path,
    session_ids: Iterable[str],
    keyring: Keyring,
    report: MaterializeReport,
    *,
    fsync: bool,
    if_unleased: bool,
    done: Callable[[], None] | None = None,
) -> None:
    """Write each session's folder into ``report`` (or list it as without creds, or failed).

    Each folder is written as :func:`waauth._folders.write_folder` writes one. A session that
    cannot be restored is logged and put in ``report.failed``, one that another live process
    holds (``if_unleased``) in ``report.held``; the others go on. :class:`~waauth.StoreUnavailable`
    stops the restore once the folders being written are done. ``done`` is called once per
    session, when it is finished.
    """
    writing: deque[tuple[str, Future[Path]]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="waauth-restore") as disk:
        try:
            for session_id in session_ids:
                files = _fetch(db, session_id, keyring, report, if_unleased=if_unleased)
                if files is None:
                    if done is not None:
                        done()
                    continue
                while len(writing) >= AHEAD:
                    _finish(*writing.popleft(), report, done)
                write = disk.submit(_folders.write_folder, root, session_id, files, fsync=fsync)
                writing.append((session_id, write))
            while writing:
                _finish(*writing.popleft(), report, done)
        finally:
            # Stopped by an error: the folders being written are still swapped in whole
            # (leaving the executor waits for them), but no longer reported.
            for _, unfinished in writing:
                _settled(unfinished)


def active_sessions(db: Database) -> Operation[list[str]]:
    """The ids of the active sessions (of the database's owner), in order."""

    def op(conn: Connection[Any]) -> list[str]:
        cur = conn.execute(db.sql(_queries.ACTIVE_SESSIONS), {"owner": db.owner_id})
        return [session_id for (session_id,) in cur.fetchall()]

    return op


def _fetch(
    db: Database,
    session_id: str,
    keyring: Keyring,
    report: MaterializeReport,
    *,
    if_unleased: bool,
) -> dict[str, bytes] | None:
    """A session's decrypted files; None (and the session reported) if there is nothing to
    write: no creds stored, or a failure of this session alone."""
    try:
        layout.validate_session_id(session_id)  # ids stored before the rule was this strict
        if if_unleased:
            holder = alease_holder(db, session_id)
            if holder is not None:
                raise held_error(session_id, holder)
        files = db.run(f"materialize session {session_id!r}", read_records(db, session_id, keyring))
    except StoreUnavailable:
        raise
    except LeaseHeld as exc:
        # Another replica runs it: leave its folder alone, as a failure would, but say why.
        logger.warning("not restored: %s", exc)  # the error names the session
        report.held[session_id] = exc
        return None
    except WaauthError as exc:
        _failed(report, session_id, exc)
        return None
    if layout.CREDS_FILE not in files:
        report.without_creds.append(session_id)
        return None
    return files


def _finish(
    session_id: str,
    write: Future[Path],
    report: MaterializeReport,
    done: Callable[[], None] | None,
) -> None:
    """Wait for a session's folder to be written; report it written or failed."""
    _settled(write)
    try:
        report.written[session_id] = write.result()
    except OSError as exc:  # a full disk, a read-only root, a name the file system refuses
        error = WaauthError(f"session {session_id!r}: its folder could not be written ({exc})")
        error.__cause__ = exc
        _failed(report, session_id, error)
    except WaauthError as exc:
        _failed(report, session_id, exc)
    if done is not None:
        done()


def _settled(write: Future[Path]) -> None:
    """Return once ``write`` is done (the sync twin leaves that to ``result()``); what it
    returned or raised is then read from ``write`` itself."""
    # Mark the copy's error read: asyncio logs an unread one when the copy is collected.


def _failed(report: MaterializeReport, session_id: str, exc: WaauthError) -> None:
    logger.error("not restored: %s", exc)  # the error names the session
    report.failed[session_id] = exc
