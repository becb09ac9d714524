"""What reaches the database is sealed: a scan of every row finds no private key."""

from __future__ import annotations

import base64
from typing import cast

import psycopg

from waauth import Keyring, codec, layout

from .golden import golden


def private_keys() -> list[bytes]:
    """Every secret in the Baileys 7 golden session: creds key pairs, advSecretKey, pre-keys."""
    files = golden("baileys7").files()
    creds = codec.decode(files[layout.CREDS_FILE])
    secrets = [
        creds["noiseKey"]["private"],
        creds["pairingEphemeralKeyPair"]["private"],
        creds["signedIdentityKey"]["private"],
        creds["signedPreKey"]["keyPair"]["private"],
        base64.b64decode(creds["advSecretKey"]),
    ]
    secrets += [
        codec.decode(data)["private"] for name, data in files.items() if name.startswith("pre-key-")
    ]
    return secrets


def store_and_scan(
    conn: psycopg.Connection[tuple[object, ...]], schema: str, keyring: Keyring
) -> list[str]:
    """Store the golden folder's files sealed by ``keyring``; return the secrets a scan finds."""
    session_id = "scan_me"
    conn.execute(f"INSERT INTO {schema}.sessions (session_id) VALUES (%s)", [session_id])
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {schema}.records (session_id, file_name, type, record_id, value)"
            " VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    session_id,
                    name,
                    *layout.parse_file_name(name),
                    keyring.encrypt(data, session_id=session_id, file_name=name),
                )
                for name, data in golden("baileys7").files().items()
            ],
        )
    # Everything a dump would hold: each row as text (bytea in hex), values in base64 and raw.
    text = "\n".join(
        str(row[0])
        for table in ("sessions", "records", "schema_version")
        for row in conn.execute(f"SELECT t::text FROM {schema}.{table} t").fetchall()
    )
    text += "\n".join(
        str(row[0]) for row in conn.execute(f"SELECT encode(value, 'base64') FROM {schema}.records")
    )
    raw = b"".join(
        cast(bytes, row[0]) for row in conn.execute(f"SELECT value FROM {schema}.records")
    )
    found = []
    for secret in private_keys():
        needles = (
            secret.hex(),
            base64.b64encode(secret).decode(),
            base64.b64encode(secret).decode().rstrip("="),
        )
        if any(n in text or n.encode() in raw for n in needles) or secret in raw:
            found.append(secret.hex()[:8])
    return found


def test_no_private_key_in_the_database(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> None:
    """With a real keyring, no private key appears in hex, base64 or raw bytes anywhere."""
    assert store_and_scan(conn, schema, Keyring([Keyring.generate_key()])) == []


def test_the_scan_would_find_plaintext(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> None:
    """The same scan over plaintext storage finds every key: the test above can fail."""
    assert len(store_and_scan(conn, schema, Keyring.plaintext())) == len(private_keys())
