"""Configuration from the environment, resolved the same way by the library and the command.

================================= ============================================================
``WAAUTH_DSN``                    The PostgreSQL server (libpq URL or conninfo); else
``DATABASE_URL``                  this one (what Railway, Heroku and Render set).
``WAAUTH_KEY_FILE``               A file holding the keys; wins over ``WAAUTH_KEYS``.
``WAAUTH_KEYS``                   Comma-separated keys; the first encrypts.
``WAAUTH_INSECURE_PLAINTEXT``     ``1`` with no key configured: store unencrypted.
``WAAUTH_SCHEMA``                 The Postgres schema of waauth's tables (default ``waauth``).
================================= ============================================================

A bot calls ``Settings.from_env(os.environ)`` (or :func:`dsn_from_env` and
``Keyring.from_env``); ``waauth`` on the command line reads the same variables through the same
functions, so both open the same sessions.

Addresses are checked before any connection: :func:`check_conninfo` raises
:class:`~waauth.ConfigurationError` for one that libpq cannot use (``"not a dsn"``,
``sslmode=bogus``), which no retry could fix.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import ConfigurationError
from .schema import DEFAULT_SCHEMA, check_schema_name

if TYPE_CHECKING:
    from .encryption import Keyring

__all__ = [
    "DSN_ENV_VARS",
    "KEYS_ENV_VAR",
    "KEY_FILE_ENV_VAR",
    "PLAINTEXT_ENV_VAR",
    "SCHEMA_ENV_VAR",
    "Settings",
    "check_conninfo",
    "dsn_from_env",
    "key_texts_from_env",
    "plaintext_from_env",
    "read_key_file",
]

logger = logging.getLogger("waauth.config")

DSN_ENV_VARS: Final = ("WAAUTH_DSN", "DATABASE_URL")
KEYS_ENV_VAR: Final = "WAAUTH_KEYS"
KEY_FILE_ENV_VAR: Final = "WAAUTH_KEY_FILE"
PLAINTEXT_ENV_VAR: Final = "WAAUTH_INSECURE_PLAINTEXT"
SCHEMA_ENV_VAR: Final = "WAAUTH_SCHEMA"

# Where a connection goes: replaced by _NOWHERE when checking the other options.
_WHERE: Final = ("host", "hostaddr", "port", "password")
# A numeric loopback address (no name lookup) and a port nothing should listen on.
_NOWHERE: Final = {"host": "localhost", "hostaddr": "127.0.0.1", "port": "1"}
# Group or others may read or write the file: ssh warns about (and refuses) such key files.
_LOOSE: Final = stat.S_IRWXG | stat.S_IRWXO


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def dsn_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``WAAUTH_DSN``, else ``DATABASE_URL``, else None (blank values count as unset)."""
    env = _env(environ)
    for name in DSN_ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def plaintext_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``WAAUTH_INSECURE_PLAINTEXT`` opts out of encryption (``1``, ``true``, ``yes``)."""
    return _env(environ).get(PLAINTEXT_ENV_VAR, "").strip().lower() in ("1", "true", "yes")


def read_key_file(path: str | os.PathLike[str]) -> list[str]:
    """The keys in a key file: one per line or comma-separated; ``#`` starts a comment line.

    Logs a warning when group or others may read the file (as ``ssh`` does for private keys):
    whoever reads it can take over every stored WhatsApp account. It warns rather than refuses
    because secret mounts (Docker, Kubernetes) often make files group-readable, and a refusal
    there would stop a deploy that is not less safe than ``WAAUTH_KEYS`` in its environment.
    """
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the key file {str(file)!r}: {exc.strerror}"
        ) from None
    if mode & _LOOSE:
        logger.warning(
            "the key file %r is accessible by others (mode %s): chmod 600 it",
            str(file),
            oct(stat.S_IMODE(mode)),
        )
    keys = [
        key
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for key in line.replace(",", " ").split()
    ]
    if not keys:
        raise ConfigurationError(f"the key file {str(file)!r} holds no key")
    return keys


def key_texts_from_env(
    environ: Mapping[str, str] | None = None, *, key_file: str | os.PathLike[str] | None = None
) -> list[str] | None:
    """Keys from ``key_file``, else ``WAAUTH_KEY_FILE``, else ``WAAUTH_KEYS``; None if none."""
    env = _env(environ)
    path = key_file if key_file is not None else (env.get(KEY_FILE_ENV_VAR, "").strip() or None)
    if path is not None:
        return read_key_file(path)
    raw = env.get(KEYS_ENV_VAR, "").strip()
    if raw:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return None


def check_conninfo(conninfo: str) -> str:
    """Return ``conninfo`` if libpq can use it; else :class:`~waauth.ConfigurationError`.

    Checks the syntax and option names (``conninfo_to_dict``), then the option values: libpq
    checks those (``sslmode``, ``target_session_attrs``...) only when a connection starts,
    and reports a bad one like a failed connection, with no SQLSTATE. So a connection is
    started with the same options towards a closed local port and dropped at once: libpq
    fails it before it opens a socket only if an option is wrong (a TCP connection is never
    refused that early). No server is contacted and nothing is sent.
    """
    if not isinstance(conninfo, str) or not conninfo.strip():
        raise ConfigurationError("the database address is empty")
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"the database address is not valid: {_first_line(exc)}") from None
    port = str(params.get("port") or "5432")
    if not all(part.strip().isdigit() for part in port.split(",")):
        raise ConfigurationError(f"the database address is not valid: port {port!r}")
    for address in filter(None, str(params.get("hostaddr") or "").split(",")):
        try:
            ipaddress.ip_address(address.strip())
        except ValueError:
            raise ConfigurationError(
                f"the database address is not valid: hostaddr {address!r} is not an IP address"
            ) from None
    options = {k: v for k, v in params.items() if k not in _WHERE}
    problem = _refused_at_start(make_conninfo("", **options, **_NOWHERE))
    # If even no options fail there (no loopback, no sockets allowed), nothing can be told.
    if problem is not None and _refused_at_start(make_conninfo("", **_NOWHERE)) is None:
        raise ConfigurationError(f"the database address is not valid: {problem}")
    return conninfo


def _refused_at_start(conninfo: str) -> str | None:
    """libpq's error if it refuses to even start a connection, else None."""
    pgconn = pq.PGconn.connect_start(conninfo.encode())
    try:
        if pgconn.status == pq.ConnStatus.BAD:
            return pgconn.get_error_message("utf-8").strip().splitlines()[0]
        return None
    finally:
        pgconn.finish()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass(frozen=True)
class Settings:
    """What the environment configures: the database, the schema and where the keys are.

    ``repr`` shows no password and no key.
    """

    dsn: str | None = None
    """The database address (None: not configured)."""
    schema: str = DEFAULT_SCHEMA
    key_file: Path | None = None
    keys: tuple[str, ...] = ()
    plaintext: bool = False
    """The explicit opt-out of encryption (used only when no key is configured)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the variables (see the module's table); checks the DSN and the schema name."""
        env = _env(environ)
        dsn = dsn_from_env(env)
        key_file = env.get(KEY_FILE_ENV_VAR, "").strip()
        raw = env.get(KEYS_ENV_VAR, "")
        return cls(
            dsn=None if dsn is None else check_conninfo(dsn),
            schema=check_schema_name(env.get(SCHEMA_ENV_VAR, "").strip() or DEFAULT_SCHEMA),
            key_file=Path(key_file) if key_file else None,
            keys=tuple(part.strip() for part in raw.split(",") if part.strip()),
            plaintext=plaintext_from_env(env),
        )

    def require_dsn(self) -> str:
        """The address, or :class:`~waauth.ConfigurationError` naming the variables to set."""
        if self.dsn is None:
            raise ConfigurationError(
                f"no database configured: set {DSN_ENV_VARS[0]} or {DSN_ENV_VARS[1]}"
            )
        return self.dsn

    def keyring(self, *, accept_plaintext: bool = False) -> Keyring:
        """The keyring these settings name (the key file first, then the keys)."""
        from .encryption import Keyring  # noqa: PLC0415 - encryption imports this module

        env = {KEYS_ENV_VAR: ",".join(self.keys)}
        if self.plaintext:
            env[PLAINTEXT_ENV_VAR] = "1"
        return Keyring.from_env(env, key_file=self.key_file, accept_plaintext=accept_plaintext)

    def __repr__(self) -> str:
        where = "unset"
        if self.dsn is not None:
            parts = conninfo_to_dict(self.dsn)
            where = f"{parts.get('host') or 'local socket'}/{parts.get('dbname') or ''}"
        return (
            f"Settings(dsn={where!r}, schema={self.schema!r}, key_file={self.key_file!r}, "
            f"keys={len(self.keys)}, plaintext={self.plaintext})"
        )
