"""Where the figures come from: CPU, memory, load, versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psycopg

import waauth


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.0f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load unknown"


def describe(dsn: str, node_versions: dict[str, str]) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('fsync', 'synchronous_commit', 'shared_buffers', 'full_page_writes')"
            ).fetchall()
        )
    server = row[0] if row else "?"
    shared = int(settings.get("shared_buffers", "0")) * 8 // 1024
    where = "WAAUTH_BENCH_DSN" if os.environ.get("WAAUTH_BENCH_DSN") else "embedded"
    return (
        "## Machine\n\n"
        f"- {_cpu_model()}, {os.cpu_count()} cores ({platform.machine()}), {_memory()}, "
        f"Linux {platform.release()}; {_load()} at the start\n"
        f"- Python {platform.python_version()}, psycopg {psycopg.__version__}, "
        f"waauth {waauth.__version__}\n"
        f"- Node {node_versions['node']}, @whiskeysockets/baileys {node_versions['baileys']}, "
        f"postgres-baileys {node_versions['postgresBaileys']}, pg {node_versions['pg']}\n"
        f"- PostgreSQL {server} ({where}; fsync {settings.get('fsync')}, synchronous_commit "
        f"{settings.get('synchronous_commit')}, full_page_writes "
        f"{settings.get('full_page_writes')}, shared_buffers {shared} MB)"
    )
