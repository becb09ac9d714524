"""Prometheus metrics and /healthz: scraped over real HTTP, parsed by prometheus_client's parser.

The mirror and the states are real (a real server, real files); `watch --metrics` runs as a
process a user starts, against a server this test owns and stops.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import waauth
from waauth import Keyring, metrics

from .cli_support import Background, run
from .golden import golden
from .servers import OwnServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str) -> tuple[int, str]:
    """GET ``url``: (status, body), errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> Samples:
    """Every sample of ``base/metrics``, parsed by prometheus_client's own parser."""
    status, text = get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_until(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root with one session folder real Baileys wrote."""
    folder = tmp_path / "sessions"
    shutil.copytree(golden("baileys7").folder, folder / "user_1")
    return folder


@pytest.fixture
def served(
    pg_dsn: str, schema: str, keyring: Keyring, root: Path
) -> Iterator[tuple[str, waauth.Mirror, waauth.PostgresAuthState]]:
    """A mirror of ``root`` and an open state, their collector, served on a free port."""
    registry = CollectorRegistry()
    collector = metrics.WaauthCollector()
    registry.register(collector)
    with (
        waauth.Mirror(pg_dsn, root, keyring=keyring, schema=schema, window=0.2) as mirror,
        waauth.PostgresAuthState.open(
            pg_dsn, "bot_1", keyring=keyring, schema=schema, lease=True
        ) as state,
    ):
        collector.add_mirror(mirror)
        collector.add_state(state)
        collector.observe_restore(1.5, 1)
        server = metrics.serve("127.0.0.1", 0, registry, mirror, max_pending=60)
        try:
            host, port = server.address
            yield f"http://{host}:{port}", mirror, state
        finally:
            server.close()


def test_metrics_scrape(
    served: tuple[str, waauth.Mirror, waauth.PostgresAuthState], root: Path
) -> None:
    """/metrics holds the state's and the mirror's figures, and the lag of a real change."""
    base, mirror, state = served
    state.keys.set({"pre-key": {"1": {"private": b"\x01" * 32, "public": b"\x02" * 32}}})
    state.flush()
    (root / "user_1" / "pre-key-99.json").write_bytes(
        (root / "user_1" / "pre-key-3.json").read_bytes()
    )
    wait_until(lambda: mirror.stats().files_pushed > len(golden("baileys7").files()), what="push")
    samples = wait_until(
        lambda: (s := scrape(base))[("waauth_mirror_lag_seconds_count", ())] >= 1 and s,
        what="a lag observation",
    )
    excerpt = sorted(
        f"{n}{dict(labels)} {v}" for (n, labels), v in samples.items() if n.startswith("waauth_")
    )
    print("\n".join(excerpt))
    stats = state.stats()
    assert (
        samples[("waauth_writes_total", (("session", "bot_1"), ("source", "state")))]
        == stats.writes
        >= 1
    )
    assert (
        samples[("waauth_write_failures_total", (("session", "bot_1"), ("source", "state")))] == 0
    )
    assert samples[("waauth_sessions_active", (("source", "state"),))] == 1
    assert samples[("waauth_sessions_active", (("source", "mirror"),))] == 1
    assert (
        samples[("waauth_writes_total", (("session", ""), ("source", "mirror")))]
        == mirror.stats().pushes
        >= 2
    )
    assert samples[("waauth_lease_held", (("session", "bot_1"),))] == 1
    assert samples[("waauth_mirror_watching", ())] == 1
    assert samples[("waauth_restore_seconds", ())] == 1.5
    assert samples[("waauth_mirror_lag_seconds_bucket", (("le", "+Inf"),))] >= 1
    assert 0 < samples[("waauth_mirror_lag_seconds_sum", ())] < 30
    # Drained observations stay counted: a second scrape does not lose them.
    assert scrape(base)[("waauth_mirror_lag_seconds_count", ())] >= 1


def test_healthz_fails_when_the_watcher_dies(
    served: tuple[str, waauth.Mirror, waauth.PostgresAuthState],
) -> None:
    """200 while the watcher runs; 503 saying why once it has died (injected: it is told to
    stop while the mirror itself stays open, as a crashed watcher thread would leave it)."""
    base, mirror, _state = served
    assert get(f"{base}/healthz") == (200, "ok\n")
    mirror._stop.set()  # the injected failure: the watcher thread ends
    _status, body = wait_until(
        lambda: (r := get(f"{base}/healthz"))[0] == 503 and r, what="/healthz turning 503"
    )
    print(body)
    assert "the watcher is not running" in body
    assert scrape(base)[("waauth_mirror_watching", ())] == 0


def test_health_verdicts() -> None:
    """Pending changes fail health only past the limit, and the body says why."""
    fresh = waauth.MirrorStats(watching=True, pending_sessions=1, oldest_pending=5.0)
    assert metrics.health(fresh, max_pending=60).healthy
    old = waauth.MirrorStats(
        watching=True, pending_sessions=2, oldest_pending=75.0, last_error="StoreUnavailable"
    )
    verdict = metrics.health(old, max_pending=60)
    assert not verdict.healthy
    assert verdict.body() == (
        "2 session(s) with changes not committed, the oldest for 75 s (limit 60 s); "
        "last error: StoreUnavailable\n"
    )


def test_watch_metrics_with_the_database_stopped(
    own_server: OwnServer, root: Path, tmp_path: Path
) -> None:
    """`waauth watch --metrics` serves both endpoints; with the database stopped, a change
    stays uncommitted and /healthz and `waauth health` turn unhealthy, then healthy again
    once the server is back. The watch is then SIGKILLed."""
    port = free_port()
    key = Keyring.generate_key()
    env = {"WAAUTH_KEYS": key, "WAAUTH_METRICS": f"127.0.0.1:{port}"}
    pulled = tmp_path / "pulled"
    assert run("--dsn", own_server.dsn, "push", "--all", str(root), env=env).returncode == 0
    assert run("--dsn", own_server.dsn, "pull", "--all", str(pulled), env=env).returncode == 0
    watch = Background(
        "--dsn",
        own_server.dsn,
        "--wait",
        "2",
        "watch",
        str(pulled),
        "--window",
        "0.2",
        "--max-pending",
        "3",
        env=env,
    )
    try:
        watch.wait_for("watching 1 session folder", timeout=60)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: get(f"{base}/healthz") == (200, "ok\n"), what="healthy")
        samples = scrape(base)
        assert samples[("waauth_mirror_watching", ())] == 1
        assert 0 < samples[("waauth_restore_seconds", ())] < 30
        assert samples[("waauth_restore_sessions", ())] == 1
        healthy = run("health", env={"WAAUTH_METRICS": f"127.0.0.1:{port}"})
        assert healthy.returncode == 0, healthy.stderr

        own_server.stop("immediate")
        (pulled / "user_1" / "pre-key-99.json").write_bytes(
            (pulled / "user_1" / "pre-key-3.json").read_bytes()
        )
        _status, body = wait_until(
            lambda: (r := get(f"{base}/healthz"))[0] == 503 and r, what="/healthz 503"
        )
        print(body)
        assert "1 session(s) with changes not committed" in body
        sick = run("health", "--metrics", f"127.0.0.1:{port}")
        assert sick.returncode == 1
        assert "changes not committed" in sick.stderr
        assert scrape(base)[("waauth_mirror_pending_sessions", ())] == 1

        own_server.start()
        wait_until(lambda: get(f"{base}/healthz") == (200, "ok\n"), what="healthy again")
    finally:
        watch.kill()  # SIGKILL: nothing above relied on a clean shutdown
    # Nothing listens any more: the probe fails.
    assert run("health", "--metrics", f"127.0.0.1:{port}", "--timeout", "2").returncode == 1
