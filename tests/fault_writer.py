"""A writer process for the kill -9 test: writes numbered keys.set calls until it is killed.

    python tests/fault_writer.py DSN KEY

Call n writes session keys n.0-n.9 and pre-key n and deletes pre-key n-1 (one statement),
then saves creds with nextPreKeyId = n. Every 7th call it flushes and prints "flushed n".
"""

from __future__ import annotations

import os
import sys

from waauth import Keyring, PostgresAuthState


def main() -> None:
    dsn, key = sys.argv[1], sys.argv[2]
    with PostgresAuthState.open(dsn, "k9", keyring=Keyring([key]), window=0.05) as state:
        if state.creds is None:
            pair = {"private": os.urandom(32), "public": os.urandom(32)}
            state.creds = {
                "noiseKey": pair,
                "signedIdentityKey": pair,
                "signedPreKey": {"keyPair": pair, "signature": os.urandom(64), "keyId": 1},
                "registrationId": 1,
                "nextPreKeyId": 0,
            }
        n = int(state.creds["nextPreKeyId"])
        print(f"started {n}", flush=True)
        while True:
            n += 1
            state.keys.set(
                {
                    "session": {f"{n}.{k}": {"n": n, "k": k, "pad": "x" * 200} for k in range(10)},
                    "pre-key": {str(n - 1): None, str(n): {"n": n}},
                }
            )
            state.creds["nextPreKeyId"] = n
            state.save_creds()
            if n % 7 == 0:
                state.flush()
                print(f"flushed {n}", flush=True)


if __name__ == "__main__":
    main()
