"""An asyncio bot that owns its Baileys (Node) process: restore, run, mirror, flush on shutdown.

    WAAUTH_DSN=... WAAUTH_KEYS=... python examples/python-bot/bot.py [-- node server.js]

1. materialize every session into .auth_sessions/ (before Node starts);
2. start Node, and mirror the folders into PostgreSQL while it runs;
3. on SIGTERM/SIGINT (or when Node exits): stop Node, then push what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import waauth
from waauth import AsyncMirror, Keyring

ROOT = os.environ.get("AUTH_ROOT", ".auth_sessions")
SCHEMA = os.environ.get("WAAUTH_SCHEMA", "waauth")


async def main(command: list[str]) -> int:
    dsn = os.environ.get("WAAUTH_DSN") or os.environ["DATABASE_URL"]
    keyring = Keyring.from_env()
    report = await waauth.amaterialize(dsn, ROOT, keyring=keyring, schema=SCHEMA)
    print(f"restored {len(report.written)} sessions; new pairings: {report.without_creds}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # The mirror takes each session's lease: a second copy of this bot would leave them alone.
    async with AsyncMirror(dsn, ROOT, keyring=keyring, schema=SCHEMA) as mirror:
        node = await asyncio.create_subprocess_exec(*command)
        stopping = asyncio.ensure_future(stop.wait())
        exited = asyncio.ensure_future(node.wait())
        await asyncio.wait({stopping, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            node.terminate()  # Baileys flushes its own files on SIGTERM
        status = await exited
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        stats = mirror.stats()
    # Leaving the block pushed what was left (the final flush) and freed the leases.
    print(f"node exited with {status}; mirror pushed {stats.files_pushed} files")
    return 0 if status in (0, -signal.SIGTERM) else status


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    args = sys.argv[1:]
    command = args[args.index("--") + 1 :] if "--" in args else ["node", "server.js"]
    sys.exit(asyncio.run(main(command)))
