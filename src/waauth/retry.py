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
from collections.abc import Iterable
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

__all__ = ["DEFAULT_POLICY", "RetryPolicy", "cause", "is_retryable", "server_refused", "translate"]

logger = logging.getLogger("waauth.retry")

_RETRYABLE_SQLSTATES: Final = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
# libpq reports a server's refusal at connect time without a SQLSTATE; these refusals pass.
_TRANSIENT_REFUSALS: Final = (
    "starting up",
    "shutting down",
    "in recovery",
    "too many clients",
    "connection slots are reserved",
)
# How libpq marks the server's own error in a failed connection's message.
_SERVER_SEVERITY: Final = "FATAL:"


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
        return not server_refused(exc)
    return sqlstate.startswith("08") or sqlstate in _RETRYABLE_SQLSTATES


def server_refused(exc: BaseException) -> bool:
    """Whether a connection attempt failed because the server itself said no, for good.

    libpq reports a server's error during the connection handshake without its SQLSTATE
    (``PQgetResult`` then holds none either; checked with psycopg 3.3 and libpq 18): the only
    trace is the server's severity, which libpq writes before the server's words in the
    message of the connection that psycopg attaches as ``exc.pgconn``. So only such an
    error (an ``OperationalError`` carrying the failed connection, no SQLSTATE) is looked at,
    and the refusals that pass (the server starting up, too many clients) stay retryable.
    Errors in the address itself never get here: :func:`waauth.config.check_conninfo`
    rejects them before any connection.
    """
    if not isinstance(exc, psycopg.OperationalError) or exc.sqlstate is not None:
        return False
    if getattr(exc, "pgconn", None) is None:
        return False  # no connection was attempted (a host name that does not resolve)
    message = str(exc)
    return _SERVER_SEVERITY in message and not any(p in message for p in _TRANSIENT_REFUSALS)


def cause(exc: BaseException, *, secrets: Iterable[str] = ()) -> str:
    """The driver's reason for ``exc`` on one line (``Connection refused``), secrets removed.

    ``secrets`` (the DSN's password) are replaced by ``***`` wherever they appear.
    """
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    text = str(primary or exc).strip()
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    # libpq puts the server's words after the address: keep both, on one line.
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text or type(exc).__name__


def translate(
    exc: BaseException, doing: str, *, gave_up: bool = False, secrets: Iterable[str] = ()
) -> WaauthError:
    """The waauth error for a database error (the caller raises it ``from exc``).

    The message names the operation, the error class, the SQLSTATE and the driver's reason
    (:func:`cause`, with ``secrets`` removed), never a parameter.
    """
    name = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" [{sqlstate}]" if sqlstate else ""
    reason = cause(exc, secrets=secrets)
    if gave_up or is_retryable(exc):
        return StoreUnavailable(f"{doing}: the database is unavailable ({name}{code}): {reason}")
    # A refusal (privileges, row-level security, or a connection refused for lack of them) is
    # not an outage: AccessDenied, never retried, never StoreUnavailable.
    if sqlstate == "42501" or (server_refused(exc) and "permission denied" in str(exc)):
        return AccessDenied(f"{doing}: the database refused access ({name}{code})")
    if isinstance(exc, pgerrors.UndefinedTable | pgerrors.InvalidSchemaName):
        return SchemaError(f"{doing}: waauth's tables are missing; run waauth.migrate()")
    if server_refused(exc) or (sqlstate or "")[:2] in ("28", "3D"):
        # The server's own words ("database x does not exist") hold no secret.
        server_words = reason.rsplit(_SERVER_SEVERITY, 1)[-1].strip()
        return ConfigurationError(f"{doing}: the database refused the connection: {server_words}")
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    detail = f": {primary}" if primary else ""
    return StoreError(f"{doing}: the database refused the operation ({name}{code}){detail}")
