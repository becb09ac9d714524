"""FLEET: 1,000 stored sessions claimed and restored by 4 replica processes; then a take-over.

``python -m bench.fleet`` runs it alone (``WAAUTH_BENCH_DSN`` or an embedded server); ``python
-m bench --only FLEET`` runs it with the others. Each repetition starts 4 ``waauth.Fleet``
processes (``start_rate=None``: no stagger) on a fresh set of leases, tells them to start at one
moment, and times until every session is claimed, restored into its replica's folder and
announced by ``on_claimed``. The last repetition then SIGKILLs one replica and times until its
sessions run on the other three (bound: ``lease_ttl`` plus one claim interval).

    python -m bench.fleet replica DSN ROOT KEY   (a replica: internal)
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

import waauth
from waauth import Fleet, Keyring, codec, layout
from waauth.testing import fake_creds, fake_pre_keys

from ._common import database, table

SCHEMA = "bench_fleet"
SESSIONS = 1000
REPLICAS = 4
KEYS = 20
"""Pre-keys per session besides creds.json: 21 files, about 5 KB a session."""
TTL = 5.0
INTERVAL = 1.0
_SQL = {
    "sessions": "INSERT INTO {schema}.sessions (session_id, status)"
    " SELECT unnest(%b::text[]), 'active'",
    "records": "INSERT INTO {schema}.records (session_id, file_name, type, record_id, value)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[])",
    "reset": "DELETE FROM {schema}.leases; DELETE FROM {schema}.replicas",
}
HEADERS = ("FLEET", "replicas", "sessions", "median s", "min-max s", "per replica", "bound s")


def _seed(dsn: str, keyring: Keyring) -> None:
    """A fresh schema with SESSIONS active sessions: creds and KEYS pre-keys each."""
    keys = {f"pre-key-{i}.json": codec.encode(v) for i, v in fake_pre_keys(KEYS).items()}
    sessions, files, types, ids, values = [], [], [], [], []
    for n in range(SESSIONS):
        session_id = f"f{n:04d}"
        sessions.append(session_id)
        own = {layout.CREDS_FILE: codec.encode(fake_creds(n)), **keys}
        for name, data in own.items():
            key_type, key_id = layout.parse_file_name(name)
            files.append((session_id, name))
            types.append(key_type)
            ids.append(key_id)
            values.append(keyring.encrypt(data, session_id=session_id, file_name=name))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        waauth.migrate(conn, SCHEMA)
        with conn.transaction():
            conn.execute(
                _SQL["sessions"].format(schema=SCHEMA),
                [sessions],
            )
            conn.execute(
                _SQL["records"].format(schema=SCHEMA),
                [[s for s, _ in files], [f for _, f in files], types, ids, values],
            )


def _reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_SQL["reset"].format(schema=SCHEMA))


class _Replica:
    """A replica process: reports ``claimed SESSION TIME`` lines, counted here."""

    def __init__(self, dsn: str, root: Path, key: str) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - this very module
            [sys.executable, "-m", "bench.fleet", "replica", dsn, str(root), key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.claimed: dict[str, float] = {}
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            words = line.split()
            if words == ["ready"]:
                self.ready.set()
            elif words[:1] == ["claimed"]:
                self.claimed[words[1]] = float(words[2])
            elif words[:1] == ["lost"]:
                self.claimed.pop(words[1], None)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("bench FLEET: timed out")
        time.sleep(0.05)


def run(dsn: str, reps: int = 3) -> list[list[str]]:
    """The FLEET rows: claim and restore of SESSIONS across REPLICAS, then one take-over."""
    key = Keyring.generate_key()
    _seed(dsn, Keyring([key]))
    work = Path(tempfile.mkdtemp(prefix="waauth-fleet-", dir="/tmp"))
    times: list[float] = []
    floor: list[float] = []
    shares: list[list[int]] = []
    takeover: tuple[float, int] | None = None
    try:
        for rep in range(reps):
            _reset(dsn)
            floor.append(_materialize_share(dsn, key, work / f"floor-{rep}"))
            replicas = [_Replica(dsn, work / f"r{rep}-{i}", key) for i in range(REPLICAS)]
            try:
                for replica in replicas:
                    if not replica.ready.wait(60):
                        raise RuntimeError("bench FLEET: a replica did not start")
                started = time.time()
                for replica in replicas:
                    replica.go()
                _wait(lambda group=replicas: _count(group) >= SESSIONS, 300)
                last = max(t for r in replicas for t in r.claimed.values())
                times.append(last - started)
                shares.append(sorted(len(r.claimed) for r in replicas))
                if rep == reps - 1:
                    takeover = _take_over(replicas)
            finally:
                for replica in replicas:
                    replica.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    rows = [
        [
            "claim + restore, all start at once",
            str(REPLICAS),
            f"{SESSIONS:,}",
            f"{statistics.median(times):.2f}",
            f"{min(times):.2f}-{max(times):.2f}",
            "/".join(map(str, shares[-1])),
            f"{INTERVAL:.1f} + restore",
        ]
    ]
    rows.append(
        [
            "floor: one materialize of one share",
            "1",
            f"{SESSIONS // REPLICAS:,}",
            f"{statistics.median(floor):.2f}",
            f"{min(floor):.2f}-{max(floor):.2f}",
            "-",
            "-",
        ]
    )
    if takeover is not None:
        seconds, moved = takeover
        rows.append(
            [
                "take-over after kill -9 of one",
                f"{REPLICAS} -> {REPLICAS - 1}",
                f"{moved:,}",
                f"{seconds:.2f}",
                "-",
                "-",
                f"{TTL + INTERVAL:.1f} + restore",
            ]
        )
    return rows


def _materialize_share(dsn: str, key: str, root: Path) -> float:
    """Seconds of one ``materialize`` of a replica's share, in this process (no fleet)."""
    share = [f"f{n:04d}" for n in range(SESSIONS // REPLICAS)]
    started = time.perf_counter()
    waauth.materialize(dsn, root, keyring=Keyring([key]), session_ids=share, schema=SCHEMA)
    return time.perf_counter() - started


def _count(replicas: list[_Replica]) -> int:
    return sum(len(r.claimed) for r in replicas)


def _take_over(replicas: list[_Replica]) -> tuple[float, int]:
    """SIGKILL one replica; seconds until its sessions run on the others, and how many."""
    victim = replicas[0]
    orphans = set(victim.claimed)
    killed = time.monotonic()
    victim.proc.kill()
    victim.proc.wait()
    others = replicas[1:]
    _wait(lambda: orphans <= {s for r in others for s in r.claimed}, 120)
    return time.monotonic() - killed, len(orphans)


def replica(dsn: str, root: str, key: str) -> int:
    """One replica: start on "go" (stdin), report each claim, stop on SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def claimed(session_id: str, folder: Path) -> None:
        print(f"claimed {session_id} {time.time():.4f}", flush=True)

    def lost(session_id: str) -> None:
        print(f"lost {session_id}", flush=True)

    fleet = Fleet(
        dsn,
        root,
        keyring=Keyring([key]),
        schema=SCHEMA,
        on_claimed=claimed,
        on_lost=lost,
        lease_ttl=TTL,
        claim_interval=INTERVAL,
        start_rate=None,
    )
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 1.0)[0]:
        pass
    sys.stdin.readline()
    with fleet:
        while not stop.wait(0.2):
            pass
    return 0


def main() -> int:
    if sys.argv[1:2] == ["replica"]:
        return replica(*sys.argv[2:5])
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    args = parser.parse_args()
    with database() as dsn:
        rows = run(dsn, args.reps)
    print(f"machine: {os.cpu_count()} cores")
    print(table(HEADERS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
