"""Results: rows of workload x system with paired ratios, and the targets they are held to."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._common import table


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def _x(ratio: float) -> str:
    return f"{ratio:.1f}" if ratio >= 10 else f"{ratio:.2f}"


@dataclass
class Row:
    """One system on one workload: its timings, and its ratio to a reference system of the
    same workload, computed repetition by repetition (both ran in the same repetition)."""

    workload: str
    system: str
    samples: list[float]
    reference: str | None = None
    ratios: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def cells(self) -> list[str]:
        ratio = "-"
        if self.ratios:
            ratio = f"{_x(self.ratio)}x ({_x(min(self.ratios))}-{_x(max(self.ratios))})"
        return [
            self.workload,
            self.system,
            _ms(self.median),
            f"{_ms(min(self.samples))}-{_ms(max(self.samples))}",
            ratio,
            self.reference or "",
        ]


HEADERS = ["workload", "system", "median ms", "min-max ms", "ratio (min-max)", "ratio to"]


def rows_for(
    workload: str,
    samples: dict[str, list[float]],
    reference: str | None,
    labels: dict[str, str] | None = None,
) -> list[Row]:
    """Rows for every system of a workload, with per-repetition ratios to ``reference``."""
    labels = labels or {}
    rows = []
    for name, values in samples.items():
        row = Row(workload, labels.get(name, name), values)
        if reference is not None and name != reference:
            row.reference = labels.get(reference, reference)
            row.ratios = [a / b for a, b in zip(values, samples[reference], strict=True)]
        rows.append(row)
    return rows


@dataclass
class Target:
    text: str
    measured: str
    holds: bool


def ratio_target(
    text: str, row: Row, *, at_most: float | None = None, at_least: float | None = None
) -> Target:
    """A target on the median of a row's paired ratios."""
    ratio = row.ratio
    holds = (at_most is None or ratio <= at_most) and (at_least is None or ratio >= at_least)
    return Target(text, f"{row.system}: {_x(ratio)}x", holds)


def inverse_target(text: str, row: Row, *, at_least: float) -> Target:
    """A target on how many times faster than the row's system its reference is."""
    ratio = row.ratio
    return Target(text, f"{row.reference} {_x(ratio)}x faster than {row.system}", ratio >= at_least)


def rows_table(rows: Sequence[Row]) -> str:
    return table(HEADERS, [r.cells() for r in rows])


def targets_table(targets: Sequence[Target]) -> str:
    return table(
        ["target", "measured (median of paired ratios)", "holds"],
        [[t.text, t.measured, "yes" if t.holds else "NO"] for t in targets],
    )
