"""Between Baileys values and sealed rows: everything ``keys.get``/``keys.set`` do without I/O.

Shared by the async and the sync auth state, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from . import codec, layout
from .encryption import Keyring
from .errors import CorruptRecord, InvalidInput

_SUFFIX: Final = ".json"
_MAX_NAME: Final = 255
"""Bytes a record's file name may take (layout's limit); an ASCII name's length is its size."""

CREDS_REQUIRED: Final = ("noiseKey", "signedIdentityKey", "signedPreKey", "registrationId")
"""Without these fields a document is not Baileys creds (``initAuthCreds`` always sets them)."""


def is_deletion(value: Any) -> bool:
    """Whether ``keys.set`` deletes on this value: JavaScript-falsy, as in Baileys.

    ``None``, ``False``, ``0``, ``""`` and NaN delete; empty ``bytes``, lists and dicts do not
    (in JavaScript they are objects, hence truthy).
    """
    if value is None or value is False:
        return True
    if type(value) is str:
        return value == ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0 or (isinstance(value, float) and math.isnan(value))
    return False


@dataclass
class Batch:
    """Rows to upsert and file names to delete, for one session, in one statement."""

    files: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    has_creds: bool = False
    account: str | None = None
    replace: bool = False
    """Delete every stored file of the session that is not in this batch (an import)..."""
    keep: list[str] = field(default_factory=list)
    """... except these (files present but not pushed this time)."""

    def __len__(self) -> int:
        return len(self.files) + len(self.deletes)

    def params(
        self, session_id: str, owner: str | None, token: int | None = None
    ) -> dict[str, Any]:
        """The parameters of :data:`waauth._queries.WRITE` (``token``: the lease's, if any)."""
        return {
            "session_id": session_id,
            "owner": owner,
            "token": token,
            "has_creds": self.has_creds,
            "account": self.account,
            "files": self.files,
            "types": self.types,
            "ids": self.ids,
            "values": self.values,
            "deletes": self.deletes,
            "replace": self.replace,
            "keep": self.keep,
        }


def plan_key_entries(
    data: Mapping[str, Mapping[str, Any]], session_id: str
) -> dict[str, tuple[str, str, bytes | None]]:
    """Encode a ``keys.set`` argument, ``{type: {id: value}}``: ``{file name: (type, id, bytes)}``.

    ``None`` bytes mean delete. Several ids that share a file (``a:b`` and ``a-b``) or one id
    given twice: the last one wins, as it would in Baileys' folder. Bad arguments raise
    :class:`InvalidInput` before anything is written.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput(f"keys.set takes {{type: {{id: value}}}}, not {type(data).__name__}")
    latest: dict[str, tuple[str, str, Any]] = {}
    for key_type, entries in data.items():
        if not isinstance(entries, Mapping):
            raise InvalidInput(
                f"keys.set: the value for type {key_type!r} must map ids to values, "
                f"not {type(entries).__name__}"
            )
        name_of = _file_namer(key_type)
        for key_id, value in entries.items():
            latest[name_of(key_id)] = (key_type, key_id, value)
    planned: dict[str, tuple[str, str, bytes | None]] = {}
    encode = codec.encode
    for name, (key_type, key_id, value) in latest.items():
        try:
            # A dict (most values) is never a deletion: skip the test.
            data_bytes = encode(value) if type(value) is dict or not is_deletion(value) else None
        except InvalidInput as exc:
            raise InvalidInput(
                f"session {session_id!r}, key {key_type} {key_id!r}: {exc}"
            ) from None
        planned[name] = (key_type, key_id, data_bytes)
    return planned


def _file_namer(key_type: str) -> Callable[[str], str]:
    """:func:`waauth.layout.file_name` for ids of ``key_type``, fast for the usual ids.

    Thousands of ids per call (a whole session read, a first login's pre-keys): an ASCII id
    without NUL whose name fits in 255 bytes is named here at once, which is exactly when
    layout's checks pass for a valid type; every other id (and every id of an invalid type)
    goes through layout itself, which names it or raises as it always did.
    """
    try:
        prefix = layout.file_name(key_type, "")[: -len(_SUFFIX)]
    except InvalidInput:
        prefix = None
    if prefix is None or not prefix.isascii():
        return lambda key_id: layout.file_name(key_type, key_id)

    def name_of(key_id: str) -> str:
        if type(key_id) is str and key_id.isascii() and "\x00" not in key_id:
            if "/" in key_id or ":" in key_id:
                key_id = layout.fix_file_name(key_id)
            name = prefix + key_id + _SUFFIX
            if len(name) <= _MAX_NAME:
                return name
        return layout.file_name(key_type, key_id)

    return name_of


def encode_creds(creds: Mapping[str, Any], session_id: str) -> tuple[bytes, str | None]:
    """The bytes of ``creds.json`` for ``creds`` (checked to be creds), and its ``me.id``."""
    check_creds(creds, session_id)
    try:
        return codec.encode(creds), account_of(creds)
    except InvalidInput as exc:
        raise InvalidInput(f"session {session_id!r}, {layout.CREDS_FILE}: {exc}") from None


def add_row(
    batch: Batch,
    keyring: Keyring,
    session_id: str,
    file_name: str,
    *,
    key_type: str,
    key_id: str,
    data: bytes,
) -> None:
    """Seal one file's bytes into ``batch`` (callers add rows in file-name order, so that
    concurrent writers lock rows in the same order and cannot deadlock)."""
    batch.files.append(file_name)
    batch.types.append(key_type)
    batch.ids.append(key_id)
    batch.values.append(keyring.encrypt(data, session_id=session_id, file_name=file_name))


def check_creds(creds: Any, session_id: str) -> None:
    """Raise :class:`InvalidInput` unless ``creds`` has the fields that make it Baileys creds."""
    if not isinstance(creds, Mapping):
        raise InvalidInput(
            f"session {session_id!r}: creds must be a dict, not {type(creds).__name__}"
        )
    missing = [name for name in CREDS_REQUIRED if name not in creds]
    if missing:
        raise InvalidInput(f"session {session_id!r}: creds lack {', '.join(missing)}")


def account_of(creds: Mapping[str, Any]) -> str | None:
    """The paired account's ``me.id`` (its phone number and device), if any."""
    me = creds.get("me")
    account = me.get("id") if isinstance(me, Mapping) else None
    return account if isinstance(account, str) else None


def open_record(keyring: Keyring, session_id: str, file_name: str, sealed: bytes) -> Any:
    """Decrypt and decode a stored record; errors name the session and the file."""
    plaintext = keyring.decrypt(sealed, session_id=session_id, file_name=file_name)
    try:
        return codec.decode(plaintext)
    except InvalidInput as exc:
        raise CorruptRecord(session_id, file_name, str(exc)) from None


def open_records(
    keyring: Keyring, session_id: str, rows: Iterable[tuple[str, bytes]]
) -> dict[str, Any]:
    """:func:`open_record` of many ``(file name, sealed value)`` rows: ``{file name: value}``."""
    decode = codec.decode
    values = {}
    for name, plaintext in keyring.decrypt_many(rows, session_id=session_id):
        try:
            values[name] = decode(plaintext)
        except InvalidInput as exc:
            raise CorruptRecord(session_id, name, str(exc)) from None
    return values


def sealed_batch(
    keyring: Keyring,
    session_id: str,
    rows: Mapping[str, tuple[str, str, bytes | None]],
    account: str | None = None,
) -> Batch:
    """The batch writing ``rows``, ``{file name: (type, id, bytes or None to delete)}``.

    Rows go in file-name order (see :func:`add_row`), every value sealed for its file;
    ``account`` is the ``me.id`` that goes with ``creds.json``, if the rows write it.
    """
    batch = Batch()
    plaintexts = []
    for name in sorted(rows):
        key_type, key_id, data = rows[name]
        if data is None:
            batch.deletes.append(name)
            continue
        batch.files.append(name)
        batch.types.append(key_type)
        batch.ids.append(key_id)
        plaintexts.append(data)
        if name == layout.CREDS_FILE:
            batch.has_creds = True
            batch.account = account
    batch.values = keyring.encrypt_many(batch.files, plaintexts, session_id=session_id)
    return batch


def open_creds(keyring: Keyring, session_id: str, sealed: bytes) -> dict[str, Any]:
    """Decrypt, decode and check a stored ``creds.json``."""
    creds = open_record(keyring, session_id, layout.CREDS_FILE, sealed)
    try:
        check_creds(creds, session_id)
    except InvalidInput as exc:
        raise CorruptRecord(session_id, layout.CREDS_FILE, str(exc).split(": ", 1)[-1]) from None
    assert isinstance(creds, dict)
    return creds


def names_for(key_type: str, ids: Iterable[str]) -> dict[str, str]:
    """``{id: file name}`` for a ``keys.get`` call, validating the arguments."""
    if isinstance(ids, str | bytes):
        raise InvalidInput("keys.get takes a list of ids, not a single string")
    name_of = _file_namer(key_type)
    return {key_id: name_of(key_id) for key_id in ids}


@dataclass
class SessionWrite:
    """One session's part of a multi-session write (see :data:`waauth._queries.WRITE_MANY`)."""

    session_id: str
    batch: Batch
    creds: dict[str, Any] | None = None
    """The decoded creds the batch writes (checked against the stored account), if any."""
    token: int | None = None
    """The session's lease token (None: no lease)."""

    @property
    def checked(self) -> bool:
        """Whether the stored account must be checked first (creds written, or a replace)."""
        return self.batch.replace or self.creds is not None


_MANY_ARRAYS: Final = (
    *("sessions", "tokens", "has_creds", "accounts", "replace"),
    *("row_sessions", "files", "types", "ids", "values"),
    *("delete_sessions", "deletes", "keep_sessions", "keep"),
)


def many_params(writes: Iterable[SessionWrite], owner: str | None) -> dict[str, Any]:
    """The parameters of :data:`waauth._queries.WRITE_MANY`, sessions in id order (the order
    in which it locks their rows, as every multi-session statement does: no deadlock)."""
    params: dict[str, Any] = {"owner": owner}
    for key in _MANY_ARRAYS:
        params[key] = []
    for w in sorted(writes, key=lambda w: w.session_id):
        b = w.batch
        params["sessions"].append(w.session_id)
        params["tokens"].append(w.token)
        params["has_creds"].append(b.has_creds)
        params["accounts"].append(b.account)
        params["replace"].append(b.replace)
        params["row_sessions"].extend([w.session_id] * len(b.files))
        params["files"].extend(b.files)
        params["types"].extend(b.types)
        params["ids"].extend(b.ids)
        params["values"].extend(b.values)
        params["delete_sessions"].extend([w.session_id] * len(b.deletes))
        params["deletes"].extend(b.deletes)
        params["keep_sessions"].extend([w.session_id] * len(b.keep))
        params["keep"].extend(b.keep)
    return params
