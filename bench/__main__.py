"""Run waauth's benchmarks and print the tables: ``python -m bench [--out FILE]``.

Every workload runs its systems side by side, paired inside each repetition; the tables give
medians, ranges and the median of the per-repetition ratios. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from . import (
    creds_storm,
    data,
    fleet,
    folders,
    keys,
    many_sessions,
    memory,
    mirror_latency,
    restore,
    scale,
)
from ._common import database, table
from .context import Context, make_context, settle_disk
from .machine import describe
from .report import Row, Target, rows_table, targets_table

WORKLOADS = ("W1", "W2", "R", "W3", "W4", "W6", "W7", "W5", "W9", "W8", "MEM", "FLEET")
STEPS: list[tuple[str, Callable[[Context], tuple[list[Row], list[Target]]]]] = [
    ("W1", keys.w1),
    ("W2", keys.w2),
    ("R", keys.read_all),
    ("W3", folders.w3),
    ("W4", folders.w4),
    ("W6", scale.w6),
    ("W7", restore.w7),
]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the tables (Markdown) to this file")
    parser.add_argument(
        "--reps", type=int, default=11, help="timed repetitions per workload (default 11)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=180,
        help="seconds to wait at most for the disk to create files at its normal speed (180)",
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads to run (default: all of {','.join(WORKLOADS)})",
    )
    args = parser.parse_args()
    args.only = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    unknown = args.only - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


class Run:
    """One run: what it measured so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.rows: list[Row] = []
        self.targets: list[Target] = []
        self.sections: list[str] = []

    def progress(self, what: str) -> None:
        print(
            f"bench: {time.monotonic() - self.started:5.0f} s  {what}", file=sys.stderr, flush=True
        )

    def measure(self, dsn: str, work: Path) -> None:
        ctx = make_context(dsn, work, self.args.reps)
        # The bench holds its datasets (about a million Python objects): keep them out of the
        # garbage collector's full passes, which would otherwise run inside waauth's timed calls
        # and charge it for the benchmark's own memory.
        gc.collect()
        gc.freeze()
        try:
            self.progress("waiting for the disk to create files at its normal speed ...")
            disk = settle_disk(work, self.args.settle)
            self.sections.append(describe(dsn, ctx.node.versions) + f"\n- {disk}")
            self.sections.append(_data_section(ctx))
            for name, step in STEPS:
                if name in self.args.only:
                    self.progress(f"{name} ...")
                    rows, targets = step(ctx)
                    self.rows += rows
                    self.targets += targets
            if self.rows:
                self.sections.append("## Timings\n\n" + rows_table(self.rows))
            if "W5" in self.args.only:
                self.progress("W5 ...")
                self._storm(dsn)
            if "W9" in self.args.only:
                self.progress("W9 ...")
                text, target = many_sessions.run(dsn, ctx.keyring, ctx.tag)
                self.sections.append("## W9: many sessions in one process\n\n" + text)
                self.targets.append(target)
            if "W8" in self.args.only:
                self.progress("W8 (the mirror's crash window) ...")
                text, targets = mirror_latency.run(dsn, ctx.keyring_key, ctx.work)
                self.sections.append("## W8: the mirror's crash window\n\n" + text)
                self.targets += targets
            if "MEM" in self.args.only:
                self.progress("peak memory ...")
                self.sections.append("## Peak memory\n\n" + memory.run(ctx))
            if "FLEET" in self.args.only:
                self.progress("FLEET ...")
                rows = fleet.run(dsn)
                self.sections.append("## FLEET: replicas\n\n" + table(fleet.HEADERS, rows))
        finally:
            ctx.node.close()
            ctx.conn.close()
            ctx.loop.close()
            scale.drop(dsn)
            restore.drop(dsn)
            mirror_latency.drop(dsn)

    def _storm(self, dsn: str) -> None:
        # W5 counts writes with the creds row's version: start from no row (a reused database).
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM waauth.sessions WHERE session_id LIKE 'storm-%'")
        rows, holds = creds_storm.run(dsn)
        self.sections.append("## W5: the creds storm\n\n" + table(creds_storm.HEADERS, rows))
        self.targets.append(
            Target(
                "W5 writes <= ceil(duration/window) + 1, final creds stored (sync, async)",
                ", ".join(f"{r[0]}: {r[3]} writes, bound {r[4]}" for r in rows[:2]),
                holds,
            )
        )

    def text(self) -> str:
        sections = list(self.sections)
        if self.targets:
            sections.insert(min(2, len(sections)), "## Targets\n\n" + targets_table(self.targets))
        sections.append(f"Total run time: {time.monotonic() - self.started:.0f} s.")
        return "\n\n".join(sections) + "\n"


def _data_section(ctx: Context) -> str:
    lines = []
    for label, ds in (("W3, W4, R", ctx.folder), ("W2", ctx.sessions)):
        parts = ", ".join(
            f"{n} {t} {lo}-{hi} B" if lo != hi else f"{n} {t} {lo} B"
            for t, (n, lo, hi) in data.sizes(ds.files).items()
        )
        total = sum(len(v) for v in ds.files.values())
        lines.append(f"- {label}: {len(ds.files):,} files, {total / 1e6:.1f} MB: {parts}")
    return "## Data (folders written by Baileys under Node)\n\n" + "\n".join(lines)


def main() -> int:
    args = _arguments()
    run = Run(args)
    work = Path(tempfile.mkdtemp(prefix="waauth-bench-", dir="/tmp"))
    try:
        with database() as dsn:
            run.measure(dsn, work)
    finally:
        # Deleted only now: creating files soon after many deletions is slow on this disk.
        shutil.rmtree(work, ignore_errors=True)
    text = run.text()
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0 if all(t.holds for t in run.targets) else 1


if __name__ == "__main__":
    sys.exit(main())
