"""What the live mirror knows about each session folder: no database here.

A :class:`Tracker` remembers the signature (mtime, size) of every file it has pushed. The
names a watcher saw change are looked up one by one; a whole-folder scan (the first push, a
rescan) finds what changed since. A changed file is read and pushed only if it parses, because
Baileys writes files in place (no temp file) and a look can catch one half-written. Such a file
is retried on the next tick and reported if it stays broken.

A file is pushed at most once per ``window``: a change to a file not pushed within the last
window goes at the next tick; more changes within the window are held back and go, the newest
bytes, once the window has passed since its last push (as the auth state throttles creds).
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
    throttled: bool = False
    """Whether the throttle applies: the push time of each file is then remembered."""

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def size(self) -> int:
        """Bytes of sealed values."""
        return sum(map(len, self.batch.values))


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
    touched: dict[str, float] = field(default_factory=dict)
    """Record names seen changing and not pushed yet (held back, or not looked at yet), with
    when each was first seen (monotonic)."""
    fresh: bool = False
    """Names were touched since the last plan."""
    full: bool = False
    """The next plan scans the whole folder (a rescan, a failed push, the folder replaced)."""
    recent: dict[str, float] = field(default_factory=dict)
    """When each file pushed within the last window was pushed (monotonic): the throttle."""
    hold_until: float = 0.0
    """When the first file held back by the throttle may go (monotonic); 0: none is."""
    scanned_at: float = float("-inf")
    """When the whole folder was last scanned (monotonic)."""
    stamp: tuple[int, int, int] | None = None
    """The folder's :func:`~waauth._folders.stamp` when it was last scanned whole."""

    def touch(self, name: str, seen: float) -> None:
        """A watcher saw record ``name`` change (at ``seen``, monotonic)."""
        self.touched.setdefault(name, seen)
        self.fresh = True

    def due(self, now: float) -> bool:
        """Whether a plan now may find something to push."""
        return (
            self.full
            or not self.synced
            or self.fresh
            or self.unsettled
            or bool(self.broken)
            or 0 < self.hold_until <= now
        )

    def plan(self, keyring: Keyring, broken_grace: float, *, window: float = 0.0) -> Plan | None:
        """What to push now, or None if nothing changed. Reads files; no database.

        Looks up the touched names (and the broken and rotating ones, and ``creds.json``) one
        by one, or scans the whole folder for a first sync or when :attr:`full` asks for it.
        ``window`` > 0 applies the throttle (a flush passes 0: everything goes).

        Only regular files are read (see :func:`waauth._folders.scan`); other entries named like
        records are reported once and skipped. A record whose ``X.json`` is absent while Baileys'
        ``X.json.tmp`` or ``X.json.bak`` is there is being rotated, not deleted: its stored row
        stays, and :attr:`unsettled` asks for another look.
        """
        now = time.monotonic()
        found, looked = self._look(now)
        current = found.files
        self._report_odd(found.odd, looked)
        # Absent for now but not deleted: mid-rotation (a .tmp/.bak is there) or unreadable.
        absent = (found.rotating | set(found.odd)) - set(current)
        self._note_rotations(found.rotating - set(current), looked, now, broken_grace)
        if layout.CREDS_FILE not in current:
            # A wiped or half-created folder (a redeploy, a logout): never push its absence.
            if (self.pushed or current) and layout.CREDS_FILE not in absent:
                self._report_once(
                    layout.CREDS_FILE, "the folder has no creds.json; not mirroring it"
                )
            # The touched names stay, for the look that finds creds again (an event brings it).
            self.hold_until = 0.0
            return None
        self.reported.discard(layout.CREDS_FILE)
        changed = [name for name, sig in current.items() if self.pushed.get(name) != sig]
        held = self._held_back(changed, now, window) if self.synced else {}
        gone = self._gone(current, absent, looked) if self.synced else []
        self.touched = {n: self.touched.get(n, now) for n in held}
        self.hold_until = min(held.values(), default=0.0)
        if not changed and not gone and self.synced:
            return None
        batch, signatures, creds = self._seal(
            [n for n in sorted(changed) if n not in held], current, keyring, broken_grace, now
        )
        if not self.synced:
            if layout.CREDS_FILE not in signatures:
                return None  # the first sync replaces the session: only with creds that parse
            # Files on disk that did not parse (yet), or are being rotated, keep their rows.
            batch.keep = sorted((set(current) | absent) - set(signatures))
        batch.deletes.extend(gone)
        if not len(batch) and self.synced:
            return None
        return Plan(batch, creds, signatures, deleted=gone, throttled=window > 0)

    def _look(self, now: float) -> tuple[_folders.FolderScan, set[str] | None]:
        """The entries to plan from, and the names looked up (None: the whole folder)."""
        if self.synced and not self.full:
            looked = {*self.touched, *self.broken, *self.rotating, layout.CREDS_FILE}
            found = _folders.look(self.folder, looked)
            if layout.CREDS_FILE in found.files:
                self.fresh = False
                return found, looked
            # creds gone (or odd): the whole folder's rules decide
        stamp = _folders.stamp(self.folder)  # first: a change during the scan shows later
        found = _folders.scan(self.folder)
        self.full, self.fresh, self.scanned_at, self.stamp = False, False, now, stamp
        return found, None

    def _note_rotations(
        self, rotating: set[str], looked: set[str] | None, now: float, broken_grace: float
    ) -> None:
        """Remember the records absent mid-rotation. Look again soon while a rotation is fresh;
        a .bak left alone for good (a writer killed mid-rotation) keeps its row but is not
        looked at every tick."""
        kept = {} if looked is None else {n: t for n, t in self.rotating.items() if n not in looked}
        self.rotating = kept | {n: self.rotating.get(n, now) for n in rotating}
        self.unsettled = any(now - t < broken_grace for t in self.rotating.values())

    def _gone(
        self, current: dict[str, _folders.Signature], absent: set[str], looked: set[str] | None
    ) -> list[str]:
        """Pushed files deleted since (looked up by name: a listing can miss a moved entry)."""
        candidates = self.pushed.keys() if looked is None else looked & self.pushed.keys()
        return sorted(
            name
            for name in candidates
            if name not in current and name not in absent and _folders.vanished(self.folder, name)
        )

    def _seal(
        self,
        names: list[str],
        current: dict[str, _folders.Signature],
        keyring: Keyring,
        broken_grace: float,
        now: float,
    ) -> tuple[_records.Batch, dict[str, _folders.Signature], dict[str, Any] | None]:
        """Read, check and seal the changed files into a batch: (batch, signatures, creds)."""
        batch = _records.Batch(replace=not self.synced)
        signatures: dict[str, _folders.Signature] = {}
        creds = None
        for name in names:
            try:
                data = _folders.read_file(self.folder / name)
            except OSError as exc:
                self._report_once(name, f"cannot be read ({exc.strerror}); not pushed")
                continue
            if data is None:
                continue  # deleted or replaced since the look: its event comes next
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
        return batch, signatures, creds

    def _held_back(self, changed: list[str], now: float, window: float) -> dict[str, float]:
        """The changed files pushed less than ``window`` ago, and when each may go."""
        if window <= 0:
            return {}
        self.recent = {n: t for n, t in self.recent.items() if now - t < window}
        return {n: self.recent[n] + window for n in changed if n in self.recent}

    def done(self, plan: Plan) -> None:
        """The plan reached the database."""
        self.pushed.update(plan.signatures)
        for name in plan.deleted:
            self.pushed.pop(name, None)
        if plan.batch.replace:
            self.pushed = {n: s for n, s in self.pushed.items() if n in plan.signatures}
        if plan.throttled:
            now = time.monotonic()
            self.recent.update(dict.fromkeys(plan.signatures, now))
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

    def _report_odd(self, odd: dict[str, str], looked: set[str] | None) -> None:
        """Report each odd entry once while it stays odd (again if it comes back later).
        ``looked``: the names looked at (None: the whole folder); the others are as they were."""
        for name, why in odd.items():
            self._report_once(name, f"{why}; not read")
        was = self.odd if looked is None else self.odd & looked
        self.reported -= was - set(odd)
        self.odd = (self.odd - was) | set(odd)


@dataclass(frozen=True)
class MirrorStats:
    """What a mirror has done so far. No secrets."""

    sessions: int = 0
    pushes: int = 0
    """Session pushes committed: a session's changes of one tick (many share a transaction)."""
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
    transactions: int = 0
    """Transactions committed, each carrying the pushes of many sessions."""
