"""Realistic test data: creds and keys in Baileys' exact shapes, and a session made by Baileys.

Every value is deterministic: the same ``seed`` gives the same bytes on every machine and
Python version (they come from SHAKE-256 of the seed, never from ``random``), and different
seeds give different accounts. Shapes follow what Baileys 7 writes: field names and order,
byte lengths (32-byte Curve25519 keys, 33 bytes with the ``0x05`` prefix where libsignal keeps
it, 64-byte signatures, 128-byte app-state hashes), ``bytes`` where Baileys has a Buffer and
base64 strings where it has protobuf bytes. Key pairs are real X25519 pairs (the public key is
derived from the private one); signatures and MACs are random bytes of the right length, so
the data cannot pass WhatsApp's checks, and is not meant to.

The sample session folder (:func:`sample_session`) was written by real Baileys 7.0.0-rc14 under
Node (waauth's golden session, cut down to a few files of every key type); ``import_folder``
takes it without skipping anything.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .. import layout
from ..errors import InvalidInput

__all__ = ["fake_creds", "fake_key", "fake_keys", "fake_pre_keys", "sample_session"]

Seed = int | str

_SIGNAL_KEY_PREFIX: Final = b"\x05"  # libsignal's key type byte (DJB), kept on some public keys
_EPOCH: Final = 1_767_225_600  # 2026-01-01T00:00:00Z: timestamps are this plus a seeded offset
_SAMPLE: Final = Path(__file__).parent / "sample_session"


def _bytes(seed: Seed, label: str, size: int) -> bytes:
    """``size`` bytes that depend only on ``seed`` and ``label``."""
    return hashlib.shake_256(f"waauth.testing\0{seed!r}\0{label}".encode()).digest(size)


def _int(seed: Seed, label: str, below: int) -> int:
    return int.from_bytes(_bytes(seed, label, 8), "big") % below


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _digits(seed: Seed, label: str, count: int) -> str:
    return "".join(str(b % 10) for b in _bytes(seed, label, count))


def _key_pair(seed: Seed, label: str) -> tuple[bytes, bytes]:
    """A Curve25519 key pair as libsignal makes it: (private, public), 32 bytes each."""
    private = bytearray(_bytes(seed, label, 32))
    # X25519 clamping, as libsignal's curve applies it to the private key it keeps.
    private[0] &= 248
    private[31] &= 127
    private[31] |= 64
    public = X25519PrivateKey.from_private_bytes(bytes(private)).public_key().public_bytes_raw()
    return bytes(private), public


def _baileys_key_pair(seed: Seed, label: str) -> dict[str, bytes]:
    """Baileys' ``KeyPair``: ``{"private", "public"}``, the public key without its prefix."""
    private, public = _key_pair(seed, label)
    return {"private": private, "public": public}


def _phone(seed: Seed, label: str) -> str:
    """A Brazilian-looking mobile number, as WhatsApp ids start with the country code."""
    return "55119" + _digits(seed, label, 8)


def _lid(seed: Seed, label: str) -> str:
    return "1" + _digits(seed, label, 14)


def fake_creds(
    seed: Seed = 0,
    *,
    paired: bool = False,
    phone: str | None = None,
    device: int = 1,
    name: str = "Test",
) -> dict[str, Any]:
    """Creds as Baileys' ``initAuthCreds()`` makes them, in its field order (about 1.1 KB).

    ``paired=True`` adds what a successful QR pairing adds, in Baileys' order: ``account``,
    ``me`` (``{id, name, lid}``, for ``phone`` and ``device``; ``phone`` defaults to a number
    derived from the seed), ``signalIdentities`` and ``platform``. Different seeds are
    different accounts (another ``signedIdentityKey``), which is what
    :class:`~waauth.IdentityConflict` looks at.
    """
    identity = _baileys_key_pair(seed, "signedIdentityKey")
    creds: dict[str, Any] = {
        "noiseKey": _baileys_key_pair(seed, "noiseKey"),
        "pairingEphemeralKeyPair": _baileys_key_pair(seed, "pairingEphemeralKeyPair"),
        "signedIdentityKey": identity,
        "signedPreKey": {
            "keyPair": _baileys_key_pair(seed, "signedPreKey"),
            "signature": _bytes(seed, "signedPreKey.signature", 64),
            "keyId": 1,
        },
        # Baileys: two random bytes, masked to 14 bits.
        "registrationId": _int(seed, "registrationId", 16384),
        "advSecretKey": _b64(_bytes(seed, "advSecretKey", 32)),
        "processedHistoryMessages": [],
        "nextPreKeyId": 1,
        "firstUnuploadedPreKeyId": 1,
        "accountSyncCounter": 0,
        "accountSettings": {"unarchiveChats": False},
        "registered": False,
    }
    if paired:
        number = phone if phone is not None else _phone(seed, "me")
        lid = _lid(seed, "me.lid")
        account_key = _key_pair(seed, "accountSignatureKey")[1]
        creds["account"] = {
            # Protobuf bytes, which Baileys writes through toJSON: bare base64 strings.
            "details": _b64(b"\x08" + _bytes(seed, "account.details", 12)),
            "accountSignatureKey": _b64(account_key),
            "accountSignature": _b64(_bytes(seed, "account.accountSignature", 64)),
            "deviceSignature": _b64(_bytes(seed, "account.deviceSignature", 64)),
        }
        creds["me"] = {
            "id": f"{number}:{device}@s.whatsapp.net",
            "name": name,
            "lid": f"{lid}:{device}@lid",
        }
        creds["signalIdentities"] = [
            {
                "identifier": {"name": f"{lid}:{device}@lid", "deviceId": 0},
                "identifierKey": _SIGNAL_KEY_PREFIX + account_key,
            }
        ]
        creds["platform"] = "android"
    return creds


def fake_pre_keys(count: int, *, start: int = 1, seed: Seed = 0) -> dict[str, dict[str, bytes]]:
    """``count`` pre-keys with ids ``start``, ``start + 1``, ...: ready for
    ``keys.set({"pre-key": ...})`` (Baileys uploads 812 at first login, then 5 at a time)."""
    return {str(i): fake_key("pre-key", seed=f"{seed!r}/{i}") for i in range(start, start + count)}


def fake_key(key_type: str, seed: Seed = 0) -> Any:
    """One value of ``key_type`` (any of ``waauth.layout.KEY_TYPES``), shaped as Baileys stores it.

    ================================  ===================================================
    ``pre-key``                       ``{"private": 32 bytes, "public": 32 bytes}``
    ``session``                       libsignal ``SessionRecord`` JSON (base64 strings)
    ``sender-key``                    bytes: UTF-8 JSON of the sender-key record
    ``sender-key-memory``             ``{jid: True}``
    ``app-state-sync-key``            ``{"keyData", "fingerprint", "timestamp"}``
    ``app-state-sync-version``        ``{"version", "hash": 128 bytes, "indexValueMap"}``
    ``lid-mapping``                   a LID user as a string
    ``device-list``                   device ids as strings
    ``tctoken``                       ``{"token": bytes, "timestamp": str}``
    ``identity-key``                  33 bytes (``0x05`` and the public key)
    ================================  ===================================================
    """
    factory = _FACTORIES.get(key_type)
    if factory is None:
        raise InvalidInput(
            f"no fake data for key type {key_type!r}; known: {', '.join(layout.KEY_TYPES)}"
        )
    return factory(seed)


def fake_keys(seed: Seed = 0) -> dict[str, dict[str, Any]]:
    """A consistent set of keys of every type, ``{type: {id: value}}``, ids as Baileys makes
    them (one peer with a session, a group with a sender key, app-state keys, ...): pass it to
    ``keys.set`` as it is."""
    peer = _phone(seed, "peer")
    peer_lid = _lid(seed, "peer.lid")
    me = _phone(seed, "me")
    group = f"120363{_digits(seed, 'group', 12)}@g.us"
    key_id = _b64(b"\x00\x00\x00\x00" + _bytes(seed, "app-state-key-id", 2))
    return {
        "pre-key": fake_pre_keys(3, seed=seed),
        "session": {f"{peer}.3": fake_key("session", seed=f"{seed!r}/session")},
        "identity-key": {f"{peer}.3": fake_key("identity-key", seed=f"{seed!r}/identity")},
        "sender-key": {f"{group}::{me}::1": fake_key("sender-key", seed=f"{seed!r}/sender-key")},
        "sender-key-memory": {group: {f"{peer}:3@s.whatsapp.net": True}},
        "app-state-sync-key": {key_id: fake_key("app-state-sync-key", seed=f"{seed!r}/app-key")},
        "app-state-sync-version": {
            "regular_high": fake_key("app-state-sync-version", seed=f"{seed!r}/regular_high")
        },
        "lid-mapping": {peer: peer_lid, f"{peer_lid}_reverse": peer},
        "device-list": {peer: ["0", "3"]},
        "tctoken": {f"{peer}@s.whatsapp.net": fake_key("tctoken", seed=f"{seed!r}/tctoken")},
    }


def _signal_public(seed: Seed, label: str) -> str:
    """A libsignal public key inside a session record: base64 of 33 bytes."""
    return _b64(_SIGNAL_KEY_PREFIX + _key_pair(seed, label)[1])


def _session(seed: Seed) -> dict[str, Any]:
    base_key = _signal_public(seed, "baseKey")
    ratchet_public = _signal_public(seed, "ephemeral")
    ratchet_private = _b64(_key_pair(seed, "ephemeral")[0])
    used = (_EPOCH + _int(seed, "used", 10**7)) * 1000
    return {
        "_sessions": {
            base_key: {
                "registrationId": _int(seed, "registrationId", 16384),
                "currentRatchet": {
                    "ephemeralKeyPair": {"pubKey": ratchet_public, "privKey": ratchet_private},
                    "lastRemoteEphemeralKey": _signal_public(seed, "remoteEphemeral"),
                    "previousCounter": 0,
                    "rootKey": _b64(_bytes(seed, "rootKey", 32)),
                },
                "indexInfo": {
                    "baseKey": base_key,
                    "baseKeyType": 1,
                    "closed": -1,
                    "used": used,
                    "created": used,
                    "remoteIdentityKey": _signal_public(seed, "remoteIdentity"),
                },
                "_chains": {
                    ratchet_public: {
                        "chainKey": {"counter": 0, "key": _b64(_bytes(seed, "chainKey", 32))},
                        "chainType": 1,
                        "messageKeys": {},
                    }
                },
                "pendingPreKey": {"signedKeyId": 1, "baseKey": base_key},
            }
        },
        "version": "v1",
    }


def _sender_key(seed: Seed) -> bytes:
    private, public = _key_pair(seed, "senderSigningKey")

    def buffer(data: bytes) -> dict[str, Any]:
        # Inside sender-key records Baileys writes Buffers as lists of numbers (see the format
        # notes): keep that form, it is what Baileys reads back.
        return {"type": "Buffer", "data": list(data)}

    record = [
        {
            "senderKeyId": _int(seed, "senderKeyId", 2**31),
            "senderChainKey": {"iteration": 0, "seed": buffer(_bytes(seed, "chainSeed", 32))},
            "senderSigningKey": {
                "public": buffer(_SIGNAL_KEY_PREFIX + public),
                "private": buffer(private),
            },
            "senderMessageKeys": [],
        }
    ]
    return orjson.dumps(record)


def _app_state_sync_key(seed: Seed) -> dict[str, Any]:
    return {
        "keyData": _b64(_bytes(seed, "keyData", 32)),
        "fingerprint": {
            "rawId": _int(seed, "rawId", 2**31),
            "currentIndex": 0,
            "deviceIndexes": [0, 1],
        },
        "timestamp": str((_EPOCH + _int(seed, "keyTimestamp", 10**7)) * 1000),
    }


def _app_state_sync_version(seed: Seed) -> dict[str, Any]:
    return {
        "version": 1 + _int(seed, "version", 100),
        "hash": _bytes(seed, "hash", 128),
        "indexValueMap": {
            _b64(_bytes(seed, "index", 32)): {"valueMac": _bytes(seed, "valueMac", 32)}
        },
    }


_FACTORIES: Final[dict[str, Any]] = {
    "pre-key": lambda seed: _baileys_key_pair(seed, "pre-key"),
    "session": _session,
    "sender-key": _sender_key,
    "sender-key-memory": lambda seed: {f"{_phone(seed, 'member')}:1@s.whatsapp.net": True},
    "app-state-sync-key": _app_state_sync_key,
    "app-state-sync-version": _app_state_sync_version,
    "lid-mapping": lambda seed: _lid(seed, "lid-mapping"),
    "device-list": lambda seed: ["0", str(1 + _int(seed, "device", 20))],
    "tctoken": lambda seed: {
        "token": _bytes(seed, "token", 28),
        "timestamp": str(_EPOCH + _int(seed, "tokenTimestamp", 10**7)),
    },
    "identity-key": lambda seed: _SIGNAL_KEY_PREFIX + _key_pair(seed, "identity-key")[1],
}


def sample_session() -> Path:
    """The folder of a small session written by real Baileys 7.0.0-rc14 (paired, with files
    of every key type), shipped in the package. Read it, import it; copy it before changing it.
    """
    return _SAMPLE
