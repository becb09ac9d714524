"""The examples in examples/ run as a newcomer runs them: no database configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "pre-key 1: deleted, pre-key 2: present"),
        ("asyncio_bot.py", "after a redeploy: ['session restored, no QR code needed'"),
    ],
)
def test_example_runs_on_the_embedded_default(script: str, expected: str) -> None:
    """With no WAAUTH_DSN or DATABASE_URL the example starts its own server and succeeds."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WAAUTH_DSN", "DATABASE_URL", "WAAUTH_KEYS")
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "starting an embedded PostgreSQL" in result.stdout
    assert expected in result.stdout
