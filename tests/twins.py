"""Run one test against both twins: the sync classes in worker threads, the async ones awaited.

Tests are written once, as coroutines, against :class:`Twin`; the ``twin`` fixture gives the
sync or the async flavour. The sync API is called for real (from threads), never through an
event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

import waauth

# Methods that do no I/O in either twin: called as they are.
PLAIN_METHODS = frozenset({"stats"})


class Awaitable:
    """Every method of the wrapped object becomes awaitable; attributes pass through."""

    def __init__(self, obj: Any, is_async: bool) -> None:
        object.__setattr__(self, "obj", obj)
        object.__setattr__(self, "is_async", is_async)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.obj, name)
        if name == "keys":
            return Awaitable(attr, self.is_async)
        if not callable(attr) or name in PLAIN_METHODS:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if inspect.iscoroutinefunction(attr):
                return await attr(*args, **kwargs)
            if self.is_async:
                return attr(*args, **kwargs)  # a plain method of the async class (stats, ...)
            return await asyncio.to_thread(functools.partial(attr, *args, **kwargs))

        return call

    async def __aenter__(self) -> Awaitable:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.obj, name, value)

    def __repr__(self) -> str:
        return repr(self.obj)


class Twin:
    """The sync or the async flavour of waauth's API, called the same way."""

    def __init__(self, is_async: bool) -> None:
        self.is_async = is_async
        self.name = "async" if is_async else "sync"
        self.state_class: Any = (
            waauth.AsyncPostgresAuthState if is_async else waauth.PostgresAuthState
        )

    async def open(self, source: Any, session_id: str, **kwargs: Any) -> Awaitable:
        """Open a state (the sync one in a thread) and wrap it."""
        if self.is_async:
            state = await self.state_class.open(source, session_id, **kwargs)
        else:
            state = await asyncio.to_thread(self.state_class.open, source, session_id, **kwargs)
        return Awaitable(state, self.is_async)

    async def call(
        self, sync: Callable[..., Any], coro: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Call the sync function in a thread or await the async one."""
        if self.is_async:
            return await coro(*args, **kwargs)
        return await asyncio.to_thread(functools.partial(sync, *args, **kwargs))

    def mirror(self, source: Any, root: Any, **kwargs: Any) -> Awaitable:
        """A Mirror or an AsyncMirror (not started), wrapped."""
        cls = waauth.AsyncMirror if self.is_async else waauth.Mirror
        return Awaitable(cls(source, root, **kwargs), self.is_async)

    async def list_sessions(self, source: Any, **kwargs: Any) -> list[waauth.SessionInfo]:
        result: list[waauth.SessionInfo] = await self.call(
            waauth.list_sessions, waauth.alist_sessions, source, **kwargs
        )
        return result
