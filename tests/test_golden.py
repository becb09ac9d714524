"""The codec and the layout agree with real Baileys 6.7.24 and 7.0.0-rc14, file by file."""

from __future__ import annotations

import pytest

from waauth import codec, layout

from .golden import VERSIONS, golden

# An object of numbers under numeric keys: 7.x reads it as a Buffer, 6.x as an object.
NUMERIC_OBJECT = "x-waauth-edge-numeric-keys-numbers.json"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_file_decodes_and_reencodes_to_the_same_bytes(version: str) -> None:
    """What Baileys wrote, decode() then encode() writes again byte for byte."""
    files = golden(version).files()
    assert len(files) > 30
    mismatched = [
        name
        for name, data in files.items()
        if name != NUMERIC_OBJECT and codec.encode(codec.decode(data)) != data
    ]
    assert mismatched == []


@pytest.mark.parametrize("version", VERSIONS)
def test_values_read_as_baileys_reads_them(version: str) -> None:
    """decode() gives what Baileys' own keys.get / creds read gives (re-serialized by Baileys)."""
    g = golden(version)
    files = g.files()
    assert set(g.manifest["files"]) == set(files)
    for name, info in g.manifest["files"].items():
        value = codec.decode(files[name])
        if name == NUMERIC_OBJECT and version == "baileys6":
            # waauth follows 7.x here (a Buffer), where 6.x keeps the object.
            assert value == bytes([1, 255, 0])
            continue
        assert codec.encode(value).decode() == info["readback"], name


@pytest.mark.parametrize("version", VERSIONS)
def test_real_values_have_baileys_shapes(version: str) -> None:
    """Keys come out as bytes of the right sizes; creds keep Baileys' field order."""
    files = golden(version).files()
    creds = codec.decode(files[layout.CREDS_FILE])
    assert list(creds)[:4] == [
        "noiseKey",
        "pairingEphemeralKeyPair",
        "signedIdentityKey",
        "signedPreKey",
    ]
    for pair in (creds["noiseKey"], creds["signedIdentityKey"], creds["signedPreKey"]["keyPair"]):
        assert isinstance(pair["private"], bytes)
        assert len(pair["private"]) == 32
    assert len(creds["signedPreKey"]["signature"]) == 64
    assert creds["me"]["id"] == "5511999999999:12@s.whatsapp.net"
    pre_key = codec.decode(files["pre-key-3.json"])
    assert list(pre_key) == ["private", "public"]
    assert len(pre_key["public"]) == 32
    session = codec.decode(files["session-5511888888888.3.json"])
    assert session["version"] == "v1"
    assert isinstance(session["_sessions"], dict)


@pytest.mark.parametrize("version", VERSIONS)
def test_file_names_match_baileys(version: str) -> None:
    """For every (type, id) Baileys stored or deleted, file_name() gives the file Baileys used."""
    events = [
        e for e in golden(version).manifest["events"] if e.get("kind") != "creds" and e.get("file")
    ]
    assert len(events) > 30
    assert any("/" in e["id"] for e in events)
    assert any(":" in e["id"] for e in events)
    wrong = [
        (e["type"], e["id"], e["file"])
        for e in events
        if layout.file_name(e["type"], e["id"]) != e["file"]
    ]
    assert wrong == []


@pytest.mark.parametrize("version", VERSIONS)
def test_file_names_parse_back_to_their_type(version: str) -> None:
    """parse_file_name() recovers the type of every file of a known type."""
    for name, info in golden(version).manifest["files"].items():
        if info.get("type") in layout.KEY_TYPES:
            assert layout.parse_file_name(name)[0] == info["type"], name
    assert layout.parse_file_name(layout.CREDS_FILE) == (layout.CREDS_TYPE, "")


def test_reviver_probes() -> None:
    """decode() revives whatever either Baileys version revives, and leaves the rest alone."""
    probes = [p for v in VERSIONS for p in golden(v).manifest["bufferjson_probe"]["reviver"]]
    revived = {p["input"]: bytes.fromhex(p["buffer_hex"]) for p in probes if "buffer_hex" in p}
    assert len(revived) >= 10
    for text, data in revived.items():
        assert codec.decode(text) == data, text
    # Not revived at the top by either: decoding then encoding gives what 7.x re-serializes
    # (7.x also revives numeric objects nested inside, which 6.x leaves alone).
    for probe in golden("baileys7").manifest["bufferjson_probe"]["reviver"]:
        if probe["input"] not in revived and "json" in probe:
            assert codec.encode(codec.decode(probe["input"])).decode() == probe["json"], probe


@pytest.mark.parametrize("version", VERSIONS)
def test_replacer_probes(version: str) -> None:
    """Bytes encode exactly as BufferJSON.replacer writes Buffers and Uint8Arrays."""
    samples = {
        "Buffer.from([1,2,3])": b"\x01\x02\x03",
        "Buffer.alloc(0)": b"",
        "new Uint8Array([1,2,3])": b"\x01\x02\x03",
    }
    probes = {
        p["input"]: p.get("output")
        for p in golden(version).manifest["bufferjson_probe"]["replacer"]
    }
    for source, value in samples.items():
        assert codec.encode(value).decode() == probes[source]
