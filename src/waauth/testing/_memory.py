"""``InMemoryAuthState`` and ``AsyncInMemoryAuthState``: the auth-state API on an in-memory store.

Same methods, arguments, errors and guarantees as ``PostgresAuthState`` /
``AsyncPostgresAuthState`` (the shared contract suite, ``tests/test_contract.py``, runs against
all four), with an :class:`~waauth.testing.InMemoryStore` in place of the database. Values go
through the same encoding, file naming and checks as on the way to Postgres, so what a test
stores is byte for byte what production would store.

Everything is done by :class:`_Core`, which never waits: an operation that needs the store is a
generator that yields ``(generation, seconds)`` each time it must wait for an outage to end.
The sync class drives it with blocking waits and the async class with awaited ones, so the two
cannot drift apart, and the sync class never runs an event loop.

Where the Postgres classes coalesce writes over a throttle window, these write at once when the
store is up: a save is durable as soon as it is made, which every guarantee of the real classes
allows. During an outage (see :func:`~waauth.testing.outage`) saves stay pending, exactly as there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from .. import _folders, _records, codec, layout
from .._acompat import AsyncOpener, ato_thread
from .._async.state import DEFAULT_WINDOW
from .._pending import Counters, Entry, Pending, Stats, key_entries
from .._sync.ops import _check_same_account
from ..encryption import Keyring
from ..errors import (
    AccessDenied,
    ConfigurationError,
    CorruptRecord,
    InvalidInput,
    SessionNotFound,
    StoreUnavailable,
    WaauthError,
)
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA, check_schema_name
from ..sessions import ImportResult
from ..types import (
    AppStateSyncKeyData,
    KeyPair,
    LTHashState,
    SenderKeyMemory,
    SessionRecord,
    TcToken,
)
from ._faults import SIGNAL, Outage, OutageTarget, is_down, next_end, simulated_error
from ._store import InMemoryStore, Record, Session, shared_store

__all__ = ["AsyncInMemoryAuthState", "AsyncInMemoryKeys", "InMemoryAuthState", "InMemoryKeys"]

logger = logging.getLogger("waauth.testing")

T = TypeVar("T")

Wait = tuple[int, float]
"""What an operation yields to its driver: the outage signal's generation, and seconds to wait."""

Steps = Generator[Wait, None, T]


class _Down(Exception):
    """The store looks away (an outage is on): try again later."""


class _Backoff:
    """When to try again while the store is down: the retry policy's exponential backoff,
    without jitter (nothing here competes for a server), within a budget."""

    def __init__(self, policy: RetryPolicy, budget: float) -> None:
        self._deadline = time.monotonic() + budget
        self._delay = policy.initial_delay
        self._max_delay = policy.max_delay
        self.attempts = 0

    def next_wait(self) -> float | None:
        """Seconds to wait before the next attempt; None once the budget is spent."""
        self.attempts += 1
        left = self._deadline - time.monotonic()
        if left <= 0:
            return None
        wait = min(self._delay, left)
        self._delay = min(self._delay * 2, self._max_delay)
        return wait


class _Core:
    """One open session on an in-memory store: what both state classes do, minus waiting."""

    def __init__(
        self,
        store: InMemoryStore,
        session_id: str,
        *,
        owner_id: str | None,
        schema: str,
        policy: RetryPolicy,
        throttle_keys: bool,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.owner_id = owner_id
        self.schema = schema
        self.policy = policy
        self.throttle_keys = throttle_keys
        self.creds: dict[str, Any] | None = None
        self.closed = False
        self.pending = Pending()
        self.counters = Counters()
        self.outages: list[Outage] = []
        self.last_error: WaauthError | None = None
        self.refused: AccessDenied | None = None  # dropped saves, not yet reported by a flush

    @classmethod
    def prepare(
        cls,
        source: InMemoryStore | str,
        session_id: str,
        *,
        keyring: Keyring | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        migrate: bool = True,
        retry: RetryPolicy = DEFAULT_POLICY,
        pool_size: int = 4,
        window: float = DEFAULT_WINDOW,
        throttle_keys: bool = False,
    ) -> _Core:
        """Check the arguments of ``open`` as the Postgres classes do; nothing is read yet.

        ``migrate`` and ``pool_size`` are accepted, so that calls written for Postgres run
        unchanged, and have no effect.
        """
        del migrate, pool_size
        layout.validate_session_id(session_id)
        if keyring is not None and not isinstance(keyring, Keyring):
            raise ConfigurationError(
                f"keyring must be a waauth.Keyring, not {type(keyring).__name__}"
            )
        if not isinstance(window, int | float) or window < 0:
            raise ConfigurationError(f"window must be a number of seconds >= 0, not {window!r}")
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a waauth.RetryPolicy, not {retry!r}")
        check_schema_name(schema)
        if isinstance(source, InMemoryStore):
            store = source
        elif isinstance(source, str):
            store = shared_store(source)
        else:
            raise ConfigurationError(
                "expected an InMemoryStore or a conninfo string (naming a shared in-memory "
                f"store), not {type(source).__name__}"
            )
        if owner_id is not None and (not isinstance(owner_id, str) or not owner_id):
            raise ConfigurationError("owner_id must be a non-empty string (or None)")
        return cls(
            store,
            session_id,
            owner_id=owner_id,
            schema=schema,
            policy=retry,
            throttle_keys=throttle_keys,
        )

    # -- the store, and waiting through outages ------------------------------------------------

    def down(self) -> bool:
        """Whether an outage of this state or of its store is on."""
        return is_down(self.outages) or is_down(self.store.outages())

    def _session(self) -> Session | None:
        return self.store.sessions(self.schema).get(self.session_id)

    def attempt(self, op: Callable[[], T]) -> T:
        """Run ``op`` on the store (under its lock), or raise :class:`_Down` during an outage."""
        with self.store.lock:
            if self.down():
                raise _Down
            return op()

    def retrying(
        self, doing: str, op: Callable[[], T], *, counted: bool = False, budget: float | None = None
    ) -> Steps[T]:
        """Run ``op``, retrying through an outage for the retry budget (or ``budget``), then
        raise :class:`~waauth.StoreUnavailable` as a real state does. ``counted``: a write of
        the write-behind path, whose retries and failure go into :meth:`stats`."""
        backoff = _Backoff(self.policy, self.policy.budget if budget is None else budget)
        while True:
            seen = SIGNAL.generation()
            try:
                return self.attempt(op)
            except _Down:
                pass
            wait = backoff.next_wait()
            if wait is None:
                error = simulated_error(doing)
                if counted:
                    self.failed(error)
                raise error
            if counted:
                self.counters.retried()
            logger.warning(
                "%s: attempt %d failed (OperationalError), retrying in %.2f s",
                doing,
                backoff.attempts,
                wait,
            )
            until_up = next_end(self.outages + self.store.outages())
            yield seen, wait if until_up is None else min(wait, until_up)

    # -- writes -----------------------------------------------------------------------------------

    def commit(self, entries: dict[str, Entry]) -> None:
        """Write ``entries`` as one statement would: all or nothing. Hold the store's lock."""
        sessions = self.store.sessions(self.schema)
        session = sessions.get(self.session_id)
        if session is None:
            session = sessions[self.session_id] = Session(owner_id=self.owner_id)
        elif not session.owned_by(self.owner_id):
            error = AccessDenied(f"session {self.session_id!r} belongs to another owner")
            self.refuse(error)
            raise error
        has_creds = False
        for name, entry in sorted(entries.items()):
            if entry.data is None:
                session.records.pop(name, None)
                continue
            session.records[name] = Record(entry.type, entry.id, entry.data)
            if name == layout.CREDS_FILE:
                has_creds = True
                session.status = "active"
                session.account_id = entry.account
        session.touch()
        recovered = self.counters.outage_started is not None
        self.counters.wrote(len(entries), has_creds)
        if recovered:
            logger.warning(
                "session %s: the database is back; wrote %d pending records after %.1f s",
                self.session_id,
                len(entries),
                self.counters.stats.last_recovery_seconds or 0.0,
            )

    def failed(self, error: WaauthError) -> None:
        """A write gave up: count it, as the real writer does, and log the first of an outage."""
        in_outage = self.counters.outage_started is not None
        self.counters.failed(error)
        self.last_error = error
        if not in_outage:
            logger.warning("%s; %d records kept pending", error, len(self.pending))

    def refuse(self, error: AccessDenied) -> None:
        """A refused write, as the real writer takes it: counted but not an outage, and what
        was pending dropped and logged; the next flush raises it."""
        self.counters.failed(error, outage=False)
        self.last_error = error
        dropped = len(self.pending)
        self.pending.discard()
        if dropped:
            self.refused = AccessDenied(f"{error}; {dropped} saved records were dropped")
        logger.error("%s; dropped %d saved records: no retry can fix a refusal", error, dropped)

    def check_refused(self) -> None:
        refused, self.refused = self.refused, None
        if refused is not None:
            raise refused

    def write_pending(self) -> None:
        """Write everything pending in one step (hold the store's lock, store up)."""
        seq, snapshot = self.pending.snapshot()
        if snapshot:
            self.commit(snapshot)
        self.pending.written(seq, snapshot)

    def save(self, planned: dict[str, tuple[str, str, bytes | None]], account: str | None) -> None:
        """Record saves; they land at once unless the store is down."""
        with self.store.lock:
            for name, (key_type, key_id, data) in planned.items():
                self.pending.put(name, key_type, key_id, data, account)
        self.land()

    def land(self) -> None:
        """Write what is pending if the store is up (after a save, or when an outage ends)."""
        with self.store.lock:
            if self.closed or not self.pending or self.down():
                return
            # A refused write is counted, dropped and logged by commit; the next flush tells.
            with contextlib.suppress(WaauthError):
                self.write_pending()

    def outage_ended(self) -> None:
        """An outage of this state or its store ended: write what is pending."""
        self.land()

    # -- the operations, as generators ---------------------------------------------------------

    def check_open(self) -> None:
        if self.closed:
            raise WaauthError(f"the auth state of session {self.session_id!r} is closed")

    def loading(self) -> Steps[dict[str, Any] | None]:
        """``open``: the stored creds (None for a session never stored), owner checked."""

        def load() -> dict[str, Any] | None:
            session = self._session()
            if session is None:
                return None  # never stored: the one case where creds are None without a row
            if self.owner_id is not None and session.owner_id != self.owner_id:
                raise AccessDenied(f"session {self.session_id!r} belongs to another owner")
            record = session.records.get(layout.CREDS_FILE)
            return None if record is None else self.open_creds(record.data)

        creds = yield from self.retrying(f"open session {self.session_id!r}", load)
        self.creds = creds
        self.store.register(self)
        logger.info(
            "opened session %s (%s)", self.session_id, "stored creds" if creds else "no creds yet"
        )
        return creds

    def open_record(self, name: str, data: bytes) -> Any:
        """Decode a stored record; errors name the session and the file."""
        try:
            return codec.decode(data)
        except InvalidInput as exc:
            raise CorruptRecord(self.session_id, name, str(exc)) from None

    def open_creds(self, data: bytes) -> dict[str, Any]:
        """Decode and check stored creds, as the Postgres classes do."""
        creds = self.open_record(layout.CREDS_FILE, data)
        try:
            _records.check_creds(creds, self.session_id)
        except InvalidInput as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise CorruptRecord(self.session_id, layout.CREDS_FILE, reason) from None
        assert isinstance(creds, dict)
        return creds

    def save_creds(self) -> None:
        """``save_creds``: never waits; pending only during an outage."""
        self.check_open()
        if self.creds is None:
            raise InvalidInput(
                f"session {self.session_id!r}: no creds to save; set state.creds first"
            )
        data, account = _records.encode_creds(self.creds, self.session_id)
        self.counters.saved_creds()
        self.save({layout.CREDS_FILE: (layout.CREDS_TYPE, "", data)}, account)

    def flushing(self, timeout: float | None) -> Steps[None]:
        """``flush``: write what is pending, through an outage for the budget or ``timeout``."""
        self.check_open()
        self.check_refused()
        started = time.monotonic()
        if self.pending.durable < self.pending.seq:
            # As the real flush: it waits for the writer, whose write retries for the budget;
            # a shorter timeout gives up first, without a failed write.
            timed_out = timeout is not None and timeout < self.policy.budget
            try:
                yield from self.retrying(
                    f"write-behind of session {self.session_id!r}",
                    self.write_pending,
                    counted=not timed_out,
                    budget=timeout if timed_out else None,
                )
            except StoreUnavailable:
                raise self.unflushed(
                    f"not written within {timeout} s" if timed_out else "a write failed"
                ) from None
            except AccessDenied:
                self.check_refused()
                raise
        self.counters.flushed(time.monotonic() - started)

    def unflushed(self, why: str) -> StoreUnavailable:
        """The error ``flush`` raises, worded as the real writer words it."""
        last = f"; last error: {self.last_error}" if self.last_error else ""
        return StoreUnavailable(
            f"session {self.session_id!r}: {why}; {len(self.pending)} records pending{last}",
            pending=len(self.pending),
        )

    def closing(self) -> Steps[None]:
        """``close``: a final flush, then closed whatever it gave."""
        if self.closed:
            return
        try:
            yield from self.flushing(None)
        finally:
            # Whatever is still pending is lost with the "process", as with the real classes.
            self.closed = True
            self.store.unregister(self)

    def close_now(self) -> None:
        """Close without flushing (a fixture's teardown): pending saves are dropped."""
        self.closed = True
        self.store.unregister(self)

    def deleting(self) -> Steps[None]:
        """``delete``: log out; what was pending is dropped."""
        self.check_open()

        def log_out() -> None:
            session = self._session()
            if session is not None and not session.owned_by(self.owner_id):
                raise AccessDenied(f"session {self.session_id!r} belongs to another owner")
            if session is not None:
                session.records.clear()
                session.status = "logged_out"
                session.account_id = None
                session.touch()
            self.pending.discard()

        yield from self.retrying(f"delete session {self.session_id!r}", log_out)
        self.creds = None
        logger.info("deleted the creds and keys of session %s", self.session_id)

    def materializing(self) -> Steps[dict[str, bytes]]:
        """Flush, then every stored file of the session; raises SessionNotFound without creds."""
        self.check_open()
        yield from self.flushing(None)

        def read_all() -> dict[str, bytes]:
            session = self._session()
            if session is None or not session.owned_by(self.owner_id):
                return {}
            return {name: record.data for name, record in session.records.items()}

        files = yield from self.retrying(f"materialize session {self.session_id!r}", read_all)
        if layout.CREDS_FILE not in files:
            raise SessionNotFound(
                f"session {self.session_id!r} has no creds stored: nothing written "
                "(Baileys will start a new pairing)"
            )
        return files

    def importing(
        self, contents: _folders.FolderContents, folder: str | os.PathLike[str], *, force: bool
    ) -> Steps[ImportResult]:
        """``import_folder`` once the folder is read: checked first, then stored whole."""
        for name in contents.skipped:
            logger.warning(
                "session %s: skipping %r in %s: not a Baileys record",
                self.session_id,
                name,
                folder,
            )
        for name, data in contents.files.items():
            _folders.check_record(self.session_id, name, data)
        creds_data = contents.files.get(layout.CREDS_FILE)
        creds = None if creds_data is None else codec.decode(creds_data)

        def replace() -> int:
            session = self._session()
            if session is not None:
                if self.owner_id is not None and session.owner_id != self.owner_id:
                    raise AccessDenied(f"session {self.session_id!r} belongs to another owner")
                stored = session.records.get(layout.CREDS_FILE)
                if stored is not None and not force:
                    _check_same_account(self.session_id, self.open_creds(stored.data), creds)
            else:
                session = self.store.sessions(self.schema)[self.session_id] = Session(
                    owner_id=self.owner_id
                )
            gone = [name for name in session.records if name not in contents.files]
            for name in gone:
                del session.records[name]
            for name in sorted(contents.files):
                key_type, key_id = layout.parse_file_name(name)
                session.records[name] = Record(key_type, key_id, contents.files[name])
            if creds is not None:
                session.status = "active"
                session.account_id = _records.account_of(creds)
            else:  # a forced import without creds: the session has none any more
                session.status = "new"
                session.account_id = None
            session.touch()
            self.pending.discard()
            return len(gone)

        deleted = yield from self.retrying(f"import into session {self.session_id!r}", replace)
        self.creds = creds
        logger.info(
            "session %s: imported %d files from %s (%d stored files removed)",
            self.session_id,
            len(contents.files),
            folder,
            deleted,
        )
        return ImportResult(self.session_id, len(contents.files), deleted, contents.skipped)

    def getting(self, key_type: str, ids: Iterable[str]) -> Steps[dict[str, Any]]:
        """``keys.get``: pending values first (read your own writes), then the store."""
        self.check_open()
        names = _records.names_for(key_type, ids)
        values: dict[str, Any] = {}
        with self.store.lock:
            # Saved but not yet written (during an outage): read your own writes.
            for name in set(names.values()):
                entry = self.pending.lookup(name)
                if entry is not None:
                    values[name] = None if entry.data is None else codec.decode(entry.data)
        wanted = sorted(set(names.values()) - values.keys())
        if wanted:

            def read() -> dict[str, bytes]:
                session = self._session()
                if session is None or not session.owned_by(self.owner_id):
                    return {}
                return {n: session.records[n].data for n in wanted if n in session.records}

            rows = yield from self.retrying(
                f"keys.get {key_type} for session {self.session_id!r}", read
            )
            for name, data in rows.items():
                values[name] = self.open_record(name, data)
        return {key_id: values.get(name) for key_id, name in names.items()}

    def setting(self, data: Mapping[str, Mapping[str, Any]]) -> Steps[None]:
        """``keys.set``: saved like creds with ``throttle_keys``, else written through, with
        everything pending, in one step."""
        self.check_open()
        planned = _records.plan_key_entries(data, self.session_id)
        if not planned:
            return
        if self.throttle_keys:
            self.save(planned, None)
            return

        def write_through() -> None:
            seq, snapshot = self.pending.snapshot()
            # Own entries are newer than anything pending for the same file.
            self.commit({**snapshot, **key_entries(planned, seq)})
            self.pending.written(seq, snapshot)

        yield from self.retrying(
            f"keys.set for session {self.session_id!r}", write_through, counted=True
        )


def _drive(steps: Steps[T]) -> T:
    """Run an operation, blocking the calling thread while it waits for an outage to end."""
    while True:
        try:
            seen, wait = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        SIGNAL.wait(seen, wait)


async def _adrive(steps: Steps[T]) -> T:
    """Run an operation, awaiting (never blocking the event loop) while it waits."""
    while True:
        try:
            seen, wait = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await SIGNAL.await_(seen, wait)


class _StateBase(OutageTarget):
    """What the sync and async in-memory states share: everything that never waits."""

    def __init__(self, core: _Core) -> None:
        self._core = core
        self.session_id = core.session_id

    @property
    def owner_id(self) -> str | None:
        """The owner this state is scoped to (None: no owner scope)."""
        return self._core.owner_id

    @property
    def store(self) -> InMemoryStore:
        """The store this state reads and writes (only the in-memory states have one)."""
        return self._core.store

    @property
    def creds(self) -> dict[str, Any] | None:
        """The decoded ``creds.json`` (``bytes`` for Buffers), or None for a new session.

        Change it in place or assign a new dict, then call ``save_creds``.
        """
        return self._core.creds

    @creds.setter
    def creds(self, value: dict[str, Any] | None) -> None:
        if value is not None:
            _records.check_creds(value, self.session_id)
        self._core.creds = value

    def stats(self) -> Stats:
        """Persistence figures: writes, retries, failures, pending, last success and error."""
        return self._core.counters.snapshot(len(self._core.pending))

    @property
    def lease_held(self) -> bool | None:
        """None, as for a Postgres state opened without a lease: in memory there is none."""
        return None

    def _attach_outage(self, outage: Outage) -> None:
        with self._core.store.lock:
            self._core.outages.append(outage)

    def _detach_outage(self, outage: Outage) -> None:
        with self._core.store.lock:
            if outage in self._core.outages:
                self._core.outages.remove(outage)

    def _outage_ended(self) -> None:
        self._core.outage_ended()

    def __repr__(self) -> str:
        creds = "none" if self._core.creds is None else "loaded"
        state = " closed" if self._core.closed else ""
        return (
            f"<{type(self).__name__} session={self.session_id!r} owner={self.owner_id!r} "
            f"creds={creds} schema={self._core.schema!r}{state}>"
        )


class InMemoryAuthState(_StateBase):
    """``PostgresAuthState``'s API and semantics on an :class:`InMemoryStore`, for tests.

    Open it with :meth:`open`, exactly as the Postgres class (``keyring`` may be left out).
    """

    def __init__(self, core: _Core) -> None:
        """Use :meth:`open`."""
        super().__init__(core)
        self.keys = InMemoryKeys(self)

    @classmethod
    def open(
        cls,
        source: InMemoryStore | str,
        session_id: str,
        *,
        keyring: Keyring | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        migrate: bool = True,
        retry: RetryPolicy = DEFAULT_POLICY,
        pool_size: int = 4,
        window: float = DEFAULT_WINDOW,
        throttle_keys: bool = False,
    ) -> InMemoryAuthState:
        """Open session ``session_id`` of the store ``source`` and load its creds.

        ``source`` is an :class:`InMemoryStore`, or a string (the DSN your code passes in
        production) that names a store shared by the whole process. ``keyring`` is checked but
        not used (nothing is encrypted in memory); ``migrate``, ``pool_size`` and ``window``
        have no effect. During an outage of the store, retries for ``retry.budget``, then
        raises :class:`~waauth.StoreUnavailable`.
        """
        core = _Core.prepare(
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
        )
        _drive(core.loading())
        return cls(core)

    def save_creds(self) -> None:
        """Save the current creds (Baileys' ``saveCreds``); returns at once.

        Written at once while the store is up; pending (``stats().pending``) during an outage.
        """
        self._core.save_creds()

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything saved before this call is stored.

        During an outage, waits for its end for the retry budget (or ``timeout``), then raises
        :class:`~waauth.StoreUnavailable` with ``pending``; the pending state is kept.
        """
        _drive(self._core.flushing(timeout))

    def delete(self) -> None:
        """Log out: remove the session's creds and keys; it stays listed as ``logged_out``."""
        _drive(self._core.deleting())

    def materialize(self, root: str | os.PathLike[str], *, fsync: bool = False) -> Path:
        """Write ``root/<session_id>/`` byte for byte, atomically, as the Postgres class does.

        Raises :class:`~waauth.SessionNotFound` if no creds are stored.
        """
        files = _drive(self._core.materializing())
        return _folders.write_folder(Path(root), self.session_id, files, fsync=fsync)

    def import_folder(self, folder: str | os.PathLike[str], *, force: bool = False) -> ImportResult:
        """Store a Baileys session folder as this session, checked exactly as the Postgres
        class checks it (:class:`~waauth.CorruptRecord`, :class:`~waauth.IdentityConflict`)."""
        self._core.check_open()
        contents = _folders.read_folder(Path(folder), self.session_id)
        return _drive(self._core.importing(contents, folder, force=force))

    def close(self) -> None:
        """Flush and close. Safe to call twice; during an outage, raises
        :class:`~waauth.StoreUnavailable` once closed, and what was pending is lost."""
        _drive(self._core.closing())

    def __enter__(self) -> InMemoryAuthState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class InMemoryKeys:
    """Baileys' ``SignalKeyStore`` (``state.keys``) on the in-memory store."""

    def __init__(self, state: InMemoryAuthState) -> None:
        self._state = state

    @overload
    def get(self, type: Literal["pre-key"], ids: Iterable[str]) -> dict[str, KeyPair | None]: ...
    @overload
    def get(
        self, type: Literal["session"], ids: Iterable[str]
    ) -> dict[str, SessionRecord | None]: ...
    @overload
    def get(
        self, type: Literal["sender-key", "identity-key"], ids: Iterable[str]
    ) -> dict[str, bytes | None]: ...
    @overload
    def get(
        self, type: Literal["sender-key-memory"], ids: Iterable[str]
    ) -> dict[str, SenderKeyMemory | None]: ...
    @overload
    def get(
        self, type: Literal["app-state-sync-key"], ids: Iterable[str]
    ) -> dict[str, AppStateSyncKeyData | None]: ...
    @overload
    def get(
        self, type: Literal["app-state-sync-version"], ids: Iterable[str]
    ) -> dict[str, LTHashState | None]: ...
    @overload
    def get(self, type: Literal["lid-mapping"], ids: Iterable[str]) -> dict[str, str | None]: ...
    @overload
    def get(
        self, type: Literal["device-list"], ids: Iterable[str]
    ) -> dict[str, list[str] | None]: ...
    @overload
    def get(self, type: Literal["tctoken"], ids: Iterable[str]) -> dict[str, TcToken | None]: ...
    @overload
    def get(self, type: str, ids: Iterable[str]) -> dict[str, Any]: ...

    def get(self, type: str, ids: Iterable[str]) -> dict[str, Any]:
        """``{id: value}`` for every id asked; ``None`` for ids not stored."""
        return _drive(self._state._core.getting(type, ids))

    def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{type: {id: value}}``; a falsy value deletes; all or nothing.

        Raises before storing anything if a value cannot be stored; during an outage, retries
        for the retry budget, then raises :class:`~waauth.StoreUnavailable`.
        """
        _drive(self._state._core.setting(data))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of session {self._state.session_id!r}>"


class AsyncInMemoryAuthState(_StateBase):
    """``AsyncPostgresAuthState``'s API and semantics on an :class:`InMemoryStore`, for tests.

    ``await AsyncInMemoryAuthState.open(...)`` or ``async with AsyncInMemoryAuthState.open(...)``.
    It holds nothing bound to an event loop, so one state may serve several loops in turn.
    """

    def __init__(self, core: _Core) -> None:
        """Use :meth:`open`."""
        super().__init__(core)
        self.keys = AsyncInMemoryKeys(self)

    @classmethod
    def open(
        cls,
        source: InMemoryStore | str,
        session_id: str,
        *,
        keyring: Keyring | None = None,
        owner_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        migrate: bool = True,
        retry: RetryPolicy = DEFAULT_POLICY,
        pool_size: int = 4,
        window: float = DEFAULT_WINDOW,
        throttle_keys: bool = False,
    ) -> AsyncOpener[AsyncInMemoryAuthState]:
        """Open session ``session_id`` of the store ``source`` and load its creds.

        Arguments as :meth:`InMemoryAuthState.open`. Bad arguments raise when awaited, as
        with the Postgres class.
        """

        async def opening() -> AsyncInMemoryAuthState:
            core = _Core.prepare(
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
            )
            await _adrive(core.loading())
            return cls(core)

        return AsyncOpener(opening())

    @classmethod
    def _open_now(
        cls, source: InMemoryStore | str, session_id: str, **options: Any
    ) -> AsyncInMemoryAuthState:
        """Open without an event loop, for fixtures (``options`` as for :meth:`open`).

        Nothing waits unless the store is in an outage, so no loop is blocked.
        """
        core = _Core.prepare(source, session_id, **options)
        _drive(core.loading())
        return cls(core)

    async def save_creds(self) -> None:
        """Save the current creds (Baileys' ``saveCreds``); returns at once.

        Written at once while the store is up; pending (``stats().pending``) during an outage.
        """
        self._core.save_creds()

    async def flush(self, timeout: float | None = None) -> None:
        """Return once everything saved before this call is stored (see
        :meth:`InMemoryAuthState.flush`)."""
        await _adrive(self._core.flushing(timeout))

    async def delete(self) -> None:
        """Log out: remove the session's creds and keys; it stays listed as ``logged_out``."""
        await _adrive(self._core.deleting())

    async def materialize(self, root: str | os.PathLike[str], *, fsync: bool = False) -> Path:
        """Write ``root/<session_id>/`` byte for byte, atomically, as the Postgres class does.

        Raises :class:`~waauth.SessionNotFound` if no creds are stored.
        """
        files = await _adrive(self._core.materializing())
        return await ato_thread(
            _folders.write_folder, Path(root), self.session_id, files, fsync=fsync
        )

    async def import_folder(
        self, folder: str | os.PathLike[str], *, force: bool = False
    ) -> ImportResult:
        """Store a Baileys session folder as this session (see
        :meth:`InMemoryAuthState.import_folder`)."""
        self._core.check_open()
        contents = await ato_thread(_folders.read_folder, Path(folder), self.session_id)
        return await _adrive(self._core.importing(contents, folder, force=force))

    async def close(self) -> None:
        """Flush and close (see :meth:`InMemoryAuthState.close`)."""
        await _adrive(self._core.closing())

    async def __aenter__(self) -> AsyncInMemoryAuthState:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncInMemoryKeys:
    """Baileys' ``SignalKeyStore`` (``state.keys``) on the in-memory store, awaited."""

    def __init__(self, state: AsyncInMemoryAuthState) -> None:
        self._state = state

    @overload
    async def get(
        self, type: Literal["pre-key"], ids: Iterable[str]
    ) -> dict[str, KeyPair | None]: ...
    @overload
    async def get(
        self, type: Literal["session"], ids: Iterable[str]
    ) -> dict[str, SessionRecord | None]: ...
    @overload
    async def get(
        self, type: Literal["sender-key", "identity-key"], ids: Iterable[str]
    ) -> dict[str, bytes | None]: ...
    @overload
    async def get(
        self, type: Literal["sender-key-memory"], ids: Iterable[str]
    ) -> dict[str, SenderKeyMemory | None]: ...
    @overload
    async def get(
        self, type: Literal["app-state-sync-key"], ids: Iterable[str]
    ) -> dict[str, AppStateSyncKeyData | None]: ...
    @overload
    async def get(
        self, type: Literal["app-state-sync-version"], ids: Iterable[str]
    ) -> dict[str, LTHashState | None]: ...
    @overload
    async def get(
        self, type: Literal["lid-mapping"], ids: Iterable[str]
    ) -> dict[str, str | None]: ...
    @overload
    async def get(
        self, type: Literal["device-list"], ids: Iterable[str]
    ) -> dict[str, list[str] | None]: ...
    @overload
    async def get(
        self, type: Literal["tctoken"], ids: Iterable[str]
    ) -> dict[str, TcToken | None]: ...
    @overload
    async def get(self, type: str, ids: Iterable[str]) -> dict[str, Any]: ...

    async def get(self, type: str, ids: Iterable[str]) -> dict[str, Any]:
        """``{id: value}`` for every id asked; ``None`` for ids not stored."""
        return await _adrive(self._state._core.getting(type, ids))

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{type: {id: value}}``; a falsy value deletes (see :meth:`InMemoryKeys.set`)."""
        await _adrive(self._state._core.setting(data))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of session {self._state.session_id!r}>"
