"""Start many sessions after a redeploy, one at a time, so WhatsApp is not hit all at once.

    WAAUTH_DSN=... WAAUTH_KEYS=... python examples/multi-session/start.py [--stagger 2] -- CMD...

Every active session is restored into .auth_sessions/ first. Then CMD is started once per
session, ``--stagger`` seconds apart, with the session id in SESSION_ID and as its last argument,
under that session's lease (a session another replica runs is skipped). Ctrl-C/SIGTERM stops all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import waauth
from waauth import AsyncLease, Keyring, LeaseHeld

ROOT = os.environ.get("AUTH_ROOT", ".auth_sessions")
SCHEMA = os.environ.get("WAAUTH_SCHEMA", "waauth")


async def run_session(dsn: str, session_id: str, command: list[str], delay: float) -> int | None:
    """After ``delay`` seconds, run the session's bot under its lease; None if held elsewhere."""
    await asyncio.sleep(delay)
    try:
        async with AsyncLease(dsn, session_id, schema=SCHEMA):
            print(f"starting {session_id}", flush=True)
            proc = await asyncio.create_subprocess_exec(
                *command, session_id, env={**os.environ, "SESSION_ID": session_id}
            )
            try:
                return await proc.wait()
            except asyncio.CancelledError:
                proc.terminate()
                await proc.wait()
                raise
    except LeaseHeld as exc:
        print(f"skipping {session_id}: {exc}", flush=True)
        return None


async def main(stagger: float, command: list[str]) -> int:
    dsn = os.environ.get("WAAUTH_DSN") or os.environ["DATABASE_URL"]
    report = await waauth.amaterialize(dsn, ROOT, keyring=Keyring.from_env(), schema=SCHEMA)
    sessions = sorted(report.written)
    print(f"restored {len(sessions)} sessions into {ROOT}", flush=True)
    tasks = [
        asyncio.ensure_future(run_session(dsn, s, command, i * stagger))
        for i, s in enumerate(sessions)
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [t.cancel() for t in tasks])
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [s for s, r in zip(sessions, results, strict=True) if isinstance(r, int) and r != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stagger", type=float, default=2.0, help="seconds between two starts")
    parser.add_argument("command", nargs="+", help="the bot command (after --)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.stagger, args.command)))
