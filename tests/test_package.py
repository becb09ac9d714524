"""The public surface: what `import waauth` promises."""

from __future__ import annotations

import inspect

import pytest

import waauth


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
