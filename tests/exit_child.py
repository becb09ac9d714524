"""A script that saves creds and then ends without close(), for the exit tests.

python tests/exit_child.py HOW DSN SCHEMA SESSION KEY
    stores creds with nextPreKeyId 1 and flushes, then saves nextPreKeyId 2 (pending: within
    the throttle window of the first write) and ends as HOW says:
    sys-exit     sys.exit(0) without close()
    raise        an uncaught exception
    keys         keys.set with throttle_keys (pending too), then sys.exit(0)
    gc           the state is dropped and garbage-collected, then sys.exit(0)
    async-exit   the same in asyncio.run(main()), returning without close()
    async-raise  asyncio.run(main()) that raises
    down         waits for a line on stdin (the test stops the database), then sys.exit(0)
    Prints "saved" once the pending save is made. Logs to stderr, as a bot that configured
    logging does (waauth's own logger has only a NullHandler).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import warnings
from typing import Any

from golden import golden  # type: ignore[import-not-found]  # tests/ is on sys.path
from waauth import AsyncPostgresAuthState, Keyring, PostgresAuthState, codec


def creds() -> Any:
    return codec.decode(golden("baileys7").files()["creds.json"])


def main() -> None:
    how, dsn, schema, session_id, key = sys.argv[1:6]
    keyring = Keyring([key])
    if how.startswith("async"):
        asyncio.run(amain(how, dsn, schema, session_id, keyring))
        return
    state = PostgresAuthState.open(
        dsn, session_id, keyring=keyring, schema=schema, window=30, throttle_keys=True
    )
    state.creds = creds()
    state.creds["nextPreKeyId"] = 1
    state.save_creds()
    state.flush()
    state.creds["nextPreKeyId"] = 2
    state.save_creds()
    if how == "keys":
        state.keys.set({"pre-key": {"7": {"v": 7}}})
    print("saved", flush=True)
    if how == "raise":
        raise RuntimeError("the bot crashed")
    if how == "down":
        sys.stdin.readline()
    if how == "gc":
        warnings.simplefilter("always", ResourceWarning)
        del state
        gc.collect()
    sys.exit(0)


async def amain(how: str, dsn: str, schema: str, session_id: str, keyring: Keyring) -> None:
    state = await AsyncPostgresAuthState.open(
        dsn, session_id, keyring=keyring, schema=schema, window=30
    )
    state.creds = creds()
    state.creds["nextPreKeyId"] = 1
    await state.save_creds()
    await state.flush()
    state.creds["nextPreKeyId"] = 2
    await state.save_creds()
    print("saved", flush=True)
    if how == "async-raise":
        raise RuntimeError("the bot crashed")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
