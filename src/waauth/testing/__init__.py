"""What bot developers need to test their own code: no database for unit tests, one for the rest.

- :class:`InMemoryAuthState` / :class:`AsyncInMemoryAuthState`: ``PostgresAuthState`` /
  ``AsyncPostgresAuthState`` themselves, on an :class:`InMemoryStore` (a storage back end
  that runs waauth's statements in the process) instead of a database.
- :func:`outage`: make a state (in-memory or Postgres) live through a database outage.
- :func:`fake_creds`, :func:`fake_key`, :func:`fake_keys`, :func:`fake_pre_keys`: deterministic
  values in Baileys' exact shapes; :func:`sample_session`: a session folder made by Baileys.
- :func:`postgres_server` / :func:`postgres_sandbox`: a real database with a schema per test.
- ``waauth.testing.plugin``: pytest fixtures for all of this (``waauth_state``,
  ``async_waauth_state``, ``waauth_store``, ``waauth_postgres``).

See ``docs/testing.md``.
"""

from __future__ import annotations

from ._data import fake_creds, fake_key, fake_keys, fake_pre_keys, sample_session
from ._faults import Outage, outage
from ._memory import AsyncInMemoryAuthState, AsyncInMemoryKeys, InMemoryAuthState, InMemoryKeys
from ._postgres import DSN_ENV_VAR, PostgresSandbox, postgres_sandbox, postgres_server
from ._store import InMemoryStore, reset_shared_stores, shared_store

__all__ = [
    "DSN_ENV_VAR",
    "AsyncInMemoryAuthState",
    "AsyncInMemoryKeys",
    "InMemoryAuthState",
    "InMemoryKeys",
    "InMemoryStore",
    "Outage",
    "PostgresSandbox",
    "fake_creds",
    "fake_key",
    "fake_keys",
    "fake_pre_keys",
    "outage",
    "postgres_sandbox",
    "postgres_server",
    "reset_shared_stores",
    "sample_session",
    "shared_store",
]
