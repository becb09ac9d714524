"""A small bot typed against waauth's protocols, as a bot developer would write it.

mypy --strict checks this module (tox -e types): its functions take an ``AuthState`` /
``AsyncAuthState`` and are called with the Postgres and the in-memory classes alike, with no
``type: ignore``; ``assert_type`` pins what ``keys.get`` returns for each key type.
tests/test_types.py runs it on both classes and compares the results, and runs mypy over copies
with one wrong call each, to show that the check can fail.
"""

from __future__ import annotations

import sys
from typing import Any

from waauth import (
    AsyncAuthState,
    AsyncOpener,
    AsyncPostgresAuthState,
    AuthState,
    KeyPair,
    Keyring,
    PostgresAuthState,
)
from waauth.testing import AsyncInMemoryAuthState, InMemoryAuthState, InMemoryStore
from waauth.types import (
    AppStateSyncKeyData,
    LTHashState,
    SenderKeyMemory,
    SessionRecord,
    TcToken,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # the version mypy checks this module for (python_version = 3.10)
    from typing_extensions import assert_type

Keys = dict[str, dict[str, Any]]
"""``{type: {id: value}}``, as ``keys.set`` takes it (``waauth.testing.fake_keys()``)."""


def pair(state: AuthState, creds: dict[str, Any], keys: Keys) -> None:
    """First login: store the new creds and keys, durably."""
    state.creds = creds
    state.keys.set(keys)
    state.save_creds()
    state.flush()


def take_pre_key(state: AuthState, key_id: str) -> bytes | None:
    """Use a pre-key once: its public key, and the pre-key deleted (None once used)."""
    found = state.keys.get("pre-key", [key_id])
    assert_type(found, dict[str, KeyPair | None])
    pre_key = found[key_id]
    if pre_key is None:
        return None
    state.keys.set({"pre-key": {key_id: None}})
    return pre_key["public"]


def read_back(state: AuthState, keys: Keys) -> dict[str, object]:
    """A typed read of every kind of key value stored by :func:`pair`."""
    sessions = state.keys.get("session", keys["session"])
    assert_type(sessions, dict[str, SessionRecord | None])
    identities = state.keys.get("identity-key", keys["identity-key"])
    assert_type(identities, dict[str, bytes | None])
    sender_keys = state.keys.get("sender-key", keys["sender-key"])
    assert_type(sender_keys, dict[str, bytes | None])
    memories = state.keys.get("sender-key-memory", keys["sender-key-memory"])
    assert_type(memories, dict[str, SenderKeyMemory | None])
    app_keys = state.keys.get("app-state-sync-key", keys["app-state-sync-key"])
    assert_type(app_keys, dict[str, AppStateSyncKeyData | None])
    versions = state.keys.get("app-state-sync-version", keys["app-state-sync-version"])
    assert_type(versions, dict[str, LTHashState | None])
    lids = state.keys.get("lid-mapping", keys["lid-mapping"])
    assert_type(lids, dict[str, str | None])
    devices = state.keys.get("device-list", keys["device-list"])
    assert_type(devices, dict[str, list[str] | None])
    tokens = state.keys.get("tctoken", keys["tctoken"])
    assert_type(tokens, dict[str, TcToken | None])
    # A type Baileys 7 does not have (another writer's): accepted, its values untyped.
    other = state.keys.get("bridge-profile", ["x"])
    assert_type(other, dict[str, Any])
    return {
        "session": [s["version"] for s in sessions.values() if s is not None],
        "identity-key": [len(k) for k in identities.values() if k is not None],
        "sender-key": [k[:1] for k in sender_keys.values() if k is not None],
        "sender-key-memory": [sorted(m) for m in memories.values() if m is not None],
        "app-state-sync-key": [k.get("timestamp") for k in app_keys.values() if k is not None],
        "app-state-sync-version": [len(v["hash"]) for v in versions.values() if v is not None],
        "lid-mapping": sorted(lid for lid in lids.values() if lid is not None),
        "device-list": [d for d in devices.values() if d is not None],
        "tctoken": [len(t["token"]) for t in tokens.values() if t is not None],
        "bridge-profile": other,
    }


def bot(state: AuthState, creds: dict[str, Any], keys: Keys) -> dict[str, object]:
    """Pair, read everything back, take the first pre-key twice."""
    pair(state, creds, keys)
    first = next(iter(keys["pre-key"]))
    return {
        "session_id": state.session_id,
        "owner_id": state.owner_id,
        "keys": read_back(state, keys),
        "taken": [take_pre_key(state, first), take_pre_key(state, first)],
        "pending": state.stats().pending,
    }


def run_postgres(
    dsn: str, session_id: str, keyring: Keyring, schema: str, creds: dict[str, Any], keys: Keys
) -> dict[str, object]:
    """The bot on Postgres."""
    with PostgresAuthState.open(dsn, session_id, keyring=keyring, schema=schema) as state:
        # The class itself types keys.get as the protocol does.
        assert_type(state.keys.get("pre-key", []), dict[str, KeyPair | None])
        return bot(state, creds, keys)


def run_in_memory(
    store: InMemoryStore, session_id: str, creds: dict[str, Any], keys: Keys
) -> dict[str, object]:
    """The same bot, on the in-memory twin."""
    with InMemoryAuthState.open(store, session_id) as state:
        assert_type(state.keys.get("pre-key", []), dict[str, KeyPair | None])
        return bot(state, creds, keys)


def open_state(
    source: str | InMemoryStore, session_id: str, keyring: Keyring, schema: str
) -> AuthState:
    """Choose the class where the state is opened: a DSN opens Postgres, a store memory."""
    if isinstance(source, InMemoryStore):
        return InMemoryAuthState.open(source, session_id, schema=schema)
    return PostgresAuthState.open(source, session_id, keyring=keyring, schema=schema)


def creds_of(source: str | InMemoryStore, session_id: str, keyring: Keyring, schema: str) -> bool:
    """Whether a session has creds, through :func:`open_state` and the protocol alone."""
    with open_state(source, session_id, keyring, schema) as state:
        assert_type(state, AuthState)
        return state.creds is not None


async def apair(state: AsyncAuthState, creds: dict[str, Any], keys: Keys) -> None:
    """:func:`pair`, asyncio."""
    state.creds = creds
    await state.keys.set(keys)
    await state.save_creds()
    await state.flush()


async def atake_pre_key(state: AsyncAuthState, key_id: str) -> bytes | None:
    """:func:`take_pre_key`, asyncio."""
    found = await state.keys.get("pre-key", [key_id])
    assert_type(found, dict[str, KeyPair | None])
    pre_key = found[key_id]
    if pre_key is None:
        return None
    await state.keys.set({"pre-key": {key_id: None}})
    return pre_key["public"]


async def abot(state: AsyncAuthState, creds: dict[str, Any], keys: Keys) -> dict[str, object]:
    """:func:`bot`, asyncio (without the typed read-back, which :func:`bot` covers)."""
    await apair(state, creds, keys)
    first = next(iter(keys["pre-key"]))
    sessions = await state.keys.get("session", keys["session"])
    assert_type(sessions, dict[str, SessionRecord | None])
    return {
        "session_id": state.session_id,
        "owner_id": state.owner_id,
        "session": [s["version"] for s in sessions.values() if s is not None],
        "taken": [await atake_pre_key(state, first), await atake_pre_key(state, first)],
        "pending": state.stats().pending,
    }


async def arun_postgres(
    dsn: str, session_id: str, keyring: Keyring, schema: str, creds: dict[str, Any], keys: Keys
) -> dict[str, object]:
    """The asyncio bot on Postgres."""
    async with AsyncPostgresAuthState.open(
        dsn, session_id, keyring=keyring, schema=schema
    ) as state:
        assert_type(await state.keys.get("pre-key", []), dict[str, KeyPair | None])
        return await abot(state, creds, keys)


async def arun_in_memory(
    store: InMemoryStore, session_id: str, creds: dict[str, Any], keys: Keys
) -> dict[str, object]:
    """The same asyncio bot, on the in-memory twin."""
    async with AsyncInMemoryAuthState.open(store, session_id) as state:
        assert_type(await state.keys.get("pre-key", []), dict[str, KeyPair | None])
        return await abot(state, creds, keys)


def aopen_state(
    source: str | InMemoryStore, session_id: str, keyring: Keyring, schema: str
) -> AsyncOpener[AsyncAuthState]:
    """:func:`open_state`, asyncio: both ``open`` return an ``AsyncOpener`` of an
    ``AsyncAuthState``."""
    if isinstance(source, InMemoryStore):
        return AsyncInMemoryAuthState.open(source, session_id, schema=schema)
    return AsyncPostgresAuthState.open(source, session_id, keyring=keyring, schema=schema)


async def acreds_of(
    source: str | InMemoryStore, session_id: str, keyring: Keyring, schema: str
) -> bool:
    """:func:`creds_of`, asyncio."""
    async with aopen_state(source, session_id, keyring, schema) as state:
        assert_type(state, AsyncAuthState)
        return state.creds is not None
