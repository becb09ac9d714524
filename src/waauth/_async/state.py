"""The Baileys auth state on PostgreSQL: what ``useMultiFileAuthState`` gives a socket.

One row per file of ``.auth_sessions/<id>/``, sealed by a :class:`~waauth.Keyring`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import AsyncConnection

from .. import _exit, _folders, _queries, _records, codec, layout
from .._acompat import (
    AsyncOpener,  # async only
    ato_thread,
    run_at_exit,
)
from .._pending import Stats
from ..encryption import Keyring
from ..errors import (
    ConfigurationError,
    IncompleteRestore,
    InvalidInput,
    SessionNotFound,
    WaauthError,
)
from ..protocols import AsyncSignalKeyStore
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from ..sessions import ImportResult, MaterializeReport, SessionInfo
from .database import AsyncDatabase, AsyncSource, Operation
from .lease import DEFAULT_TTL, AsyncLeaseKeeper
from .ops import check_written, guarded_write, load_creds, read_records
from .restore import active_sessions, restore_sessions
from .writer import AsyncWriter

logger = logging.getLogger("waauth.state")

S = TypeVar("S", bound="AsyncPostgresAuthState")

DEFAULT_WINDOW = 1.0
"""Seconds over which ``save_creds`` calls coalesce: at most one creds write a second, and a
crash loses at most the last second of creds changes."""


class AsyncPostgresAuthState:
    """A Baileys session's creds and Signal keys, stored in PostgreSQL.

    Open it with :meth:`open`. ``creds`` is the decoded ``creds.json`` (``None`` for a session
    never stored); ``keys`` has Baileys' ``get``/``set``. Nothing secret is ever shown by
    ``repr``, in logs or in errors.
    """

    def __init__(
        self,
        db: AsyncDatabase,
        writer: AsyncWriter,
        session_id: str,
        keyring: Keyring,
        creds: dict[str, Any] | None,
        *,
        throttle_keys: bool,
        lease: AsyncLeaseKeeper | None = None,
    ) -> None:
        """Use :meth:`open`; this only assembles an already opened state."""
        self._db = db
        self._writer = writer
        self._lease = lease
        self._keyring = keyring
        self._creds = creds
        self._closed = False
        self._throttle_keys = throttle_keys
        self.session_id = session_id
        self.keys = AsyncKeys(self)
        self._parts = _Parts(db, writer, lease, session_id)
        # Left open at exit: flushed then (see waauth._exit).
        _exit.track(writer, self._parts.at_exit)

    @classmethod
    def open(
        cls,
        source: AsyncSource,
        session_id: str,
        *,
        keyring: Keyring,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        migrate: bool = True,
        retry: RetryPolicy = DEFAULT_POLICY,
        pool_size: int = 4,
        window: float = DEFAULT_WINDOW,
        throttle_keys: bool = False,
        lease: bool = False,
        lease_ttl: float = DEFAULT_TTL,
        lease_wait: float = 0.0,
    ) -> AsyncOpener[AsyncPostgresAuthState]:
        """Open session ``session_id`` and load its creds.

        ``source`` is a conninfo string (waauth then keeps a pool of up to ``pool_size``
        connections, shared by the states of the process on that conninfo, and closed with
        the last of them) or a pool of yours (never closed by waauth); in tests, also a
        :class:`waauth.testing.InMemoryStore`.
        With ``owner_id``, the state only ever sees and writes that owner's session.
        ``migrate`` creates or upgrades the schema when needed. ``retry`` says how long an
        operation keeps trying while the database is away.

        ``save_creds`` returns at once; saves coalesce into one write of the newest creds per
        ``window`` seconds. ``keys.set`` is durable when it returns, unless ``throttle_keys``
        makes it coalesce with the creds too.

        ``lease=True`` makes this process the session's only runner while the state is open:
        :class:`~waauth.LeaseHeld` (naming the holder) if a live process has it after
        ``lease_wait`` seconds; the lease expires ``lease_ttl`` seconds after its holder stops
        renewing it (a crash), and every write is fenced: once the lease passed to someone
        else, calls raise :class:`~waauth.LeaseLost` and nothing more is written.

        Raises :class:`~waauth.StoreUnavailable` if the database cannot be reached within
        ``retry.budget`` (never a state with empty creds), :class:`~waauth.AccessDenied` if the
        session belongs to another owner, and :class:`~waauth.DecryptionError` or
        :class:`~waauth.CorruptRecord` if the stored creds cannot be read.
        """
        opening = cls._open(
            source,
            session_id,
            keyring=keyring,
            owner_id=owner_id,
            schema=schema,
            migrate=migrate,
            retry=retry,
            pool_size=pool_size,
            window=window,
            throttle_keys=throttle_keys,
            lease=lease,
            lease_ttl=lease_ttl,
            lease_wait=lease_wait,
        )
        return AsyncOpener(opening)

    @classmethod
    async def _open(
        cls: type[S],
        source: AsyncSource,
        session_id: str,
        *,
        keyring: Keyring,
        owner_id: str | None,
        schema: str,
        migrate: bool,
        retry: RetryPolicy,
        pool_size: int,
        window: float,
        throttle_keys: bool,
        lease: bool,
        lease_ttl: float,
        lease_wait: float,
    ) -> S:
        layout.validate_session_id(session_id)
        if not isinstance(keyring, Keyring):
            raise ConfigurationError(
                f"keyring must be a waauth.Keyring, not {type(keyring).__name__}"
            )
        if not isinstance(window, int | float) or window < 0:
            raise ConfigurationError(f"window must be a number of seconds >= 0, not {window!r}")
        db = AsyncDatabase(
            source,
            schema=schema,
            owner_id=owner_id,
            policy=retry,
            pool_size=pool_size,
            name=f"waauth:{session_id}",
        )
        keeper = AsyncLeaseKeeper(db, ttl=lease_ttl) if lease else None
        try:
            await db.open(migrate=migrate)
            if keeper is not None:
                # Before reading anything: a new holder reads what the last one wrote.
                await keeper.acquire(session_id, wait=lease_wait)
            creds = await db.run(
                f"open session {session_id!r}", load_creds(db, session_id, keyring)
            )
        except BaseException:
            if keeper is not None:
                await keeper.close()
            await db.close()
            raise
        writer = AsyncWriter(db, session_id, keyring, window=window, lease=keeper)
        logger.info(
            "opened session %s (%s)", session_id, "stored creds" if creds else "no creds yet"
        )
        return cls(
            db, writer, session_id, keyring, creds, throttle_keys=throttle_keys, lease=keeper
        )

    @property
    def owner_id(self) -> str | None:
        """The owner this state is scoped to (None: no owner scope)."""
        return self._db.owner_id

    @property
    def creds(self) -> dict[str, Any] | None:
        """The decoded ``creds.json`` (``bytes`` for Buffers), or None for a new session.

        Change it in place or assign a new dict, then call :meth:`save_creds`.
        """
        return self._creds

    @creds.setter
    def creds(self, value: dict[str, Any] | None) -> None:
        if value is not None:
            _records.check_creds(value, self.session_id)
        self._creds = value

    async def save_creds(self) -> None:
        """Save the current creds (Baileys' ``saveCreds``, for ``creds.update``); returns at once.

        The creds are copied now; saves within one throttle window coalesce into one write of
        the newest, which happens within a window (or at :meth:`flush` / :meth:`close`).
        """
        self._check_open()
        if self._creds is None:
            raise InvalidInput(
                f"session {self.session_id!r}: no creds to save; set state.creds first"
            )
        data, account = _records.encode_creds(self._creds, self.session_id)
        self._writer.saved_creds()
        await self._writer.save({layout.CREDS_FILE: (layout.CREDS_TYPE, "", data)}, account)

    async def flush(self, timeout: float | None = None) -> None:
        """Return once everything saved before this call is in the database.

        Raises :class:`~waauth.StoreUnavailable` (its ``pending`` says how many records are not
        yet written) if a write fails meanwhile or ``timeout`` seconds pass; the pending state
        is kept and still written when the database comes back. Raises
        :class:`~waauth.AccessDenied` if the database refused a write since the last flush (a
        role without the rights): what that write held was dropped, not kept.
        """
        self._check_open()
        await self._writer.flush(timeout)

    def stats(self) -> Stats:
        """Persistence figures: writes, retries, failures, pending, last success and error."""
        return self._writer.stats()

    @property
    def lease_held(self) -> bool | None:
        """Whether this state holds its session's lease (None: opened without ``lease``)."""
        if self._lease is None:
            return None
        lost = self._lease.is_lost(self.session_id)
        return not lost and self._lease.token(self.session_id) is not None

    async def delete(self) -> None:
        """Log out: remove the session's creds and keys; its registry row stays, ``logged_out``.

        Anything saved but not yet written is dropped, so it cannot bring the session back.
        """
        self._check_open()

        token = self._lease_token()
        params = {"session_id": self.session_id, "owner": self.owner_id, "token": token}

        async def op(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(self._db.sql(_queries.DELETE_SESSION), params)
            counts = await cur.fetchone()
            assert counts is not None
            updated, _deleted, exists, _fenced = counts
            # Nothing stored is fine (a logout is idempotent); another owner's session is not.
            if exists or not counts[-1]:
                check_written(self.session_id, (updated, *counts[1:]), deleted_at=1)

        await self._writer.replace_all(f"delete session {self.session_id!r}", op)
        self._creds = None
        logger.info("deleted the creds and keys of session %s", self.session_id)

    async def materialize(self, root: str | os.PathLike[str], *, fsync: bool = False) -> Path:
        """Write ``root/<session_id>/`` from the database, byte for byte, for Baileys to start from.

        Everything saved is flushed first. The folder is built beside the target and swapped
        in atomically (a process killed at any moment leaves the old or the new complete
        folder), with mode 0700 and files 0600, and holds exactly the stored files. Raises
        :class:`~waauth.SessionNotFound` if no creds are stored (nothing is written: Baileys
        will show a QR code). ``fsync=True`` also makes the folder survive a power loss.
        """
        self._check_open()
        await self._writer.flush()
        files = await self._db.run(
            f"materialize session {self.session_id!r}",
            read_records(self._db, self.session_id, self._keyring),
        )
        if layout.CREDS_FILE not in files:
            raise SessionNotFound(
                f"session {self.session_id!r} has no creds stored: nothing written "
                "(Baileys will start a new pairing)"
            )
        return await ato_thread(
            _folders.write_folder, Path(root), self.session_id, files, fsync=fsync
        )

    async def import_folder(
        self, folder: str | os.PathLike[str], *, force: bool = False
    ) -> ImportResult:
        """Store a Baileys session folder as this session, in one transaction, byte for byte.

        Every file is checked first (valid JSON; ``creds.json`` has the fields of creds); one
        bad file raises :class:`~waauth.CorruptRecord` naming it, and nothing is written.
        Entries that are not records are skipped with a warning. Stored files the folder no
        longer has are deleted. Unless ``force``, refuses with
        :class:`~waauth.IdentityConflict` to replace stored creds with another account's, or
        with a folder that has no ``creds.json``: that is how good sessions get overwritten
        by fresh QR-code creds.
        """
        self._check_open()
        contents = await ato_thread(_folders.read_folder, Path(folder), self.session_id)
        for name in contents.skipped:
            logger.warning(
                "session %s: skipping %r in %s: not a Baileys record", self.session_id, name, folder
            )
        for name, data in contents.files.items():
            _folders.check_record(self.session_id, name, data)
        creds_data = contents.files.get(layout.CREDS_FILE)
        creds = None if creds_data is None else codec.decode(creds_data)
        batch = _records.Batch(replace=True)
        for name in sorted(contents.files):
            key_type, key_id = layout.parse_file_name(name)
            _records.add_row(
                batch,
                self._keyring,
                self.session_id,
                name,
                key_type=key_type,
                key_id=key_id,
                data=contents.files[name],
            )
        if creds is not None:
            batch.has_creds = True
            batch.account = _records.account_of(creds)
        token = self._lease_token()
        op = guarded_write(
            self._db, self.session_id, self._keyring, batch, creds, force=force, token=token
        )
        deleted = await self._writer.replace_all(f"import into session {self.session_id!r}", op)
        self._creds = creds
        logger.info(
            "session %s: imported %d files from %s (%d stored files removed)",
            self.session_id,
            len(contents.files),
            folder,
            deleted,
        )
        return ImportResult(self.session_id, len(contents.files), deleted, contents.skipped)

    async def close(self) -> None:
        """Flush, stop the writer and close the pool if waauth opened it. Safe to call twice.

        If the final flush fails, :class:`~waauth.StoreUnavailable` (or
        :class:`~waauth.AccessDenied`, for a refused write) is raised once everything is
        closed: what was still pending is then lost with the process.

        A state never closed is flushed and closed at interpreter exit (within
        ``waauth._exit.EXIT_TIMEOUT`` seconds for all; an error naming the session is logged if
        it could not be); an async one is written when its event loop ends (``asyncio.run``
        cancelling its tasks), with a warning. One garbage-collected while open warns with
        ``ResourceWarning``.
        """
        if self._closed:
            return
        _exit.untrack(self._writer)
        try:
            await self._writer.flush()
        finally:
            self._closed = True
            await self._parts.shut()

    def _drop(self) -> None:
        """Close at once, without the final flush (``waauth.testing``'s fixtures, whose test may
        have left an outage on): what is pending is dropped, as when the process dies."""
        _exit.untrack(self._writer)
        self._closed = True
        self._writer.drop()

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"the auth state of session {self.session_id!r} was never closed; "
                "what it saved is written at exit",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    def __repr__(self) -> str:
        creds = "none" if self._creds is None else "loaded"
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} session={self.session_id!r} owner={self.owner_id!r} "
            f"creds={creds} schema={self._db.schema!r}{state}>"
        )

    def _lease_token(self) -> int | None:
        """The lease token for a write; raises LeaseLost once the lease passed to another."""
        if self._lease is None:
            return None
        self._lease.check(self.session_id)
        return self._lease.token(self.session_id)

    def _check_open(self) -> None:
        if self._closed:
            raise WaauthError(f"the auth state of session {self.session_id!r} is closed")


@dataclass(frozen=True)
class _Parts:
    """What an open state holds; the exit hook holds these, never the state (so that an open
    state can still be garbage-collected, and warn)."""

    db: AsyncDatabase
    writer: AsyncWriter
    lease: AsyncLeaseKeeper | None
    session_id: str

    async def shut(self) -> None:
        """Stop the writer, free the lease and close the pool (after the final flush)."""
        await self.writer.close(timeout=self.db.policy.connect_timeout)
        try:
            if self.lease is not None:
                await self.lease.close()
        finally:
            await self.db.close()

    def at_exit(self, timeout: float) -> None:
        """Interpreter exit with the state open: flush and close it (sync), or report (async,
        whose pending saves were written when its event loop ended, if they could be)."""
        if not run_at_exit(self.close_at_exit, timeout) and self.writer.pending():
            logger.error(
                "session %s: the auth state was left open and its event loop is gone; "
                "%d saved records were never written",
                self.session_id,
                self.writer.pending(),
            )

    async def close_at_exit(self, timeout: float) -> None:
        try:
            await self.writer.flush(timeout)
        except WaauthError as exc:
            logger.error(
                "session %s: the auth state was left open; at exit %d saved records could not "
                "be written: %s",
                self.session_id,
                self.writer.pending(),
                exc,
            )
            return
        await self.shut()
        logger.info(
            "session %s: the auth state was left open; flushed and closed at exit", self.session_id
        )


class AsyncKeys:
    """Baileys' ``SignalKeyStore`` (``state.keys``) on the session's rows."""

    def __init__(self, state: AsyncPostgresAuthState) -> None:
        self._state = state

    async def _get(self, type: str, ids: Iterable[str]) -> dict[str, Any]:
        """``{id: value}`` for every id asked; ``None`` for ids not stored. One query."""
        state = self._state
        state._check_open()
        names = _records.names_for(type, ids)
        values: dict[str, Any] = {}
        wanted = list(set(names.values()))
        if state._writer.pending():
            # Saved but not yet written (throttled keys): read your own writes.
            for name in wanted:
                entry = state._writer.lookup(name)
                if entry is not None:
                    values[name] = None if entry.data is None else codec.decode(entry.data)
            wanted = [name for name in wanted if name not in values]
        if wanted:
            params = {"session_id": state.session_id, "owner": state.owner_id, "names": wanted}

            async def op(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
                async with conn.cursor(binary=True) as cur:
                    await cur.execute(state._db.sql(_queries.GET), params)
                    return await cur.fetchall()

            rows = await state._db.run(f"keys.get {type} for session {state.session_id!r}", op)
            values.update(_records.open_records(state._keyring, state.session_id, rows))
        return {key_id: values.get(name) for key_id, name in names.items()}

    if TYPE_CHECKING:
        # Typed per key type (``keys.get("pre-key", ids)``: ``dict[str, KeyPair | None]``),
        # declared once, in the protocol.
        get = AsyncSignalKeyStore.get
    else:
        get = _get

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{type: {id: value}}``; a falsy value deletes. One transaction, one statement.

        Durable when it returns (with ``throttle_keys``: saved like creds, written within a
        window). Pending creds go in the same statement, so stored creds are never older than
        keys written after them. Raises before writing anything if a value cannot be stored;
        while the database is away, retries for the retry budget, then raises
        :class:`~waauth.StoreUnavailable` with nothing of this call written. A write the
        database refuses raises :class:`~waauth.AccessDenied` at once (never retried).
        """
        state = self._state
        state._check_open()
        planned = _records.plan_key_entries(data, state.session_id)
        if not planned:
            return
        if state._throttle_keys:
            await state._writer.save(planned)
        else:
            await state._writer.write_through(planned, f"keys.set for session {state.session_id!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of session {self._state.session_id!r}>"


async def amaterialize(
    source: AsyncSource,
    root: str | os.PathLike[str],
    *,
    keyring: Keyring,
    session_ids: Iterable[str] | None = None,
    owner_id: str | None = None,
    schema: str = DEFAULT_SCHEMA,
    retry: RetryPolicy = DEFAULT_POLICY,
    fsync: bool = False,
    if_unleased: bool = False,
    migrate: bool = True,
) -> MaterializeReport:
    """Rebuild ``root/<id>/`` for many sessions (None: every active one), before Baileys starts.

    Each folder is written as :meth:`AsyncPostgresAuthState.materialize` writes one. Sessions
    with no creds are not written and are listed in the report's ``without_creds``. One bad
    session never stops the others: a row that does not open, a file name that is not safe,
    an id that cannot name a folder or a folder that cannot be written fails that session
    only (its folder is left as it was); once every other session is written,
    :class:`~waauth.IncompleteRestore` is raised, its ``report`` naming each failure. With
    ``if_unleased``, a session whose lease a live process holds (another replica runs it) is
    not written and is listed in the report's ``held``; once every other session is written,
    its :class:`~waauth.LeaseHeld` is raised (the first one's, if many; a failure's
    :class:`~waauth.IncompleteRestore` comes first).
    :class:`~waauth.StoreUnavailable` stops the whole restore: every session would fail alike.
    ``migrate`` creates or upgrades the schema when needed, as :meth:`AsyncPostgresAuthState.open`
    does, so the first deploy on an empty database restores nothing and starts.
    """
    db = AsyncDatabase(source, schema=schema, owner_id=owner_id, policy=retry, pool_size=2)
    report = MaterializeReport()
    try:
        await db.open(migrate=migrate)
        if session_ids is None:
            # The same database handle: no second pool or schema check for the listing.
            wanted = await db.run("list sessions", active_sessions(db))
        else:
            wanted = list(session_ids)
        await restore_sessions(
            db, Path(root), wanted, keyring, report, fsync=fsync, if_unleased=if_unleased
        )
    finally:
        await db.close()
    logger.info(
        "materialized %d sessions into %s (%d without creds, %d failed, %d held elsewhere)",
        len(report.written),
        root,
        len(report.without_creds),
        len(report.failed),
        len(report.held),
    )
    if report.failed:
        raise IncompleteRestore(report)
    if report.held:
        raise next(iter(report.held.values()))
    return report


async def alist_sessions(
    source: AsyncSource,
    *,
    owner_id: str | None = None,
    status: str | None = None,
    session_ids: Iterable[str] | None = None,
    schema: str = DEFAULT_SCHEMA,
    retry: RetryPolicy = DEFAULT_POLICY,
) -> list[SessionInfo]:
    """Every stored session (of ``owner_id``, with ``status``, among ``session_ids``), by id.

    Tells the owner, status, the account's ``me.id``, files per type, bytes and timestamps;
    never a secret, and it needs no keyring.
    """
    db = AsyncDatabase(source, schema=schema, owner_id=owner_id, policy=retry, pool_size=None)
    wanted = None if session_ids is None else [layout.validate_session_id(s) for s in session_ids]
    try:
        await db.open(migrate=False)
        return await db.run("list sessions", _listing(db, status, wanted))
    finally:
        await db.close()


def _listing(
    db: AsyncDatabase, status: str | None, session_ids: list[str] | None
) -> Operation[list[SessionInfo]]:
    """The session registry query, scoped to the database's owner."""
    params = {"owner": db.owner_id, "status": status, "session_ids": session_ids}

    async def op(conn: AsyncConnection[Any]) -> list[SessionInfo]:
        cur = await conn.execute(db.sql(_queries.LIST_SESSIONS), params)
        return [SessionInfo.from_row(row) for row in await cur.fetchall()]

    return op
