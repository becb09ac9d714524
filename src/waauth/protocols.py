"""What a bot can rely on, whichever auth state it is given: the auth-state API as protocols.

:class:`AuthState` is what :class:`~waauth.PostgresAuthState` and
:class:`~waauth.testing.InMemoryAuthState` both are (and :class:`AsyncAuthState` what
:class:`~waauth.AsyncPostgresAuthState` and :class:`~waauth.testing.AsyncInMemoryAuthState`
are), checked structurally by mypy: annotate your code with them and pass either class, with no
``type: ignore``. Their ``keys`` are a :class:`SignalKeyStore` / :class:`AsyncSignalKeyStore`,
Baileys' ``SignalKeyStore``, whose ``get`` is typed per key type (:mod:`waauth.types`).

Opening is not part of the protocols (the Postgres classes take a DSN or a pool, the in-memory
ones a store): open where you choose the class, then hand the state on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, overload

from ._pending import Stats
from .sessions import ImportResult
from .types import (
    AppStateSyncKeyData,
    KeyPair,
    LTHashState,
    SenderKeyMemory,
    SessionRecord,
    TcToken,
)

__all__ = ["AsyncAuthState", "AsyncSignalKeyStore", "AuthState", "SignalKeyStore"]


class SignalKeyStore(Protocol):
    """``state.keys``: Baileys' ``SignalKeyStore``, ``get(type, ids)`` and ``set(data)``.

    ``get`` returns ``{id: value}`` for every id asked, ``None`` for ids not stored; for a
    :data:`~waauth.types.KeyType` the value is typed (``"pre-key"``:
    :class:`~waauth.types.KeyPair`, ...), for any other type it is ``Any``.
    """

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

    def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{type: {id: value}}``; a falsy value deletes; all or nothing."""


class AsyncSignalKeyStore(Protocol):
    """``state.keys`` of an :class:`AsyncAuthState`: :class:`SignalKeyStore`, awaited."""

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

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Store ``{type: {id: value}}``; a falsy value deletes; all or nothing."""


class AuthState(Protocol):
    """An open session's auth state: :class:`~waauth.PostgresAuthState` or
    :class:`~waauth.testing.InMemoryAuthState`.

    Each member means what it means on :class:`~waauth.PostgresAuthState`.
    """

    @property
    def session_id(self) -> str:
        """The session's id (the folder name under ``.auth_sessions/``)."""

    @property
    def owner_id(self) -> str | None:
        """The owner this state is scoped to (None: no owner scope)."""

    @property
    def keys(self) -> SignalKeyStore:
        """Baileys' ``state.keys``."""

    @property
    def creds(self) -> dict[str, Any] | None:
        """The decoded ``creds.json`` (``bytes`` for Buffers), or None for a new session."""

    @creds.setter
    def creds(self, value: dict[str, Any] | None) -> None: ...

    def save_creds(self) -> None:
        """Save the current creds (Baileys' ``saveCreds``); returns at once."""

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything saved before this call is stored."""

    def stats(self) -> Stats:
        """Persistence figures: writes, retries, failures, pending, last success and error."""

    def delete(self) -> None:
        """Log out: remove the session's creds and keys."""

    def materialize(self, root: str | os.PathLike[str], *, fsync: bool = False) -> Path:
        """Write ``root/<session_id>/`` byte for byte, for Baileys to start from."""

    def import_folder(self, folder: str | os.PathLike[str], *, force: bool = False) -> ImportResult:
        """Store a Baileys session folder as this session, in one step, byte for byte."""

    def close(self) -> None:
        """Flush and close. Safe to call twice."""

    def __enter__(self) -> AuthState: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class AsyncAuthState(Protocol):
    """An open session's auth state, asyncio: :class:`~waauth.AsyncPostgresAuthState` or
    :class:`~waauth.testing.AsyncInMemoryAuthState` (members as on :class:`AuthState`,
    awaited)."""

    @property
    def session_id(self) -> str:
        """The session's id (the folder name under ``.auth_sessions/``)."""

    @property
    def owner_id(self) -> str | None:
        """The owner this state is scoped to (None: no owner scope)."""

    @property
    def keys(self) -> AsyncSignalKeyStore:
        """Baileys' ``state.keys``, awaited."""

    @property
    def creds(self) -> dict[str, Any] | None:
        """The decoded ``creds.json`` (``bytes`` for Buffers), or None for a new session."""

    @creds.setter
    def creds(self, value: dict[str, Any] | None) -> None: ...

    async def save_creds(self) -> None:
        """Save the current creds (Baileys' ``saveCreds``); returns at once."""

    async def flush(self, timeout: float | None = None) -> None:
        """Return once everything saved before this call is stored."""

    def stats(self) -> Stats:
        """Persistence figures: writes, retries, failures, pending, last success and error."""

    async def delete(self) -> None:
        """Log out: remove the session's creds and keys."""

    async def materialize(self, root: str | os.PathLike[str], *, fsync: bool = False) -> Path:
        """Write ``root/<session_id>/`` byte for byte, for Baileys to start from."""

    async def import_folder(
        self, folder: str | os.PathLike[str], *, force: bool = False
    ) -> ImportResult:
        """Store a Baileys session folder as this session, in one step, byte for byte."""

    async def close(self) -> None:
        """Flush and close. Safe to call twice."""

    async def __aenter__(self) -> AsyncAuthState: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
