"""waauth.codec reads every Buffer form Baileys reads and writes exactly what Baileys writes."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waauth import InvalidInput, codec

DATA = Path(__file__).parent / "data"


# -- decoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # The form both versions write.
        (b'{"type":"Buffer","data":"AQID"}', b"\x01\x02\x03"),
        (b'{"type":"Buffer","data":""}', b""),
        # 6.x reads int arrays, `value` instead of `data`, and `{buffer:true}`.
        (b'{"type":"Buffer","data":[1,2,255]}', b"\x01\x02\xff"),
        (b'{"type":"Buffer","value":"AQID"}', b"\x01\x02\x03"),
        (b'{"buffer":true,"data":"AQID"}', b"\x01\x02\x03"),
        (b'{"buffer":true,"value":[7]}', b"\x07"),
        (b'{"type":"Buffer"}', b""),
        (b'{"type":"Buffer","data":[]}', b""),
        # Buffer.from(array) keeps the low eight bits of each truncated number.
        (b'{"type":"Buffer","data":[256,-1,1.9]}', b"\x00\xff\x01"),
        # 7.x reads a Uint8Array serialized without the replacer, in JavaScript key order.
        (b'{"1":2,"0":1}', b"\x01\x02"),
        # Node's base64 decoder takes URL-safe characters and missing padding.
        (b'{"type":"Buffer","data":"-_8"}', b"\xfb\xff"),
    ],
)
def test_decode_buffer_forms(document: bytes, expected: bytes) -> None:
    """Every form a Baileys reviver turns into a Buffer decodes to the same bytes."""
    assert codec.decode(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        b"{}",  # empty: 7.x's numeric-key rule needs at least one key
        b'{"0":true}',  # values must all be numbers
        b'{"a":1}',  # keys must all start with a number
        b'{"type":"buffer","data":"AQID"}',  # type is case-sensitive
        b'{"buffer":"true","data":"AQID"}',  # buffer must be the boolean true
    ],
)
def test_decode_leaves_plain_objects_alone(document: bytes) -> None:
    """Objects that no Baileys version revives stay dicts."""
    assert codec.decode(document) == json.loads(document)


def test_decode_nested_and_ordered() -> None:
    """Buffers are found at any depth, and object keys keep the order they were read in."""
    value = codec.decode(
        b'{"z":[{"type":"Buffer","data":"AA=="},{"k":{"type":"Buffer","data":"AQ=="}}],"a":1}'
    )
    assert value == {"z": [b"\x00", {"k": b"\x01"}], "a": 1}
    assert list(value) == ["z", "a"]


@pytest.mark.parametrize("document", [b"", b"{", b'{"a":}', b"NaN", b"\xff"])
def test_decode_rejects_invalid_json(document: bytes) -> None:
    """Bad JSON raises InvalidInput (a ValueError), never returns a partial value."""
    with pytest.raises(InvalidInput, match="not valid JSON"):
        codec.decode(document)


def test_decode_rejects_unreadable_buffer() -> None:
    """A Buffer object whose data no Baileys can read is an error, not silently empty bytes."""
    with pytest.raises(InvalidInput, match="Buffer"):
        codec.decode(b'{"type":"Buffer","data":{"x":1}}')


# -- encoding ------------------------------------------------------------------------------------


def test_encode_like_baileys() -> None:
    """Bytes become the base64 Buffer form, output is compact, non-ASCII stays UTF-8."""
    value = {"private": b"\x01\x02", "empty": b"", "name": "Joãozinho ✓", "n": [1, True, None]}
    assert (
        codec.encode(value)
        == (
            '{"private":{"type":"Buffer","data":"AQI="},"empty":{"type":"Buffer","data":""},'
            '"name":"Joãozinho ✓","n":[1,true,null]}'
        ).encode()
    )


def test_encode_orders_keys_as_javascript() -> None:
    """Array-index keys come first, ascending; the rest keep insertion order."""
    value = {"b": 1, "10": 2, "2": 3, "a": 4, "01": 5, "4294967295": 6, "4294967294": 7}
    assert codec.encode(value) == (
        b'{"2":3,"10":2,"4294967294":7,"b":1,"a":4,"01":5,"4294967295":6}'
    )


def test_encode_numbers_as_javascript() -> None:
    """Every number prints as JSON.stringify prints it (pairs recorded from Node)."""
    pairs = json.loads((DATA / "js_numbers.json").read_text())
    assert len(pairs) > 500
    mismatches = [(text, js) for text, js in pairs if codec.encode(float(text)).decode() != js]
    assert mismatches == []


def test_encode_other_containers_and_subclasses() -> None:
    """Tuples, bytearray, memoryview, enums and mappings encode like their plain forms."""

    class Color(enum.IntEnum):
        RED = 3

    class Name(str, enum.Enum):
        ME = "me"

    value = OrderedDict(
        t=(1, 2), ba=bytearray(b"\x01"), mv=memoryview(b"\x02"), c=Color.RED, s=Name.ME
    )
    assert codec.encode(value) == (
        b'{"t":[1,2],"ba":{"type":"Buffer","data":"AQ=="},"mv":{"type":"Buffer","data":"Ag=="},'
        b'"c":3,"s":"me"}'
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1, 2}}, "type set"),
        ({1: "a"}, "keys must be strings"),
        (math.nan, "JSON has no such number"),
        (math.inf, "JSON has no such number"),
        (object(), "type object"),
        (2**70, "cannot encode"),
    ],
)
def test_encode_rejects_what_json_cannot_hold(value: Any, message: str) -> None:
    """Values Baileys could not have written raise a clear InvalidInput at once."""
    with pytest.raises(InvalidInput, match=message):
        codec.encode(value)


# -- round trips ---------------------------------------------------------------------------------

_keys = st.text(alphabet=st.characters(codec="utf-8"), max_size=8).filter(
    # Keys that start like a number make an all-number object look like a Uint8Array to 7.x.
    lambda k: not k.strip()[:1].isdigit() and not k.strip()[:2].lstrip("+-").isdigit()
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    # JavaScript prints an integral double below 1e21 as an integer, which reads back as a
    # Python int; above 2**53 that int is exact where the double was not, so leave those out.
    | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: abs(f) < 2**53 or abs(f) >= 1e21
    )
    | st.text(alphabet=st.characters(codec="utf-8"))
    | st.binary(max_size=64)
)


def _not_buffer_like(obj: dict[str, Any]) -> bool:
    return obj.get("type") != "Buffer" and obj.get("buffer") is not True


_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(_keys, children, max_size=5).filter(_not_buffer_like)
    ),
    max_leaves=30,
)


@given(_values)
def test_decode_inverts_encode(value: Any) -> None:
    """decode(encode(x)) == x for every value waauth can store."""
    assert codec.decode(codec.encode(value)) == value


@given(_values)
def test_encode_is_stable(value: Any) -> None:
    """Encoding what was decoded gives the same bytes again (what Baileys reads, it rewrites)."""
    once = codec.encode(value)
    assert codec.encode(codec.decode(once)) == once


_any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=6)
    | st.sampled_from(["Buffer", "buffer", "type", "data", "0", " 1", "-2", "+3", "\u00a01"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=4)
            | st.sampled_from(["type", "buffer", "data", "value", "0", "1", " 2", "-1", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _walked(document: bytes) -> Any:
    """What decode gives without the fast path: the full walk over the parsed value."""
    value = json.loads(document)
    return codec._revive(value) if isinstance(value, dict | list) else value


def _outcome(decode: Any, document: bytes) -> Any:
    """What ``decode`` gives, or the error it raises (a Buffer object Baileys cannot read
    either, such as ``{"buffer": true, "data": true}``)."""
    try:
        return decode(document)
    except InvalidInput as exc:
        return ("InvalidInput", str(exc))


@given(_any_json)
def test_fast_path_equals_the_full_walk(value: Any) -> None:
    """Skipping the walk for text that cannot hold a Buffer never changes the result (nor the
    error)."""
    for document in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        assert _outcome(codec.decode, document) == _outcome(_walked, document)


def test_fast_path_on_every_golden_file() -> None:
    """Every file Baileys wrote decodes the same with and without the fast path."""
    from .golden import VERSIONS, golden  # noqa: PLC0415

    for version in VERSIONS:
        for name, data in golden(version).files().items():
            assert codec.decode(data) == _walked(data), name
