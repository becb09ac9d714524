"""W8: the mirror's crash window. A SIGKILLed container loses whatever Baileys wrote that the
mirror has not committed yet; this measures how long that is.

One ``waauth watch`` process (its own, as deployed) mirrors 100 session folders of 1,000 files
each. First it sits idle (its CPU is measured: the cost of watching quiet sessions); then a
writer makes Baileys-style writes (the bytes into a dot-file, renamed into place) at 1,000 new
files a second spread over the 100 folders for 30 s. A poller looks each renamed file up in
PostgreSQL (by primary key, every few milliseconds) and records when its row is first
visible: the latency from rename to visible commit, p50 / p99 / max, and the watcher's CPU.

With ``--profile`` (``python -m bench.mirror_latency --profile``) the watcher runs under
py-spy during the load and the report adds where its time goes.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from waauth import Keyring, layout, migrate

from . import data
from ._common import database, table
from .context import write_floor
from .report import Target

SCHEMA = "bench_w8"
SESSIONS = 100
MIX = data.SMALL_MIX
RATE = 1000.0
"""New files a second, spread round-robin over the sessions."""
SECONDS = 30.0
IDLE_SECONDS = 20.0
POLL = 0.005
P99_GOAL = 0.250
CPU_GOAL = 0.5
IDLE_GOAL = 0.01

HEADERS = ["W8 phase", "files", "p50 ms", "p99 ms", "max ms", "watcher CPU (cores)"]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _sid(i: int) -> str:
    return f"live-{i:03d}"


class _Poller(threading.Thread):
    """Looks renamed files up in the database until each one is visible."""

    def __init__(self, dsn: str) -> None:
        super().__init__(name="w8-poller", daemon=True)
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._lock = threading.Lock()
        self.pending: dict[tuple[str, str], float] = {}
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def renamed(self, session_id: str, name: str, at: float) -> None:
        with self._lock:
            self.pending[(session_id, name)] = at

    deadline = float("inf")
    """Once stopped, how long to keep looking for files not yet visible."""

    def run(self) -> None:
        sql = (
            f"SELECT r.session_id, r.file_name FROM {SCHEMA}.records r"  # noqa: S608 - constant
            " JOIN unnest(%b::text[], %b::text[]) AS p(s, f)"
            " ON r.session_id = p.s AND r.file_name = p.f"
        )
        while not self.stop.is_set() or self.pending:
            with self._lock:
                wanted = list(self.pending)
            if wanted:
                rows = self._conn.execute(
                    sql, [[s for s, _ in wanted], [f for _, f in wanted]]
                ).fetchall()
                seen = time.monotonic()
                with self._lock:
                    for session_id, name in rows:
                        renamed = self.pending.pop((session_id, name), None)
                        if renamed is not None:
                            self.latencies.append(seen - renamed)
            time.sleep(POLL)
            if self.stop.is_set() and time.monotonic() > self.deadline:
                break
        self._conn.close()


def _write_load(root: Path, poller: _Poller, value: bytes) -> int:
    """Baileys-style writes at RATE files a second for SECONDS; returns how many were made."""
    total = int(RATE * SECONDS)
    started = time.monotonic()
    for k in range(total):
        wait = started + k / RATE - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        session = _sid(k % SESSIONS)
        name = layout.file_name("session", f"w8.{k}")
        folder = root / session
        temp = folder / f".{name}.tmp"
        with open(temp, "wb") as f:
            f.write(value)
        os.rename(temp, folder / name)
        poller.renamed(session, name, time.monotonic())
    return total


def _profile_summary(raw: Path, top: int = 16) -> str:
    """Where the watcher's threads spend their wall time, from py-spy's collapsed stacks
    (idle waits included): per thread, and per function of waauth, psycopg and watchfiles
    (inclusive: the function or anything it called)."""
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0]] += n
        for frame in set(frames[1:]):
            if any(part in frame for part in ("waauth/", "psycopg", "watchfiles")):
                inclusive[frame] += n
    per_thread = ", ".join(f"{t}: {100 * n / total:.0f}%" for t, n in threads.most_common())
    rows = [[f"{100 * n / total:.1f}%", f[:100]] for f, n in inclusive.most_common(top)]
    return f"{total} samples over {len(threads)} threads ({per_thread}).\n\n" + table(
        ["share of all samples", "function (file:line), inclusive"], rows
    )


def _folders(root: Path) -> bytes:
    """Write the session folders; return the bytes the writer writes (a session record)."""
    root.mkdir()
    maker = data.Maker(8)
    specs = [maker.spec(MIX) for _ in range(4)]
    for i in range(SESSIONS):
        write_floor(root, _sid(i), specs[i % 4].files())
    first = next(iter(specs[0].keys["session"]))
    return specs[0].files()[layout.file_name("session", first)]


def _wait_for_first_push(dsn: str, watcher: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    expected = SESSIONS * (sum(MIX.values()) + 1)
    count = f"SELECT count(*) FROM {SCHEMA}.records"  # noqa: S608 - a constant
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(count).fetchone()
            if row and row[0] >= expected:
                return time.monotonic() - started
            if watcher.poll() is not None or time.monotonic() - started > 600:
                raise RuntimeError(f"W8: waauth watch did not store the folders ({row})")
            time.sleep(0.5)


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid)]
    command += ["--duration", str(int(SECONDS)), "--format", "raw", "--threads", "--idle"]
    return subprocess.Popen(  # noqa: S603 - py-spy, from the same environment
        [*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _load(dsn: str, root: Path, pid: int, value: bytes) -> tuple[_Poller, int, float]:
    """The writes, watched: (poller with the latencies, files written, watcher cores)."""
    poller = _Poller(dsn)
    poller.start()
    cpu = _cpu_seconds(pid)
    begun = time.monotonic()
    total = _write_load(root, poller, value)
    cores = (_cpu_seconds(pid) - cpu) / (time.monotonic() - begun)
    poller.deadline = time.monotonic() + 60
    poller.stop.set()
    poller.join()
    return poller, total, cores


def run(
    dsn: str, keyring_key: str, work: Path, *, profile: bool = False
) -> tuple[str, list[Target]]:
    """The W8 tables and targets."""
    root = work / "w8"
    value = _folders(root)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        migrate(conn, SCHEMA)
    env = {**os.environ, "WAAUTH_DSN": dsn, "WAAUTH_KEYS": keyring_key, "WAAUTH_SCHEMA": SCHEMA}
    watcher = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "waauth", "watch", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    raw = work / "w8-profile.txt"
    try:
        first_push = _wait_for_first_push(dsn, watcher)
        time.sleep(3)  # the last push's bookkeeping settles before the idle measurement
        cpu = _cpu_seconds(watcher.pid)
        time.sleep(IDLE_SECONDS)
        idle = (_cpu_seconds(watcher.pid) - cpu) / IDLE_SECONDS
        spy = _py_spy(watcher.pid, raw) if profile else None
        poller, total, load_cpu = _load(dsn, root, watcher.pid, value)
        if spy is not None:
            spy.wait(timeout=120)
    finally:
        watcher.send_signal(signal.SIGKILL)  # as a container is killed: no final push
        watcher.wait()
    lat = sorted(poller.latencies)
    missing = len(poller.pending)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    rows = [
        ["idle: 100 quiet sessions x 1,000 files", "-", "-", "-", "-", f"{idle:.4f}"],
        [
            f"load: {RATE:,.0f} files/s over {SESSIONS} sessions for {SECONDS:.0f} s",
            f"{total:,}" + (f" ({missing} never visible)" if missing else ""),
            f"{p50 * 1e3:.0f}",
            f"{p99 * 1e3:.0f}",
            f"{lat[-1] * 1e3:.0f}",
            f"{load_cpu:.2f}",
        ],
    ]
    text = (
        f"First full push of {SESSIONS} sessions x {sum(MIX.values()) + 1:,} files: "
        f"{first_push:.1f} s. Visibility polled every {POLL * 1e3:.0f} ms (plus the lookup's "
        "own time), so latencies are over by up to one poll.\n\n" + table(HEADERS, rows)
    )
    if profile and raw.exists():
        text += "\n\nWhere the watcher's time goes under load (py-spy):\n\n"
        text += _profile_summary(raw)
    targets = [
        Target(
            f"W8 rename -> visible commit p99 <= {P99_GOAL * 1e3:.0f} ms at {RATE:,.0f} files/s",
            f"p99 {p99 * 1e3:.0f} ms (p50 {p50 * 1e3:.0f}, max {lat[-1] * 1e3:.0f})",
            p99 <= P99_GOAL and not missing,
        ),
        Target(
            f"W8 watcher under {CPU_GOAL} core at that load",
            f"{load_cpu:.2f} cores",
            load_cpu < CPU_GOAL,
        ),
        Target(
            f"W8 idle watcher under {IDLE_GOAL:.0%} of a core (100 x 1,000 quiet files)",
            f"{idle:.2%}",
            idle < IDLE_GOAL,
        ),
    ]
    return text, targets


def drop(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mirror_latency", description=__doc__)
    parser.add_argument("--profile", action="store_true", help="run the watcher under py-spy")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="waauth-w8-", dir="/tmp"))
    try:
        with database() as dsn:
            try:
                text, targets = run(dsn, Keyring.generate_key(), work, profile=args.profile)
            finally:
                drop(dsn)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    for t in targets:
        print(f"- {t.text}: {t.measured} ({'holds' if t.holds else 'MISSED'})")
    return 0 if all(t.holds for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
