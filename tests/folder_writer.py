"""A process that rewrites one session folder forever, alternating two contents (kill -9 test).

    python tests/folder_writer.py ROOT SPEC.json

SPEC.json is {"a": {name: text}, "b": {name: text}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from waauth._folders import write_folder


def main() -> None:
    root, spec = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    contents = [{n: t.encode() for n, t in spec[k].items()} for k in ("a", "b")]
    i = 0
    while True:
        write_folder(root, "s", contents[i % 2])
        i += 1
        print(f"wrote {i}", flush=True)


if __name__ == "__main__":
    main()
