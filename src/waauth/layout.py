"""Baileys' multi-file naming rules: which file a record lives in, and back.

``useMultiFileAuthState`` keeps ``creds.json`` and one ``${type}-${id}.json`` per Signal key in a
session folder, after passing the whole name through ``fixFileName`` (``/`` -> ``__``, then
``:`` -> ``-``). That rule is not reversible (``a:b`` and ``a-b`` give one file), so the *file
name*, not the id, is the identity of a record; waauth keys its rows by file name for that reason.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from .errors import InvalidInput

__all__ = [
    "CREDS_FILE",
    "CREDS_TYPE",
    "KEY_TYPES",
    "MAX_SESSION_ID_LENGTH",
    "file_name",
    "fix_file_name",
    "is_record_file",
    "parse_file_name",
    "record_type",
    "validate_session_id",
]

CREDS_FILE: Final = "creds.json"
"""The file that holds a session's credentials."""

CREDS_TYPE: Final = "creds"
"""The type waauth gives the creds record (Baileys has no key type of that name)."""

KEY_TYPES: Final[tuple[str, ...]] = (
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
)
"""Key types Baileys 6.x and 7.x store (``SignalDataTypeMap``). Newer versions may add more."""

MAX_SESSION_ID_LENGTH: Final = 128

# A file name is at most 255 bytes on the file systems Baileys runs on.
_MAX_FILE_NAME_BYTES: Final = 255
_SUFFIX: Final = ".json"
# Longest prefix first, so `sender-key-memory-x` is not read as a `sender-key` named `memory-x`.
_PREFIXES: Final = tuple(sorted((t + "-" for t in KEY_TYPES), key=len, reverse=True))
_TYPE_WORD = re.compile(r"[a-z]+")


def fix_file_name(name: str) -> str:
    """Baileys' ``fixFileName``: every ``/`` becomes ``__``, then every ``:`` becomes ``-``."""
    return name.replace("/", "__").replace(":", "-")


def file_name(type: str, id: str) -> str:
    """Return the file name ``useMultiFileAuthState`` uses for key ``id`` of ``type``.

    >>> file_name("sender-key", "120363@g.us::5511999999999::12")
    'sender-key-120363@g.us--5511999999999--12.json'
    >>> file_name("app-state-sync-key", "AAAAAPv/+w==")
    'app-state-sync-key-AAAAAPv__+w==.json'
    """
    if not isinstance(type, str) or not type:
        raise InvalidInput(f"key type must be a non-empty string, not {type!r}")
    if not isinstance(id, str):
        raise InvalidInput(
            f"key id for type {type!r} must be a string, not {id.__class__.__name__}"
        )
    name = fix_file_name(f"{type}-{id}{_SUFFIX}")
    _check_file_name(name)
    return name


def _check_file_name(name: str) -> None:
    if "\x00" in name:
        raise InvalidInput(f"file name {name!r} contains a NUL character")
    if len(name.encode()) > _MAX_FILE_NAME_BYTES:
        raise InvalidInput(
            f"file name {name[:40]!r}... is longer than {_MAX_FILE_NAME_BYTES} bytes"
        )


def is_record_file(name: str) -> bool:
    """Whether a file in a session folder is a Baileys record (creds or key), not a stray file.

    Dotfiles, temporary files and anything not ending in ``.json`` are not records.
    """
    return (
        len(name) > len(_SUFFIX)
        and name.endswith(_SUFFIX)
        and not name.startswith(".")
        and "/" not in name
        and "\x00" not in name
    )


def parse_file_name(name: str) -> tuple[str, str]:
    """Split a record's file name into ``(type, id)``; ``creds.json`` gives ``("creds", "")``.

    Known types match longest prefix first. For a type waauth does not know (a newer Baileys),
    the type is taken to be the leading lower-case words, which is how every Baileys type is
    spelled; the file is kept either way. The id returned is the *fixed* id (``/`` and ``:``
    already replaced), since the original cannot be recovered from the name.
    """
    if not is_record_file(name):
        raise InvalidInput(f"{name!r} is not the name of a Baileys record file")
    if name == CREDS_FILE:
        return CREDS_TYPE, ""
    stem = name[: -len(_SUFFIX)]
    for prefix in _PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return prefix[:-1], stem[len(prefix) :]
    words = stem.split("-")
    if len(words) == 1:
        return stem, ""
    n = 1
    while n < len(words) - 1 and _TYPE_WORD.fullmatch(words[n]):
        n += 1
    return "-".join(words[:n]), "-".join(words[n:])


def record_type(name: str) -> str:
    """The type of the record stored in file ``name`` (``"creds"`` for ``creds.json``)."""
    return parse_file_name(name)[0]


def validate_session_id(session_id: str) -> str:
    """Return ``session_id`` if it can name a session folder, else raise ``InvalidInput``.

    A session id is also a folder name under ``.auth_sessions/``: non-empty, at most 128
    characters, no ``/``, ``\\``, NUL or other control characters, and not ``.`` or ``..``.
    """
    if not isinstance(session_id, str):
        raise InvalidInput(f"session id must be a string, not {session_id.__class__.__name__}")
    problem = None
    if not session_id:
        problem = "it is empty"
    elif len(session_id) > MAX_SESSION_ID_LENGTH:
        problem = f"it is longer than {MAX_SESSION_ID_LENGTH} characters"
    elif session_id in (".", ".."):
        problem = "it is a relative folder name"
    elif "/" in session_id or "\\" in session_id:
        problem = "it contains a path separator"
    elif any(unicodedata.category(c) == "Cc" for c in session_id):
        problem = "it contains a control character"
    if problem:
        raise InvalidInput(f"invalid session id {session_id[:MAX_SESSION_ID_LENGTH]!r}: {problem}")
    return session_id
