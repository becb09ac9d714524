"""Run waauth's benchmarks and print the table: ``python -m bench [--out FILE]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import creds_storm
from ._common import machine, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the tables (Markdown) to this file")
    args = parser.parse_args()
    sections = [f"Machine: {machine()}"]
    rows, holds = creds_storm.run()
    sections.append(table(creds_storm.HEADERS, rows))
    sections.append(
        "W5 target (writes <= duration/window + 1, final creds stored): "
        + ("holds" if holds else "MISSED")
    )
    text = "\n\n".join(sections) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
