"""What every benchmark shares: a database, timing helpers and the table printer."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def database() -> Iterator[str]:
    """WAAUTH_BENCH_DSN, else an embedded PostgreSQL for the run (durability left on)."""
    dsn = os.environ.get("WAAUTH_BENCH_DSN")
    if dsn:
        yield dsn
        return
    from waauth.embedded import EmbeddedPostgres  # noqa: PLC0415 - only without a database

    with EmbeddedPostgres() as server:
        yield server.dsn


def summary(samples: Sequence[float]) -> str:
    """Median and range of timings in milliseconds."""
    ms = [s * 1000 for s in samples]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"


def machine() -> str:
    """One line about where the figures come from."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def paired(
    systems: dict[str, Callable[[int], float]], reps: int, *, warmup: int = 1
) -> dict[str, list[float]]:
    """Time every system once per repetition, in an order that rotates with the repetition.

    Each callable gets the repetition number (negative for warm-up rounds, which are not
    kept) and returns the seconds it measured itself. Pairing the systems inside each
    repetition is what makes their ratios hold on a shared, noisy machine: whatever slows one
    repetition down (another job, the file system) slows every system of it.
    """
    names = list(systems)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(-warmup, reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = systems[name](rep)
            if rep >= 0:
                samples[name].append(seconds)
    return samples
