"""What ``list_sessions`` tells about a stored session: never a secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import LeaseHeld, WaauthError

__all__ = ["ImportResult", "MaterializeReport", "SessionInfo"]


@dataclass(frozen=True)
class SessionInfo:
    """One session of the registry, as ``waauth.list_sessions`` returns it."""

    session_id: str
    owner_id: str | None
    status: str
    """``new`` (no creds yet), ``active`` (creds stored) or ``logged_out``."""
    account_id: str | None
    """The paired account's ``me.id`` (phone number and device), once creds have one."""
    files: dict[str, int] = field(default_factory=dict)
    """Number of stored files per type (``creds`` for ``creds.json``)."""
    bytes: int = 0
    """Bytes stored for the session (sealed values)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> SessionInfo:
        """Build from a row of the session listing query."""
        session_id, owner_id, status, account_id, created_at, updated_at, files, size = row
        return cls(
            session_id=session_id,
            owner_id=owner_id,
            status=status,
            account_id=account_id,
            files={str(k): int(v) for k, v in (files or {}).items()},
            bytes=int(size),
            created_at=created_at,
            updated_at=updated_at,
        )

    @property
    def has_creds(self) -> bool:
        """Whether ``creds.json`` is stored (Baileys can start without a QR code)."""
        return self.files.get("creds", 0) > 0


@dataclass(frozen=True)
class ImportResult:
    """What ``import_folder`` did."""

    session_id: str
    imported: int
    """Files stored (every record file of the folder, byte for byte)."""
    deleted: int
    """Stored files removed because the folder no longer has them."""
    skipped: list[str] = field(default_factory=list)
    """Entries of the folder that are not records (dotfiles, temp files, subfolders)."""


@dataclass
class MaterializeReport:
    """What ``waauth.materialize`` wrote, and which sessions it left out."""

    written: dict[str, Path] = field(default_factory=dict)
    """Session id -> its folder, rebuilt byte for byte."""
    without_creds: list[str] = field(default_factory=list)
    """Sessions with no creds stored: not written, so Baileys starts a new pairing (QR code)."""
    failed: dict[str, WaauthError] = field(default_factory=dict)
    """Session id -> why it was not written (a row that does not open, an unsafe file name,
    an id that cannot name a folder); its folder, if any, was left as it was."""
    held: dict[str, LeaseHeld] = field(default_factory=dict)
    """With ``if_unleased``: session id -> the lease another live process holds on it (another
    replica runs it), so its folder was not written or touched."""
