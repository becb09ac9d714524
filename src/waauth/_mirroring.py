"""What the live mirror knows about each session folder: no database here.

A :class:`Tracker` remembers the signature (mtime, size) of every file it has pushed. A scan
finds what changed since; a changed file is read and pushed only if it parses, because Baileys
writes files in place (no temp file) and a scan can catch one half-written. Such a file is
retried on the next tick and reported if it stays broken.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _folders, _records, codec, layout
from .encryption import Keyring
from .errors import CorruptRecord

logger = logging.getLogger("waauth.mirror")


@dataclass
class Plan:
    """One tick's push for one session."""

    batch: _records.Batch
    creds: dict[str, Any] | None
    """The decoded creds.json being pushed, if it changed."""
    signatures: dict[str, _folders.Signature]
    """Signatures of the files this push covers (upserted, or deleted: None)."""
    deleted: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.batch)


@dataclass
class Tracker:
    """One mirrored session folder."""

    session_id: str
    folder: Path
    pushed: dict[str, _folders.Signature] = field(default_factory=dict)
    synced: bool = False
    """Whether a first full sync (which also deletes rows for files not in the folder) ran."""
    broken: dict[str, float] = field(default_factory=dict)
    """Files that did not parse, and since when (monotonic)."""
    reported: set[str] = field(default_factory=set)
    refused: str | None = None
    """Why this session is not mirrored (e.g. its creds belong to another account)."""
    held_elsewhere: str | None = None
    """Another live process holds the session's lease: retried on later passes."""
    odd: set[str] = field(default_factory=set)
    """Entries named like records that are not read (folders, FIFOs, links), at the last look."""
    rotating: dict[str, float] = field(default_factory=dict)
    """Records absent beside their Baileys ``.tmp`` / ``.bak``, and since when (monotonic)."""
    unsettled: bool = False
    """A record was absent mid-rotation at the last look: look again on the next tick."""
    failing: str | None = None
    """Why the last push failed for a reason of this session (a row no key opens...)."""
    failing_since: float | None = None
    next_try: float = 0.0
    """When a failing session is tried again (monotonic)."""
    waiting_for_database: bool = False
    """The last push failed because the database was away: tried again each tick."""

    def plan(self, keyring: Keyring, broken_grace: float) -> Plan | None:
        """What to push now, or None if nothing changed. Reads files; no database.

        Only regular files are read (see :func:`waauth._folders.scan`); other entries named like
        records are reported once and skipped. A record whose ``X.json`` is absent while Baileys'
        ``X.json.tmp`` or ``X.json.bak`` is there is being rotated, not deleted: its stored row
        stays, and :attr:`unsettled` asks for another look.
        """
        found = _folders.scan(self.folder)
        current = found.files
        now = time.monotonic()
        self._report_odd(found.odd)
        # Absent for now but not deleted: mid-rotation (a .tmp/.bak is there) or unreadable.
        absent = (found.rotating | set(found.odd)) - set(current)
        # Look again soon while a rotation is fresh; a .bak left alone for good (a writer killed
        # mid-rotation) keeps its row but is not rescanned every tick.
        self.rotating = {n: self.rotating.get(n, now) for n in found.rotating - set(current)}
        self.unsettled = any(now - t < broken_grace for t in self.rotating.values())
        if layout.CREDS_FILE not in current:
            # A wiped or half-created folder (a redeploy, a logout): never push its absence.
            if (self.pushed or current) and layout.CREDS_FILE not in absent:
                self._report_once(
                    layout.CREDS_FILE, "the folder has no creds.json; not mirroring it"
                )
            return None
        self.reported.discard(layout.CREDS_FILE)
        changed = [name for name, sig in current.items() if self.pushed.get(name) != sig]
        gone = (
            []
            if not self.synced
            else [
                name
                for name in self.pushed
                if name not in current
                and name not in absent
                and _folders.vanished(self.folder, name)
            ]
        )
        if not changed and not gone and self.synced:
            return None
        batch = _records.Batch(replace=not self.synced)
        signatures: dict[str, _folders.Signature] = {}
        creds = None
        for name in sorted(changed):
            try:
                data = _folders.read_file(self.folder / name)
            except OSError as exc:
                self._report_once(name, f"cannot be read ({exc.strerror}); not pushed")
                continue
            if data is None:
                continue  # deleted or replaced since the scan: the next tick sees it
            try:
                value = _folders.check_record(self.session_id, name, data)
            except CorruptRecord as exc:
                first = self.broken.setdefault(name, now)
                if now - first >= broken_grace:
                    self._report_once(name, f"{exc.reason}, for {now - first:.0f} s; not pushed")
                continue
            self.broken.pop(name, None)
            self.reported.discard(name)
            key_type, key_id = layout.parse_file_name(name)
            _records.add_row(
                batch, keyring, self.session_id, name, key_type=key_type, key_id=key_id, data=data
            )
            signatures[name] = current[name]
            if name == layout.CREDS_FILE:
                creds = codec.decode(data) if isinstance(value, dict) else None
                batch.has_creds = True
                batch.account = None if creds is None else _records.account_of(creds)
        if not self.synced:
            if layout.CREDS_FILE not in signatures:
                return None  # the first sync replaces the session: only with creds that parse
            # Files on disk that did not parse (yet), or are being rotated, keep their rows.
            batch.keep = sorted((set(current) | absent) - set(signatures))
        batch.deletes.extend(sorted(gone))
        if not len(batch) and self.synced:
            return None
        return Plan(batch, creds, signatures, deleted=sorted(gone))

    def done(self, plan: Plan) -> None:
        """The plan reached the database."""
        self.pushed.update(plan.signatures)
        for name in plan.deleted:
            self.pushed.pop(name, None)
        if plan.batch.replace:
            self.pushed = {n: s for n, s in self.pushed.items() if n in plan.signatures}
        self.synced = True

    def _report_once(self, name: str, why: str) -> None:
        if name not in self.reported:
            self.reported.add(name)
            logger.warning(
                "mirror of session %s: %s: %s",
                self.session_id,
                _folders.shown(name),
                why,
                extra={"session_id": self.session_id, "file_name": _folders.shown(name)},
            )

    def _report_odd(self, odd: dict[str, str]) -> None:
        """Report each odd entry once while it stays odd (again if it comes back later)."""
        for name, why in odd.items():
            self._report_once(name, f"{why}; not read")
        self.reported -= self.odd - set(odd)
        self.odd = set(odd)


@dataclass(frozen=True)
class MirrorStats:
    """What a mirror has done so far. No secrets."""

    sessions: int = 0
    pushes: int = 0
    """Transactions committed (one per session per tick with changes)."""
    files_pushed: int = 0
    files_deleted: int = 0
    failures: int = 0
    broken: tuple[str, ...] = ()
    """``session/file`` of files that did not parse at the last look."""
    refused: tuple[str, ...] = ()
    """Sessions not mirrored, with the reason."""
    held_elsewhere: tuple[str, ...] = ()
    """Sessions whose lease another live process holds (not mirrored until it is free)."""
    last_push: float | None = None
    """Seconds since the last push."""
    last_error: str | None = None
    watching: bool = False
    """Whether the watcher runs now (False while it restarts after a failure, or gave up)."""
    watcher_failures: int = 0
    """Unexpected exceptions of the watcher so far (each one logged as an error)."""
    watcher_restarts: int = 0
    pending_sessions: int = 0
    """Sessions with changes seen but not committed yet."""
    oldest_pending: float | None = None
    """Seconds since the oldest uncommitted change was first seen (None: nothing pending)."""
    failing: tuple[str, ...] = ()
    """``session: reason`` of sessions that cannot be read or pushed now (retried slowly)."""
