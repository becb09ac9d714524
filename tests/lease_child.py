"""A process that runs a session under a lease, for the lease tests.

python tests/lease_child.py hold DSN SCHEMA SESSION TTL
    holds the lease, prints "held", sleeps until killed.
python tests/lease_child.py write DSN SCHEMA SESSION TTL KEY
    opens the state with the lease and writes keys "child.N" in a loop, printing
    "wrote N" after each; on LeaseLost prints "lost N" (N: the call that was refused) and
    exits 3.
"""

from __future__ import annotations

import sys
import time

from waauth import Keyring, Lease, LeaseLost, PostgresAuthState


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


if __name__ == "__main__":
    sys.exit(main())
