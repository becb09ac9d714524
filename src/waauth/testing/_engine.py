"""waauth's statements on in-memory tables: what PostgreSQL does for the in-memory back end.

:class:`Tables` holds what the ``sessions``, ``records`` and ``leases`` tables of one schema
hold, rows as immutable values. :data:`HANDLERS` maps each statement of :mod:`waauth._queries`
that the auth state, its writer, its leases, materialize, import and the session listing run
to a function doing on the tables what that statement does in PostgreSQL, and returning the
rows it would return. The statement text itself is the key, so a statement changed in
``_queries`` without its handler here fails loudly (the contract suite runs each of them on both
back ends). A statement with no handler (the replica fleet's, the admin commands') is refused
with a :class:`~waauth.ConfigurationError` naming it.

Each handler runs whole under the store's lock, so a statement is atomic, as in PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import _queries
from ..errors import ConfigurationError
from ..schema import render

Row = tuple[Any, ...]
Params = Mapping[str, Any]


@dataclass(frozen=True)
class SessionRow:
    owner_id: str | None
    status: str
    account_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RecordRow:
    owner_id: str | None
    type: str
    record_id: str
    value: bytes
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class LeaseRow:
    owner_id: str | None
    token: int
    host: str | None
    pid: int | None
    acquired_at: datetime
    expires_at: datetime


@dataclass
class Tables:
    """The tables of one schema. Rows are replaced, never changed in place: a copy of the
    dicts (:meth:`copy`) is a snapshot that a rolled back transaction goes back to."""

    version: int = 0
    sessions: dict[str, SessionRow] = field(default_factory=dict)
    records: dict[str, dict[str, RecordRow]] = field(default_factory=dict)
    """By session, then by file name."""
    leases: dict[str, LeaseRow] = field(default_factory=dict)

    def copy(self) -> Tables:
        return Tables(
            self.version,
            dict(self.sessions),
            {session_id: dict(rows) for session_id, rows in self.records.items()},
            dict(self.leases),
        )


def now() -> datetime:
    return datetime.now(timezone.utc)


def _clock_token() -> int:
    """As :data:`waauth._queries.FENCE_FROM_CLOCK`: microseconds since the epoch."""
    return time.time_ns() // 1000


def _owned(owner: str | None, row_owner: str | None) -> bool:
    """The owner condition of every statement: no owner scope, or the row's owner."""
    return owner is None or row_owner == owner


def _fenced(t: Tables, p: Params) -> bool:
    """The fence of the writing statements: no token, or the lease still has it."""
    token = p["token"]
    lease = t.leases.get(p["session_id"])
    return token is None or (lease is not None and lease.token == token)


# -- the statements ------------------------------------------------------------------------------


def _set_owner(t: Tables, p: Params) -> list[Row]:
    return [(p["owner"],)]  # row-level security has nothing to read it here


def _load(t: Tables, p: Params) -> list[Row]:
    session = t.sessions.get(p["session_id"])
    if session is None:
        return []
    creds = t.records.get(p["session_id"], {}).get(p["creds_file"])
    return [(session.owner_id, None if creds is None else creds.value)]


def _get(t: Tables, p: Params) -> list[Row]:
    rows = t.records.get(p["session_id"], {})
    found = (rows.get(name) for name in p["names"])
    return [
        (name, row.value)
        for name, row in zip(p["names"], found, strict=True)
        if row is not None and _owned(p["owner"], row.owner_id)
    ]


def _all_records(t: Tables, p: Params) -> list[Row]:
    rows = t.records.get(p["session_id"], {})
    return [(name, row.value) for name, row in rows.items() if _owned(p["owner"], row.owner_id)]


def _write(t: Tables, p: Params) -> list[Row]:
    if not _fenced(t, p):
        return [(0, 0, 0, False)]
    session_id, owner, at = p["session_id"], p["owner"], now()
    has_creds, replace = p["has_creds"], p["replace"]
    session = t.sessions.get(session_id)
    if session is None:
        session = SessionRow(
            owner, "active" if has_creds else "new", p["account"], created_at=at, updated_at=at
        )
    elif _owned(owner, session.owner_id):
        session = dataclasses.replace(
            session,
            updated_at=at,
            status="active" if has_creds else "new" if replace else session.status,
            account_id=p["account"] if has_creds else None if replace else session.account_id,
        )
    else:
        return [(0, 0, 0, True)]  # another owner's session: nothing written
    t.sessions[session_id] = session
    rows = t.records.setdefault(session_id, {})
    deletes, files, keep = set(p["deletes"]), set(p["files"]), set(p["keep"])
    gone = [
        name
        for name in rows
        if name in deletes or (replace and name not in files and name not in keep)
    ]
    for name in gone:
        del rows[name]
    for name, key_type, key_id, value in zip(
        p["files"], p["types"], p["ids"], p["values"], strict=True
    ):
        old = rows.get(name)
        rows[name] = RecordRow(
            session.owner_id if old is None else old.owner_id,
            key_type,
            key_id,
            bytes(value),
            1 if old is None else old.version + 1,
            at,
        )
    return [(1, len(p["files"]), len(gone), True)]


def _delete_session(t: Tables, p: Params) -> list[Row]:
    session_id = p["session_id"]
    session = t.sessions.get(session_id)
    fenced = _fenced(t, p)
    if session is None or not fenced or not _owned(p["owner"], session.owner_id):
        return [(0, 0, session is not None, fenced)]
    t.sessions[session_id] = dataclasses.replace(
        session, status="logged_out", account_id=None, updated_at=now()
    )
    deleted = len(t.records.pop(session_id, {}))
    lease = t.leases.get(session_id)
    if lease is not None and lease.expires_at <= now():  # the paused holder is fenced
        t.leases[session_id] = dataclasses.replace(
            lease, token=max(lease.token + 1, _clock_token())
        )
    return [(1, deleted, True, True)]


def _list_sessions(t: Tables, p: Params) -> list[Row]:
    owner, status = p["owner"], p["status"]
    wanted = None if p["session_ids"] is None else set(p["session_ids"])
    listed = []
    for session_id in sorted(t.sessions):
        session = t.sessions[session_id]
        if not _owned(owner, session.owner_id) or (status is not None and session.status != status):
            continue
        if wanted is not None and session_id not in wanted:
            continue
        files: dict[str, int] = {}
        size = 0
        for row in t.records.get(session_id, {}).values():
            if _owned(owner, row.owner_id):
                files[row.type] = files.get(row.type, 0) + 1
                size += len(row.value)
        listed.append(
            (
                session_id,
                session.owner_id,
                session.status,
                session.account_id,
                session.created_at,
                session.updated_at,
                files,
                size,
            )
        )
    return listed


def _active_sessions(t: Tables, p: Params) -> list[Row]:
    return [
        (session_id,)
        for session_id, session in sorted(t.sessions.items())
        if session.status == "active" and _owned(p["owner"], session.owner_id)
    ]


def _lease_refused(t: Tables, session_id: str, owner: str, at: datetime) -> bool:
    """As the ``lease_refused`` function of migration 0004."""
    session = t.sessions.get(session_id)
    lease = t.leases.get(session_id)
    return (session is not None and session.owner_id != owner) or (
        lease is not None
        and lease.expires_at > at
        and lease.owner_id is not None
        and lease.owner_id != owner
    )


def _take(t: Tables, p: Params, session_id: str, at: datetime) -> int | None:
    """Insert a lease, or take an expired one over (ON CONFLICT ... WHERE expired)."""
    lease = t.leases.get(session_id)
    if lease is not None and lease.expires_at > at:
        return None
    token = _clock_token() if lease is None else max(lease.token + 1, _clock_token())
    t.leases[session_id] = LeaseRow(
        p["owner"], token, p["host"], p["pid"], at, at + timedelta(seconds=p["ttl"])
    )
    return token


def _acquire_lease(t: Tables, p: Params) -> list[Row]:
    at = now()
    refused = p["owner"] is not None and _lease_refused(t, p["session_id"], p["owner"], at)
    return [(None if refused else _take(t, p, p["session_id"], at), refused)]


def _lease_holder(t: Tables, p: Params) -> list[Row]:
    lease, at = t.leases.get(p["session_id"]), now()
    if lease is None or lease.expires_at <= at:
        return []
    return [(lease.host, lease.pid, lease.acquired_at, (lease.expires_at - at).total_seconds())]


def _renew_leases(t: Tables, p: Params) -> list[Row]:
    expires = now() + timedelta(seconds=p["ttl"])
    renewed = []
    for session_id, token in zip(p["sessions"], p["tokens"], strict=True):
        lease = t.leases.get(session_id)
        if lease is not None and lease.token == token:
            t.leases[session_id] = dataclasses.replace(lease, expires_at=expires)
            renewed.append((session_id,))
    return renewed


def _tombstone_lease(t: Tables, p: Params) -> list[Row]:
    lease = t.leases.get(p["session_id"])
    if lease is not None:
        t.leases[p["session_id"]] = dataclasses.replace(
            lease,
            token=max(lease.token + 1, _clock_token()),
            expires_at=min(lease.expires_at, now()),
        )
    return []


def _release_lease(t: Tables, p: Params) -> list[Row]:
    lease = t.leases.get(p["session_id"])
    if lease is not None and lease.token == p["token"]:
        t.leases[p["session_id"]] = dataclasses.replace(lease, expires_at=now())
    return []


def _claim_leases(t: Tables, p: Params) -> list[Row]:
    at = now()
    exclude = set(p["exclude"])

    def order(session_id: str) -> str:
        return hashlib.md5((session_id + p["replica"]).encode(), usedforsecurity=False).hexdigest()

    free = [
        session_id
        for session_id, session in t.sessions.items()
        if session.status == "active"
        and _owned(p["owner"], session.owner_id)
        and session_id not in exclude
        and (session_id not in t.leases or t.leases[session_id].expires_at <= at)
    ]
    taken = []
    for session_id in sorted(free, key=order)[: p["limit"]]:
        token = _take(t, p, session_id, at)
        if token is not None:
            taken.append((session_id, token))
    return taken


Handler = Callable[[Tables, Params], list[Row]]

HANDLERS: dict[str, Handler] = {
    _queries.SET_OWNER: _set_owner,
    _queries.LOAD: _load,
    _queries.LOCK_FOR_IMPORT: _load,  # one writer at a time: the store's lock is the row lock
    _queries.GET: _get,
    _queries.ALL_RECORDS: _all_records,
    _queries.WRITE: _write,
    _queries.DELETE_SESSION: _delete_session,
    _queries.LIST_SESSIONS: _list_sessions,
    _queries.ACTIVE_SESSIONS: _active_sessions,
    _queries.ACQUIRE_LEASE: _acquire_lease,
    _queries.LEASE_HOLDER: _lease_holder,
    _queries.RENEW_LEASES: _renew_leases,
    _queries.TOMBSTONE_LEASE: _tombstone_lease,
    _queries.RELEASE_LEASE: _release_lease,
    _queries.CLAIM_LEASES: _claim_leases,
}

_rendered: dict[str, dict[str, Handler]] = {}


def handler(schema: str, statement: str) -> Handler:
    """The handler of ``statement`` as rendered for ``schema``."""
    table = _rendered.get(schema)
    if table is None:
        table = _rendered[schema] = {render(q, schema): h for q, h in HANDLERS.items()}
    found = table.get(statement)
    if found is None:
        first = next((line for line in statement.splitlines() if line.strip()), "")
        raise ConfigurationError(
            f"the in-memory store does not run this statement ({first.strip()[:60]}...): "
            "use a PostgreSQL database for it"
        )
    return found
