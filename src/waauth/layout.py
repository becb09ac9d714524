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
    "check_file_name",
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
"""Bytes (UTF-8) a session id may take. The entries waauth keeps beside a session's folder
add at most 21 bytes to its name (``.<id>.waauth-tmp-<8 hex>``), and a name may not exceed 255
bytes: 128 leaves room, and an ASCII id keeps its 128 characters."""

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
    return check_file_name(name)


def _utf8_length(text: str) -> int | None:
    """Bytes of ``text`` in UTF-8; None for text that is not UTF-8 (lone surrogates, as
    ``os.fsdecode`` gives for names in another encoding)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def _file_name_problem(name: str) -> str | None:
    if "/" in name or "\x00" in name:
        return "it holds a path separator or NUL"
    if name.startswith("."):
        return "it is hidden or relative (starts with '.')"
    if len(name) <= len(_SUFFIX) or not name.endswith(_SUFFIX):
        return f"it does not end in {_SUFFIX!r}"
    size = _utf8_length(name)
    if size is None:
        return "it is not valid UTF-8"
    if size > _MAX_FILE_NAME_BYTES:
        return f"it is longer than {_MAX_FILE_NAME_BYTES} bytes"
    return None


def check_file_name(name: str) -> str:
    """Return ``name`` if it can be a record's file in a session folder, else raise
    :class:`InvalidInput` saying why.

    A record file name is one folder entry (no ``/``, no NUL, not ``.`` or ``..``), not
    hidden, ends in ``.json`` and fits in 255 bytes: exactly the names
    :func:`is_record_file` accepts, so a row that passes can neither be written outside its
    folder nor be one that a reader of the folder ignores. Every boundary applies it: what
    ``keys.set`` and an import store, what rotation re-seals, what materialize writes.
    """
    problem = _file_name_problem(name)
    if problem:
        raise InvalidInput(f"{_shown(name, 80)!r} is not a safe record file name: {problem}")
    return name


def _shown(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, printable even if it is not UTF-8."""
    return text[:limit].encode("utf-8", "backslashreplace").decode()


def is_record_file(name: str) -> bool:
    """Whether a file in a session folder is a Baileys record (creds or key), not a stray file.

    Dotfiles, temporary files, anything not ending in ``.json`` and names no file system
    holds (NUL, longer than 255 bytes, not UTF-8) are not records.
    """
    return _file_name_problem(name) is None


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

    A session id is also a folder name under ``.auth_sessions/``: non-empty, valid UTF-8, at
    most 128 bytes in UTF-8 (room for the suffixes of the entries waauth keeps beside it), no
    ``/``, ``\\``, NUL or other control characters, and not starting with ``.``: a hidden
    folder is one the mirror and ``push --all`` skip, and ``.`` and ``..`` are not folders.
    """
    if not isinstance(session_id, str):
        raise InvalidInput(f"session id must be a string, not {session_id.__class__.__name__}")
    problem = None
    size = _utf8_length(session_id)
    if not session_id:
        problem = "it is empty"
    elif size is None:
        problem = "it is not valid UTF-8"
    elif size > MAX_SESSION_ID_LENGTH:
        problem = f"it is longer than {MAX_SESSION_ID_LENGTH} bytes in UTF-8 ({size})"
    elif session_id.startswith("."):
        problem = "it starts with '.' (a hidden or relative folder name, which the mirror skips)"
    elif "/" in session_id or "\\" in session_id:
        problem = "it contains a path separator"
    elif any(unicodedata.category(c) == "Cc" for c in session_id):
        problem = "it contains a control character"
    if problem:
        raise InvalidInput(
            f"invalid session id {_shown(session_id, MAX_SESSION_ID_LENGTH)!r}: {problem}"
        )
    return session_id
