"""The Node worker (bench/node/worker.mjs): Baileys' file store and postgres-baileys, in-process.

``npm ci`` runs in bench/node when its packages are missing (the versions are pinned in its
package-lock.json). The worker is started once and answers one command at a time; it measures
each store call itself, so Node's start-up is never inside a timing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

from psycopg.conninfo import conninfo_to_dict

NODE_DIR = Path(__file__).resolve().parent / "node"


def ensure_installed() -> None:
    """Install bench/node's pinned packages if they are not there yet."""
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench: npm is needed (Node >= 20) for the Baileys side of the benchmark")
    print("bench: installing bench/node's packages (npm ci) ...", flush=True)
    subprocess.run(  # noqa: S603 - a fixed command
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True
    )


def pg_config(dsn: str) -> dict[str, Any]:
    """node-postgres connection settings for a libpq DSN or URL (unix sockets included)."""
    parts = conninfo_to_dict(dsn)
    config: dict[str, Any] = {
        "host": parts.get("host") or "/var/run/postgresql",
        "database": parts.get("dbname") or parts.get("user") or "postgres",
        "user": parts.get("user") or "postgres",
    }
    if parts.get("port"):
        config["port"] = int(str(parts["port"]))
    if parts.get("password"):
        config["password"] = parts["password"]
    return config


class NodeWorker:
    """One long-lived ``node worker.mjs``."""

    def __init__(self, dsn: str) -> None:
        ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise SystemExit("bench: node (>= 20) is needed for the Baileys side of the benchmark")
        self._proc = subprocess.Popen(  # noqa: S603 - a fixed command
            [node, "worker.mjs"],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.versions: dict[str, str] = self.call("init", pg=pg_config(dsn))["versions"]

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self._proc.stdin
        stdout: IO[str] | None = self._proc.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the Node worker exited (code {self._proc.wait()}) during {cmd}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"Node worker, {cmd}: {reply['error']}")
        return reply

    def seconds(self, cmd: str, **args: Any) -> float:
        return float(self.call(cmd, **args)["seconds"])

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.call("close")
            finally:
                self._proc.wait(10)
