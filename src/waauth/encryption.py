"""Encryption at rest: AES-256-GCM under a :class:`Keyring` of one or more keys.

A stored value is laid out as::

    version (1 byte) | key id (8 bytes) | nonce (12 bytes) | ciphertext + GCM tag (16 bytes)

Version 1 is AES-256-GCM. The key id is a hash of the key, so a value names the key that sealed
it without revealing it. The associated data binds the value to its session id and file name:
copied to another row, it no longer decrypts. Version 0 is plaintext (the version byte, then the
record's bytes), written only by a keyring made with :meth:`Keyring.plaintext`.

As with ``cryptography``'s ``MultiFernet``, the first key encrypts and every key decrypts, which
is how keys are rotated: put the new key first, keep the old ones until every value is re-sealed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import config
from .config import KEYS_ENV_VAR, PLAINTEXT_ENV_VAR
from .errors import ConfigurationError, DecryptionError

__all__ = ["KEYS_ENV_VAR", "PLAINTEXT_ENV_VAR", "Keyring"]

logger = logging.getLogger("waauth.encryption")

_KEY_SIZE: Final = 32
_KEY_ID_SIZE: Final = 8
_NONCE_SIZE: Final = 12
_PLAINTEXT: Final = 0
_AES_GCM: Final = 1
_HEADER_SIZE: Final = 1 + _KEY_ID_SIZE + _NONCE_SIZE
_NONCE_START: Final = 1 + _KEY_ID_SIZE
_MIN_SEALED: Final = _HEADER_SIZE + 16  # the header and a GCM tag
_ALTERED: Final = "authentication failed: the value was altered or moved"
_AAD_PREFIX: Final = b"waauth/v1\x00"
_HOW_TO_MAKE_A_KEY: Final = (
    "make one with `waauth keygen` (or `python -c "
    '"from waauth import Keyring; print(Keyring.generate_key())"`'
    f") and put it in {KEYS_ENV_VAR}"
)


class Keyring:
    """The keys that seal and open stored records.

    ``Keyring([new_key, old_key])`` encrypts with ``new_key`` and decrypts with either. Keys are
    32 bytes, given raw or as base64 (standard or URL-safe). The repr shows key ids, never keys.
    """

    __slots__ = ("_by_id", "_primary", "_primary_id", "accept_plaintext")

    def __init__(self, keys: Iterable[bytes | str], *, accept_plaintext: bool = False) -> None:
        """Make a keyring; ``accept_plaintext`` also opens values stored unencrypted."""
        parsed = [_parse_key(key, position) for position, key in enumerate(keys, 1)]
        if not parsed:
            raise ConfigurationError(f"a Keyring needs at least one key: {_HOW_TO_MAKE_A_KEY}")
        self._by_id: dict[bytes, AESGCM] = {}
        for key in parsed:
            self._by_id.setdefault(_key_id(key), AESGCM(key))
        self._primary_id: bytes | None = _key_id(parsed[0])
        self._primary: AESGCM | None = self._by_id[self._primary_id]
        self.accept_plaintext = accept_plaintext

    @classmethod
    def plaintext(cls) -> Keyring:
        """A keyring that stores records UNENCRYPTED. Only for tests and local experiments.

        Anyone who can read the database or a backup of it can then take over the WhatsApp
        account. Every use logs a warning.
        """
        logger.warning("waauth is storing WhatsApp credentials WITHOUT encryption")
        return cls._unencrypted()

    @classmethod
    def _unencrypted(cls) -> Keyring:
        ring = cls.__new__(cls)
        ring._by_id = {}
        ring._primary_id = None
        ring._primary = None
        ring.accept_plaintext = True
        return ring

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        key_file: str | os.PathLike[str] | None = None,
        accept_plaintext: bool = False,
    ) -> Keyring:
        """The keyring the environment configures (``os.environ`` by default).

        Keys come from ``key_file``, else the file named by ``WAAUTH_KEY_FILE`` (one key per
        line or comma-separated; a warning is logged if others may read it), else
        ``WAAUTH_KEYS`` (comma-separated); the first one encrypts. Without keys,
        ``WAAUTH_INSECURE_PLAINTEXT=1`` is the explicit opt-out to plaintext; otherwise
        :class:`~waauth.ConfigurationError` says how to make a key. The command line reads
        its keys through this same function.
        """
        keys = config.key_texts_from_env(environ, key_file=key_file)
        if keys is not None:
            return cls(keys, accept_plaintext=accept_plaintext)
        if config.plaintext_from_env(environ):
            return cls.plaintext()
        raise ConfigurationError(
            f"{KEYS_ENV_VAR} is not set: {_HOW_TO_MAKE_A_KEY} (or name a file of keys in "
            f"{config.KEY_FILE_ENV_VAR})"
        )

    @staticmethod
    def generate_key() -> str:
        """Return a new random 32-byte key, base64-encoded, for ``WAAUTH_KEYS``."""
        return base64.b64encode(os.urandom(_KEY_SIZE)).decode()

    @property
    def encrypts(self) -> bool:
        """False for a :meth:`plaintext` keyring."""
        return self._primary is not None

    @property
    def key_ids(self) -> list[str]:
        """Hex ids of the keys, the encrypting one first. Safe to log."""
        return [key_id.hex() for key_id in self._by_id]

    def __repr__(self) -> str:
        if not self.encrypts:
            return "Keyring.plaintext()"
        return f"Keyring(key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: bytes, *, session_id: str, file_name: str) -> bytes:
        """Seal ``plaintext`` for the record ``file_name`` of ``session_id``."""
        if self._primary is None or self._primary_id is None:
            return bytes((_PLAINTEXT,)) + plaintext
        # A fresh random nonce for every encryption: GCM must never reuse one under a key.
        header = bytes((_AES_GCM,)) + self._primary_id + os.urandom(_NONCE_SIZE)
        aad = _associated_data(header, session_id, file_name)
        return header + self._primary.encrypt(header[-_NONCE_SIZE:], plaintext, aad)

    def decrypt(self, value: bytes, *, session_id: str, file_name: str) -> bytes:
        """Open a value sealed by :meth:`encrypt` for the same session and file.

        Raises :class:`~waauth.DecryptionError` naming the session and file (never the key) for
        a wrong key, a tampered value or a value moved from another row.
        """
        value = bytes(value)
        version = value[0] if value else None
        if version == _PLAINTEXT:
            if self.accept_plaintext:
                return value[1:]
            raise DecryptionError(
                session_id, file_name, "stored without encryption; this keyring refuses it"
            )
        if version != _AES_GCM or len(value) < _MIN_SEALED:
            raise DecryptionError(session_id, file_name, "not a value waauth sealed")
        header = value[:_HEADER_SIZE]
        cipher = self._by_id.get(header[1 : 1 + _KEY_ID_SIZE])
        if cipher is None:
            raise DecryptionError(
                session_id,
                file_name,
                f"sealed with key id {header[1 : 1 + _KEY_ID_SIZE].hex()}, which is not in "
                f"this keyring ({', '.join(self.key_ids) or 'plaintext'})",
            )
        try:
            return cipher.decrypt(
                header[-_NONCE_SIZE:],
                value[_HEADER_SIZE:],
                _associated_data(header, session_id, file_name),
            )
        except InvalidTag:
            raise DecryptionError(session_id, file_name, _ALTERED) from None

    def encrypt_many(
        self, file_names: Sequence[str], plaintexts: Sequence[bytes], *, session_id: str
    ) -> list[bytes]:
        """:meth:`encrypt` of each plaintext for its file of ``session_id``, in order.

        The same values as one :meth:`encrypt` per record (each with a fresh random nonce and
        its own associated data), without the per-call overhead: thousands of records at once.
        """
        if len(file_names) != len(plaintexts):
            raise ValueError("encrypt_many needs one file name per plaintext")
        primary, primary_id = self._primary, self._primary_id
        if primary is None or primary_id is None:
            return [bytes((_PLAINTEXT,)) + plaintext for plaintext in plaintexts]
        version = bytes((_AES_GCM,)) + primary_id
        aad_head = _AAD_PREFIX + version
        aad_tail = session_id.encode() + b"\x00"
        # One read of the system's random source for every nonce, 12 fresh bytes each.
        nonces = os.urandom(_NONCE_SIZE * len(plaintexts))
        seal = primary.encrypt
        out = []
        for i, (name, plaintext) in enumerate(zip(file_names, plaintexts, strict=True)):
            nonce = nonces[i * _NONCE_SIZE : (i + 1) * _NONCE_SIZE]
            aad = aad_head + nonce + aad_tail + name.encode()
            out.append(version + nonce + seal(nonce, plaintext, aad))
        return out

    def decrypt_many(
        self, rows: Iterable[tuple[str, bytes]], *, session_id: str
    ) -> list[tuple[str, bytes]]:
        """``(file name, plaintext)`` for each ``(file name, sealed value)`` of ``session_id``.

        Exactly what :meth:`decrypt` gives (and raises) row by row, without its per-call
        overhead: reading a whole session decrypts thousands of values.
        """
        aad_tail = session_id.encode() + b"\x00"
        by_id = self._by_id
        out = []
        for name, value in rows:
            # The common case inline: a bytes value sealed by a key of this ring. Anything
            # else (plaintext, too short, unknown key, altered) takes decrypt's own path.
            cipher = (
                by_id.get(value[1:_NONCE_START])
                if type(value) is bytes and len(value) >= _MIN_SEALED and value[0] == _AES_GCM
                else None
            )
            if cipher is None:
                out.append((name, self.decrypt(value, session_id=session_id, file_name=name)))
                continue
            aad = _AAD_PREFIX + value[:_HEADER_SIZE] + aad_tail + name.encode()
            try:
                plaintext = cipher.decrypt(
                    value[_NONCE_START:_HEADER_SIZE], value[_HEADER_SIZE:], aad
                )
            except InvalidTag:
                raise DecryptionError(session_id, name, _ALTERED) from None
            out.append((name, plaintext))
        return out

    def needs_rotation(self, value: bytes) -> bool:
        """Whether ``value`` was sealed by another key than the one this keyring encrypts with."""
        if self._primary_id is None:
            return bool(value) and value[0] != _PLAINTEXT
        return bytes(value[1 : 1 + _KEY_ID_SIZE]) != self._primary_id or value[0] != _AES_GCM


def _associated_data(header: bytes, session_id: str, file_name: str) -> bytes:
    # Session ids and file names cannot hold NUL (layout validates both), so this is unambiguous.
    return b"".join((_AAD_PREFIX, header, session_id.encode(), b"\x00", file_name.encode()))


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"waauth key id\x00" + key).digest()[:_KEY_ID_SIZE]


def _parse_key(key: bytes | str, position: int) -> bytes:
    """A 32-byte key from raw bytes or base64 text; errors name the position, never the key."""
    if isinstance(key, bytes | bytearray) and len(key) == _KEY_SIZE:
        return bytes(key)
    text = key.decode("ascii", "replace") if isinstance(key, bytes | bytearray) else key
    if not isinstance(text, str):
        raise ConfigurationError(f"key #{position} must be bytes or a base64 string")
    text = text.strip()
    try:
        decoded = base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"key #{position} is not valid base64") from None
    if len(decoded) != _KEY_SIZE:
        raise ConfigurationError(
            f"key #{position} is {len(decoded)} bytes; AES-256 needs {_KEY_SIZE}: "
            + _HOW_TO_MAKE_A_KEY
        )
    return decoded


@functools.cache
def plaintext_keyring() -> Keyring:
    """The plaintext keyring of ``waauth.testing``'s in-memory states, made without the warning
    of :meth:`Keyring.plaintext`: nothing they store leaves the process."""
    return Keyring._unencrypted()
