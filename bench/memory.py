"""Peak memory of W3, W4 and a Mirror over 100 sessions, each in a process of its own.

Each workload runs twice in a fresh ``python -m bench.memory`` process: once for the resident
set (``ru_maxrss``, the process's high-water mark, against the same figure taken just before the
workload, after imports and opening), and once under ``tracemalloc`` for the peak of Python
allocations made during the workload alone. Nothing else runs in those processes.

Run by ``python -m bench``; not a command of its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import table
from .context import Context, write_floor

MIRROR_SESSIONS = 100
MIRROR_FILES = 1000


def _rss_mb() -> float:
    """This process's resident-set high-water mark.

    ``VmHWM`` rather than ``getrusage``: Linux carries ``ru_maxrss`` over ``exec``, so a child
    would report the RSS of the parent it was forked from.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, traced: bool) -> dict[str, Any]:
    """The workload itself (in the child process)."""
    import waauth  # noqa: PLC0415 - imported before the baseline, like everything else

    env = os.environ
    dsn = env["BENCH_MEM_DSN"]
    keyring = waauth.Keyring([env["BENCH_MEM_KEY"]])
    where = Path(env["BENCH_MEM_PATH"])
    session = env["BENCH_MEM_SESSION"]
    opened: Any = None
    if kind == "mirror":
        opened = waauth.Mirror(dsn, where, keyring=keyring)
    else:
        opened = waauth.PostgresAuthState.open(dsn, session, keyring=keyring)
    baseline = _rss_mb()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    if kind == "W3":
        opened.materialize(where)
    elif kind == "W4":
        opened.import_folder(where)
    else:
        opened.start()
        opened.stop()
        stats = opened.stats()
        assert stats.sessions == MIRROR_SESSIONS, stats
        assert stats.files_pushed == MIRROR_SESSIONS * MIRROR_FILES, stats
    seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] / 1024**2 if traced else None
    tracemalloc.stop()
    if kind != "mirror":
        opened.close()
    return {"baseline": baseline, "peak": _rss_mb(), "traced": traced_peak, "seconds": seconds}


def _spawn(ctx: Context, kind: str, session: str, path: Path, traced: bool) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_MEM_DSN": ctx.dsn,
        "BENCH_MEM_KEY": ctx.keyring_key,
        "BENCH_MEM_SESSION": session,
        "BENCH_MEM_PATH": str(path),
    }
    args = [sys.executable, "-m", "bench.memory", kind] + (["--traced"] if traced else [])
    out = subprocess.run(  # noqa: S603 - this same module, in a fresh interpreter
        args,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(ctx: Context) -> str:
    """Measure every workload; return the Markdown table."""
    ds = ctx.folder
    mirror_root = ctx.scratch("mem", "mirror")
    some = dict(list(ds.files.items())[:MIRROR_FILES])
    if "creds.json" not in some:
        some.popitem()
        some["creds.json"] = ds.files["creds.json"]
    began = time.monotonic()
    for i in range(MIRROR_SESSIONS):
        write_floor(mirror_root, f"bench-{ctx.tag}-mirror-{i:03d}", some)
    print(
        f"bench:   {MIRROR_SESSIONS} mirror folders written: {time.monotonic() - began:.0f} s",
        file=sys.stderr,
    )
    data_mb = sum(len(v) for v in ds.files.values()) / 1024**2
    mirror_mb = MIRROR_SESSIONS * sum(len(v) for v in some.values()) / 1024**2
    cases: list[tuple[str, str, Callable[[str], tuple[str, Path]]]] = [
        (
            "W3",
            f"materialize the 5,000-file session ({data_mb:.1f} MiB of files)",
            lambda run: (ds.session, ctx.scratch("mem", f"w3-{run}")),
        ),
        (
            "W4",
            f"import the 5,000-file folder ({data_mb:.1f} MiB)",
            lambda run: (f"bench-{ctx.tag}-mem-w4-{run}", ds.folder),
        ),
        (
            "mirror",
            f"Mirror over {MIRROR_SESSIONS} sessions x {MIRROR_FILES} files ({mirror_mb:.0f} MiB): "
            "start (first full push of every session), stop",
            lambda _run: ("", mirror_root),
        ),
    ]
    rows = []
    for kind, label, where in cases:
        began = time.monotonic()
        rss = _spawn(ctx, kind, *where("rss"), traced=False)
        if kind == "mirror":
            # the first push stored everything; start again from an empty database side
            _forget_mirror(ctx)
        traced = _spawn(ctx, kind, *where("traced"), traced=True)
        if kind == "mirror":
            _forget_mirror(ctx)
        print(f"bench:   memory of {kind}: {time.monotonic() - began:.0f} s", file=sys.stderr)
        rows.append(
            [
                label,
                f"{rss['peak']:.0f}",
                f"{rss['peak'] - rss['baseline']:.0f}",
                f"{traced['traced']:.0f}",
                f"{rss['seconds']:.2f}",
            ]
        )
    return table(
        [
            "workload (own process)",
            "peak RSS MiB",
            "growth over the RSS before it MiB",
            "peak Python allocations MiB (tracemalloc)",
            "seconds",
        ],
        rows,
    )


def _forget_mirror(ctx: Context) -> None:
    ctx.conn.execute(
        "DELETE FROM waauth.sessions WHERE session_id LIKE %s", [f"bench-{ctx.tag}-mirror-%"]
    )


if __name__ == "__main__":
    kind = sys.argv[1]
    print(json.dumps(_child(kind, traced="--traced" in sys.argv[2:])))
