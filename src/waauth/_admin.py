"""Maintenance on stored rows for the ``waauth`` command: rotate keys, check, inspect, delete.

Sync only, because the command is sync. Every statement goes through :meth:`Database.run`, so
retries and the translation of driver errors are the library's. Statements name their tables
through the ``{schema}`` placeholder, as in ``waauth._queries``.

Rotation walks the records in primary-key order, ``(session_id, file_name)``, a batch per
transaction. A batch locks its rows (``FOR UPDATE``) in that order, which is the order in which
every writer of waauth locks a session's rows, so a live bot and a rotation cannot deadlock.
It re-seals ``value`` only: ``version`` and ``updated_at`` describe the record's content, which
rotation does not change (see :func:`rotate`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from psycopg import Connection

from . import _folders, _queries, layout
from ._sync.database import Database
from ._sync.lease import held_error
from ._sync.migrations import current_version
from ._sync.ops import load_creds
from ._sync.state import list_sessions
from ._sync.verifying import scan_batches
from .encryption import Keyring
from .errors import CorruptRecord, DecryptionError, InvalidInput, SessionNotFound
from .sessions import SessionInfo
from .verify import WARNING, pre_key_findings

__all__ = [
    "BATCH_SIZE",
    "Check",
    "RecordProblem",
    "RotationReport",
    "SessionDetail",
    "TypeStats",
    "check_records",
    "count_records",
    "delete_session",
    "public_creds",
    "rotate",
    "rows_to_rotate",
    "server_version",
    "session_detail",
]

logger = logging.getLogger("waauth.admin")

BATCH_SIZE: Final = 500
"""Rows per transaction for rotation and checks: short locks, few round trips."""

ROTATE_COUNT: Final = """
SELECT count(*) FROM {schema}.records r
WHERE substring(r.value from 1 for 9) <> %(sealed_by)s
"""

ROTATE_SELECT: Final = """
SELECT r.session_id, r.file_name, r.value
FROM {schema}.records r
WHERE (r.session_id, r.file_name) > (%(after_session)s, %(after_file)s)
  AND substring(r.value from 1 for 9) <> %(sealed_by)s
ORDER BY r.session_id, r.file_name
LIMIT %(limit)s
FOR UPDATE OF r
"""
"""The next batch of rows not sealed by the first key (version 1 and its key id)."""

ROTATE_UPDATE: Final = """
UPDATE {schema}.records r SET value = u.value
FROM unnest(%(sessions)b::text[], %(files)b::text[], %(values)b::bytea[])
    AS u(session_id, file_name, value)
WHERE r.session_id = u.session_id AND r.file_name = u.file_name
"""

COUNT_RECORDS: Final = "SELECT count(*) FROM {schema}.records"

SESSION_STATUSES: Final = "SELECT s.session_id, s.status FROM {schema}.sessions s"

TYPE_STATS: Final = """
SELECT r.type, count(*), sum(length(r.value))::bigint, max(r.updated_at)
FROM {schema}.records r
WHERE r.session_id = %(session_id)s
GROUP BY r.type
ORDER BY r.type
"""

SEALED_BY_COUNTS: Final = """
SELECT CASE substring(r.value from 1 for 1)
           WHEN decode('01', 'hex') THEN encode(substring(r.value from 2 for 8), 'hex')
           WHEN decode('00', 'hex') THEN 'plaintext'
           ELSE 'unknown'
       END AS key_id,
       count(*)
FROM {schema}.records r
WHERE r.session_id = %(session_id)s
GROUP BY 1
ORDER BY 2 DESC
"""
"""Rows per sealing key: the key id from the header (a hash of the key, safe to show)."""

PRE_KEY_IDS: Final = """
SELECT r.record_id FROM {schema}.records r
WHERE r.session_id = %(session_id)s AND r.type = 'pre-key'
"""

COUNT_SESSION_RECORDS: Final = """
SELECT count(*) FROM {schema}.records r WHERE r.session_id = %(session_id)s
"""

DELETE_SESSION_ROW: Final = """
DELETE FROM {schema}.sessions s WHERE s.session_id = %(session_id)s RETURNING s.session_id
"""
"""The registry row; its records go with it (ON DELETE CASCADE)."""

LIVE_LEASE_FOR_DELETE: Final = """
SELECT host, pid, acquired_at, greatest(0, extract(epoch FROM expires_at - now()))::float8
FROM {schema}.leases
WHERE session_id = %(session_id)s AND expires_at > now()
FOR UPDATE
"""
"""A live holder of the session (locked, so that it cannot renew while we delete)."""


@dataclass(frozen=True)
class RecordProblem:
    """A stored row that could not be used, and why (never its value)."""

    session_id: str
    file_name: str
    reason: str

    def __str__(self) -> str:
        return f"session {self.session_id!r}, file {self.file_name!r}: {self.reason}"


Progress = Callable[[int], None]
"""Called with the number of rows a batch handled."""


# -- key rotation ----------------------------------------------------------------------------


@dataclass
class RotationReport:
    """What :func:`rotate` did."""

    rotated: int = 0
    """Rows re-sealed with the first key."""
    failed: list[RecordProblem] = field(default_factory=list)
    """Rows that no key of the keyring opens: left as they are."""
    remaining: int = 0
    """Rows still not sealed by the first key after the pass (the failed ones, and rows that a
    process still using an older first key wrote meanwhile)."""


def _sealed_by(keyring: Keyring) -> bytes:
    """The 9-byte header prefix (version 1, key id) of a value sealed by the first key."""
    return b"\x01" + bytes.fromhex(keyring.key_ids[0])


def rows_to_rotate(db: Database, keyring: Keyring) -> int:
    """How many rows are not sealed by the keyring's first key."""

    def op(conn: Connection[Any]) -> int:
        row = conn.execute(db.sql(ROTATE_COUNT), {"sealed_by": _sealed_by(keyring)}).fetchone()
        return int(row[0]) if row else 0

    return db.run("count rows to rotate", op)


def rotate(
    db: Database,
    keyring: Keyring,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> RotationReport:
    """Re-seal every row not sealed by the keyring's first key with it, a batch at a time.

    Each batch is one transaction that locks its rows, re-seals them and commits, so stopping
    at any moment loses nothing and running again carries on (rows already re-sealed are no
    longer selected). Only ``value`` changes: ``version`` and ``updated_at`` stay, because the
    record's content is the same; bumping them would make a maintenance pass look like a write
    from Baileys in listings, and would fail a writer comparing versions for no reason.
    """
    if not keyring.encrypts:
        raise ValueError("rotation needs a keyring with keys")
    report = RotationReport()
    sealed_by = _sealed_by(keyring)
    after = ("", "")  # session ids are never empty, so this sorts before every row
    while True:
        params = {
            "after_session": after[0],
            "after_file": after[1],
            "sealed_by": sealed_by,
            "limit": batch_size,
        }

        def batch(conn: Connection[Any], params: dict[str, Any] = params) -> _Batch:
            return _rotate_batch(conn, db, keyring, params)

        done = db.run("rotate keys", batch)
        report.rotated += done.rotated
        report.failed.extend(done.failed)
        if progress is not None and done.seen:
            progress(done.seen)
        if done.last is None or done.seen < batch_size:
            break
        after = done.last
    report.remaining = rows_to_rotate(db, keyring)
    logger.info("rotated %d rows (%d could not be opened)", report.rotated, len(report.failed))
    return report


@dataclass
class _Batch:
    seen: int
    rotated: int
    failed: list[RecordProblem]
    last: tuple[str, str] | None


def _rotate_batch(
    conn: Connection[Any], db: Database, keyring: Keyring, params: dict[str, Any]
) -> _Batch:
    with conn.transaction():
        with conn.cursor(binary=True) as cur:
            cur.execute(db.sql(ROTATE_SELECT), params)
            rows = cur.fetchall()
        sessions: list[str] = []
        files: list[str] = []
        values: list[bytes] = []
        failed: list[RecordProblem] = []
        for session_id, name, sealed in rows:
            unsafe = _unsafe_row(session_id, name)
            if unsafe:
                # Sealing it with the real key would let every ordinary keyring open it.
                failed.append(RecordProblem(session_id, name, f"{unsafe}; not re-sealed"))
                continue
            try:
                plain = keyring.decrypt(sealed, session_id=session_id, file_name=name)
            except DecryptionError as exc:
                failed.append(RecordProblem(session_id, name, exc.reason))
                continue
            sessions.append(session_id)
            files.append(name)
            values.append(keyring.encrypt(plain, session_id=session_id, file_name=name))
        if sessions:
            conn.execute(
                db.sql(ROTATE_UPDATE), {"sessions": sessions, "files": files, "values": values}
            )
    last = (rows[-1][0], rows[-1][1]) if rows else None
    return _Batch(len(rows), len(sessions), failed, last)


def _unsafe_row(session_id: str, file_name: str) -> str | None:
    """Why a row must not be re-sealed: a session id or file name that could not name its
    folder or its file (planted with raw SQL, or stored before waauth checked them)."""
    try:
        layout.validate_session_id(session_id)
        layout.check_file_name(file_name)
    except InvalidInput as exc:
        return str(exc)
    return None


# -- checks (doctor) -------------------------------------------------------------------------


@dataclass
class Check:
    """One line of ``waauth doctor``: ``ok``, ``warn`` (works, worth a look) or ``fail``."""

    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)
    rows: list[RecordProblem] = field(default_factory=list)
    """Every row concerned (``details`` groups them by reason)."""


@dataclass
class _SessionScan:
    has_creds: bool = False
    creds: dict[str, Any] | None = None
    pre_keys: set[int] = field(default_factory=set)


@dataclass
class _Scan:
    rows: int = 0
    old_key: int = 0
    undecryptable: list[RecordProblem] = field(default_factory=list)
    corrupt: list[RecordProblem] = field(default_factory=list)
    unsafe: list[RecordProblem] = field(default_factory=list)
    """Rows whose session id or file name no restore writes (planted, or from before the rules)."""
    sessions: dict[str, _SessionScan] = field(default_factory=dict)


def server_version(db: Database) -> tuple[str, int]:
    """The server's version and the schema version recorded in ``db``'s schema (0: none)."""

    def op(conn: Connection[Any]) -> tuple[str, int]:
        row = conn.execute("SHOW server_version").fetchone()
        return (str(row[0]) if row else "?"), current_version(conn, db.schema)

    return db.run("read the server and schema versions", op)


def count_records(db: Database) -> int:
    """How many records are stored."""

    def op(conn: Connection[Any]) -> int:
        row = conn.execute(db.sql(COUNT_RECORDS)).fetchone()
        return int(row[0]) if row else 0

    return db.run("count records", op)


def _scan(
    db: Database, keyring: Keyring | None, batch_size: int, progress: Progress | None
) -> _Scan:
    """Read every row once: decrypt and parse it (with a keyring), note creds and pre-keys."""
    scan = _Scan()
    for rows in scan_batches(db, batch_size=batch_size):
        for row in rows:
            _scan_row(scan, keyring, row)
        if progress is not None:
            progress(len(rows))
    return scan


def _scan_row(scan: _Scan, keyring: Keyring | None, row: tuple[Any, ...]) -> None:
    session_id, name, key_type, record_id, value = row
    sealed = bytes(value)
    scan.rows += 1
    session = scan.sessions.setdefault(session_id, _SessionScan())
    if name == layout.CREDS_FILE:
        session.has_creds = True
    if key_type == "pre-key" and record_id.isdigit():
        session.pre_keys.add(int(record_id))
    if keyring is None:
        return
    unsafe = _unsafe_row(session_id, name)
    if unsafe is not None:  # a restore refuses the session whatever the row holds
        scan.unsafe.append(RecordProblem(session_id, name, unsafe.split(": ", 1)[-1]))
        return
    try:
        plain = keyring.decrypt(sealed, session_id=session_id, file_name=name)
    except DecryptionError as exc:
        scan.undecryptable.append(RecordProblem(session_id, name, exc.reason))
        return
    # Only a row one of the keys opens can be re-sealed: the others are the records check's.
    if keyring.encrypts and keyring.needs_rotation(sealed):
        scan.old_key += 1
    try:
        value = _folders.check_record(session_id, name, plain)
    except CorruptRecord as exc:
        scan.corrupt.append(RecordProblem(session_id, name, exc.reason))
        return
    if name == layout.CREDS_FILE and isinstance(value, dict):
        session.creds = {
            "nextPreKeyId": value.get("nextPreKeyId"),
            "firstUnuploadedPreKeyId": value.get("firstUnuploadedPreKeyId"),
        }


def _statuses(db: Database) -> dict[str, str]:
    def op(conn: Connection[Any]) -> dict[str, str]:
        return {str(sid): str(status) for sid, status in conn.execute(db.sql(SESSION_STATUSES))}

    return db.run("read the session registry", op)


def check_records(
    db: Database,
    keyring: Keyring | None,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> list[Check]:
    """Check every row and every session of an up-to-date schema (the doctor's body).

    Without a keyring, only what needs no decryption is checked (creds present, registry).
    """
    scan = _scan(db, keyring, batch_size, progress)
    statuses = _statuses(db)
    checks: list[Check] = []
    if keyring is not None:
        checks.append(_records_check(scan, keyring))
        if keyring.encrypts:
            checks.append(_rotation_check(scan))
    checks.append(_sessions_check(scan, statuses))
    if keyring is not None:
        checks.append(_pre_keys_check(scan, statuses))
    return checks


def _records_check(scan: _Scan, keyring: Keyring) -> Check:
    bad = scan.undecryptable + scan.corrupt + scan.unsafe
    if not bad:
        return Check("records", "ok", f"{scan.rows} rows decrypt and parse with the current keys")
    parts = []
    if scan.undecryptable:
        parts.append(f"{len(scan.undecryptable)} rows do not decrypt with the current keys")
    if scan.corrupt:
        parts.append(f"{len(scan.corrupt)} rows are not valid Baileys records")
    if scan.unsafe:
        parts.append(f"{len(scan.unsafe)} rows have a name no restore writes")
    details = _grouped(bad)
    if scan.unsafe:
        details.append(_UNSAFE_ADVICE)
    if scan.undecryptable:
        keys = ", ".join(keyring.key_ids) or "none (plaintext)"
        details.insert(0, f"the current keys: {keys}")
        details.extend(_WRONG_KEY_ADVICE)
    return Check("records", "fail", f"{'; '.join(parts)} (of {scan.rows})", details, bad)


_UNSAFE_ADVICE: Final = (
    "a restore refuses a session holding such a row: delete the row with SQL (its session "
    "is not restored until then; docs/folders.md)"
)

# rotate-key cannot help on its own: it re-seals only rows that one of the keys opens.
_WRONG_KEY_ADVICE: Final = (
    "if the key that sealed them is known: list it after the current one "
    "(WAAUTH_KEYS=current,old), check with `waauth doctor`, then `waauth rotate-key`",
    "if that key is lost, those sessions cannot be opened again: `waauth rm ID`, "
    "then pair them anew (QR code)",
)


def _grouped(problems: list[RecordProblem]) -> list[str]:
    """One line per reason: a wrong key gives one line, not one per row."""
    by_reason: dict[str, list[RecordProblem]] = {}
    for problem in problems:
        by_reason.setdefault(problem.reason, []).append(problem)
    lines = []
    for reason, group in by_reason.items():
        if len(group) == 1:
            lines.append(str(group[0]))
        else:
            first = group[0]
            lines.append(
                f"{len(group)} rows: {reason} (the first: session {first.session_id!r}, "
                f"file {first.file_name!r})"
            )
    return lines


def _rotation_check(scan: _Scan) -> Check:
    if not scan.old_key:
        if scan.undecryptable:  # those are the records check's; say nothing false of them
            return Check("rotation", "ok", "the rows the keys open are all sealed with the first")
        return Check("rotation", "ok", "every row is sealed with the first key")
    return Check(
        "rotation",
        "warn",
        f"{_count(scan.old_key, 'row')} sealed with another key than the first: "
        "run `waauth rotate-key`, then drop the old keys",
    )


def _sessions_check(scan: _Scan, statuses: dict[str, str]) -> Check:
    broken = []
    pairing = []
    for session_id, status in sorted(statuses.items()):
        has_creds = scan.sessions.get(session_id, _SessionScan()).has_creds
        if status == "active" and not has_creds:
            broken.append(f"session {session_id!r} is active but has no creds.json")
        elif status == "new" and not has_creds:
            pairing.append(f"session {session_id!r} has no creds yet (pairing never finished?)")
    orphans = sorted(set(scan.sessions) - set(statuses))
    broken.extend(f"session {sid!r} has records but no registry row" for sid in orphans)
    if broken:
        return Check(
            "sessions",
            "fail",
            f"{_count(len(broken), 'session')} without creds that should have them",
            broken + pairing,
        )
    active = sum(1 for status in statuses.values() if status == "active")
    summary = f"{_count(len(statuses), 'session')}, {active} active with creds"
    if pairing:
        return Check("sessions", "warn", f"{summary}; {len(pairing)} without creds", pairing)
    return Check("sessions", "ok", summary)


def _pre_keys_check(scan: _Scan, statuses: dict[str, str]) -> Check:
    """The pre-keys creds refer to are stored (see :func:`waauth.verify.pre_key_findings`)."""
    failures: list[str] = []
    warnings: list[str] = []
    checked = 0
    unopened = 0
    for session_id, session in sorted(scan.sessions.items()):
        if statuses.get(session_id) == "logged_out":
            continue
        if session.creds is None:
            unopened += session.has_creds
            continue
        next_id = session.creds.get("nextPreKeyId")
        if not isinstance(next_id, int):
            continue
        checked += 1
        found = pre_key_findings(
            next_id, session.creds.get("firstUnuploadedPreKeyId"), session.pre_keys
        )
        for finding in found:
            line = f"session {session_id!r}: {finding.message}"
            (warnings if finding.level == WARNING else failures).append(line)
    if failures:
        return Check(
            "pre-keys",
            "fail",
            f"{_count(len(failures), 'problem')}: pre-keys that creds refer to are not stored",
            failures + warnings,
        )
    if warnings:
        return Check("pre-keys", "warn", f"{_count(len(warnings), 'session')} to look at", warnings)
    summary = f"the current pre-key is stored for {_count(checked, 'session')}"
    if unopened:
        return Check(
            "pre-keys",
            "warn",
            f"{summary}; {_count(unopened, 'session')} not checked (their creds do not open)",
        )
    return Check("pre-keys", "ok", summary)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- one session -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeStats:
    """Files of one type in a session."""

    files: int
    bytes: int
    last_write: datetime | None


@dataclass
class SessionDetail:
    """One session as ``waauth show`` tells it: never a key, a secret or a value."""

    info: SessionInfo
    types: dict[str, TypeStats]
    sealed_by: dict[str, int]
    """Rows per sealing key id (a hash of the key), ``plaintext`` or ``unknown``."""
    pre_key_ids: list[int]
    creds: dict[str, Any] | None = None
    """Non-secret fields of the creds, when a keyring was given and they decrypt."""
    creds_error: str | None = None


_CREDS_FIELDS: Final = (
    ("account", ("me", "id")),
    ("lid", ("me", "lid")),
    ("name", ("me", "name")),
    ("platform", ("platform",)),
    ("registered", ("registered",)),
    ("next_pre_key_id", ("nextPreKeyId",)),
    ("first_unuploaded_pre_key_id", ("firstUnuploadedPreKeyId",)),
    ("signed_pre_key_id", ("signedPreKey", "keyId")),
)
"""The only creds fields ``show`` tells (a whitelist: creds are mostly private keys)."""


def public_creds(creds: dict[str, Any]) -> dict[str, Any]:
    """The non-secret fields of decoded creds (see :data:`_CREDS_FIELDS`)."""
    out: dict[str, Any] = {}
    for label, path in _CREDS_FIELDS:
        value: Any = creds
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str | int | bool) or value is None:
            out[label] = value
    return out


def session_detail(
    db: Database, session_id: str, keyring: Keyring | None, *, source: str
) -> SessionDetail:
    """Everything ``waauth show`` tells about a session; raises SessionNotFound."""
    layout.validate_session_id(session_id)
    infos = list_sessions(source, session_ids=[session_id], schema=db.schema, retry=db.policy)
    if not infos:
        raise SessionNotFound(f"no session {session_id!r} is stored")
    params = {"session_id": session_id}

    def op(conn: Connection[Any]) -> tuple[Any, Any, Any]:
        types = conn.execute(db.sql(TYPE_STATS), params).fetchall()
        sealed = conn.execute(db.sql(SEALED_BY_COUNTS), params).fetchall()
        pre_keys = conn.execute(db.sql(PRE_KEY_IDS), params).fetchall()
        return types, sealed, pre_keys

    types, sealed, pre_keys = db.run(f"read session {session_id!r}", op)
    detail = SessionDetail(
        info=infos[0],
        types={str(t): TypeStats(int(n), int(b or 0), last) for t, n, b, last in types},
        sealed_by={str(k): int(n) for k, n in sealed},
        pre_key_ids=sorted(int(r) for (r,) in pre_keys if str(r).isdigit()),
    )
    if keyring is not None and detail.info.has_creds:
        try:
            creds = db.run(f"open session {session_id!r}", load_creds(db, session_id, keyring))
        except (DecryptionError, CorruptRecord) as exc:
            detail.creds_error = exc.reason
        else:
            detail.creds = None if creds is None else public_creds(creds)
    return detail


def delete_session(db: Database, session_id: str) -> int:
    """Delete a session entirely (registry row and every record); return the records deleted.

    Raises :class:`~waauth.SessionNotFound` when no such session is stored, and
    :class:`~waauth.LeaseHeld` while a live process runs it (its next write would bring the
    session back). The lease row stays, expired, with a new token: a holder paused past its
    expiry is fenced when it wakes up, and the next holder gets a larger token still.
    """
    layout.validate_session_id(session_id)
    params = {"session_id": session_id}

    def op(conn: Connection[Any]) -> int | None:
        with conn.transaction():
            holder = conn.execute(db.sql(LIVE_LEASE_FOR_DELETE), params).fetchone()
            if holder is not None:
                raise held_error(session_id, holder)
            conn.execute(db.sql(_queries.TOMBSTONE_LEASE), params)
            row = conn.execute(db.sql(COUNT_SESSION_RECORDS), params).fetchone()
            deleted = conn.execute(db.sql(DELETE_SESSION_ROW), params).fetchone()
        if deleted is None:
            return None
        return int(row[0]) if row else 0

    count = db.run(f"delete session {session_id!r}", op)
    if count is None:
        raise SessionNotFound(f"no session {session_id!r} is stored")
    logger.info("deleted session %s (%d records)", session_id, count)
    return count
