"""Hooks on waauth's I/O path, for ``waauth.testing``: empty, hence free, in production."""

from __future__ import annotations

from collections.abc import Callable

attempt_hooks: list[Callable[[object], None]] = []
"""Called with the database object before each attempt; a hook may raise a psycopg error."""


def before_attempt(db: object) -> None:
    """Run the attempt hooks (none outside tests)."""
    for hook in attempt_hooks:
        hook(db)
