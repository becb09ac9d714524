"""The retry policy, in one place: which database errors are worth retrying, and for how long.

Retried, with a fresh connection for each attempt: a lost or refused connection (no SQLSTATE,
class 08), the server shutting down or starting (57P01-57P03), serialization failures and
deadlocks (40001, 40P01), and a pool that had no connection to give (``PoolTimeout``). Never
retried: back-pressure (``TooManyRequests``), cancelled queries, and errors in the statement or
the data, which no retry can fix. Every write waauth makes is an idempotent upsert or delete, so
repeating one whose outcome was lost is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors

from .errors import (
    AccessDenied,
    ConfigurationError,
    SchemaError,
    StoreError,
    StoreUnavailable,
    WaauthError,
)

__all__ = ["DEFAULT_POLICY", "RetryPolicy", "is_retryable", "translate"]

logger = logging.getLogger("waauth")

_RETRYABLE_SQLSTATES: Final = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
# libpq reports a server's refusal at connect time without a SQLSTATE; these refusals pass.
_TRANSIENT_REFUSALS: Final = (
    "starting up",
    "shutting down",
    "in recovery",
    "too many clients",
    "connection slots are reserved",
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying an operation whose errors are retryable.

    The defaults ride out a database restart (tens of seconds), not just a blip: attempts back
    off exponentially from ``initial_delay`` to ``max_delay``, with full jitter, until ``budget``
    seconds have passed; then :class:`~waauth.StoreUnavailable` is raised.
    """

    budget: float = 60.0
    """Seconds from the first attempt after which no new attempt starts."""
    initial_delay: float = 0.1
    max_delay: float = 5.0
    connect_timeout: float = 5.0
    """Seconds one attempt waits for a connection (from the pool, or a new one)."""

    def __post_init__(self) -> None:
        if self.budget < 0 or self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ConfigurationError(
                "RetryPolicy needs budget >= 0 and 0 < initial_delay <= max_delay"
            )
        if self.connect_timeout <= 0:
            raise ConfigurationError("RetryPolicy.connect_timeout must be positive")


DEFAULT_POLICY: Final = RetryPolicy()


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that a later attempt on a fresh connection may fix."""
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return False  # the pool's own back-pressure: waiting longer makes it worse
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if isinstance(exc, psycopg.InterfaceError):
        return True  # the connection was closed under us (e.g. by a failover)
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if isinstance(exc, pgerrors.QueryCanceled):
        return False
    sqlstate = exc.sqlstate
    if sqlstate is None:
        # No SQLSTATE: refused, lost or timed out, which passes; or the server said no at
        # connect time (unknown database or role, bad password), which does not.
        return not _rejected_at_connect(exc)
    return sqlstate.startswith("08") or sqlstate in _RETRYABLE_SQLSTATES


def _rejected_at_connect(exc: BaseException) -> bool:
    message = str(exc)
    return "FATAL:" in message and not any(phrase in message for phrase in _TRANSIENT_REFUSALS)


def _server_refusal(exc: BaseException) -> str | None:
    """The server's own words when it refused a connection (they hold no secret)."""
    message = str(exc)
    if "FATAL:" not in message:
        return None
    return message.rsplit("FATAL:", 1)[-1].strip().splitlines()[0] or None


def translate(exc: BaseException, doing: str, *, gave_up: bool = False) -> WaauthError:
    """The waauth error for a database error (the caller raises it ``from exc``).

    The message names the operation, the error class and the SQLSTATE, never a parameter.
    """
    name = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" [{sqlstate}]" if sqlstate else ""
    if gave_up or is_retryable(exc):
        # A refusal at connect time ("too many clients already") is the cause worth naming.
        said = _server_refusal(exc)
        reason = f": the server said {said!r}" if said else ""
        return StoreUnavailable(f"{doing}: the database is unavailable ({name}{code}){reason}")
    if isinstance(exc, pgerrors.InsufficientPrivilege):
        return AccessDenied(f"{doing}: the database refused access ({name}{code})")
    if isinstance(exc, pgerrors.UndefinedTable | pgerrors.InvalidSchemaName):
        return SchemaError(f"{doing}: waauth's tables are missing; run waauth.migrate()")
    if isinstance(exc, psycopg.OperationalError) and (
        _rejected_at_connect(exc) or (sqlstate or "")[:2] in ("28", "3D")
    ):
        # The server's own words ("database x does not exist") hold no secret; the DSN's
        # password is never in them.
        reason = (
            str(exc).rsplit("FATAL:", 1)[-1].strip().splitlines()[0]
            if "FATAL:" in str(exc)
            else name
        )
        return ConfigurationError(f"{doing}: the database refused the connection: {reason}")
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    detail = f": {primary}" if primary else ""
    return StoreError(f"{doing}: the database refused the operation ({name}{code}){detail}")
