"""Access to the session folders written by real Baileys (tests/data/golden/, see tests/interop)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "data" / "golden"
VERSIONS = ("baileys6", "baileys7")


@dataclass(frozen=True)
class Golden:
    """One Baileys version's session folder and what its generator recorded about it."""

    version: str
    folder: Path
    manifest: dict[str, Any]

    def files(self) -> dict[str, bytes]:
        """Every file of the session folder, name -> exact bytes."""
        return {p.name: p.read_bytes() for p in sorted(self.folder.iterdir())}


@cache
def golden(version: str) -> Golden:
    root = GOLDEN / version
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return Golden(version, root / manifest["session_dir"], manifest)
