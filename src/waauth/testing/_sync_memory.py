# WARNING: generated from waauth/testing/_async_memory.py by tools/unasync.py; do not edit.
# Edit the async source, then run: python tools/unasync.py
"""The in-memory states of ``waauth.testing``: the Postgres states' own code on an in-memory store.

An :class:`InMemoryAuthState` *is* an :class:`~waauth.PostgresAuthState` whose
database is a :class:`~waauth.testing.InMemoryStore` (a :class:`~waauth._backend.Backend`):
the throttle, the write-behind writer, retries, outages, leases and fencing, stats, materialize
and import are that class's code, run unchanged; only where the statements go differs. What
this class adds is the choice of store, and that nothing is encrypted (``keyring`` may be left
out): the rows never leave the process.
"""

from __future__ import annotations

from .._sync.database import Source
from .._sync.lease import DEFAULT_TTL
from .._sync.state import DEFAULT_WINDOW, Keys, PostgresAuthState
from ..encryption import Keyring, plaintext_keyring
from ..errors import ConfigurationError
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..schema import DEFAULT_SCHEMA
from ._store import InMemoryStore, store_of

InMemoryKeys = Keys
"""``state.keys`` of an in-memory state: the Postgres class's own."""


class InMemoryAuthState(PostgresAuthState):
    """``PostgresAuthState`` on an :class:`~waauth.testing.InMemoryStore`, for tests.

    Open it with :meth:`open`, as the Postgres class (``keyring`` may be left out). Everything
    else is the Postgres class's own code.
    """

    @classmethod
    def open(
        cls,
        source: Source,
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
        lease: bool = False,
        lease_ttl: float = DEFAULT_TTL,
        lease_wait: float = 0.0,
    ) -> InMemoryAuthState:
        """Open session ``session_id`` of an in-memory store and load its creds.

        ``source`` is an :class:`~waauth.testing.InMemoryStore`, or what your bot passes in
        production (a conninfo string, a pool), which names a store shared by the whole
        process (:func:`~waauth.testing.shared_store`). ``keyring`` is checked but not used:
        nothing is encrypted in memory, so that a test reads the stored files with
        :meth:`~waauth.testing.InMemoryStore.files`. ``pool_size`` has no effect. The other
        arguments, and everything the state does, are the Postgres class's.
        """
        opening = cls._open(
            store_of(source),
            session_id,
            keyring=_unsealed(keyring),
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
        return opening

    @property
    def store(self) -> InMemoryStore:
        """The store this state reads and writes."""
        backend = self._db.backend
        assert isinstance(backend, InMemoryStore)
        return backend


def _unsealed(keyring: Keyring | None) -> Keyring:
    """The plaintext keyring, once ``keyring`` is checked as the Postgres class checks it."""
    if keyring is not None and not isinstance(keyring, Keyring):
        raise ConfigurationError(f"keyring must be a waauth.Keyring, not {type(keyring).__name__}")
    return plaintext_keyring()
