"""The in-memory stand-in for the database: sessions and their records, in this process.

An :class:`InMemoryStore` holds what the ``sessions`` and ``records`` tables hold, per schema:
each session's owner, status and account, and each record's exact bytes (what Postgres holds
sealed, here in the clear). States opened on one store see each other's writes, and a state
opened again on it finds what the last one wrote, as after a redeploy.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _folders, layout
from ..schema import DEFAULT_SCHEMA, check_schema_name
from ..sessions import MaterializeReport, SessionInfo
from ._faults import Outage, OutageTarget

if TYPE_CHECKING:
    from ._memory import _Core

__all__ = ["InMemoryStore", "reset_shared_stores", "shared_store"]

logger = logging.getLogger("waauth.testing")


@dataclass
class Record:
    """One stored file: what a row of ``records`` holds (its value decrypted)."""

    type: str
    id: str
    data: bytes


@dataclass
class Session:
    """One session: what a row of ``sessions`` holds, and its records by file name."""

    owner_id: str | None
    status: str = "new"
    account_id: str | None = None
    records: dict[str, Record] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    updated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def owned_by(self, owner_id: str | None) -> bool:
        """Whether a state scoped to ``owner_id`` (None: no scope) may see this session."""
        return owner_id is None or self.owner_id == owner_id

    def touch(self) -> None:
        self.updated_at = datetime.now(timezone.utc)


class InMemoryStore(OutageTarget):
    """Stands in for the PostgreSQL database in tests: pass it as the ``source`` of
    ``InMemoryAuthState.open`` / ``AsyncInMemoryAuthState.open``.

    Safe to share between threads and event loops. Nothing is encrypted and nothing leaves the
    process; a new store is an empty database.
    """

    def __init__(self) -> None:
        # Re-entrant: the states run whole operations under it, and may call back into it.
        self.lock = threading.RLock()
        self._schemas: dict[str, dict[str, Session]] = {}
        self._outages: list[Outage] = []
        self._states: weakref.WeakSet[_Core] = weakref.WeakSet()

    # -- what the states use -------------------------------------------------------------------

    def sessions(self, schema: str) -> dict[str, Session]:
        """The sessions of ``schema`` (created empty on first use); hold ``lock``."""
        return self._schemas.setdefault(check_schema_name(schema), {})

    def outages(self) -> list[Outage]:
        """The outages aimed at the whole store."""
        return self._outages

    def register(self, core: _Core) -> None:
        """A state opened on this store (told when a store-wide outage ends)."""
        with self.lock:
            self._states.add(core)

    def unregister(self, core: _Core) -> None:
        with self.lock:
            self._states.discard(core)

    def _attach_outage(self, outage: Outage) -> None:
        with self.lock:
            self._outages.append(outage)

    def _detach_outage(self, outage: Outage) -> None:
        with self.lock:
            if outage in self._outages:
                self._outages.remove(outage)

    def _outage_ended(self) -> None:
        with self.lock:
            states = list(self._states)
        for core in states:
            core.outage_ended()

    # -- inspection, for tests --------------------------------------------------------------

    def files(self, session_id: str, *, schema: str = DEFAULT_SCHEMA) -> dict[str, bytes]:
        """Every stored file of a session, name -> exact bytes (what Postgres holds, decrypted).

        Only what is written: saves still pending in a state (during an outage) are not here.
        """
        with self.lock:
            session = self.sessions(schema).get(layout.validate_session_id(session_id))
            if session is None:
                return {}
            return {name: record.data for name, record in sorted(session.records.items())}

    def list_sessions(
        self,
        *,
        owner_id: str | None = None,
        status: str | None = None,
        session_ids: Iterable[str] | None = None,
        schema: str = DEFAULT_SCHEMA,
    ) -> list[SessionInfo]:
        """What :func:`waauth.list_sessions` tells, for this store: by id, never a secret.

        ``bytes`` counts the stored bytes as they are (Postgres counts them sealed, which adds
        37 bytes a record).
        """
        wanted = (
            None if session_ids is None else {layout.validate_session_id(s) for s in session_ids}
        )
        with self.lock:
            found = []
            for session_id, session in sorted(self.sessions(schema).items()):
                if not session.owned_by(owner_id):
                    continue
                if status is not None and session.status != status:
                    continue
                if wanted is not None and session_id not in wanted:
                    continue
                files: dict[str, int] = {}
                for record in session.records.values():
                    files[record.type] = files.get(record.type, 0) + 1
                found.append(
                    SessionInfo(
                        session_id=session_id,
                        owner_id=session.owner_id,
                        status=session.status,
                        account_id=session.account_id,
                        files=files,
                        bytes=sum(len(r.data) for r in session.records.values()),
                        created_at=session.created_at,
                        updated_at=session.updated_at,
                    )
                )
            return found

    def materialize(
        self,
        root: str | os.PathLike[str],
        *,
        session_ids: Iterable[str] | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        fsync: bool = False,
    ) -> MaterializeReport:
        """What :func:`waauth.materialize` does, for this store: ``root/<id>/`` for every
        active session (or ``session_ids``), byte for byte; sessions without creds are listed
        in ``without_creds``."""
        if session_ids is None:
            infos = self.list_sessions(owner_id=owner_id, status="active", schema=schema)
            wanted = [info.session_id for info in infos]
        else:
            wanted = [layout.validate_session_id(s) for s in session_ids]
        report = MaterializeReport()
        for session_id in wanted:
            with self.lock:
                session = self.sessions(schema).get(session_id)
                files = (
                    {}
                    if session is None or not session.owned_by(owner_id)
                    else {name: r.data for name, r in session.records.items()}
                )
            if layout.CREDS_FILE not in files:
                report.without_creds.append(session_id)
                continue
            report.written[session_id] = _folders.write_folder(
                Path(root), session_id, files, fsync=fsync
            )
        return report

    def clear(self) -> None:
        """Forget every session (states already open keep their loaded creds)."""
        with self.lock:
            self._schemas.clear()

    def __repr__(self) -> str:
        with self.lock:
            count = sum(len(sessions) for sessions in self._schemas.values())
        return f"<InMemoryStore sessions={count}>"


_shared: dict[str, InMemoryStore] = {}
_shared_lock = threading.Lock()


def shared_store(name: str) -> InMemoryStore:
    """The process-wide store that a string ``source`` (a DSN, say) names.

    This is what lets bot code that passes its configured DSN run unchanged on the in-memory
    states: every open with the same string finds the same data. The name is never shown (it
    may hold a password). Call :func:`reset_shared_stores` between tests; the pytest plugin
    does it after each test.
    """
    if not isinstance(name, str):
        raise TypeError(f"a shared store is named by a string, not {type(name).__name__}")
    with _shared_lock:
        store = _shared.get(name)
        if store is None:
            store = _shared[name] = InMemoryStore()
        return store


def reset_shared_stores() -> None:
    """Forget every store named by a string ``source``."""
    with _shared_lock:
        _shared.clear()
