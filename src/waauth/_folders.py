"""Session folders on disk: reading them for import, writing them atomically, scanning them.

No database here; the async and sync code call these (the async side through a worker thread,
so that file I/O never blocks an event loop).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from . import _records, codec, layout
from .errors import CorruptRecord, InvalidInput, WaauthError

logger = logging.getLogger("waauth.folders")

FOLDER_MODE: Final = 0o700
FILE_MODE: Final = 0o600
# Suffixes of the entries a restore keeps beside ``root/<id>`` (see write_folder).
LOCK_WAIT = 60.0
"""Seconds a restore waits for another restore of the same session. A killed holder frees the
lock at once, but a paused one (SIGSTOP, a frozen container) or one hung on a stuck disk holds
it until it is killed: past this, that session fails, naming the lock, and the others go on."""

_LOCK: Final = ".waauth-lock"
_BUILDING: Final = ".waauth-tmp-"
_ASIDE: Final = ".waauth-old"
_MAX_NAME: Final = 255
_DIR_FLAGS: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass
class FolderContents:
    """The record files of a session folder, exactly as on disk."""

    files: dict[str, bytes] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """Entries that are not records (dotfiles, other files, subfolders, links), left alone."""


def read_folder(folder: Path, session_id: str) -> FolderContents:
    """Read every record file of ``folder`` by the mirror's rule (see :func:`scan`).

    Where ``X.json`` is missing or does not parse but Baileys' atomic writer left a
    ``X.json.bak`` that does, the ``.bak`` is taken, as Baileys' reader takes it. Entries that
    are not records are listed as skipped; Baileys' own ``.tmp`` / ``.bak`` files are not.
    """
    if not folder.is_dir():
        raise InvalidInput(f"session {session_id!r}: {str(folder)!r} is not a folder")
    found = scan(folder)
    contents = FolderContents(skipped=sorted(shown(n) for n in [*found.others, *found.odd]))
    for name in sorted(found.files):
        data = read_file(folder / name)
        if data is not None:
            contents.files[name] = data
    for name in sorted(found.rotating):
        if name not in found.odd and not _parses(session_id, name, contents.files.get(name)):
            backup = read_file(folder / f"{name}{BACKUP_SUFFIX}")
            if _parses(session_id, name, backup):
                assert backup is not None
                contents.files[name] = backup
    contents.files = dict(sorted(contents.files.items()))
    return contents


def _parses(session_id: str, name: str, data: bytes | None) -> bool:
    if data is None:
        return False
    try:
        check_record(session_id, name, data)
    except CorruptRecord:
        return False
    return True


def check_record(session_id: str, name: str, data: bytes) -> Any:
    """Parse a record as Baileys would read it; raise :class:`CorruptRecord` naming the file.

    ``creds.json`` must also hold the fields that make it creds.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptRecord(session_id, name, f"not valid JSON ({exc.msg})") from None
    if name == layout.CREDS_FILE:
        missing = (
            list(_records.CREDS_REQUIRED)
            if not isinstance(value, dict)
            else [f for f in _records.CREDS_REQUIRED if f not in value]
        )
        if missing:
            raise CorruptRecord(session_id, name, f"creds lack {', '.join(missing)}")
    return value


@dataclass(frozen=True)
class Identity:
    """Which account a creds file belongs to: its identity key and, once paired, its me.id."""

    identity_key: bytes | None
    account: str | None

    def same_account(self, other: Identity) -> bool:
        if self.identity_key and other.identity_key and self.identity_key != other.identity_key:
            return False
        return not (self.account and other.account and self.account != other.account)


def identity_of(creds: Mapping[str, Any]) -> Identity:
    """The identity of decoded creds (``bytes`` for Buffers, as ``codec.decode`` gives)."""
    key = creds.get("signedIdentityKey")
    public = key.get("public") if isinstance(key, Mapping) else None
    return Identity(public if isinstance(public, bytes) else None, _records.account_of(creds))


def identity_of_bytes(data: bytes) -> Identity:
    return identity_of(codec.decode(data))


# -- writing a folder atomically -------------------------------------------------------------
#
# Beside ``root/<id>`` waauth keeps, all hidden and named so that no session's entry can match
# another session's (ids never start with '.', and each name ends in a fixed suffix):
#   .<id>.waauth-lock           the per-session lock (an empty file, removed when done)
#   .<id>.waauth-tmp-<8 hex>    a folder being built
#   .<id>.waauth-old            the old folder, set aside by a swap without renameat2
# Every entry is touched only under the lock, so concurrent restores of one session (threads,
# processes) run one after the other, and each swaps in a whole folder.


def write_folder(
    root: Path, session_id: str, files: Mapping[str, bytes], *, fsync: bool = False
) -> Path:
    """Make ``root/<session_id>`` hold exactly ``files``, atomically.

    The folder is built beside the target, checked (every file written whole, and the folder
    holding exactly those names) and swapped in with one ``renameat2`` exchange, so a process
    killed at any moment leaves the old complete folder or the new complete one, never a mix.
    Restores of one session run one at a time (an exclusive lock on ``root/.<id>.waauth-lock``,
    which a killed process releases). Folder mode 0700, files 0600. ``fsync`` also makes it
    survive a power loss.

    Raises :class:`~waauth.CorruptRecord` naming the file, before touching the disk, if a
    name in ``files`` is not a safe record file name (``../x``, ``a/b``, hidden, not
    ``.json``): nothing of a row is ever written outside its folder.
    """
    layout.validate_session_id(session_id)
    if not _all_plainly_safe(files):
        for name in files:
            try:
                layout.check_file_name(name)
            except InvalidInput as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise CorruptRecord(
                    session_id, name, f"not a safe record file name ({reason}); nothing written"
                ) from None
    # A root made here is private too (0700): it lists the session ids. One that exists is
    # the caller's and keeps its mode.
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = root / session_id
    with _session_lock(root, session_id):
        _repair_interrupted_swap(root, session_id)
        _remove_leftovers(root, session_id)
        building = root / f".{session_id}{_BUILDING}{secrets.token_hex(4)}"
        os.mkdir(building, FOLDER_MODE)
        try:
            os.chmod(building, FOLDER_MODE)  # mkdir's mode is filtered by the umask
            _write_files(building, files, fsync=fsync)
            _check_built(building, session_id, files)
            _swap_in(building, target)
            if fsync:
                _fsync_dir(root)
        finally:
            # After a swap `building` holds the old folder; after a failure, the partial new one.
            shutil.rmtree(building, ignore_errors=True)
    return target


def _all_plainly_safe(names: Iterable[str]) -> bool:
    """Whether every name passes :func:`waauth.layout.check_file_name`, decided fast for the
    usual names (thousands per session): a True here is always layout's verdict too, and on
    False the caller asks layout name by name, which then says which name and why."""
    names = list(names)
    if not all(type(name) is str for name in names):
        return False
    # Joined by "/", which no safe name holds: one more "/" than separators means a name has
    # one; likewise one scan finds a NUL or text that is not ASCII in any of them.
    joined = "/".join(names)
    if joined.count("/") != len(names) - 1 or "\x00" in joined or not joined.isascii():
        return False
    # ASCII: a name's length is its size in bytes.
    return all(
        5 < len(name) <= _MAX_NAME and name[0] != "." and name.endswith(".json") for name in names
    )


def _write_files(building: Path, files: Mapping[str, bytes], *, fsync: bool) -> None:
    # Thousands of small files: keep the loop free of Path objects and helper calls, and
    # open each one relative to the folder, not through its whole path.
    folder = os.open(building, _DIR_FLAGS)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        for name, data in files.items():
            fd = os.open(name, flags, FILE_MODE, dir_fd=folder)
            try:
                # A short write (rare: a signal) is finished: every file ends up whole.
                if os.write(fd, data) != len(data):
                    _write_rest(fd, data)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if fsync:
            os.fsync(folder)
    finally:
        os.close(folder)


def _check_built(building: Path, session_id: str, files: Mapping[str, bytes]) -> None:
    """Refuse to swap in a folder that does not hold exactly the names of ``files`` (each
    written whole by :func:`_write_files`, which checks every write's length)."""
    found = set(os.listdir(building))
    if len(found) != len(files) or not found.issuperset(files):
        missing = len(files.keys() - found)
        raise WaauthError(
            f"session {session_id!r}: the folder built in {str(building)!r} is incomplete "
            f"({missing} files missing, {len(found - files.keys())} unexpected); the old "
            "folder was kept"
        )


@contextmanager
def _session_lock(root: Path, session_id: str) -> Iterator[None]:
    """Hold the session's restore lock (waiting, up to :data:`LOCK_WAIT`, for another restore).

    ``flock`` on a file of its own: released by the kernel when its holder dies, works
    between threads (each open is its own lock holder) and processes, and on NFS, where it is
    emulated with byte-range locks, which need the file open for writing. The holder removes
    the file before releasing it, so a finished restore leaves nothing beside the folder; a
    waiter that then holds the lock of a removed file tries again with the file now there.
    """
    path = root / f".{session_id}{_LOCK}"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        fd = os.open(path, flags, FILE_MODE)
        try:
            _flock_by(fd, deadline, session_id, path)
            held = os.fstat(fd)
            now = os.stat(path)
        except FileNotFoundError:  # removed by the holder we waited for
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            break
        os.close(fd)  # a newer lock file took its place: lock that one
    try:
        yield
    finally:
        try:
            with suppress(FileNotFoundError):  # someone removed it by hand
                os.unlink(path)  # while still holding it: see above
        finally:
            os.close(fd)  # releases the lock


def _flock_by(fd: int, deadline: float, session_id: str, path: Path) -> None:
    """Lock ``fd`` exclusively, or raise once ``deadline`` passes (a blocking ``flock`` has no
    timeout). Polls, briefly at first: another restore of one session takes milliseconds."""
    pause = 0.002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise WaauthError(
                    f"session {session_id!r}: another restore has held its lock ({path}) for "
                    f"{LOCK_WAIT:g} s (a process paused or stuck?); its folder was left as it "
                    "was"
                ) from None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _write_rest(fd: int, data: bytes) -> None:
    """Finish a short write (rare: a signal, a full pipe-like file system)."""
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _repair_interrupted_swap(root: Path, session_id: str) -> None:
    """A swap without renameat2 (see :func:`_swap_in`) killed between its two renames left
    the old folder aside and no target: put it back, so that Baileys finds its session even
    if this restore fails too. With the target there, the aside folder is a finished swap's."""
    aside = root / f".{session_id}{_ASIDE}"
    if not aside.is_dir() or aside.is_symlink():
        return
    if (root / session_id).exists() or (root / session_id).is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(aside, root / session_id)


def _remove_leftovers(root: Path, session_id: str) -> None:
    """Folders being built by a restore that was killed (only under the session's lock, so
    never one that a live restore is building): never a session's real folder."""
    # `.<id>.waauth-<hex>` (no `tmp-`): the name earlier development builds gave them.
    prefix = f".{session_id}.waauth-"
    leftover = re.compile(re.escape(prefix) + "(?:tmp-)?[0-9a-f]{8}")
    with os.scandir(root) as entries:  # a restore of every session runs this once per session
        for entry in entries:
            if (
                entry.name.startswith(prefix)
                and leftover.fullmatch(entry.name)
                and entry.is_dir(follow_symlinks=False)
            ):
                shutil.rmtree(entry.path, ignore_errors=True)


_RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100
_libc: Any = None


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux >= 3.15); False where that is not supported."""
    global _libc  # noqa: PLW0603 - loaded once, on first use
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2  # noqa: B018 - raises AttributeError without it
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        return False
    if _libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(building: Path, target: Path) -> None:
    if not target.exists():
        os.rename(building, target)
        return
    if not target.is_dir() or target.is_symlink():
        raise WaauthError(f"{str(target)!r} exists and is not a folder; not replacing it")
    if _renameat2_exchange(building, target):
        return
    # No atomic exchange here (some file systems): move the old folder aside first. A crash
    # between the two renames is repaired by the next restore (_repair_interrupted_swap).
    aside = target.parent / f".{target.name}{_ASIDE}"
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(target, aside)
    os.rename(building, target)
    shutil.rmtree(aside, ignore_errors=True)


# -- watching a live folder ---------------------------------------------------------------------


Signature = tuple[int, int]  # (mtime_ns, size): enough to spot a changed file cheaply

BACKUP_SUFFIX: Final = ".bak"
# Baileys' atomic writer (PR #2575) writes X.json.tmp, renames X.json to X.json.bak, then the
# .tmp to X.json; its reader falls back to X.json.bak.
_COMPANION_SUFFIXES: Final = (".tmp", BACKUP_SUFFIX)
_KINDS: Final = {
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}
_READ_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
) | getattr(os, "O_CLOEXEC", 0)


@dataclass
class FolderScan:
    """What a session folder holds, sorted by what waauth does with each entry."""

    files: dict[str, Signature] = field(default_factory=dict)
    """Record files to read: regular files (never through a link) with a UTF-8 name."""
    odd: dict[str, str] = field(default_factory=dict)
    """Entries named like records that are never read, and why (a folder, a FIFO, a link...)."""
    rotating: set[str] = field(default_factory=set)
    """Records with a Baileys ``.tmp`` or ``.bak`` beside them (present or not)."""
    others: list[str] = field(default_factory=list)
    """Entries that are not records (dotfiles, other files, subfolders)."""


def vanished(folder: Path, name: str) -> bool:
    """Whether record ``name`` is really gone: neither it nor Baileys' ``.tmp`` / ``.bak`` of it.

    A directory listing taken while files are renamed can miss an entry that moved (readdir
    is not a snapshot); a look-up by name cannot, and at every step of Baileys' atomic write one
    of the three names exists. So a record missing from a scan is deleted only if this says so.
    """
    base = os.fspath(folder / name)
    return not any(os.path.lexists(base + suffix) for suffix in ("", *_COMPANION_SUFFIXES))


def companion_of(name: str) -> str | None:
    """The record that ``X.json.tmp`` / ``X.json.bak`` (Baileys' atomic writer) belongs to."""
    for suffix in _COMPANION_SUFFIXES:
        if name.endswith(suffix) and layout.is_record_file(name[: -len(suffix)]):
            return name[: -len(suffix)]
    return None


def shown(name: str) -> str:
    """A file name fit for a log line, even one that is not valid UTF-8."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def scan(folder: Path) -> FolderScan:
    """Sort the entries of a session folder (a missing folder is empty). The one rule of what
    is read, for import and the mirror alike: only regular files, never following a link."""
    found = FolderScan()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        name = entry.name
        base = companion_of(name)
        if base is not None:
            found.rotating.add(base)
            continue
        if not _is_utf8(name) and name.endswith(".json"):
            found.odd[name] = "its name is not valid UTF-8"
            continue
        if not layout.is_record_file(name):
            found.others.append(name)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        _sort(found, name, st)
    return found


def _sort(found: FolderScan, name: str, st: os.stat_result) -> None:
    """A record's entry: a regular file to read, or an odd one (and why)."""
    if stat.S_ISREG(st.st_mode):
        found.files[name] = (st.st_mtime_ns, st.st_size)
    else:
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a file")
        found.odd[name] = f"{kind}, not a regular file"


def look(folder: Path, names: Iterable[str]) -> FolderScan:
    """:func:`scan` of some record names only, each looked up by name: what the mirror does
    with the entries a watcher saw change, without listing (and stat-ing) the whole folder.

    The same rule as :func:`scan` for each name; :attr:`FolderScan.rotating` holds only the
    names that are absent while Baileys' ``.tmp`` or ``.bak`` of them is there.
    """
    found = FolderScan()
    base = os.fspath(folder)
    for name in names:
        if not _is_utf8(name):
            found.odd[name] = "its name is not valid UTF-8"
            continue
        try:
            st = os.lstat(f"{base}/{name}")
        except (FileNotFoundError, NotADirectoryError):
            if not vanished(folder, name):
                found.rotating.add(name)
            continue
        _sort(found, name, st)
    return found


def stamp(folder: Path) -> tuple[int, int, int] | None:
    """What changes when an entry of ``folder`` is created, removed or renamed (not when a
    file is rewritten in place): its inode, mtime and ctime. None if it is gone."""
    try:
        st = os.stat(folder, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir gave undecodable bytes as surrogates
        return False
    return True


def read_file(path: Path) -> bytes | None:
    """A regular file's bytes, or None if it vanished or is no longer a regular file.

    Never follows a symbolic link and never blocks (a FIFO is opened non-blocking, then refused).
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.ENOTDIR):
            return None  # vanished, a link (O_NOFOLLOW), a socket
        raise
    with open(fd, "rb", closefd=True) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # replaced by a folder or a FIFO since the scan
        return f.read()
