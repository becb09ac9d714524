"""The documented deploy journeys, run as a user copies them.

Each journey is taken from the page that documents it (README's container line, the Procfile and
start.sh of docs/cli.md, examples/node-sidecar/entrypoint.sh with its defaults), run from a temp
folder with its relative paths, with a real Baileys (the suite's write loop, started as the
user's ``node server.js``) writing into the live folder. While the watcher still runs, Baileys
is frozen (SIGSTOP) and the database must catch up with what it wrote; then the watcher is
SIGKILLed (no final push) and nothing mirrored may be lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from waauth import Keyring, layout

from . import docblocks
from .cli_support import alive, environment, wait_gone
from .test_examples import EXAMPLES, _pair_in_database
from .test_interop import INTEROP, _stored

REPO = Path(__file__).resolve().parent.parent
STEPS = 25  # Baileys steps before freezing it: every kind of write has happened by then


def _line(page: str, start: str) -> str:
    """The line of one of ``page``'s code blocks that starts with ``start``, as printed."""
    for block in docblocks.blocks(page):
        for line in block.source.splitlines():
            if line.startswith(start):
                return line
    raise AssertionError(f"{page} has no block with a line starting {start!r}")


def readme_line() -> str:
    """README's container line, as printed there."""
    return _line("README.md", "waauth pull --all ")


def procfile_line() -> str:
    """The command of docs/cli.md's Procfile (``web: ...``)."""
    return _line("docs/cli.md", "web: ")[len("web: ") :]


def start_script() -> str:
    """docs/cli.md's start.sh, as printed there."""
    found = [b.source for b in docblocks.blocks("docs/cli.md") if "\n# start.sh:" in b.source]
    assert len(found) == 1, "docs/cli.md has no start.sh block"
    return found[0]


def _command(journey: str, app: Path) -> list[str]:
    """How the user starts the journey, from the app's folder."""
    if journey in ("readme", "procfile"):
        return ["sh", "-c", readme_line() if journey == "readme" else procfile_line()]
    if journey == "start.sh":
        script = app / "start.sh"
        script.write_text(start_script())
    else:
        script = app / "entrypoint.sh"
        shutil.copy(EXAMPLES / "node-sidecar" / "entrypoint.sh", script)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return [f"./{script.name}"]


def _write_server_js(app: Path) -> None:
    """The user's bot: `node server.js` runs Baileys writing under .auth_sessions."""
    (app / "server.js").write_text(
        "// Baileys' useMultiFileAuthState under .auth_sessions/<id>, as a bot keeps it.\n"
        "process.argv.splice(2, 0, 'write-loop', '--baileys', '7', '--dir', '.auth_sessions',"
        " '--interval-ms', '30')\n"
        f"import({json.dumps((INTEROP / 'session_pair.mjs').as_uri())})\n"
    )


def _descendants(pid: int) -> Iterator[tuple[int, str]]:
    """(pid, command line) of every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if alive(child):
            yield child, cmdline


def _find(root_pid: int, needle: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, cmdline in _descendants(root_pid):
            if needle in cmdline:
                return pid
        time.sleep(0.1)
    pytest.fail(f"no process running {needle!r} under the journey")


def _lag(stored: dict[str, bytes], folder: Path) -> list[str]:
    """What the database does not hold as the folder has it (files caught torn are not owed)."""
    on_disk = {p.name: p.read_bytes() for p in folder.iterdir() if layout.is_record_file(p.name)}
    lag = sorted(set(stored) - set(on_disk))
    for name, data in on_disk.items():
        try:
            json.loads(data)
        except ValueError:
            continue  # a write cut by SIGSTOP: the mirror keeps the last whole version
        if stored.get(name) != data:
            lag.append(name)
    return lag


class Steps:
    """Baileys' `{"step": N}` lines, read as they come (so its stdout never fills up)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.last = 0
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith('{"step"'):
                self.last = json.loads(line)["step"]

    def wait_for(self, n: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.last < n:
            assert proc.poll() is None, "the journey ended before Baileys made progress"
            assert time.monotonic() < deadline, f"Baileys made only {self.last} steps"
            time.sleep(0.05)


def _waauth_lines(log: Path) -> str:
    """waauth's own lines from the journey's stderr (Node's are never shown: libsignal logs
    session records there)."""
    return "\n".join(line for line in log.read_text().splitlines() if line.startswith("waauth"))


@pytest.mark.parametrize("journey", ["readme", "procfile", "start.sh", "entrypoint.sh"])
def test_documented_journey_mirrors_while_baileys_runs(
    journey: str, node: str, pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    """pull, then watch beside a live Baileys: the database holds Baileys' writes while the
    watcher runs, and still holds them after the watcher is SIGKILLed."""
    key = Keyring.generate_key()
    ring = Keyring([key])
    root = _pair_in_database(node, pg_dsn, schema, key, tmp_path)
    app = root.parent
    _write_server_js(app)
    pulled = {party: _stored(pg_dsn, schema, party, ring) for party in ("A", "B")}
    env = environment(
        {
            "WAAUTH_DSN": pg_dsn,
            "WAAUTH_SCHEMA": schema,
            "WAAUTH_KEYS": key,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    log = tmp_path / "journey.stderr"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            _command(journey, app),
            cwd=app,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    try:
        steps = Steps(proc)
        steps.wait_for(STEPS, proc)
        watcher = _find(proc.pid, "watch .auth_sessions")
        bot = _find(proc.pid, "server.js")
        os.kill(bot, signal.SIGSTOP)  # Baileys frozen: the folder stops changing
        deadline = time.monotonic() + 30
        while True:
            stored = {party: _stored(pg_dsn, schema, party, ring) for party in ("A", "B")}
            lag = {party: _lag(stored[party], root / party) for party in ("A", "B")}
            if not any(lag.values()):
                break
            assert alive(watcher), f"the watcher died: {_waauth_lines(log)}"
            assert time.monotonic() < deadline, (
                f"{journey}: the database never caught up with Baileys while the watcher ran "
                f"(files behind: {lag}); waauth said: {_waauth_lines(log)}"
            )
            time.sleep(0.2)
        assert alive(watcher), "caught up only as the watcher ended"
        assert stored != pulled, "Baileys' writes never reached the database"
        os.kill(watcher, signal.SIGKILL)  # no final push
        assert wait_gone(watcher)
        after = {party: _stored(pg_dsn, schema, party, ring) for party in ("A", "B")}
        assert after == stored, "a write mirrored before the kill was lost"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
