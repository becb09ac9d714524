"""The code blocks of README.md and docs/*.md, run as written (Sybil).

One rule for every fenced block of those pages:

- A block whose first line (after a ``#!`` line) is ``# fragment: <why>`` is a fragment: it
  is shown, never run (a Python or shell fragment must still parse). The marker is visible to
  readers, so a fragment is never copy-paste bait.
- A Python block whose first line names a file (``# bot.py``) is a file of an example project;
  the tests that build that project (tests/test_testing.py) take it from here. It must parse.
- Every other ``python`` block runs, in order, in one namespace per page; every other ``sh``
  block runs in bash (``set -eu``). Blocks of a page share a fresh empty folder (the current
  directory), a database of their own (``WAAUTH_DSN``) and a fresh key (``WAAUTH_KEYS``), and the
  ``waauth`` command under test is on ``PATH``.
- A block in any other language must be a fragment.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

ROOT: Final = Path(__file__).resolve().parents[1]
PAGES: Final = ("README.md", "docs/*.md")

FRAGMENT: Final = re.compile(r"#\s*fragment:\s*\S")
PROJECT_FILE: Final = re.compile(r"#\s*([\w./-]+\.py)\s*$")
SHELL_TIMEOUT: Final = 300.0


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, as Sybil found it."""

    language: str
    source: str
    line: int

    @property
    def first_line(self) -> str:
        """The line that may mark the block (after a ``#!`` line, which must stay first)."""
        lines = self.source.split("\n", 2)
        if lines[0].startswith("#!") and len(lines) > 1:
            return lines[1].strip()
        return lines[0].strip()

    @property
    def kind(self) -> str:
        """``fragment``, ``file`` (of an example project) or ``run``."""
        if FRAGMENT.match(self.first_line):
            return "fragment"
        if self.language == "python" and PROJECT_FILE.fullmatch(self.first_line):
            return "file"
        return "run"


def _check_syntax(block: Block, path: str) -> None:
    if block.language == "python":
        ast.parse(block.source, filename=path)
    elif block.language == "sh":
        done = subprocess.run(
            ["bash", "-n"], input=block.source, text=True, capture_output=True, check=False
        )
        if done.returncode:
            raise AssertionError(
                f"{path}:{block.line}: shell fragment does not parse:\n{done.stderr}"
            )


_python = PythonEvaluator()


shell_env: dict[str, str | None] = {}
"""Changes to the environment of a page's shell blocks (set by the page's fixture; None
removes a variable)."""


def _run_shell(example: Example) -> None:
    env = os.environ.copy()
    for name, value in shell_env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    done = subprocess.run(
        ["bash", "-c", "set -eu\n" + str(example.parsed)],
        cwd=os.getcwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )
    if done.returncode:
        # Only stderr and the exit status: a block may print a key on stdout.
        raise AssertionError(
            f"{example.path}:{example.line}: the shell block exited {done.returncode}\n"
            f"stderr:\n{done.stderr[-3000:]}"
        )


def evaluate(example: Example) -> None:
    """Run or check one block, per the rule in this module's docstring."""
    __tracebackhide__ = True
    block: Block = example.region.lexemes["block"]
    kind = block.kind
    if kind in ("fragment", "file"):
        _check_syntax(block, example.path)
        if kind == "fragment" or block.language != "python":
            return
        # A file of an example project: keep it where the page's blocks run.
        Path(PROJECT_FILE.fullmatch(block.first_line)[1]).write_text(  # type: ignore[index]
            block.source, encoding="utf-8"
        )
        return
    if block.language == "python":
        _python(example)
    elif block.language == "sh":
        _run_shell(example)
    else:
        raise AssertionError(
            f"{example.path}:{example.line}: a {block.language or 'plain'} block cannot run: "
            "start it with '# fragment: <why>'"
        )


class BlockParser:
    """Every fenced block, whatever its language (MyST directives such as ``{toctree}``
    excepted)."""

    def __init__(self) -> None:
        self._lexer = FencedCodeBlockLexer(
            language=r"[^\n]*", mapping={"language": "language", "source": "source"}
        )

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in self._lexer(document):
            language = str(region.lexemes["language"]).strip().split(" ")[0]
            if language.startswith("{"):
                continue  # a MyST directive: Sphinx renders it, it is not code
            line = document.text.count("\n", 0, region.start) + 1
            region.lexemes["block"] = Block(language, str(region.lexemes["source"]), line)
            region.parsed = region.lexemes["source"]
            region.evaluator = evaluate
            yield region


def sybil(**kwargs: object) -> Sybil:
    """The Sybil that collects the pages' blocks (for the root conftest)."""
    return Sybil(
        parsers=[BlockParser()],
        patterns=list(PAGES),
        # Path.match anchors on the right: "README.md" alone would take tests/interop's too.
        excludes=["*/*/README.md", "*/*/*/README.md"],
        path=str(ROOT),
        **kwargs,  # type: ignore[arg-type]
    )


def blocks(page: str | Path) -> Iterator[Block]:
    """The blocks of one page, in order (the same parse the test run uses)."""
    path = Path(page) if Path(page).is_absolute() else ROOT / page
    for example in sybil().parse(path).examples():
        yield example.region.lexemes["block"]


def copy_repository(target: Path) -> Path:
    """The repository's tracked files (a fresh clone, as a newcomer has it) in ``target``."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout.split(b"\0")
        names = [os.fsdecode(n) for n in listed if n]
    except (OSError, subprocess.CalledProcessError):  # an sdist: no git
        names = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not {".git", ".tox", ".venv", "node_modules"} & set(p.parts)
        ]
    for name in names:
        source = ROOT / name
        if source.is_file():
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    return target


def make_venv(target: Path) -> Path:
    """A new, empty virtualenv (as on a fresh machine); returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    return target / "bin"


def pages() -> list[Path]:
    """README.md and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


if __name__ == "__main__":
    # python -m tests.docblocks: how many blocks run, how many are files or fragments.
    totals: dict[str, int] = {}
    for page in pages():
        found = list(blocks(page))
        counts = {k: sum(b.kind == k for b in found) for k in ("run", "file", "fragment")}
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        if found:
            print(f"{page.relative_to(ROOT)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    print("total: " + ", ".join(f"{v} {k}" for k, v in totals.items()))
    sys.exit(0)
