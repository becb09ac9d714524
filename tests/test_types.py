"""Baileys' shapes as types (waauth.types) and the auth-state protocols (waauth.protocols).

The TypedDicts are checked against what real Baileys wrote (the golden folders), the protocols
by mypy over a small bot (tests/typecheck/bot.py), which also runs here on both classes.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from mypy import api as mypy_api

import waauth
from waauth import codec, layout
from waauth.schema import DEFAULT_SCHEMA
from waauth.testing import (
    AsyncInMemoryAuthState,
    InMemoryStore,
    fake_creds,
    fake_key,
    fake_keys,
    sample_session,
)
from waauth.types import AuthenticationCreds, KeyType, SignalDataTypeMap

from .golden import VERSIONS, golden
from .typecheck import bot

ROOT = Path(__file__).resolve().parents[1]
BOT = Path(bot.__file__)


def mismatches(value: Any, hint: Any, where: str) -> list[str]:
    """Where ``value`` does not have the type ``hint``: every key of a TypedDict declared,
    every required key present, and bytes/str/int/bool/None/dict/list as annotated."""
    if hint is Any:
        return []
    if is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: a {type(value).__name__}, not a {hint.__name__}"]
        fields = get_type_hints(hint)
        found = [f"{where}.{k}: not a key of {hint.__name__}" for k in value if k not in fields]
        found += [
            f"{where}.{k}: missing, required by {hint.__name__}"
            for k in sorted(hint.__required_keys__)
            if k not in value
        ]
        for key, item in value.items():
            if key in fields:
                found += mismatches(item, fields[key], f"{where}.{key}")
        return found
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if any(not mismatches(value, arg, where) for arg in get_args(hint)):
            return []
        return [f"{where}: a {type(value).__name__}, none of {hint}"]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: a {type(value).__name__}, not a dict"]
        key_hint, item_hint = get_args(hint)
        found = []
        for key, item in value.items():
            found += mismatches(key, key_hint, f"{where} key {key!r}")
            found += mismatches(item, item_hint, f"{where}[{key!r}]")
        return found
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: a {type(value).__name__}, not a list"]
        (item_hint,) = get_args(hint)
        return [
            m for i, item in enumerate(value) for m in mismatches(item, item_hint, f"{where}[{i}]")
        ]
    if hint is None or hint is type(None):
        return [] if value is None else [f"{where}: a {type(value).__name__}, not None"]
    assert hint in (bytes, str, int, bool), f"{where}: no check for {hint!r}"
    # type() and not isinstance(): a bool is not an int here, as it is not in JSON.
    return (
        [] if type(value) is hint else [f"{where}: a {type(value).__name__}, not {hint.__name__}"]
    )


def value_type(key_type: str) -> Any:
    """The TypedDict (or type) of a key type's values: ``SignalDataTypeMap[key_type]``."""
    return get_type_hints(SignalDataTypeMap)[key_type]


def test_key_type_lists_the_ten_types_baileys_7_writes() -> None:
    """KeyType's literals are exactly the key types of the files real Baileys 7 wrote (the
    golden folder holds every type; its other files are the generator's own ``x-waauth-edge``
    type), and SignalDataTypeMap has a value type for each of them, in the same order."""
    written = set()
    for name in golden("baileys7").files():
        if name != layout.CREDS_FILE and not name.startswith("x-waauth-edge-"):
            types_named = [t for t in get_args(KeyType) if name.startswith(f"{t}-")]
            assert types_named, f"{name}: a file of a type KeyType does not list"
            written.add(max(types_named, key=len))  # sender-key-memory-x is not a sender-key
    assert written == set(get_args(KeyType))
    assert len(get_args(KeyType)) == 10
    assert get_args(KeyType) == layout.KEY_TYPES
    assert tuple(get_type_hints(SignalDataTypeMap)) == get_args(KeyType)


@pytest.mark.parametrize("version", VERSIONS)
def test_typed_dicts_describe_the_golden_folders(version: str) -> None:
    """Every creds and key value Baileys wrote decodes to the declared shape: each key is
    declared by its TypedDict, each required key is there, each value has the declared type."""
    seen: set[str] = set()
    found: list[str] = []
    for name, data in golden(version).files().items():
        key_type, _ = layout.parse_file_name(name)
        if name == layout.CREDS_FILE:
            found += mismatches(codec.decode(data), AuthenticationCreds, name)
        elif key_type in layout.KEY_TYPES:
            seen.add(key_type)
            found += mismatches(codec.decode(data), value_type(key_type), name)
    assert found == []
    # The check covered every key type the version writes (7.0 added four).
    new_in_7 = {"lid-mapping", "device-list", "tctoken", "identity-key"}
    expected = set(layout.KEY_TYPES) - (new_in_7 if version == "baileys6" else set())
    assert seen == expected


def test_typed_dicts_describe_paired_creds_and_the_fake_data() -> None:
    """The fields a paired account adds (``me``, ``account``, ``signalIdentities``, ...) in the
    packaged sample session, and every value waauth.testing fakes, have the declared shapes."""
    folder = sample_session()
    paired = codec.decode((folder / layout.CREDS_FILE).read_bytes())
    assert {"me", "account", "signalIdentities", "platform", "myAppStateKeyId"} <= set(paired)
    found = mismatches(paired, AuthenticationCreds, "sample creds.json")
    found += mismatches(fake_creds(paired=True), AuthenticationCreds, "fake_creds(paired=True)")
    for path in sorted(folder.iterdir()):
        key_type, _ = layout.parse_file_name(path.name)
        if key_type in layout.KEY_TYPES:
            found += mismatches(codec.decode(path.read_bytes()), value_type(key_type), path.name)
    for key_type in layout.KEY_TYPES:
        found += mismatches(fake_key(key_type), value_type(key_type), f"fake_key({key_type!r})")
    for key_type, values in fake_keys().items():
        for key_id, value in values.items():
            found += mismatches(value, value_type(key_type), f"fake_keys {key_type} {key_id}")
    assert found == []


def test_shape_check_reports_what_does_not_fit() -> None:
    """The check used above fails on values of the wrong shape, naming the place."""
    good = fake_creds()
    assert mismatches(good, AuthenticationCreds, "creds") == []
    bad = {**good, "noiseKey": {"private": "AAAA", "public": b"x"}, "nextPreKeyId": True}
    del bad["registrationId"]
    bad["surprise"] = 1
    assert mismatches(bad, AuthenticationCreds, "creds") == [
        "creds.surprise: not a key of AuthenticationCreds",
        "creds.registrationId: missing, required by AuthenticationCreds",
        "creds.noiseKey.private: a str, not bytes",
        "creds.nextPreKeyId: a bool, not int",
    ]
    assert mismatches({"token": b""}, value_type("tctoken"), "t") == []
    assert mismatches({"version": 1}, value_type("app-state-sync-version"), "v") == [
        "v.hash: missing, required by LTHashState",
        "v.indexValueMap: missing, required by LTHashState",
    ]
    assert mismatches(["0", 12], value_type("device-list"), "d") == ["d[1]: a int, not str"]


def test_the_bot_runs_alike_on_postgres_and_in_memory(
    pg_dsn: str, schema: str, keyring: waauth.Keyring
) -> None:
    """The functions typed with AuthState give the same results on both classes."""
    creds, keys = fake_creds(paired=True), fake_keys()
    store = InMemoryStore()
    on_postgres = bot.run_postgres(pg_dsn, "bot_1", keyring, schema, creds, keys)
    in_memory = bot.run_in_memory(store, "bot_1", creds, keys)
    assert on_postgres == in_memory
    first = next(iter(keys["pre-key"]))
    assert on_postgres["taken"] == [keys["pre-key"][first]["public"], None]
    read = on_postgres["keys"]
    assert isinstance(read, dict)
    assert read["session"] == ["v1"]
    assert read["app-state-sync-version"] == [128]
    assert read["bridge-profile"] == {"x": None}
    assert bot.creds_of(pg_dsn, "bot_1", keyring, schema)
    assert bot.creds_of(store, "bot_1", keyring, DEFAULT_SCHEMA)
    assert not bot.creds_of(store, "bot_2", keyring, DEFAULT_SCHEMA)


async def test_the_async_bot_runs_alike_on_postgres_and_in_memory(
    pg_dsn: str, schema: str, keyring: waauth.Keyring
) -> None:
    """The functions typed with AsyncAuthState give the same results on both classes, and
    both ``open`` return the public ``waauth.AsyncOpener``."""
    creds, keys = fake_creds(paired=True), fake_keys()
    store = InMemoryStore()
    on_postgres = await bot.arun_postgres(pg_dsn, "bot_1", keyring, schema, creds, keys)
    in_memory = await bot.arun_in_memory(store, "bot_1", creds, keys)
    assert on_postgres == in_memory
    assert on_postgres["session"] == ["v1"]
    first = next(iter(keys["pre-key"]))
    assert on_postgres["taken"] == [keys["pre-key"][first]["public"], None]
    assert await bot.acreds_of(pg_dsn, "bot_1", keyring, schema)
    assert await bot.acreds_of(store, "bot_1", keyring, DEFAULT_SCHEMA)
    assert not await bot.acreds_of(store, "bot_2", keyring, DEFAULT_SCHEMA)
    opener = bot.aopen_state(store, "bot_1", keyring, DEFAULT_SCHEMA)
    assert type(opener) is waauth.AsyncOpener
    async with opener as state:
        assert isinstance(state, AsyncInMemoryAuthState)


def test_open_is_annotated_with_the_public_opener() -> None:
    """``AsyncPostgresAuthState.open``'s return type is ``waauth.AsyncOpener``, documented
    under that name."""
    hints = get_type_hints(waauth.AsyncPostgresAuthState.open)
    assert hints["return"] == waauth.AsyncOpener[waauth.AsyncPostgresAuthState]
    assert waauth.AsyncOpener.__module__ == "waauth"
    assert "AsyncOpener" in waauth.__all__
    assert "waauth.AsyncOpener" in (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")


# Each copy of the bot with one mistake (in the last line of the text replaced), and what mypy
# must say at that line.
MISTAKES = {
    "a_str_for_a_state": (
        "    pair(state, creds, keys)\n",
        "    pair(state.session_id, creds, keys)\n",
        'Argument 1 to "pair" has incompatible type "str"; expected "AuthState"',
    ),
    "an_async_state_for_a_sync_one": (
        "    await apair(state, creds, keys)\n",
        "    pair(state, creds, keys)\n",
        'Argument 1 to "pair" has incompatible type "AsyncAuthState"; expected "AuthState"',
    ),
    "a_pre_key_read_as_bytes": (
        '    found = state.keys.get("pre-key", [key_id])\n'
        "    assert_type(found, dict[str, KeyPair | None])\n",
        '    found = state.keys.get("pre-key", [key_id])\n'
        "    assert_type(found, dict[str, bytes | None])\n",
        'Expression is of type "dict[str, KeyPair | None]", not "dict[str, bytes | None]"',
    ),
}


@pytest.mark.slow
def test_mypy_accepts_the_bot_and_rejects_each_mistake(tmp_path: Path) -> None:
    """mypy --strict (the project's settings) passes the bot as it is, and reports each copy
    with one mistake at the changed line, and nothing else."""
    source = BOT.read_text(encoding="utf-8")
    files = {"bot_as_is": source}
    expected: dict[str, tuple[int, str]] = {}
    for name, (before, after, message) in MISTAKES.items():
        assert source.count(before) == 1, name
        files[name] = source.replace(before, after)
        line = source[: source.index(before)].count("\n") + before.count("\n")
        expected[name] = (line, message)
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text, encoding="utf-8")
    stdout, stderr, status = mypy_api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "--show-absolute-path",
            *(str(tmp_path / f"{name}.py") for name in files),
        ]
    )
    print(stdout)
    assert stderr == ""
    errors = [line for line in stdout.splitlines() if ": error: " in line]
    reported: dict[str, tuple[int, str]] = {}
    for error in errors:
        path, number, _, message = error.split(":", 3)
        reported[Path(path).stem] = (int(number), message.strip())
    assert len(errors) == len(MISTAKES)
    for name, (line, message) in expected.items():
        assert reported[name][0] == line, (name, reported[name])
        assert message in reported[name][1], (name, reported[name])
    assert status == 1


def test_no_folder_of_tests_hides_a_standard_module() -> None:
    """Scripts run from tests/ (lease_child.py, ...) have tests/ on sys.path: a folder there
    named like a standard module (``typing``, which the typed bot first lived in) breaks them."""
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    assert "typecheck" in folders
    assert folders & sys.stdlib_module_names == set()
