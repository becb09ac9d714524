"""waauth's pytest plugin: fixtures for testing bots that keep their Baileys sessions in waauth.

Off unless enabled, in one of these ways:

- ``pytest_plugins = ["waauth.testing.plugin"]`` in the top ``conftest.py``;
- ``pytest -p waauth.testing.plugin`` (or the same in ``addopts``);
- ``waauth_plugin = true`` in the pytest configuration (through waauth's ``pytest11`` entry
  point, which does nothing else).

Fixtures:

- ``waauth_store``: a fresh :class:`~waauth.testing.InMemoryStore`.
- ``waauth_state`` / ``async_waauth_state``: an in-memory state of session ``test-session`` on
  it (new: creds ``None``). ``async_waauth_state`` needs no event loop to be made, so it works
  with pytest-asyncio, anyio (asyncio) or plain ``asyncio.run``.
- ``waauth_postgres``: a :class:`~waauth.testing.PostgresSandbox`: a real database, with a
  schema of its own for the test (dropped afterwards). The server is ``WAAUTH_TEST_DSN`` when
  set, else an embedded one started once for the test session (``waauth_postgres_dsn``).

Stores named by a string source (:func:`~waauth.testing.shared_store`) are emptied after each
test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._memory import AsyncInMemoryAuthState, InMemoryAuthState, open_now
from ._postgres import PostgresSandbox, postgres_sandbox, postgres_server
from ._store import InMemoryStore, reset_shared_stores

SESSION_ID = "test-session"
"""The session id of the ``waauth_state`` and ``async_waauth_state`` fixtures."""


@pytest.fixture
def waauth_store() -> InMemoryStore:
    """An empty in-memory store: the database of the in-memory states."""
    return InMemoryStore()


@pytest.fixture
def waauth_state(waauth_store: InMemoryStore) -> Iterator[InMemoryAuthState]:
    """An ``InMemoryAuthState`` of a new session (``test-session``) on ``waauth_store``."""
    state = InMemoryAuthState.open(waauth_store, SESSION_ID)
    yield state
    # No final flush: an outage the test left on must not fail (or slow down) the teardown.
    state._drop()


@pytest.fixture
def async_waauth_state(waauth_store: InMemoryStore) -> Iterator[AsyncInMemoryAuthState]:
    """An ``AsyncInMemoryAuthState`` of a new session (``test-session``) on ``waauth_store``.

    A plain fixture: the state is opened with no event loop running; its writer starts in the
    test's event loop, at the first save.
    """
    state = open_now(waauth_store, SESSION_ID)
    yield state
    state._drop()


@pytest.fixture(autouse=True)
def _waauth_shared_stores() -> Iterator[None]:
    """Stores named by a DSN do not carry data from one test to the next."""
    yield
    reset_shared_stores()


@pytest.fixture(scope="session")
def waauth_postgres_dsn() -> Iterator[str]:
    """The PostgreSQL server of the test session: ``WAAUTH_TEST_DSN``, else an embedded one."""
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def waauth_postgres(waauth_postgres_dsn: str) -> Iterator[PostgresSandbox]:
    """A real database for this test: a fresh migrated schema, dropped afterwards.

    ``waauth_postgres.open(session_id)`` opens a ``PostgresAuthState`` on it (closed at the end
    if the test did not), ``aopen`` an ``AsyncPostgresAuthState`` (use ``async with``);
    ``.dsn``, ``.schema`` and ``.keyring`` are there for your own code.
    """
    with postgres_sandbox(waauth_postgres_dsn) as sandbox:
        yield sandbox
