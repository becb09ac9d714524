"""waauth in one file: a Baileys session's creds and keys in PostgreSQL, encrypted.

    python examples/quickstart.py

Uses WAAUTH_DSN (or DATABASE_URL) when set, else an embedded PostgreSQL for the run; uses
WAAUTH_KEYS when set, else a throw-away key.
"""

from __future__ import annotations

import os
import sys

from _support import database, demo_creds

import waauth
from waauth import Keyring, PostgresAuthState


def main() -> int:
    keyring = (
        Keyring.from_env() if os.environ.get("WAAUTH_KEYS") else Keyring([Keyring.generate_key()])
    )
    with database() as dsn:
        # First run of a bot: no creds yet (Baileys would show a QR code).
        with PostgresAuthState.open(dsn, "user_1460561546", keyring=keyring) as state:
            if state.creds is None:
                state.creds = demo_creds()  # what Baileys' initAuthCreds() makes
                state.save_creds()
            # What Baileys does while it runs: pre-keys, sessions, deletes of used pre-keys.
            state.keys.set(
                {
                    "pre-key": {
                        str(i): {"private": os.urandom(32), "public": os.urandom(32)}
                        for i in range(1, 31)
                    }
                }
            )
            state.keys.set(
                {
                    "session": {"5511888888888.3": {"_sessions": {}, "version": "v1"}},
                    "pre-key": {"1": None},
                }
            )
            state.creds["nextPreKeyId"] = 31
            state.save_creds()

        # After a redeploy: the same session, nothing to scan.
        with PostgresAuthState.open(dsn, "user_1460561546", keyring=keyring) as state:
            assert state.creds is not None
            got = state.keys.get("pre-key", ["1", "2"])
            print(
                f"restored creds (nextPreKeyId={state.creds['nextPreKeyId']}); "
                f"pre-key 1: {'deleted' if got['1'] is None else 'present'}, "
                f"pre-key 2: {'present' if got['2'] else 'missing'}"
            )

        for info in waauth.list_sessions(dsn):
            print(f"{info.session_id}: status={info.status} files={info.files} bytes={info.bytes}")

        # Log the demo session out, so that this example leaves nothing behind for the next
        # run or another example (a throw-away key could not open it again).
        with PostgresAuthState.open(dsn, "user_1460561546", keyring=keyring) as state:
            state.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
