"""The public surface: what `import waauth` promises."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

import waauth

ROOT = Path(__file__).resolve().parents[1]


def test_public_names() -> None:
    """Everything in __all__ exists, and the promised names are there."""
    for name in waauth.__all__:
        assert hasattr(waauth, name), name
    for name in ("Keyring", "layout", "codec", "WaauthError", "migrate", "amigrate"):
        assert name in waauth.__all__


def test_one_exception_root() -> None:
    """Every waauth exception derives from WaauthError and says where it lives."""
    errors = [
        obj
        for obj in vars(waauth).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    ]
    assert len(errors) >= 10
    for error in errors:
        assert issubclass(error, waauth.WaauthError)
        assert error.__module__ == "waauth"
        assert error.__doc__


def test_default_messages_are_the_docstrings() -> None:
    """Raising an error with no message gives its docstring."""
    with pytest.raises(waauth.StoreUnavailable, match="could not be reached"):
        raise waauth.StoreUnavailable
    assert isinstance(waauth.InvalidInput("x"), ValueError)


def test_record_errors_name_session_and_file() -> None:
    """DecryptionError and CorruptRecord carry the session and file they are about."""
    error = waauth.CorruptRecord("s1", "pre-key-1.json", "not valid JSON")
    assert (error.session_id, error.file_name) == ("s1", "pre-key-1.json")
    assert str(error) == "session 's1', file 'pre-key-1.json': not valid JSON"
    assert isinstance(error, waauth.RecordError)


def test_the_version_is_defined_once() -> None:
    """waauth.__version__ is what the installed metadata says (hatch reads it from the code)."""
    assert waauth.__version__ == importlib.metadata.version("waauth")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^version\s*=", pyproject, re.MULTILINE) is None
    assert 'dynamic = ["version"]' in pyproject


def test_metadata_says_what_indexes_show() -> None:
    """Python versions, the pytest plugin and asyncio support, as classifiers."""
    classifiers = importlib.metadata.metadata("waauth").get_all("Classifier") or []
    for expected in (
        "Framework :: Pytest",
        "Framework :: AsyncIO",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    ):
        assert expected in classifiers


def test_docs_say_how_to_install_from_the_source_tree() -> None:
    """No release is published yet: no install line asks pip for `waauth` from an index."""
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*")]
    offending = []
    for path in texts:
        if not path.is_file() or "node_modules" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            for command in re.split(r"&&|;|\||#", line):
                words = command.split()
                if "pip" not in " ".join(words[:-1]) or "install" not in words:
                    continue
                targets = [w.strip("'\"") for w in words[words.index("install") + 1 :]]
                if any(re.fullmatch(r"waauth(\[[\w,]+\])?", t) for t in targets):
                    offending.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offending == []
