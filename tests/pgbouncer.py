"""A PgBouncer in transaction pooling mode, started by a test in front of the test server.

Transaction mode is what Supabase, Railway and many hosts put in front of Postgres: a client
gets a server connection per transaction, so session state (session advisory locks, prepared
statements, SET without LOCAL) does not survive between transactions.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """``PgBouncer(target_dsn)``: ``.dsn`` reaches the target's database through the bouncer."""

    def __init__(self, target_dsn: str) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            raise FileNotFoundError("pgbouncer")
        info = conninfo_to_dict(target_dsn)
        host = str(info.get("host") or "127.0.0.1")
        port = str(info.get("port") or "5432")
        dbname = str(info.get("dbname") or "postgres")
        user = str(info.get("user") or "postgres")
        self.dir = Path(tempfile.mkdtemp(prefix="wa-bouncer-", dir="/tmp"))
        listen = _free_port()
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"""[databases]
{dbname} = host={host} port={port} dbname={dbname} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir / "userlist.txt"}
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir / "pgbouncer.log"}
pidfile = {self.dir / "pgbouncer.pid"}
"""
        )
        command = [binary, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root. An embedded server's socket lives in a folder
            # only its own system user may enter, so run as that user for it.
            run_as = "embedded_postgres" if host.startswith("/") else "postgres"
            import pwd  # noqa: PLC0415 - POSIX only

            entry = pwd.getpwnam(run_as)
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command += ["-u", run_as]
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.dsn = f"postgresql://{user}@127.0.0.1:{listen}/{dbname}"
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    log = (
                        (self.dir / "pgbouncer.log").read_text()
                        if (self.dir / "pgbouncer.log").exists()
                        else ""
                    )
                    self.close()
                    raise RuntimeError(f"PgBouncer did not start: {log[-2000:]}") from None
                time.sleep(0.1)

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
