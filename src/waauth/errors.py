"""The exceptions waauth raises: one root, :class:`WaauthError`, and a small tree under it.

Driver errors (psycopg) never leak raw: they are translated at one boundary and kept as
``__cause__``. No message ever contains a key, a credential or a record's value; messages name
the session and the file instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sessions import MaterializeReport

__all__ = [
    "AccessDenied",
    "ConfigurationError",
    "CorruptRecord",
    "DecryptionError",
    "IdentityConflict",
    "IncompleteRestore",
    "InvalidInput",
    "LeaseHeld",
    "LeaseLost",
    "RecordError",
    "SchemaError",
    "SessionNotFound",
    "StoreError",
    "StoreUnavailable",
    "WaauthError",
]


class WaauthError(Exception):
    """waauth could not do what was asked."""

    __module__ = "waauth"

    def __init__(self, message: str | None = None) -> None:
        # The class docstring is the default message, as in procrastinate.
        super().__init__(message or (type(self).__doc__ or "").strip())


class ConfigurationError(WaauthError):
    """waauth is not configured correctly (keys, database address or options)."""

    __module__ = "waauth"


class InvalidInput(WaauthError, ValueError):
    """An argument is not valid (a session id, a key type, a value waauth cannot store)."""

    __module__ = "waauth"


class SchemaError(WaauthError):
    """The database schema is not one this version of waauth can use."""

    __module__ = "waauth"


class StoreError(WaauthError):
    """The database refused an operation."""

    __module__ = "waauth"


class StoreUnavailable(StoreError):
    """The database could not be reached, even after retrying."""

    __module__ = "waauth"

    def __init__(self, message: str | None = None, *, pending: int = 0) -> None:
        super().__init__(message)
        self.pending = pending
        """Records saved but not yet written when this was raised (from ``flush``)."""


class AccessDenied(WaauthError):
    """The session belongs to another owner, or the database role may not touch it."""

    __module__ = "waauth"


class RecordError(WaauthError):
    """A stored record could not be read; nothing was changed."""

    __module__ = "waauth"

    def __init__(self, session_id: str, file_name: str, reason: str) -> None:
        self.session_id = session_id
        self.file_name = file_name
        self.reason = reason
        super().__init__(f"session {session_id!r}, file {file_name!r}: {reason}")


class DecryptionError(RecordError):
    """A stored record could not be decrypted: wrong key, tampered or moved value."""

    __module__ = "waauth"


class CorruptRecord(RecordError):
    """A record is not valid Baileys JSON, or creds lack the fields that make them creds."""

    __module__ = "waauth"


class IdentityConflict(WaauthError):
    """The folder holds another account's creds than the session stores; nothing was written."""

    __module__ = "waauth"


class IncompleteRestore(WaauthError):
    """Some sessions could not be restored; every other one was written."""

    __module__ = "waauth"

    def __init__(self, report: MaterializeReport) -> None:
        self.report = report
        """What was written, and each failed session's error (``report.failed``)."""
        failures = "; ".join(str(exc) for exc in list(report.failed.values())[:3])
        more = len(report.failed) - 3
        super().__init__(
            f"{len(report.failed)} of {len(report.failed) + len(report.written)} sessions "
            f"with creds could not be restored (the others were written): {failures}"
            + (f"; and {more} more" if more > 0 else "")
        )


class SessionNotFound(WaauthError):
    """No session with that id is stored."""

    __module__ = "waauth"


class LeaseHeld(WaauthError):
    """Another live process holds the session's lease."""

    __module__ = "waauth"

    def __init__(
        self,
        message: str | None = None,
        *,
        host: str | None = None,
        pid: int | None = None,
        since: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.host = host
        """The holder's host name."""
        self.pid = pid
        """The holder's process id on that host."""
        self.since = since
        """When the holder took the lease."""


class LeaseLost(WaauthError):
    """The session's lease passed to another holder; this state no longer writes."""

    __module__ = "waauth"
