"""Keyring: AES-256-GCM at rest, bound to session and file, rotatable, never showing a secret."""

from __future__ import annotations

import base64
import logging

import pytest

from waauth import ConfigurationError, DecryptionError, Keyring

SESSION = "user_1460561546"
FILE = "creds.json"
SECRET = b'{"noiseKey":{"private":"c2VjcmV0"}}'


def seal(ring: Keyring, data: bytes = SECRET, session: str = SESSION, file: str = FILE) -> bytes:
    return ring.encrypt(data, session_id=session, file_name=file)


def test_round_trip_and_fresh_nonces() -> None:
    """A value opens under the same session and file; two seals of one value differ."""
    ring = Keyring([Keyring.generate_key()])
    first, second = seal(ring), seal(ring)
    assert first != second
    assert SECRET not in first
    assert ring.decrypt(first, session_id=SESSION, file_name=FILE) == SECRET
    assert ring.decrypt(second, session_id=SESSION, file_name=FILE) == SECRET


def test_rotation_across_two_keys() -> None:
    """The first key seals, every key opens, and needs_rotation spots old values."""
    old, new = Keyring.generate_key(), Keyring.generate_key()
    sealed_old = seal(Keyring([old]))
    ring = Keyring([new, old])
    assert ring.decrypt(sealed_old, session_id=SESSION, file_name=FILE) == SECRET
    assert ring.needs_rotation(sealed_old)
    resealed = seal(ring, ring.decrypt(sealed_old, session_id=SESSION, file_name=FILE))
    assert not ring.needs_rotation(resealed)
    assert Keyring([new]).decrypt(resealed, session_id=SESSION, file_name=FILE) == SECRET
    with pytest.raises(DecryptionError, match="not in this keyring"):
        Keyring([old]).decrypt(resealed, session_id=SESSION, file_name=FILE)


@pytest.mark.parametrize(("session", "file"), [("other_user", FILE), (SESSION, "pre-key-1.json")])
def test_moved_value_fails(session: str, file: str) -> None:
    """A value copied to another session or file no longer decrypts."""
    ring = Keyring([Keyring.generate_key()])
    with pytest.raises(DecryptionError, match="altered or moved") as info:
        ring.decrypt(seal(ring), session_id=session, file_name=file)
    assert info.value.session_id == session
    assert info.value.file_name == file
    assert session in str(info.value)
    assert file in str(info.value)


@pytest.mark.parametrize("position", [0, 1, 9, 21, -1])
def test_tampered_value_fails(position: int) -> None:
    """Flipping any byte (version, key id, nonce, ciphertext, tag) is detected."""
    ring = Keyring([Keyring.generate_key()])
    sealed = bytearray(seal(ring))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionError):
        ring.decrypt(bytes(sealed), session_id=SESSION, file_name=FILE)


def test_wrong_key_fails_without_showing_secrets() -> None:
    """A value sealed under another key raises DecryptionError; no key or plaintext in it."""
    key = Keyring.generate_key()
    other = Keyring.generate_key()
    sealed = seal(Keyring([key]))
    with pytest.raises(DecryptionError) as info:
        Keyring([other]).decrypt(sealed, session_id=SESSION, file_name=FILE)
    text = str(info.value) + repr(info.value)
    for secret in (key, other, SECRET.decode(), "c2VjcmV0"):
        assert secret not in text


@pytest.mark.parametrize("value", [b"", b"\x01short", b"\x07" + b"\x00" * 60])
def test_garbage_fails(value: bytes) -> None:
    """Empty, truncated or unknown-version values raise DecryptionError."""
    with pytest.raises(DecryptionError, match="not a value waauth sealed"):
        Keyring([Keyring.generate_key()]).decrypt(value, session_id=SESSION, file_name=FILE)


def test_key_forms() -> None:
    """Raw 32 bytes, standard base64 and URL-safe base64 without padding name the same key."""
    raw = bytes(range(32))
    forms: list[bytes | str] = [
        raw,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]
    sealed = seal(Keyring([raw]))
    for form in forms:
        assert Keyring([form]).decrypt(sealed, session_id=SESSION, file_name=FILE) == SECRET
    assert len({tuple(Keyring([f]).key_ids) for f in forms}) == 1


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "at least one key"),
        (["not base64 at all!"], "key #1 is not valid base64"),
        ([Keyring.generate_key(), base64.b64encode(b"short").decode()], "key #2 is 5 bytes"),
    ],
)
def test_bad_keys(keys: list[str], message: str) -> None:
    """Bad keys raise ConfigurationError naming the key's position, never its value."""
    with pytest.raises(ConfigurationError, match=message) as info:
        Keyring(keys)
    for key in keys:
        assert key not in str(info.value)


def test_repr_shows_ids_only() -> None:
    """repr names key ids, which are not the keys."""
    key = Keyring.generate_key()
    ring = Keyring([key])
    assert key not in repr(ring)
    assert base64.b64decode(key).hex() not in repr(ring)
    assert repr(ring) == f"Keyring(key_ids=['{ring.key_ids[0]}'])"


def test_from_env() -> None:
    """WAAUTH_KEYS is comma-separated, first key encrypts; missing keys explain how to make one."""
    new, old = Keyring.generate_key(), Keyring.generate_key()
    ring = Keyring.from_env({"WAAUTH_KEYS": f" {new} , {old} "})
    assert ring.key_ids == Keyring([new, old]).key_ids
    with pytest.raises(
        ConfigurationError, match="WAAUTH_KEYS is not set: make one with `waauth keygen`"
    ):
        Keyring.from_env({})


def test_plaintext_is_explicit_and_loud(caplog: pytest.LogCaptureFixture) -> None:
    """Plaintext needs WAAUTH_INSECURE_PLAINTEXT=1 and warns; encrypting rings refuse it."""
    with caplog.at_level(logging.WARNING, logger="waauth"):
        ring = Keyring.from_env({"WAAUTH_INSECURE_PLAINTEXT": "1"})
    assert "WITHOUT encryption" in caplog.text
    assert not ring.encrypts
    stored = seal(ring)
    assert stored == b"\x00" + SECRET
    assert ring.decrypt(stored, session_id=SESSION, file_name=FILE) == SECRET
    with pytest.raises(DecryptionError, match="stored without encryption"):
        Keyring([Keyring.generate_key()]).decrypt(stored, session_id=SESSION, file_name=FILE)
    migrating = Keyring([Keyring.generate_key()], accept_plaintext=True)
    assert migrating.decrypt(stored, session_id=SESSION, file_name=FILE) == SECRET
    assert migrating.needs_rotation(stored)


def test_many_at_once_are_the_single_calls() -> None:
    """encrypt_many seals each value as encrypt does (fresh nonce, bound to its own file);
    decrypt_many opens what either made, in order, under every key of the ring."""
    old, new = Keyring.generate_key(), Keyring.generate_key()
    ring = Keyring([new, old])
    files = [f"pre-key-{i}.json" for i in range(50)]
    values = [b'{"i":%d}' % i for i in range(50)]
    sealed = ring.encrypt_many(files, values, session_id=SESSION)
    assert len({v[9:21] for v in sealed}) == len(sealed)  # a nonce of its own each
    rows = list(zip(files, sealed, strict=True))
    assert [ring.decrypt(v, session_id=SESSION, file_name=f) for f, v in rows] == values
    rows.append((FILE, seal(Keyring([old]))))
    opened = ring.decrypt_many(rows, session_id=SESSION)
    assert opened == [*zip(files, values, strict=True), (FILE, SECRET)]
    with pytest.raises(DecryptionError, match="altered or moved") as info:
        ring.decrypt_many([(files[1], sealed[0])], session_id=SESSION)  # moved to another file
    assert info.value.file_name == files[1]
    with pytest.raises(DecryptionError, match="altered or moved"):
        ring.decrypt_many(rows[:3], session_id="other_user")
    with pytest.raises(ValueError, match="one file name per plaintext"):
        ring.encrypt_many(files, values[:-1], session_id=SESSION)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "not a value waauth sealed"),
        (b"\x01short", "not a value waauth sealed"),
        (b"\x00" + SECRET, "stored without encryption"),
        (memoryview(b"\x07" + b"\x00" * 60), "not a value waauth sealed"),
    ],
)
def test_decrypt_many_refuses_what_decrypt_refuses(value: bytes, message: str) -> None:
    """Garbage, plaintext or another key's value in a batch: the error decrypt gives."""
    ring = Keyring([Keyring.generate_key()])
    good = (FILE, seal(ring))
    with pytest.raises(DecryptionError, match=message):
        ring.decrypt_many([good, ("pre-key-1.json", value)], session_id=SESSION)
    with pytest.raises(DecryptionError, match="not in this keyring"):
        ring.decrypt_many(
            [good, (FILE, seal(Keyring([Keyring.generate_key()])))], session_id=SESSION
        )
    plain = Keyring.plaintext()
    assert plain.encrypt_many([FILE], [SECRET], session_id=SESSION) == [b"\x00" + SECRET]
    assert plain.decrypt_many([(FILE, b"\x00" + SECRET)], session_id=SESSION) == [(FILE, SECRET)]
