"""Store a Baileys creds.json in PostgreSQL, encrypted, and read it back byte for byte.

Uses WAAUTH_DSN (or DATABASE_URL) when set; otherwise starts an embedded PostgreSQL for the run.
Uses WAAUTH_KEYS when set; otherwise makes a throw-away key (printed nowhere).

    python examples/quickstart.py [path/to/creds.json]
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import psycopg

import waauth
from waauth import Keyring, codec, layout

SAMPLE = {
    "noiseKey": {"private": os.urandom(32), "public": os.urandom(32)},
    "registrationId": 1234,
    "advSecretKey": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==",
    "registered": False,
}


def main() -> int:
    session_id = layout.validate_session_id("quickstart")
    data = Path(sys.argv[1]).read_bytes() if len(sys.argv) > 1 else codec.encode(SAMPLE)
    creds = codec.decode(data)  # raises a clear error if the file is not Baileys JSON
    keyring = Keyring.from_env() if os.environ.get("WAAUTH_KEYS") else Keyring([Keyring.generate_key()])

    with contextlib.ExitStack() as stack:
        dsn = os.environ.get("WAAUTH_DSN") or os.environ.get("DATABASE_URL")
        if not dsn:
            from waauth.embedded import EmbeddedPostgres

            dsn = stack.enter_context(EmbeddedPostgres()).dsn
            print("no WAAUTH_DSN or DATABASE_URL: using an embedded PostgreSQL for this run")
        conn = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        applied = waauth.migrate(conn)
        print(f"schema version {waauth.SCHEMA_VERSION} ({applied} migrations applied)")

        sealed = keyring.encrypt(data, session_id=session_id, file_name=layout.CREDS_FILE)
        with conn.transaction():
            conn.execute(
                "INSERT INTO waauth.sessions (session_id, status) VALUES (%s, 'active')"
                " ON CONFLICT (session_id) DO UPDATE SET updated_at = now()",
                [session_id],
            )
            conn.execute(
                "INSERT INTO waauth.records (session_id, file_name, type, record_id, value)"
                " VALUES (%s, %s, %s, '', %s) ON CONFLICT (session_id, file_name)"
                " DO UPDATE SET value = EXCLUDED.value, version = waauth.records.version + 1",
                [session_id, layout.CREDS_FILE, layout.CREDS_TYPE, sealed],
            )
        row = conn.execute(
            "SELECT value FROM waauth.records WHERE session_id = %s AND file_name = %s",
            [session_id, layout.CREDS_FILE],
        ).fetchone()
        assert row is not None
        restored = keyring.decrypt(row[0], session_id=session_id, file_name=layout.CREDS_FILE)

    print(f"stored {layout.CREDS_FILE} of session {session_id!r}: {len(data)} bytes, "
          f"{len(sealed)} sealed with {keyring!r}")
    print(f"read back byte for byte: {restored == data}; fields: {', '.join(list(creds)[:6])}")
    return 0 if restored == data else 1


if __name__ == "__main__":
    sys.exit(main())
