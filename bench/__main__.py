"""Run waauth's benchmarks and print the tables: ``python -m bench [--out FILE]``.

Every workload runs its systems side by side, paired inside each repetition; the tables give
medians, ranges and the median of the per-repetition ratios. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from . import creds_storm, data, folders, keys, memory, scale
from ._common import database, table
from .context import Context, make_context
from .machine import describe
from .report import Row, Target, rows_table, targets_table

WORKLOADS = ("W1", "W2", "R", "W3", "W4", "W6", "W5", "MEM")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the tables (Markdown) to this file")
    parser.add_argument(
        "--reps", type=int, default=11, help="timed repetitions per workload (default 11)"
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads to run (default: all of {','.join(WORKLOADS)})",
    )
    args = parser.parse_args()
    only = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    unknown = only - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="waauth-bench-", dir="/tmp"))
    rows: list[Row] = []
    targets: list[Target] = []
    sections: list[str] = []
    try:
        with database() as dsn:
            ctx = make_context(dsn, work, args.reps)
            try:
                sections.append(describe(dsn, ctx.node.versions))
                sections.append(_data_section(ctx))
                steps: list[tuple[str, Callable[[Context], tuple[list[Row], list[Target]]]]] = [
                    ("W1", keys.w1),
                    ("W2", keys.w2),
                    ("R", lambda c: (keys.read_all(c), [])),
                    ("W3", folders.w3),
                    ("W4", folders.w4),
                    ("W6", scale.w6),
                ]
                for name, step in steps:
                    if name in only:
                        _progress(f"{name} ...", started)
                        more_rows, more_targets = step(ctx)
                        rows += more_rows
                        targets += more_targets
                if rows:
                    sections.append("## Timings\n\n" + rows_table(rows))
                if "W5" in only:
                    _progress("W5 ...", started)
                    _forget_storm_sessions(dsn)
                    storm_rows, holds = creds_storm.run(dsn)
                    sections.append(
                        "## W5: the creds storm\n\n" + table(creds_storm.HEADERS, storm_rows)
                    )
                    targets.append(
                        Target(
                            "W5 writes <= duration/window + 1, final creds stored (sync, async)",
                            ", ".join(
                                f"{r[0]}: {r[3]} writes, bound {r[4]}" for r in storm_rows[:2]
                            ),
                            holds,
                        )
                    )
                if "MEM" in only:
                    _progress("peak memory ...", started)
                    sections.append("## Peak memory\n\n" + memory.run(ctx))
            finally:
                ctx.node.close()
                ctx.conn.close()
                ctx.loop.close()
                scale.drop(dsn)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if targets:
        sections.insert(2, "## Targets\n\n" + targets_table(targets))
    sections.append(f"Total run time: {time.monotonic() - started:.0f} s.")
    text = "\n\n".join(sections) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0 if all(t.holds for t in targets) else 1


def _progress(what: str, started: float) -> None:
    print(f"bench: {time.monotonic() - started:5.0f} s  {what}", file=sys.stderr, flush=True)


def _forget_storm_sessions(dsn: str) -> None:
    """W5 counts writes with the creds row's version: start from no row (a reused database)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM waauth.sessions WHERE session_id LIKE 'storm-%'")


def _data_section(ctx: Context) -> str:
    lines = []
    for label, ds in (("5,000-file session (W3, W4, R)", ctx.folder), ("W2", ctx.sessions)):
        parts = ", ".join(
            f"{t} {n} x {lo}-{hi} B" for t, (n, lo, hi) in data.sizes(ds.files).items()
        )
        total = sum(len(v) for v in ds.files.values())
        lines.append(f"- {label}: {len(ds.files)} files, {total / 1e6:.1f} MB: {parts}")
    return "## Data (written by Baileys under Node)\n\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
