"""A fleet replica with a stand-in bot, for the fleet tests.

python tests/fleet_child.py NAME DSN SCHEMA ROOT KEY TTL INTERVAL sync|async

The bot writes a marker file (``MARKER``: this replica's name and a counter) into every
session folder it runs, every 0.2 s, so the mirror always has something to push. It prints,
flushed, one line per event, with the wall-clock time it happened:

    ready
    claimed SESSION TIME PREVIOUS   (PREVIOUS: the replica named in the restored marker)
    lost SESSION TIME
    stopped

SIGTERM stops the fleet (on_lost for each session, final push, leases freed), then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from waauth import AsyncFleet, Fleet, Keyring

MARKER = "app-state-sync-version-regular.json"


class Bot:
    """Runs the sessions the fleet hands it: writes markers, reports events."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.folders: dict[str, Path] = {}
        self.lock = threading.Lock()
        self.n = 0

    def claimed(self, session_id: str, folder: Path) -> None:
        marker = folder / MARKER
        previous = json.loads(marker.read_text())["replica"] if marker.exists() else "none"
        with self.lock:
            self.folders[session_id] = folder
        print(f"claimed {session_id} {time.time():.3f} {previous}", flush=True)

    def lost(self, session_id: str) -> None:
        with self.lock:
            self.folders.pop(session_id, None)
        print(f"lost {session_id} {time.time():.3f}", flush=True)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            self.n += 1
            with self.lock:
                folders = list(self.folders.values())
            for folder in folders:
                data = json.dumps({"replica": self.name, "n": self.n})
                with contextlib.suppress(FileNotFoundError):
                    (folder / MARKER).write_text(data)


def main() -> int:
    name, dsn, schema, root, key, ttl, interval, mode = sys.argv[1:9]
    bot = Bot(name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ticker = threading.Thread(target=bot.run, args=(stop,), daemon=True)
    ticker.start()
    options: dict[str, Any] = {
        "keyring": Keyring([key]),
        "schema": schema,
        "lease_ttl": float(ttl),
        "claim_interval": float(interval),
        "start_rate": 100.0,
        "quiet": 0.0,  # the stand-in bot never pauses: any session may be handed over
        "window": 0.2,
    }
    if mode == "async":

        async def claimed(session_id: str, folder: Path) -> None:
            bot.claimed(session_id, folder)

        async def lost(session_id: str) -> None:
            bot.lost(session_id)

        async def run() -> None:
            async with AsyncFleet(dsn, root, on_claimed=claimed, on_lost=lost, **options):
                print("ready", flush=True)
                while not stop.is_set():
                    await asyncio.sleep(0.1)

        asyncio.run(run())
    else:
        with Fleet(dsn, root, on_claimed=bot.claimed, on_lost=bot.lost, **options):
            print("ready", flush=True)
            while not stop.wait(0.1):
                pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
