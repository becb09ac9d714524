"""Shared by the examples: a database address, and Baileys-shaped creds for a demo session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def database() -> Iterator[str]:
    """WAAUTH_DSN or DATABASE_URL when set; otherwise an embedded PostgreSQL for this run."""
    dsn = os.environ.get("WAAUTH_DSN") or os.environ.get("DATABASE_URL")
    if dsn:
        yield dsn
        return
    from waauth.embedded import EmbeddedPostgres  # noqa: PLC0415 - only without a database

    print("no WAAUTH_DSN or DATABASE_URL: starting an embedded PostgreSQL for this run")
    with EmbeddedPostgres() as server:
        yield server.dsn


def demo_creds() -> dict[str, Any]:
    """Creds in the shape of Baileys' initAuthCreds() (random keys; not a real account)."""

    def pair() -> dict[str, bytes]:
        return {"private": os.urandom(32), "public": os.urandom(32)}

    return {
        "noiseKey": pair(),
        "pairingEphemeralKeyPair": pair(),
        "signedIdentityKey": pair(),
        "signedPreKey": {"keyPair": pair(), "signature": os.urandom(64), "keyId": 1},
        "registrationId": 4242,
        "advSecretKey": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==",
        "processedHistoryMessages": [],
        "nextPreKeyId": 1,
        "firstUnuploadedPreKeyId": 1,
        "accountSyncCounter": 0,
        "accountSettings": {"unarchiveChats": False},
        "registered": False,
    }
