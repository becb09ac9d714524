"""Prometheus metrics and a health check for states and mirrors (``pip install 'waauth[metrics]'``).

:class:`WaauthCollector` turns the ``stats()`` of every state and mirror it is given into
metric families at each scrape; nothing is counted twice and nothing runs between scrapes.
:func:`serve` starts the HTTP endpoint ``waauth watch --metrics`` uses: ``/metrics`` in
Prometheus' text format and ``/healthz``. Metric names are listed in ``docs/operations.md``.
No metric or label holds a secret: labels are session ids only.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, exposition
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from ._mirroring import MirrorStats
from ._pending import Stats

__all__ = [
    "LAG_BUCKETS",
    "CollectorRegistry",
    "Health",
    "MetricsServer",
    "WaauthCollector",
    "ask_health",
    "health",
    "serve",
]

LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the mirror-lag histogram."""

DEFAULT_MAX_PENDING: Final = 60.0
"""``/healthz`` fails once a change has waited this long for its commit."""


class _State(Protocol):
    session_id: str

    def stats(self) -> Stats: ...


class _Mirror(Protocol):
    def stats(self) -> MirrorStats: ...


class _Histogram:
    """Cumulative bucket counts of the lags drained so far."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        index = next((i for i, b in enumerate(self.bounds) if seconds <= b), len(self.bounds))
        self.counts[index] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class WaauthCollector(Collector):
    """Expose states' and mirrors' ``stats()`` to a ``prometheus_client`` registry.

    ``registry.register(collector)``, then :meth:`add_state` / :meth:`add_mirror` (and
    :meth:`remove_state` when a state closes). Thread-safe. A mirror that has
    ``drain_lags()`` (:class:`waauth.Mirror` does) feeds the lag histogram at each scrape.
    """

    def __init__(self, *, lag_buckets: tuple[float, ...] = LAG_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._mirrors: list[_Mirror] = []
        self._lags = _Histogram(tuple(lag_buckets))
        self._restore: tuple[float, int] | None = None

    def add_state(self, state: _State) -> None:
        """Report this open state (sync or async) under its session id."""
        with self._lock:
            self._states[state.session_id] = state

    def remove_state(self, state: _State) -> None:
        with self._lock:
            if self._states.get(state.session_id) is state:
                del self._states[state.session_id]

    def add_mirror(self, mirror: _Mirror) -> None:
        with self._lock:
            self._mirrors.append(mirror)

    def observe_restore(self, seconds: float, sessions: int) -> None:
        """Record how long the last restore (``materialize``, ``pull --all``) took."""
        with self._lock:
            self._restore = (seconds, sessions)

    def collect(self) -> Iterator[Any]:
        with self._lock:
            states = sorted(self._states.items())
            mirrors = list(self._mirrors)
            restore = self._restore
            for mirror in mirrors:
                drain = getattr(mirror, "drain_lags", None)
                for _session, seconds in drain() if drain is not None else ():
                    self._lags.observe(seconds)
            lag_buckets, lag_sum = self._lags.buckets(), self._lags.total
        mirror_stats = [m.stats() for m in mirrors]
        yield from _write_families(states, mirror_stats)
        yield from _mirror_families(mirror_stats)
        yield HistogramMetricFamily(
            "waauth_mirror_lag_seconds",
            "Seconds from a file change seen by the mirror to its commit.",
            buckets=lag_buckets,
            sum_value=lag_sum,
        )
        seconds = GaugeMetricFamily(
            "waauth_restore_seconds", "How long the last restore of session folders took."
        )
        count = GaugeMetricFamily("waauth_restore_sessions", "Sessions the last restore wrote.")
        if restore is not None:
            seconds.add_metric([], restore[0])
            count.add_metric([], restore[1])
        yield seconds
        yield count


def _write_families(states: list[tuple[str, _State]], mirrors: list[MirrorStats]) -> Iterable[Any]:
    labels = ["source", "session"]
    active = GaugeMetricFamily(
        "waauth_sessions_active", "Sessions open (states) or mirrored.", labels=["source"]
    )
    active.add_metric(["state"], len(states))
    active.add_metric(["mirror"], sum(m.sessions for m in mirrors))
    writes = CounterMetricFamily(
        "waauth_writes",
        "Writes committed (state transactions, mirror session pushes).",
        labels=labels,
    )
    failures = CounterMetricFamily(
        "waauth_write_failures", "Writes that gave up (state) or failed (mirror).", labels=labels
    )
    retries = CounterMetricFamily("waauth_write_retries", "Retried attempts.", labels=["session"])
    records = CounterMetricFamily(
        "waauth_records_written", "Records upserted or deleted.", labels=labels
    )
    pending = GaugeMetricFamily(
        "waauth_pending_records", "Records saved, not yet in the database.", labels=["session"]
    )
    outage = GaugeMetricFamily(
        "waauth_outage_seconds",
        "How long the current outage has lasted (0: none).",
        labels=["session"],
    )
    recovery = GaugeMetricFamily(
        "waauth_last_recovery_seconds", "How long the last outage lasted.", labels=["session"]
    )
    lease = GaugeMetricFamily(
        "waauth_lease_held",
        "1 while the state holds its session's lease, 0 once lost.",
        labels=["session"],
    )
    for session_id, state in states:
        s = state.stats()
        writes.add_metric(["state", session_id], s.writes)
        failures.add_metric(["state", session_id], s.failures)
        records.add_metric(["state", session_id], s.records_written)
        retries.add_metric([session_id], s.retries)
        pending.add_metric([session_id], s.pending)
        outage.add_metric([session_id], s.outage_seconds or 0.0)
        if s.last_recovery_seconds is not None:
            recovery.add_metric([session_id], s.last_recovery_seconds)
        held = getattr(state, "lease_held", None)
        if held is not None:
            lease.add_metric([session_id], 1.0 if held else 0.0)
    for m in mirrors:
        writes.add_metric(["mirror", ""], m.pushes)
        failures.add_metric(["mirror", ""], m.failures)
        records.add_metric(["mirror", ""], m.files_pushed + m.files_deleted)
    return [active, writes, failures, retries, records, pending, outage, recovery, lease]


def _mirror_families(mirrors: list[MirrorStats]) -> Iterable[Any]:
    oldest = [m.oldest_pending for m in mirrors if m.oldest_pending is not None]
    values: list[tuple[str, str, float, bool]] = [
        (
            "watching",
            "1 while every mirror's watcher is alive.",
            float(all(m.watching for m in mirrors)),
            False,
        ),
        (
            "watcher_failures",
            "Watcher failures.",
            float(sum(m.watcher_failures for m in mirrors)),
            True,
        ),
        (
            "watcher_restarts",
            "Watcher restarts.",
            float(sum(m.watcher_restarts for m in mirrors)),
            True,
        ),
        (
            "pending_sessions",
            "Sessions with changes not committed yet.",
            float(sum(m.pending_sessions for m in mirrors)),
            False,
        ),
        (
            "oldest_pending_seconds",
            "Age of the oldest uncommitted change (0: none).",
            max(oldest, default=0.0),
            False,
        ),
        (
            "broken_files",
            "Files caught half-written or unparsable.",
            float(sum(len(m.broken) for m in mirrors)),
            False,
        ),
        (
            "sessions_refused",
            "Sessions not mirrored (another account, lease lost).",
            float(sum(len(m.refused) for m in mirrors)),
            False,
        ),
        (
            "sessions_held_elsewhere",
            "Sessions whose lease another live process holds.",
            float(sum(len(m.held_elsewhere) for m in mirrors)),
            False,
        ),
    ]
    families: list[Any] = []
    for name, doc, value, is_counter in values:
        kind = CounterMetricFamily if is_counter else GaugeMetricFamily
        family = kind(f"waauth_mirror_{name}", doc)
        if mirrors:
            family.add_metric([], value)
        families.append(family)
    return families


@dataclass(frozen=True)
class Health:
    """The answer of ``/healthz``: healthy, and why not (one reason a line)."""

    healthy: bool
    reasons: tuple[str, ...] = ()

    def body(self) -> str:
        return "ok\n" if self.healthy else "".join(f"{r}\n" for r in self.reasons)


def health(stats: MirrorStats, *, max_pending: float = DEFAULT_MAX_PENDING) -> Health:
    """Healthy while the watcher is alive and no change has waited ``max_pending`` seconds."""
    reasons = []
    if not stats.watching:
        reasons.append("the watcher is not running: file changes are not mirrored")
    if stats.oldest_pending is not None and stats.oldest_pending >= max_pending:
        failing = f" (failing: {', '.join(stats.failing)})" if stats.failing else ""
        last = f"; last error: {stats.last_error}" if stats.last_error else ""
        reasons.append(
            f"{stats.pending_sessions} session(s) with changes not committed, the oldest "
            f"for {stats.oldest_pending:.0f} s (limit {max_pending:.0f} s){failing}{last}"
        )
    return Health(not reasons, tuple(reasons))


class MetricsServer:
    """A running ``/metrics`` + ``/healthz`` endpoint (see :func:`serve`); :meth:`close` it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def serve(
    host: str,
    port: int,
    registry: CollectorRegistry,
    mirror: _Mirror | None = None,
    *,
    max_pending: float = DEFAULT_MAX_PENDING,
) -> MetricsServer:
    """Serve ``/metrics`` from ``registry`` and ``/healthz`` from ``mirror`` in a thread.

    ``/healthz`` answers 200 ``ok`` or 503 with the reasons (see :func:`health`); without a
    mirror it is always healthy. Port 0 picks a free port (see :attr:`MetricsServer.address`).
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                status, ctype = 200, exposition.CONTENT_TYPE_LATEST
                body = exposition.generate_latest(registry)
            elif path == "/healthz":
                verdict = (
                    Health(True)
                    if mirror is None
                    else health(mirror.stats(), max_pending=max_pending)
                )
                status = 200 if verdict.healthy else 503
                ctype, body = "text/plain; charset=utf-8", verdict.body().encode()
            else:
                status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape would drown the mirror's own log

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="waauth-metrics", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)


def ask_health(url: str, timeout: float) -> Health:
    """Ask a running ``/healthz`` (``waauth health``): its verdict, or unhealthy if no answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http only)
            return Health(True, (response.read().decode(errors="replace").strip(),))
    except urllib.error.HTTPError as exc:
        reasons = exc.read().decode(errors="replace").strip().splitlines()
        return Health(False, tuple(reasons) or (f"HTTP {exc.code}",))
    except (OSError, ValueError) as exc:
        return Health(False, (f"no answer from {url}: {exc}",))
