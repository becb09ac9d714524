"""W7: restore at deploy time. ``waauth pull --all`` of 200 sessions x 1,000 files (the shapes
of ``bench.data``), the whole command timed in its own process (start, connect, fetch,
decrypt, write, swap), and the library's ``materialize`` of every session, each against the
floor: plain Python writing the same files from memory.

The sessions live in a schema of their own (``bench_w7``, dropped at the end), so that
``--all`` restores exactly them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
from psycopg_pool import ConnectionPool

from waauth import PostgresAuthState, materialize, migrate

from . import data
from ._common import paired
from .context import Context, write_floor
from .report import Row, Target, ratio_target, rows_for

SCHEMA = "bench_w7"
SESSIONS = 200
MIX = data.SMALL_MIX
VARIANTS = 4
"""Distinct sessions' worth of values, reused round-robin (sealed per session all the same)."""
REPS = 3
ALERT = 30.0
"""The seeds alert when reconnecting after a restart takes longer than this."""

PULL = "waauth pull --all (own process, everything included)"
LIBRARY = "waauth.materialize of every session (in process)"
FLOOR = "floor: plain Python writing the files from memory"


def _store(ctx: Context) -> list[dict[str, bytes]]:
    """Store the sessions; return each one's files (as Baileys wrote them)."""
    maker = data.Maker(7)
    specs = [maker.spec(MIX) for _ in range(VARIANTS)]
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        migrate(conn, SCHEMA)
    files = []
    kwargs = {"autocommit": True, "prepare_threshold": None}
    with ConnectionPool(ctx.dsn, min_size=1, max_size=1, kwargs=kwargs) as pool:
        for i in range(SESSIONS):
            spec = specs[i % VARIANTS]
            with PostgresAuthState.open(
                pool, _sid(i), keyring=ctx.keyring, schema=SCHEMA, migrate=False
            ) as state:
                state.creds = spec.creds
                state.save_creds()
                state.keys.set(spec.keys)  # takes the pending creds along: one statement
            files.append(spec.files())
    return files


def _sid(i: int) -> str:
    return f"restore-{i:03d}"


def drop(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def w7(ctx: Context) -> tuple[list[Row], list[Target]]:
    started = time.perf_counter()
    sessions = _store(ctx)
    count = sum(len(f) for f in sessions)
    print(
        f"bench: W7 {SESSIONS} sessions ({count:,} files) stored in "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    env = {
        **os.environ,
        "WAAUTH_DSN": ctx.dsn,
        "WAAUTH_KEYS": ctx.keyring_key,
        "WAAUTH_SCHEMA": SCHEMA,
    }

    def pull(rep: int) -> float:
        root = ctx.scratch("w7-pull", str(rep))
        begun = time.perf_counter()
        subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "waauth", "pull", "--all", str(root)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - begun
        _check(root, sessions)
        return seconds

    def library(rep: int) -> float:
        root = ctx.scratch("w7-lib", str(rep))
        begun = time.perf_counter()
        report = materialize(ctx.dsn, root, keyring=ctx.keyring, schema=SCHEMA)
        seconds = time.perf_counter() - begun
        if len(report.written) != SESSIONS:
            raise RuntimeError(f"W7 materialize wrote {len(report.written)} sessions")
        return seconds

    def floor(rep: int) -> float:
        root = ctx.scratch("w7-floor", str(rep))
        return sum(write_floor(root, _sid(i), files) for i, files in enumerate(sessions))

    samples = paired({PULL: pull, LIBRARY: library, FLOOR: floor}, REPS, warmup=0)
    rows = rows_for(f"W7 restore {SESSIONS} sessions x 1,000 files", samples, FLOOR)
    by = {r.system: r for r in rows}
    targets = [
        ratio_target("W7 waauth pull --all <= 1.3x the plain-write floor", by[PULL], at_most=1.3),
        ratio_target("W7 materialize of every session <= 1.3x the floor", by[LIBRARY], at_most=1.3),
    ]
    per_file = by[PULL].median / count
    files_in_alert = ALERT / per_file
    targets.append(
        Target(
            f"W7 where the seeds' {ALERT:.0f} s restore alert falls (pull --all, this machine)",
            f"{files_in_alert:,.0f} files: {files_in_alert / 1001:,.0f} sessions x 1,000 files "
            f"({files_in_alert / 5001:,.0f} x 5,000)",
            True,
        )
    )
    return rows, targets


def _check(root: os.PathLike[str], sessions: list[dict[str, bytes]]) -> None:
    """Spot-check the restore: every session's folder, one session byte for byte."""
    names = sorted(os.listdir(root))
    if names != [_sid(i) for i in range(SESSIONS)]:
        raise RuntimeError(f"W7 pull wrote {len(names)} folders")
    folder = os.path.join(root, _sid(SESSIONS - 1))
    got = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            got[name] = f.read()
    if got != sessions[SESSIONS - 1]:
        raise RuntimeError("W7 pull wrote other bytes than stored")
