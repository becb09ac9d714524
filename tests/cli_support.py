"""Running the ``waauth`` command in a subprocess (``python -m waauth``), as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Settings of the developer's shell that must not leak into a test's command.
_ISOLATED = (
    "WAAUTH_DSN",
    "DATABASE_URL",
    "WAAUTH_KEYS",
    "WAAUTH_KEY_FILE",
    "WAAUTH_INSECURE_PLAINTEXT",
    "WAAUTH_DATA_DIR",
    "WAAUTH_SCHEMA",
)


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without waauth's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATED}
    env.update(extra or {})
    return env


@dataclass
class Result:
    """What a finished command printed and returned."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)

    @property
    def errors(self) -> list[str]:
        """The ``waauth: error:`` lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("waauth: error:")]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run ``python -m waauth ARGS`` to the end, with no terminal and no input."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "waauth", *args],
        capture_output=True,
        text=True,
        env=environment(env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


@dataclass
class Cli:
    """The command bound to a test's server, schema and key."""

    dsn: str
    schema: str
    key: str | None
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, key: str | None = "", **env: str) -> Result:
        """Run a subcommand; ``key`` overrides the keys (None: no WAAUTH_KEYS at all)."""
        return run(*self.args(*args), env=self.environment(key, env))

    def args(self, *args: str) -> list[str]:
        """Global options for this server and schema, then ``args``."""
        return ["--dsn", self.dsn, "--schema", self.schema, *args]

    def environment(
        self, key: str | None = "", env: dict[str, str] | None = None
    ) -> dict[str, str]:
        """The variables a command of this test runs with."""
        keys = self.key if key == "" else key
        out = dict(self.env)
        if keys is not None:
            out["WAAUTH_KEYS"] = keys
        out.update(env or {})
        return out


class Background:
    """``python -m waauth ARGS`` running in the background; its stderr is collected."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "waauth", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=environment(env),
            cwd=cwd,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    @property
    def stderr(self) -> str:
        """Everything written to stderr so far."""
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        """Wait until stderr shows ``text``; fail if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in "".join(self._lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"never printed {text!r}; stderr: {''.join(self._lines)}")
                self._changed.wait(min(left, 0.2))

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """Wait for the end: (exit status, stdout, stderr)."""
        stdout = self.proc.stdout.read() if self.proc.stdout is not None else ""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        self._close_pipes()
        return code, stdout, self.stderr

    def kill(self) -> None:
        """Make sure it is gone and its pipes closed (cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


def postgres_processes(data_dir: Path) -> list[int]:
    """Live processes whose command line names ``data_dir`` (a server left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in cmdline and "postgres" in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid in ``data_dir/postmaster.pid`` (None when no server runs there)."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_gone(pid: int, timeout: float = 15) -> bool:
    """Wait for a process to end; whether it did."""
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)
