"""How the command shows things: plain aligned tables, sizes, ages and JSON.

Tables are plain text columns (as ``docker ps`` prints them), the same on a terminal and in a
pipe, so that ``grep`` and ``awk`` work on them; ``--json`` is the format for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def table(
    headers: Sequence[str] | None, rows: Iterable[Sequence[str]], *, right: Iterable[int] = ()
) -> str:
    """Columns separated by two spaces (no header line if ``headers`` is None); columns in
    ``right`` (indexes) are right-aligned."""
    body = ([list(headers)] if headers is not None else []) + [list(row) for row in rows]
    if not body:
        return ""
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    aligned_right = set(right)
    lines = []
    for row in body:
        cells = [
            cell.rjust(widths[i]) if i in aligned_right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that fits: ``12s ago``, ``5m ago``, ``3d ago``."""
    if moment is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length}{unit} ago"
    return f"{seconds}s ago"


def timestamp(moment: datetime | None) -> str:
    """A moment in UTC, to the second: ``2026-11-22 05:42:10 UTC``."""
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def phone(account_id: str | None) -> str | None:
    """The phone number in a ``me.id`` (``5511999999999:12@s.whatsapp.net``: ``+5511999999999``)."""
    if not account_id:
        return None
    user = account_id.split("@", 1)[0].split(":", 1)[0]
    return f"+{user}" if user.isdigit() else user


def by_type(files: dict[str, int]) -> str:
    """``{"pre-key": 812, "creds": 1}`` -> ``pre-key 812, creds 1`` (most files first)."""
    ordered = sorted(files.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ordered)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    """``value`` as indented JSON (datetimes as ISO 8601, paths as strings)."""
    return json.dumps(value, indent=2, default=_default, ensure_ascii=False)
