"""Async building blocks; their sync twins live in ``_compat.py`` (see tools/unasync.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar


class _AsyncClosing(Protocol):
    async def close(self) -> None: ...


T = TypeVar("T", bound=_AsyncClosing)
R = TypeVar("R")


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


AsyncCondition = asyncio.Condition
AsyncLock = asyncio.Lock
AsyncEvent = asyncio.Event
AsyncWorker = asyncio.Task[None]  # the background writer: a task here, a thread in the sync twin


async def acondition_wait(cond: asyncio.Condition, timeout: float | None) -> bool:
    """Wait, holding ``cond``, until notified (True) or ``timeout`` seconds pass (False)."""
    try:
        await asyncio.wait_for(cond.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


async def alock_acquire(lock: asyncio.Lock, timeout: float) -> bool:
    """Acquire ``lock`` within ``timeout`` seconds; False if it could not."""
    try:
        await asyncio.wait_for(lock.acquire(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


def aspawn(target: Callable[[], Coroutine[Any, Any, None]], name: str) -> asyncio.Task[None]:
    """Run ``target`` in the background (a task here, a daemon thread in the sync twin)."""
    return asyncio.get_running_loop().create_task(target(), name=name)


async def ajoin(task: asyncio.Task[None], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``task`` to end, then cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except asyncio.TimeoutError:
        task.cancel()


def task_alive(task: asyncio.Task[None] | None) -> bool:
    """Whether a background task is still running."""
    return task is not None and not task.done()


async def ato_thread(func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """Run blocking file I/O off the event loop (called directly in the sync twin)."""
    return await asyncio.to_thread(func, *args, **kwargs)


def run_at_exit(func: Callable[..., Coroutine[Any, Any, None]], /, *args: Any) -> bool:
    """Run ``func`` at interpreter exit: never here, the event loop that ran it is gone
    (False); the sync twin calls it (True). See :mod:`waauth._exit`."""
    return False


async def call_within(func: Callable[[], Awaitable[object]], timeout: float) -> None:
    """Run ``func`` for at most ``timeout`` seconds, even in a task being cancelled; give up
    quietly (the caller checks what is left)."""
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(func(), timeout)
