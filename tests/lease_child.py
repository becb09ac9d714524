"""A process that runs a session under a lease, for the lease tests.

python tests/lease_child.py hold DSN SCHEMA SESSION TTL
    holds the lease, prints "held", sleeps until killed.
python tests/lease_child.py write DSN SCHEMA SESSION TTL KEY
    opens the state with the lease and writes keys "child.N" in a loop, printing
    "wrote N" after each; on LeaseLost prints "lost N" (N: the call that was refused) and
    exits 3.
python tests/lease_child.py pair DSN SCHEMA SESSION TTL KEY CREDS_FILE
    opens the state with the lease, stores the creds of CREDS_FILE, prints "paired", then
    waits for a line on stdin; then tries keys.set and a creds save + flush, printing
    "keys.set: ok|<error class>" and "flush: ok|<error class>", and exits 0.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from waauth import Keyring, Lease, LeaseLost, PostgresAuthState, WaauthError, codec


def main() -> int:
    mode, dsn, schema, session_id, ttl = sys.argv[1:6]
    if mode == "hold":
        with Lease(dsn, session_id, ttl=float(ttl), schema=schema):
            print("held", flush=True)
            while True:
                time.sleep(1)
    keyring = Keyring([sys.argv[6]])
    state = PostgresAuthState.open(
        dsn, session_id, keyring=keyring, schema=schema, lease=True, lease_ttl=float(ttl)
    )
    if mode == "pair":
        return pair(state, Path(sys.argv[7]))
    n = 0
    while True:
        n += 1
        try:
            state.keys.set({"session": {f"child.{n}": {"n": n}}})
        except LeaseLost:
            print(f"lost {n}", flush=True)
            return 3
        print(f"wrote {n}", flush=True)
        time.sleep(0.05)


def pair(state: PostgresAuthState, creds_file: Path) -> int:
    state.creds = codec.decode(creds_file.read_bytes())
    state.save_creds()
    state.flush()
    print("paired", flush=True)
    sys.stdin.readline()  # the test stops us, hands the session over, resumes us, then writes

    def keys_set() -> None:
        state.keys.set({"session": {"stale": {"from": "A"}}})

    def flush() -> None:
        state.save_creds()
        state.flush()

    for what, call in (("keys.set", keys_set), ("flush", flush)):
        try:
            call()
            print(f"{what}: ok", flush=True)
        except WaauthError as exc:
            print(f"{what}: {type(exc).__name__}", flush=True)
    with contextlib.suppress(WaauthError):
        state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
