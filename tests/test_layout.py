"""waauth.layout names files exactly as Baileys' useMultiFileAuthState does."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from waauth import InvalidInput, _records, layout


@pytest.mark.parametrize(
    ("type_", "id_", "name"),
    [
        ("pre-key", "1", "pre-key-1.json"),
        ("session", "5511888888888.3", "session-5511888888888.3.json"),
        ("session", "987654321098765_1.2", "session-987654321098765_1.2.json"),
        (
            "sender-key",
            "120363@g.us::5511999999999::12",
            "sender-key-120363@g.us--5511999999999--12.json",
        ),
        ("sender-key-memory", "120363@g.us", "sender-key-memory-120363@g.us.json"),
        ("app-state-sync-key", "AAAAAPv/+w==", "app-state-sync-key-AAAAAPv__+w==.json"),
        ("app-state-sync-version", "regular_high", "app-state-sync-version-regular_high.json"),
        ("lid-mapping", "123_reverse", "lid-mapping-123_reverse.json"),
        ("tctoken", "__index", "tctoken-__index.json"),
        # `/` is replaced before `:`, and nothing else changes.
        ("x", "a/b:c@d+e.f_g=h", "x-a__b-c@d+e.f_g=h.json"),
    ],
)
def test_file_name(type_: str, id_: str, name: str) -> None:
    """Names follow fixFileName(`${type}-${id}.json`)."""
    assert layout.file_name(type_, id_) == name


def test_file_name_is_not_reversible() -> None:
    """`a:b` and `a-b` share one file, which is why the file name is a record's identity."""
    assert layout.file_name("session", "a:b") == layout.file_name("session", "a-b")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("creds.json", ("creds", "")),
        ("pre-key-1.json", ("pre-key", "1")),
        # Longest known prefix first.
        ("sender-key-memory-120363@g.us.json", ("sender-key-memory", "120363@g.us")),
        ("sender-key-120363@g.us--5511--12.json", ("sender-key", "120363@g.us--5511--12")),
        ("app-state-sync-version-regular.json", ("app-state-sync-version", "regular")),
        ("app-state-sync-key-AAAAAPv__+w==.json", ("app-state-sync-key", "AAAAAPv__+w==")),
        ("tctoken-__index.json", ("tctoken", "__index")),
        # Unknown types from a newer Baileys: leading lower-case words are the type.
        ("new-fancy-type-123.json", ("new-fancy-type", "123")),
        ("newtype-a-b.json", ("newtype-a", "b")),
        ("lonely.json", ("lonely", "")),
        # A known type with an empty id is read as an unknown type, which is still kept.
        ("pre-key-.json", ("pre-key", "")),
    ],
)
def test_parse_file_name(name: str, expected: tuple[str, str]) -> None:
    """Splitting a file name gives back the type and the (fixed) id."""
    assert layout.parse_file_name(name) == expected


@pytest.mark.parametrize(
    "name", [".DS_Store", ".creds.json.swp", "creds.json.tmp", "notes.txt", ".json", "a/b.json"]
)
def test_stray_files_are_not_records(name: str) -> None:
    """Dotfiles, temp files and non-JSON files are not records and cannot be parsed as one."""
    assert not layout.is_record_file(name)
    with pytest.raises(InvalidInput, match="not the name of a Baileys record"):
        layout.parse_file_name(name)


@pytest.mark.parametrize(
    "session_id", ["user_1460561546", "session-xxx-abc", "a" * 128, "Joãozinho", "a.b"]
)
def test_valid_session_ids(session_id: str) -> None:
    """Ordinary folder names are accepted unchanged."""
    assert layout.validate_session_id(session_id) == session_id


@pytest.mark.parametrize(
    ("session_id", "problem"),
    [
        ("", "empty"),
        ("a" * 129, "longer than 128"),
        (".", "relative"),
        ("..", "relative"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\x7fb", "control character"),
    ],
)
def test_invalid_session_ids(session_id: str, problem: str) -> None:
    """Ids that cannot be a folder name raise InvalidInput saying why."""
    with pytest.raises(InvalidInput, match=problem):
        layout.validate_session_id(session_id)


def test_bad_key_arguments() -> None:
    """Non-string ids, empty types, NUL and over-long names are refused with a clear message."""
    with pytest.raises(InvalidInput, match="must be a string"):
        layout.file_name("pre-key", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="non-empty string"):
        layout.file_name("", "1")
    with pytest.raises(InvalidInput, match="NUL"):
        layout.file_name("pre-key", "a\x00")
    with pytest.raises(InvalidInput, match="longer than 255 bytes"):
        layout.file_name("session", "9" * 300)


@pytest.mark.parametrize(
    ("session_id", "problem"),
    [
        # 271 bytes in UTF-8: its temporary folder name would not fit in 255 bytes.
        ("0" + "日" * 90, "longer than 128 bytes"),
        ("日" * 43, "longer than 128 bytes"),  # 129 bytes
        # The mirror and `push --all` skip hidden folders: such a session would never be stored.
        (".hidden", "starts with '.'"),
        (".waauth-old", "starts with '.'"),
        ("a\udcffb", "not valid UTF-8"),  # a file system name that is not UTF-8
    ],
    ids=["271-bytes", "129-bytes", "hidden", "hidden-suffix", "not-utf8"],
)
def test_session_ids_are_checked_in_bytes_and_never_hidden(session_id: str, problem: str) -> None:
    """One rule for every entry point: ids fit a temporary folder name (255 bytes) and are
    never hidden folders, which the mirror and ``push --all`` skip."""
    with pytest.raises(InvalidInput, match=problem):
        layout.validate_session_id(session_id)
    assert layout.validate_session_id("日" * 42) == "日" * 42  # 126 bytes


@pytest.mark.parametrize(
    "name",
    [
        "../escape.json",
        "a/b.json",
        "/tmp/abs.json",
        ".",
        "..",
        ".json",
        ".hidden.json",
        "creds.txt",
        "nul\x00.json",
        "x" * 251 + ".json",
        "bad\udcff.json",
    ],
)
def test_unsafe_file_names_are_refused(name: str) -> None:
    """A stored file name must be a plain Baileys record name: one folder entry, ``.json``,
    not hidden, at most 255 bytes; anything else would write outside its folder or be
    ignored by the folder's readers."""
    assert not layout.is_record_file(name)
    with pytest.raises(InvalidInput, match="not a safe record file name"):
        layout.check_file_name(name)


def test_key_types_cannot_make_hidden_files() -> None:
    """keys.set names files from the type: a type that makes a hidden file is refused."""
    with pytest.raises(InvalidInput, match="not a safe record file name"):
        layout.file_name(".x", "1")
    assert layout.check_file_name("pre-key-1.json") == "pre-key-1.json"


_ODD_IDS = ["1", "a:b", "a/b", "120363@g.us::5511::12", "AAAAAPv/+w==", "", "é", "a\x00", "9" * 240]


@pytest.mark.parametrize("type_", ["pre-key", "session", "/x", "a:b", ".x", "", "日"])
def test_names_of_many_ids_are_layouts_names(type_: str) -> None:
    """keys.get and keys.set name thousands of ids at once, by a faster path than
    ``file_name``: every name is the one ``file_name`` gives, and every refusal its refusal."""
    # ... and ids around the 255-byte limit of a name (the type, a dash, the id, ".json")
    ids = [*_ODD_IDS, *("x" * n for n in range(245 - len(type_), 252 - len(type_)))]
    for key_id in ids:
        expected = _named(layout.file_name, type_, key_id)
        assert _named(_one_name, type_, key_id) == expected
        if expected.startswith("refused: "):
            continue
        assert _records.plan_key_entries({type_: {key_id: {"v": 1}}}, "s") == {
            expected: (type_, key_id, b'{"v":1}')
        }
    with pytest.raises(InvalidInput, match="must be a string"):
        _records.names_for("pre-key", [1])  # type: ignore[list-item]


def _named(name: Callable[[str, str], str], type_: str, key_id: str) -> str:
    """The name given, or ``refused: <why>``."""
    try:
        return name(type_, key_id)
    except InvalidInput as exc:
        return f"refused: {exc}"


def _one_name(type_: str, key_id: str) -> str:
    return _records.names_for(type_, [key_id])[key_id]
