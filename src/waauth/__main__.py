"""Entry point of the ``waauth`` command (``python -m waauth``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``waauth`` command. The subcommands arrive with the CLI; until then, say so."""
    sys.stderr.write("waauth: the command line is not available yet; see README.md\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
