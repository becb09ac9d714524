"""Async building blocks; their sync twins live in ``_compat.py`` (see tools/unasync.py)."""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar


class _AsyncClosing(Protocol):
    async def close(self) -> None: ...


T = TypeVar("T", bound=_AsyncClosing)


class AsyncOpener(Generic[T]):
    """What ``AsyncPostgresAuthState.open(...)`` returns: await it, or use it with ``async with``.

    (The sync ``open`` simply returns the opened object, which is its own context manager.)
    """

    __slots__ = ("_coro", "_opened")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._opened: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._coro.__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._coro
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._opened is not None:
            await self._opened.close()
