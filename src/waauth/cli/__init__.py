"""The ``waauth`` command: ``main(argv)`` runs it and returns its exit status.

Exit status: 0 ok, 1 error, 2 usage error, 3 a session's lease is held by another process,
4 the database is unavailable, 130 interrupted (128 + the signal for SIGTERM and SIGHUP).
Errors print one line; ``--debug`` adds the traceback. See ``docs/cli.md``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click

from ..errors import StoreUnavailable, WaauthError
from ._app import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_LEASE_HELD,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    App,
    Terminated,
    exit_code,
    line_start,
)
from ._commands import cli

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_LEASE_HELD",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "cli",
    "exit_code",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``waauth`` with ``argv`` (default: the process's arguments); return the exit status.

    Whatever happens (an error, Ctrl-C, SIGTERM), an embedded server this command started is
    stopped before it returns.
    """
    app = App()
    app.signals.install()
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        status = cli.main(args=args, prog_name="waauth", standalone_mode=False, obj=app)
        return status if isinstance(status, int) else EXIT_OK
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C (and end of input at a prompt) into Abort.
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _fail(app, "interrupted", EXIT_INTERRUPTED)
        return _fail(app, "aborted", EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, Terminated) as exc:
        return _fail(
            app, "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc), exit_code(exc)
        )
    except StoreUnavailable as exc:
        where = app.known_database()
        return _fail(app, f"{exc}{f' ({where})' if where else ''}", exit_code(exc))
    except WaauthError as exc:
        return _fail(app, str(exc), exit_code(exc))
    except Exception as exc:
        # Not a waauth error: a bug or the system (a folder not writable...). Still one line.
        return _fail(app, f"{type(exc).__name__}: {exc}", EXIT_ERROR)
    finally:
        try:
            app.close()
        except Exception as exc:  # the command's own status matters more
            click.echo(f"waauth: warning: stopping the embedded server: {exc}", err=True)
        finally:
            app.signals.restore()


def _fail(app: App, message: str, status: int) -> int:
    if app.debug:
        traceback.print_exc()
    click.echo(f"{line_start()}waauth: error: {message}", err=True)
    return status
