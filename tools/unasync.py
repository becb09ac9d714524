#!/usr/bin/env python3
"""Generate waauth's sync implementation (``src/waauth/_sync``) from the async one (``_async``).

The async code is the source; the sync twin is plain threads-and-blocking-calls code made by
token substitution (``async def`` -> ``def``, ``AsyncConnectionPool`` -> ``ConnectionPool``, ...),
then tidied by ``ruff``. A line ending in ``# async only`` is dropped. Run it after editing
anything under ``_async``; ``--check`` (run in CI) fails if the generated files are stale.

    python tools/unasync.py [--check]
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "waauth" / "_async"
TARGET = ROOT / "src" / "waauth" / "_sync"

SUBSTITUTIONS = [
    (r"\bAsyncOpener\[(\w+)\]", r"\1"),
    (r"\bAsyncOpener\((\w+)\)", r"\1"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bAsync(?=[A-Z])", ""),  # AsyncConnectionPool, AsyncPostgresAuthState, AsyncKeys, ...
    (r"\basync (def|with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__a(enter|exit)__\b", r"__\1__"),
    (r"\b_acompat\b", "_compat"),
    (r"\b_async\.", "_sync."),  # imports from outside the package (PAIRS below)
    (
        r"\ba(list_sessions|migrate|current_version|enable_row_level_security|materialize|verify_sessions)\b",
        r"\1",
    ),
    (r"\ba(condition_wait|lock_acquire|spawn|join|to_thread|pool_scope|connection)\b", r"\1"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bawatch\b", "watch"),
]
ASYNC_ONLY = re.compile(r"^.*# async only\n", re.MULTILINE)

# Async sources outside _async, each generated beside itself: waauth.testing's in-memory states
# (they build on the states, so they live above them, in waauth.testing).
TESTING = ROOT / "src" / "waauth" / "testing"
PAIRS = [(TESTING / "_async_memory.py", TESTING / "_sync_memory.py")]


def header(source: Path) -> str:
    name = source.relative_to(ROOT / "src").as_posix()
    return (
        f"# WARNING: generated from {name} by tools/unasync.py; do not edit.\n"
        "# Edit the async source, then run: python tools/unasync.py\n"
    )


def unasync(text: str) -> str:
    text = ASYNC_ONLY.sub("", text)
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text)
    return text


def ruff(text: str, target: Path) -> str:
    """Sort imports, drop unused ones and format, as the lint step expects."""
    for args in (["check", "--fix-only", "--select", "I,F401", "--quiet"], ["format", "--quiet"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(target), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return text


def generate() -> dict[Path, str]:
    out = {}
    for source in sorted(SOURCE.glob("*.py")):
        text = source.read_text(encoding="utf-8")
        if source.name == "__init__.py":
            text = '"""The sync implementation, generated from ``waauth/_async``."""\n'
        else:
            text = header(source) + unasync(text)
        out[TARGET / source.name] = ruff(text, TARGET / source.name)
    for source, target in PAIRS:
        out[target] = ruff(header(source) + unasync(source.read_text(encoding="utf-8")), target)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args()
    generated = generate()
    stale = []
    for path, text in generated.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        stale.append(path)
        if args.check:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                str(path.relative_to(ROOT)),
                "generated",
            )
            sys.stdout.writelines(diff)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    extra = sorted(set(TARGET.glob("*.py")) - set(generated))
    for path in extra:
        print(f"{path.relative_to(ROOT)} has no async source")
    if args.check and (stale or extra):
        print(f"{len(stale)} generated file(s) are stale: run python tools/unasync.py")
        return 1
    if not args.check:
        print(f"wrote {len(stale)} file(s)")
    return 1 if extra else 0


if __name__ == "__main__":
    sys.exit(main())
