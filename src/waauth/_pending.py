"""What the write-behind writer holds between a save and its write: no I/O here.

Every save becomes an :class:`Entry` under its file name, with a sequence number. A newer save
of the same file replaces the older one, so memory is bounded by the number of distinct files,
however long the database is away. A write takes a snapshot of everything pending and writes
it in one statement; afterwards every save numbered up to the snapshot's sequence is durable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from . import _records, layout
from .encryption import Keyring


@dataclass(frozen=True)
class Entry:
    """One file's latest pending state: its bytes, or None for a deletion."""

    seq: int
    type: str
    id: str
    data: bytes | None
    account: str | None = None  # creds only: the paired me.id


class Pending:
    """The latest unsaved state of each file, in the order the saves were made."""

    def __init__(self) -> None:
        self.seq = 0
        """Sequence number of the last save."""
        self.durable = 0
        """Every save numbered up to this is in the database."""
        self.entries: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def put(
        self, file_name: str, type: str, id: str, data: bytes | None, account: str | None = None
    ) -> int:
        """Record a save; return its sequence number."""
        self.seq += 1
        # Re-insert so that iteration order is the order in which the latest saves were made.
        self.entries.pop(file_name, None)
        self.entries[file_name] = Entry(self.seq, type, id, data, account)
        return self.seq

    def snapshot(self) -> tuple[int, dict[str, Entry]]:
        """Everything pending now, and the sequence number it covers."""
        return self.seq, dict(self.entries)

    def written(self, seq: int, entries: dict[str, Entry]) -> None:
        """A snapshot reached the database: drop what was not saved again since."""
        for name, entry in entries.items():
            if self.entries.get(name) is entry:
                del self.entries[name]
        self.durable = max(self.durable, seq)

    def discard(self) -> None:
        """Forget everything pending (the session is being deleted)."""
        self.entries.clear()
        self.durable = self.seq

    def lookup(self, file_name: str) -> Entry | None:
        """The pending state of a file, for reads that must see their own writes."""
        return self.entries.get(file_name)


def seal(entries: dict[str, Entry], session_id: str, keyring: Keyring) -> _records.Batch:
    """The batch that writes ``entries`` (creds included) in one statement."""
    batch = _records.Batch()
    for name, entry in sorted(entries.items()):
        if entry.data is None:
            batch.deletes.append(name)
            continue
        _records.add_row(
            batch, keyring, session_id, name, key_type=entry.type, key_id=entry.id, data=entry.data
        )
        if name == layout.CREDS_FILE:
            batch.has_creds = True
            batch.account = entry.account
    return batch


def key_entries(plan: dict[str, tuple[str, str, bytes | None]], seq: int) -> dict[str, Entry]:
    """Entries for a planned ``keys.set`` (see :func:`waauth._records.plan_key_entries`)."""
    return {name: Entry(seq, t, i, data) for name, (t, i, data) in plan.items()}


@dataclass(frozen=True)
class Stats:
    """A snapshot of a state's persistence figures, for a bot's metrics. No secrets."""

    writes: int = 0
    """Transactions committed."""
    records_written: int = 0
    """Records upserted or deleted by those transactions."""
    retries: int = 0
    """Attempts that failed with a retryable error and were tried again."""
    failures: int = 0
    """Writes that gave up (retry budget spent, or refused by the database)."""
    creds_saves: int = 0
    """``save_creds`` calls (many coalesce into one write)."""
    creds_writes: int = 0
    """Writes that stored creds."""
    pending: int = 0
    """Records saved but not yet in the database."""
    last_success: datetime | None = None
    last_error: str | None = None
    """The last failure's class and SQLSTATE, never a value."""
    last_error_at: datetime | None = None
    outage_seconds: float | None = None
    """How long the current outage has lasted (None when the last write succeeded)."""
    last_recovery_seconds: float | None = None
    """How long the last outage lasted, from the first failure to the next success."""
    flush_seconds: float | None = None
    """How long the last successful ``flush`` waited."""

    @property
    def success_rate(self) -> float:
        """Share of writes that succeeded (1.0 before any write)."""
        total = self.writes + self.failures
        return 1.0 if total == 0 else self.writes / total


@dataclass
class Counters:
    """The mutable figures behind :class:`Stats`, safe to update from several threads."""

    stats: Stats = field(default_factory=Stats)
    outage_started: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wrote(self, records: int, creds: bool) -> None:
        with self._lock:
            now = time.monotonic()
            recovery = None if self.outage_started is None else now - self.outage_started
            self.outage_started = None
            s = self.stats
            self.stats = replace(
                s,
                writes=s.writes + 1,
                records_written=s.records_written + records,
                creds_writes=s.creds_writes + int(creds),
                last_success=datetime.now(timezone.utc),
                last_recovery_seconds=recovery if recovery is not None else s.last_recovery_seconds,
            )

    def failed(self, error: BaseException, *, outage: bool = True) -> None:
        """A write gave up; ``outage=False`` for a refusal, which no outage explains."""
        with self._lock:
            if outage and self.outage_started is None:
                self.outage_started = time.monotonic()
            cause = error.__cause__
            detail = f" ({type(cause).__name__})" if cause is not None else ""
            self.stats = replace(
                self.stats,
                failures=self.stats.failures + 1,
                last_error=f"{type(error).__name__}{detail}",
                last_error_at=datetime.now(timezone.utc),
            )

    def retried(self) -> None:
        with self._lock:
            self.stats = replace(self.stats, retries=self.stats.retries + 1)

    def saved_creds(self) -> None:
        with self._lock:
            self.stats = replace(self.stats, creds_saves=self.stats.creds_saves + 1)

    def flushed(self, seconds: float) -> None:
        with self._lock:
            self.stats = replace(self.stats, flush_seconds=seconds)

    def snapshot(self, pending: int) -> Stats:
        outage = None if self.outage_started is None else time.monotonic() - self.outage_started
        return replace(self.stats, pending=pending, outage_seconds=outage)
