"""Will a stored session start cleanly in Baileys? The checks, on decoded records: no I/O here.

Each invariant comes from Baileys 7.0.0-rc14's source (paths are of the npm package's ``lib/``):

- A row must decrypt, be JSON, and sit under a file name a session folder can hold: otherwise
  ``useMultiFileAuthState`` reads ``null`` (a torn ``creds.json`` becomes brand-new creds, a new
  QR code) or the folder cannot be written at all. Level :data:`UNREADABLE`.
- ``creds.json`` must hold what the socket uses without a fallback: ``noiseKey`` (the Noise
  handshake, ``Socket/socket.js``), ``signedIdentityKey`` and ``registrationId`` (the key bundle,
  ``Utils/signal.js``), ``signedPreKey`` with ``keyPair``, a 64-byte ``signature`` and ``keyId``
  (``Signal/libsignal.js`` ``loadSignedPreKey``: Baileys keeps the signed pre-key *in creds*, there
  is no ``signed-pre-key`` file), ``pairingEphemeralKeyPair`` and ``advSecretKey`` (pairing),
  ``nextPreKeyId`` and ``firstUnuploadedPreKeyId`` (pre-key ids are computed from them); once
  paired, ``me.id`` a JID (``generateLoginNode`` decodes it) and ``account``
  (``encodeSignedDeviceIdentity`` in ``Socket/messages-send.js``). Level :data:`BROKEN`.
- Pre-keys: ``generateOrGetPreKeys`` (``Utils/signal.js``) hands out the ids from
  ``firstUnuploadedPreKeyId`` up to ``nextPreKeyId - 1`` (made but not uploaded yet) before
  making new ones, and reads them back with ``keys.get``: a missing one reaches ``xmppPreKey`` as
  ``null`` and the upload throws. At connect, ``uploadPreKeysToServerIfRequired`` checks that
  ``nextPreKeyId - 1`` is stored and re-uploads when it is not (contacts holding the lost keys
  then fail with "Invalid PreKey ID"). Both are :data:`BROKEN`. Pre-keys at or past
  ``nextPreKeyId`` mean creds older than the keys (they would be overwritten): a warning.
- ``myAppStateKeyId``, when set, names the ``app-state-sync-key`` that ``encodeSyncdPatch``
  (``Utils/chat-utils.js``) signs every app-state patch with; missing, every chat change (archive,
  mute, read) fails with "myAppStateKey not present". :data:`BROKEN`.
- Records Baileys revives into objects must have their shape: a pre-key ``{private, public}`` of
  32 bytes each (``loadPreKey``), a session an object (libsignal ``SessionRecord.deserialize``),
  an app-state sync key an object with ``keyData``; a sender key a Buffer of JSON
  (``SenderKeyRecord.deserialize``). A sender key in the legacy bare-array form (6.7.18 and older)
  works in 6.x only: a warning. Files of other types are opaque and only need to be JSON.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from . import codec, layout
from .encryption import Keyring
from .errors import DecryptionError, InvalidInput

__all__ = [
    "BROKEN",
    "OK",
    "UNREADABLE",
    "WARNING",
    "Finding",
    "SessionVerdict",
    "StoredRow",
    "VerifyReport",
    "check_session",
    "pre_key_findings",
    "unseal",
]

OK: Final = "ok"
WARNING: Final = "warning"
"""Starts, but something is worth a look."""
BROKEN: Final = "broken"
"""Baileys will not start cleanly from it (a crash, a re-upload, failing features)."""
UNREADABLE: Final = "unreadable"
"""Some of it cannot be read back: Baileys would see nothing (or fresh creds) there."""

_RANK: Final = {OK: 0, WARNING: 1, BROKEN: 2, UNREADABLE: 3}

_KEY_LENGTH: Final = 32
_SIGNATURE_LENGTH: Final = 64


@dataclass(frozen=True)
class Finding:
    """One problem of a session: its level, a stable code, the file concerned, and why.

    The message names files and key ids only, never a value.
    """

    level: str
    code: str
    message: str
    file_name: str | None = None

    def __str__(self) -> str:
        where = f"{self.file_name}: " if self.file_name else ""
        return f"{where}{self.message}"


@dataclass(frozen=True)
class SessionVerdict:
    """What :func:`waauth.verify.check_session` found in one session."""

    session_id: str
    status: str | None
    """The registry status (``new``, ``active``, ``logged_out``), None without a registry row."""
    records: int
    findings: tuple[Finding, ...] = ()

    @property
    def level(self) -> str:
        """The worst level found: ``ok``, ``warning``, ``broken`` or ``unreadable``."""
        return max((f.level for f in self.findings), key=_RANK.__getitem__, default=OK)


@dataclass(frozen=True)
class VerifyReport:
    """Every session checked by :func:`waauth.verify_sessions`."""

    sessions: tuple[SessionVerdict, ...] = field(default_factory=tuple)

    @property
    def level(self) -> str:
        """The worst level of any session."""
        return max((s.level for s in self.sessions), key=_RANK.__getitem__, default=OK)

    @property
    def ok(self) -> bool:
        """Whether every session will start cleanly (warnings allowed)."""
        return _RANK[self.level] < _RANK[BROKEN]


@dataclass(frozen=True)
class StoredRow:
    """One stored row, opened: its plaintext, or why it could not be decrypted."""

    file_name: str
    type: str
    record_id: str
    data: bytes | None
    error: str | None = None


def unseal(keyring: Keyring, row: tuple[Any, ...]) -> StoredRow:
    """Decrypt one scanned row ``(session_id, file_name, type, record_id, sealed)``.

    A wrong key or a damaged row gives a :class:`StoredRow` whose ``error`` says why.
    """
    session_id, file_name, key_type, record_id, sealed = row
    try:
        data = keyring.decrypt(bytes(sealed), session_id=session_id, file_name=file_name)
    except DecryptionError as exc:
        return StoredRow(file_name, key_type, record_id, None, exc.reason)
    return StoredRow(file_name, key_type, record_id, data)


def check_session(
    session_id: str, rows: Iterable[StoredRow], *, status: str | None = None
) -> SessionVerdict:
    """Check every invariant of the module docstring on one session's rows."""
    findings: list[Finding] = []
    values: dict[str, Any] = {}
    rows = list(rows)
    try:
        layout.validate_session_id(session_id)
    except InvalidInput as exc:
        findings.append(Finding(UNREADABLE, "bad-session-id", str(exc)))
    for row in rows:
        value = _check_row(row, findings)
        if value is not _UNREAD:
            values[row.file_name] = value
    names = {row.file_name for row in rows}
    creds = values.get(layout.CREDS_FILE)
    if layout.CREDS_FILE not in names:
        if rows:
            findings.append(
                Finding(
                    BROKEN,
                    "no-creds",
                    f"{len(rows)} records but no creds.json: Baileys would make new creds "
                    "(a new QR code) beside old keys",
                )
            )
        elif status != "logged_out":
            findings.append(Finding(WARNING, "empty", "nothing stored yet (pairing not done)"))
    elif isinstance(creds, dict):
        findings.extend(_creds_findings(creds))
        pre_keys = {
            int(row.record_id) for row in rows if row.type == "pre-key" and row.record_id.isdigit()
        }
        findings.extend(
            pre_key_findings(
                creds.get("nextPreKeyId"), creds.get("firstUnuploadedPreKeyId"), pre_keys
            )
        )
        findings.extend(_app_state_findings(creds, names))
    elif layout.CREDS_FILE in values:
        findings.append(
            Finding(BROKEN, "creds-not-object", "is not a JSON object", layout.CREDS_FILE)
        )
    return SessionVerdict(session_id, status, len(rows), tuple(findings))


_UNREAD: Final = object()


def _check_row(row: StoredRow, findings: list[Finding]) -> Any:
    """The row's decoded value, or ``_UNREAD`` (a finding says why)."""
    name_problem = _name_problem(row.file_name)
    if name_problem is not None:
        findings.append(Finding(*name_problem, row.file_name))
        if name_problem[0] == UNREADABLE:
            return _UNREAD
    if row.data is None:
        reason = row.error or "could not be read"
        findings.append(Finding(UNREADABLE, "undecryptable", reason, row.file_name))
        return _UNREAD
    try:
        value = codec.decode(row.data)
    except InvalidInput as exc:
        findings.append(
            Finding(UNREADABLE, "unparsable", f"{exc}: Baileys reads it as missing", row.file_name)
        )
        return _UNREAD
    if name_problem is None and row.file_name != layout.CREDS_FILE:
        shape = _shape_problem(row.file_name, value)
        if shape is not None:
            findings.append(Finding(*shape, row.file_name))
    return value


def _name_problem(name: str) -> tuple[str, str, str] | None:
    """Why a file name does not fit a Baileys session folder, if it does not."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return UNREADABLE, "bad-name", "cannot be a file in a session folder"
    if len(name.encode()) > 255:
        return UNREADABLE, "bad-name", "is longer than 255 bytes: no file system holds it"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return UNREADABLE, "bad-name", "holds a control character"
    if not layout.is_record_file(name):
        return BROKEN, "bad-name", "is not a name Baileys reads (not a visible *.json file)"
    if ":" in name:
        return (
            BROKEN,
            "bad-name",
            "holds ':', which fixFileName never leaves: Baileys never reads it",
        )
    return None


def _is_key_pair(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("private"), bytes)
        and isinstance(value.get("public"), bytes)
        and len(value["private"]) == _KEY_LENGTH
        and len(value["public"]) == _KEY_LENGTH
    )


def _shape_problem(name: str, value: Any) -> tuple[str, str, str] | None:
    key_type = layout.record_type(name)
    if key_type == "pre-key" and not _is_key_pair(value):
        return BROKEN, "bad-record", "a pre-key must be {private, public} of 32 bytes each"
    if key_type == "session" and not isinstance(value, dict):
        return BROKEN, "bad-record", "a session record must be a JSON object"
    if key_type == "app-state-sync-key" and not (
        isinstance(value, dict) and isinstance(value.get("keyData"), str | bytes)
    ):
        return BROKEN, "bad-record", "an app-state sync key must be an object with keyData"
    if key_type == "sender-key":
        if isinstance(value, list):
            return (
                WARNING,
                "legacy-sender-key",
                "a sender key in the bare-array form of Baileys <= 6.7.18: 7.x cannot read it",
            )
        if not isinstance(value, bytes):
            return BROKEN, "bad-record", "a sender key must be a Buffer of JSON"
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            return BROKEN, "bad-record", "a sender key's Buffer does not hold JSON"
    return None


def _creds_findings(creds: Mapping[str, Any]) -> list[Finding]:
    bad: list[str] = []
    for name in ("noiseKey", "signedIdentityKey", "pairingEphemeralKeyPair"):
        if not _is_key_pair(creds.get(name)):
            bad.append(f"{name} (a key pair of 32-byte keys)")
    signed = creds.get("signedPreKey")
    if not (
        isinstance(signed, dict)
        and _is_key_pair(signed.get("keyPair"))
        and isinstance(signed.get("signature"), bytes)
        and len(signed["signature"]) == _SIGNATURE_LENGTH
        and _is_int(signed.get("keyId"))
    ):
        bad.append("signedPreKey (keyPair, a 64-byte signature, keyId)")
    if not _is_int(creds.get("registrationId")):
        bad.append("registrationId (an integer)")
    if not isinstance(creds.get("advSecretKey"), str):
        bad.append("advSecretKey (a base64 string)")
    for name in ("nextPreKeyId", "firstUnuploadedPreKeyId"):
        if not (_is_int(creds.get(name)) and creds[name] >= 1):
            bad.append(f"{name} (an integer >= 1)")
    me = creds.get("me")
    if me is not None:
        jid = me.get("id") if isinstance(me, dict) else None
        if not (isinstance(jid, str) and "@" in jid):
            bad.append("me.id (the paired account's JID)")
        if not isinstance(creds.get("account"), dict):
            bad.append("account (the signed device identity of a paired session)")
    return [
        Finding(BROKEN, "creds-field", f"missing or invalid: {field}", layout.CREDS_FILE)
        for field in bad
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pre_key_findings(next_id: Any, first_unuploaded: Any, stored: set[int]) -> list[Finding]:
    """The pre-keys that creds say exist but are not ``stored``, and those stored ahead of creds.

    Shared with ``waauth doctor``. Ids that are not integers are reported by the creds checks.
    """
    if not _is_int(next_id):
        return []
    findings = []
    if _is_int(first_unuploaded) and first_unuploaded < next_id:
        unuploaded = set(range(first_unuploaded, next_id))
        missing = sorted(unuploaded - stored)
        if missing:
            findings.append(
                Finding(
                    BROKEN,
                    "pre-key-unuploaded-missing",
                    f"{_ids(missing)} not stored, but Baileys uploads the pre-keys from "
                    f"firstUnuploadedPreKeyId {first_unuploaded} to nextPreKeyId - 1 next "
                    "(the upload throws on a missing one)",
                )
            )
    current = next_id - 1
    if current > 0 and current not in stored:
        findings.append(
            Finding(
                BROKEN,
                "pre-key-current-missing",
                f"the current pre-key {current} (nextPreKeyId - 1) is not stored: Baileys "
                "re-uploads pre-keys at connect, and contacts holding a lost one fail with "
                "'Invalid PreKey ID'",
            )
        )
    ahead = sorted(k for k in stored if k >= next_id)
    if ahead:
        findings.append(
            Finding(
                WARNING,
                "pre-key-ahead",
                f"{_ids(ahead)} at or past nextPreKeyId {next_id} (creds older than the keys "
                "written after them?)",
            )
        )
    return findings


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:5])
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return f"pre-key{'s' if len(ids) > 1 else ''} {shown}{more}"


def _app_state_findings(creds: Mapping[str, Any], names: set[str]) -> list[Finding]:
    key_id = creds.get("myAppStateKeyId")
    if not key_id:
        return []
    if not isinstance(key_id, str):
        return [
            Finding(BROKEN, "creds-field", "missing or invalid: myAppStateKeyId", layout.CREDS_FILE)
        ]
    try:
        wanted = layout.file_name("app-state-sync-key", key_id)
    except InvalidInput:
        return [Finding(BROKEN, "creds-field", "invalid: myAppStateKeyId", layout.CREDS_FILE)]
    if wanted in names:
        return []
    return [
        Finding(
            BROKEN,
            "app-state-key-missing",
            f"myAppStateKeyId names {wanted}, which is not stored: every app-state patch "
            "(archive, mute, mark read) fails with 'myAppStateKey not present'",
        )
    ]
