"""A stand-in for ``node bot.js {session}``, run by ``waauth fleet --exec`` in the tests.

python tests/fleet_bot.py SESSION FOLDER NAME PIDS

Writes ``PIDS/SESSION.pid`` ("pid name"), then a marker file into FOLDER every 0.2 s. On
SIGTERM it writes a last marker (``"term": true``), as Baileys saves on close, and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

MARKER = "app-state-sync-version-regular.json"


def main() -> int:
    session_id, folder, name, pids = sys.argv[1:5]
    marker = Path(folder) / MARKER
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    # Written aside, then renamed: the test reads these files while bots start.
    Path(pids, f"{session_id}.pid.tmp").write_text(f"{os.getpid()} {name}")
    os.replace(Path(pids, f"{session_id}.pid.tmp"), Path(pids, f"{session_id}.pid"))
    n = 0
    while not stopping:
        n += 1
        marker.write_text(json.dumps({"replica": name, "n": n}))
        time.sleep(0.2)
    marker.write_text(json.dumps({"replica": name, "n": n, "term": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
