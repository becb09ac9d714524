"""``InMemoryAuthState`` and ``AsyncInMemoryAuthState``: the Postgres states on an in-memory store.

They are ``PostgresAuthState`` / ``AsyncPostgresAuthState`` themselves (subclasses that only
choose the store: ``_async_memory.py``, and ``_sync_memory.py`` generated from it), so the
contract suite (``tests/test_contract.py``) runs the same code four times, over two back ends.
"""

from __future__ import annotations

from typing import Any

from .._async.database import AsyncSource
from ..errors import WaauthError
from ._async_memory import AsyncInMemoryAuthState, AsyncInMemoryKeys
from ._sync_memory import InMemoryAuthState, InMemoryKeys

__all__ = [
    "AsyncInMemoryAuthState",
    "AsyncInMemoryKeys",
    "InMemoryAuthState",
    "InMemoryKeys",
    "open_now",
]


def open_now(source: AsyncSource, session_id: str, **options: Any) -> AsyncInMemoryAuthState:
    """Open an async in-memory state with no event loop running (a plain pytest fixture).

    Opening on an in-memory store never waits, so the coroutine runs to its end at once; its
    writer starts in the event loop of the first save. Raises :class:`~waauth.WaauthError` if
    it would have to wait (an outage of the store is on).
    """
    steps = AsyncInMemoryAuthState.open(source, session_id, **options).__await__()
    try:
        next(steps)
    except StopIteration as done:
        state: AsyncInMemoryAuthState = done.value
        return state
    except RuntimeError as exc:  # it reached for an event loop: it had to wait
        raise WaauthError(
            f"session {session_id!r}: opening had to wait (an outage?); open it in a test"
        ) from exc
    steps.close()
    raise WaauthError(
        f"session {session_id!r}: opening had to wait (an outage?); open it in a test"
    )
