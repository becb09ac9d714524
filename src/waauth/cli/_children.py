"""One child process per session, for ``waauth fleet --exec``: started, restarted, stopped.

Every child is started and stopped by one long-lived thread. On Linux a child gets SIGKILL when
the thread that started it ends (``PR_SET_PDEATHSIG``), so a fleet killed with SIGKILL takes
its children with it: a replica that died must not leave a Baileys process running a session
that another replica is about to take over.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("waauth.fleet")

RESTART_DELAY = 5.0
"""Seconds before a child that exited on its own is started again (its session is still held)."""

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child must not import or lock anything between fork and exec.
_LIBC: Any = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child, between fork and exec: SIGKILL when the starting thread ends."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def command_for(template: str, session_id: str, folder: Path) -> list[str]:
    """The argv of a session's child: ``{session}`` and ``{folder}`` replaced in each word."""
    return [
        word.replace("{session}", session_id).replace("{folder}", str(folder))
        for word in shlex.split(template)
    ]


class Children:
    """The child processes of the sessions a fleet runs, one per session."""

    def __init__(self, template: str, *, stop_timeout: float) -> None:
        self._template = template
        self._stop_timeout = stop_timeout
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._folders: dict[str, Path] = {}
        self._exited: dict[str, float] = {}
        self._requests: queue.Queue[tuple[Callable[[], None], threading.Event] | None]
        self._requests = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="waauth-children", daemon=True)
        self._thread.start()

    # -- the fleet's callbacks (any thread) ----------------------------------------------------

    def claimed(self, session_id: str, folder: Path) -> None:
        """Start the session's child."""
        self._call(lambda: self._start(session_id, folder))

    def lost(self, session_id: str) -> None:
        """Stop the session's child (SIGTERM, SIGKILL after the timeout); return once it exited."""
        self._call(lambda: self._stop([session_id]))

    def stop_all(self) -> None:
        """Stop every child at once (a shutdown), each given the same timeout."""
        self._call(lambda: self._stop(list(self._procs)))

    def running(self) -> dict[str, int]:
        """Session -> pid of its running child."""
        return {s: p.pid for s, p in list(self._procs.items()) if p.poll() is None}

    def close(self) -> None:
        """Stop every child, then the thread that started them."""
        self.stop_all()
        self._requests.put(None)
        self._thread.join(self._stop_timeout + 5)

    # -- the children's thread -----------------------------------------------------------------

    def _call(self, action: Callable[[], None]) -> None:
        done = threading.Event()
        self._requests.put((action, done))
        done.wait()

    def _serve(self) -> None:
        while True:
            try:
                request = self._requests.get(timeout=0.5)
            except queue.Empty:
                self._restart_exited()
                continue
            if request is None:
                return
            action, done = request
            try:
                action()
            except Exception:
                logger.exception("fleet: a child could not be started or stopped")
            finally:
                done.set()

    def _start(self, session_id: str, folder: Path) -> None:
        argv = command_for(self._template, session_id, folder)
        env = dict(os.environ, WAAUTH_SESSION=session_id, WAAUTH_SESSION_DIR=str(folder))
        try:
            proc = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509 - the operator's own command
        except OSError as exc:
            # Kept as exited: tried again after the restart delay.
            logger.error("fleet: cannot start %s for session %s: %s", argv[0], session_id, exc)
            self._folders[session_id] = folder
            self._exited[session_id] = time.monotonic()
            return
        self._procs[session_id] = proc
        self._folders[session_id] = folder
        self._exited.pop(session_id, None)
        logger.info("fleet: session %s: started pid %d", session_id, proc.pid)

    def _stop(self, session_ids: list[str]) -> None:
        procs = []
        for session_id in session_ids:
            self._folders.pop(session_id, None)
            self._exited.pop(session_id, None)
            proc = self._procs.pop(session_id, None)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                procs.append((session_id, proc))
        deadline = time.monotonic() + self._stop_timeout
        for session_id, proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning(
                    "fleet: session %s: pid %d ignored SIGTERM for %.0f s; killed",
                    session_id,
                    proc.pid,
                    self._stop_timeout,
                )
                proc.kill()
                proc.wait()
            logger.info("fleet: session %s: stopped pid %d", session_id, proc.pid)

    def _restart_exited(self) -> None:
        now = time.monotonic()
        for session_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is not None:
                logger.warning(
                    "fleet: session %s: pid %d exited with %d; restarting in %.0f s",
                    session_id,
                    proc.pid,
                    code,
                    RESTART_DELAY,
                )
                del self._procs[session_id]
                self._exited[session_id] = now
        for session_id, since in list(self._exited.items()):
            if now - since >= RESTART_DELAY:
                self._start(session_id, self._folders[session_id])
