"""Baileys' shapes as Python types: key types, creds and the values of every Signal key.

Taken from Baileys 7.0.0-rc14 (``lib/Types/Auth.d.ts``: ``AuthenticationCreds``,
``SignalDataTypeMap``) and written as waauth hands them out after :func:`waauth.codec.decode`:

- a Buffer (``{"type": "Buffer", "data": ...}`` on disk) is ``bytes``;
- a protobuf value went through its ``toJSON`` when Baileys wrote it, so its bytes are base64
  ``str`` and its 64-bit integers decimal ``str`` (``creds["account"]``, app-state sync keys);
- a field Baileys leaves ``undefined`` is absent (JSON drops it), so optional TypeScript fields
  are keys that may be missing (``total=False``), never ``None``.

These are types for reading: ``keys.get("pre-key", ids)`` is typed ``dict[str, KeyPair | None]``
(see :class:`waauth.protocols.SignalKeyStore`). ``state.creds`` stays a ``dict[str, Any]``, since
Baileys and other writers add fields; ``typing.cast(AuthenticationCreds, state.creds)`` reads it
typed. Nothing here is checked at run time.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "ADVSignedDeviceIdentity",
    "AccountSettings",
    "AppStateSyncKeyData",
    "AppStateSyncKeyFingerprint",
    "AuthenticationCreds",
    "Contact",
    "KeyPair",
    "KeyType",
    "LTHashState",
    "MessageKey",
    "MinimalMessage",
    "ProtocolAddress",
    "SenderKeyMemory",
    "SessionRecord",
    "SignalDataTypeMap",
    "SignalIdentity",
    "SignedKeyPair",
    "TcToken",
    "ValueMac",
]

KeyType = Literal[
    "pre-key",
    "session",
    "sender-key",
    "sender-key-memory",
    "app-state-sync-key",
    "app-state-sync-version",
    "lid-mapping",
    "device-list",
    "tctoken",
    "identity-key",
]
"""The ten key types of Baileys 7 (the keys of ``SignalDataTypeMap``; at run time:
:data:`waauth.layout.KEY_TYPES`). ``keys.get`` and ``keys.set`` also take any other ``str``:
other writers of the layout add their own types."""


# -- Signal key values ----------------------------------------------------------------------------


class KeyPair(TypedDict):
    """A Curve25519 key pair (``pre-key`` values, and several creds fields): 32 bytes each."""

    private: bytes
    public: bytes


class _SignedKeyPair(TypedDict):
    keyPair: KeyPair
    signature: bytes
    keyId: int


class SignedKeyPair(_SignedKeyPair, total=False):
    """``creds["signedPreKey"]``: a key pair, its 64-byte signature and its id
    (``timestampS`` may be missing)."""

    timestampS: int


class SessionRecord(TypedDict):
    """A ``session`` value: libsignal's ``SessionRecord`` JSON, ``{"_sessions": {base key:
    session}, "version": "v1"}`` (bytes inside as base64 ``str``).

    Baileys types sessions as bytes, but writes them as this JSON object.
    """

    _sessions: dict[str, dict[str, Any]]
    version: str


class AppStateSyncKeyFingerprint(TypedDict, total=False):
    """``fingerprint`` of an app-state sync key (protobuf ``AppStateSyncKeyFingerprint``; any
    key may be missing)."""

    rawId: int
    currentIndex: int
    deviceIndexes: list[int]


class AppStateSyncKeyData(TypedDict, total=False):
    """An ``app-state-sync-key`` value (protobuf ``AppStateSyncKeyData`` as JSON; any key may
    be missing): ``keyData`` is base64, ``timestamp`` milliseconds as a decimal string."""

    keyData: str
    fingerprint: AppStateSyncKeyFingerprint
    timestamp: str


class ValueMac(TypedDict):
    """One entry of :attr:`LTHashState.indexValueMap`."""

    valueMac: bytes


class LTHashState(TypedDict):
    """An ``app-state-sync-version`` value: the collection's version and 128-byte LT hash."""

    version: int
    hash: bytes
    indexValueMap: dict[str, ValueMac]


class _TcToken(TypedDict):
    token: bytes


class TcToken(_TcToken, total=False):
    """A ``tctoken`` value (Baileys 7): the trusted-contact token and when it was issued
    (``timestamp`` and ``senderTimestamp`` may be missing)."""

    timestamp: str
    senderTimestamp: int


SenderKeyMemory = dict[str, bool]
"""A ``sender-key-memory`` value: ``{participant jid: True}`` for a group."""


SignalDataTypeMap = TypedDict(
    "SignalDataTypeMap",
    {
        "pre-key": KeyPair,
        "session": SessionRecord,
        # UTF-8 JSON of the sender-key record (sender keys of Baileys 6.7.18 and older are a
        # bare JSON array, which 7.x cannot read; waauth keeps them as they are).
        "sender-key": bytes,
        "sender-key-memory": SenderKeyMemory,
        "app-state-sync-key": AppStateSyncKeyData,
        "app-state-sync-version": LTHashState,
        "lid-mapping": str,
        "device-list": list[str],
        "tctoken": TcToken,
        "identity-key": bytes,
    },
)
SignalDataTypeMap.__doc__ = """The value type of every :data:`KeyType`, as Baileys'
``SignalDataTypeMap``: ``SignalDataTypeMap.__annotations__["pre-key"]`` is :class:`KeyPair`."""


# -- creds ----------------------------------------------------------------------------------------


class ProtocolAddress(TypedDict):
    """A Signal address: user and device."""

    name: str
    deviceId: int


class SignalIdentity(TypedDict):
    """An entry of ``creds["signalIdentities"]``: an address and its 33-byte identity key."""

    identifier: ProtocolAddress
    identifierKey: bytes


class _Contact(TypedDict):
    id: str


class Contact(_Contact, total=False):
    """``creds["me"]``: the paired account (``id``, always there, is its jid with the device;
    the other keys may be missing)."""

    lid: str
    phoneNumber: str
    name: str
    notify: str
    username: str
    verifiedName: str
    imgUrl: str | None
    status: str


class ADVSignedDeviceIdentity(TypedDict, total=False):
    """``creds["account"]``: the signed device identity (protobuf as JSON, base64 strings;
    any key may be missing)."""

    details: str
    accountSignatureKey: str
    accountSignature: str
    deviceSignature: str


class MessageKey(TypedDict, total=False):
    """The key of a message (protobuf ``MessageKey`` and the fields Baileys 7 adds; any key
    may be missing)."""

    remoteJid: str | None
    fromMe: bool | None
    id: str | None
    participant: str | None
    remoteJidAlt: str
    remoteJidUsername: str
    participantAlt: str
    participantUsername: str
    server_id: str
    addressingMode: str
    isViewOnce: bool


class _MinimalMessage(TypedDict):
    key: MessageKey


class MinimalMessage(_MinimalMessage, total=False):
    """An entry of ``creds["processedHistoryMessages"]``: ``key``, and ``messageTimestamp``
    (may be missing) in seconds; a protobuf ``Long`` would be written as
    ``{"low", "high", "unsigned"}``.
    """

    messageTimestamp: int | dict[str, Any] | None


class _AccountSettings(TypedDict):
    unarchiveChats: bool


class AccountSettings(_AccountSettings, total=False):
    """``creds["accountSettings"]`` (``defaultDisappearingMode`` may be missing)."""

    defaultDisappearingMode: dict[str, Any]


class _AuthenticationCreds(TypedDict):
    noiseKey: KeyPair
    pairingEphemeralKeyPair: KeyPair
    signedIdentityKey: KeyPair
    signedPreKey: SignedKeyPair
    registrationId: int
    advSecretKey: str
    processedHistoryMessages: list[MinimalMessage]
    nextPreKeyId: int
    firstUnuploadedPreKeyId: int
    accountSyncCounter: int
    accountSettings: AccountSettings
    registered: bool


class AuthenticationCreds(_AuthenticationCreds, total=False):
    """``creds.json``, decoded.

    What ``initAuthCreds()`` makes is always there: ``noiseKey``, ``pairingEphemeralKeyPair``,
    ``signedIdentityKey``, ``signedPreKey``, ``registrationId``, ``advSecretKey``,
    ``processedHistoryMessages``, ``nextPreKeyId``, ``firstUnuploadedPreKeyId``,
    ``accountSyncCounter``, ``accountSettings``, ``registered``. What pairing and later use
    add may be missing: ``me``, ``account``, ``signalIdentities``, ``myAppStateKeyId``,
    ``lastAccountSyncTimestamp``, ``platform``, ``pairingCode``, ``lastPropHash``,
    ``routingInfo``, ``additionalData``.
    """

    me: Contact
    account: ADVSignedDeviceIdentity
    signalIdentities: list[SignalIdentity]
    myAppStateKeyId: str
    lastAccountSyncTimestamp: int
    platform: str
    pairingCode: str
    lastPropHash: str
    routingInfo: bytes
    additionalData: Any
