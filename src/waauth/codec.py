"""Baileys JSON <-> Python values.

Baileys writes every record with ``JSON.stringify(value, BufferJSON.replacer)``: compact, one
line, no trailing newline, binary data as ``{"type":"Buffer","data":"<base64>"}``.

:func:`decode` reads every form that Baileys 6.x or 7.x revives as a ``Buffer`` and returns it as
:class:`bytes`; every other value stays a plain JSON value (``dict`` in the order read, ``list``,
``str``, ``int``, ``float``, ``bool``, ``None``).

:func:`encode` writes exactly the bytes Baileys would write for the same value: ``bytes`` become
the base64 form, object keys follow JavaScript's order (array-index keys first, ascending, then
the rest in insertion order) and numbers are printed the way JavaScript prints them.

Two limits follow from what Baileys itself does: a non-empty object whose keys all start with a
number and whose values are all numbers is revived as bytes by Baileys 7.x, so it cannot be
stored as an object; and strings with lone UTF-16 surrogates are refused.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import orjson

from .errors import InvalidInput

__all__ = ["decode", "encode"]

# JavaScript orders "array index" keys (canonical integers below 2**32 - 1) first.
_MAX_ARRAY_INDEX: Final = 2**32 - 2
# `!isNaN(parseInt(k, 10))`: optional white space and sign, then at least one digit.
_PARSE_INT: Final = re.compile(r"\s*[+-]?[0-9]")
_CONTAINERS: Final = (dict, list)
# Text without these cannot hold a Buffer form: "Buffer"/"buffer" spelled out (or hidden behind a
# \u escape), or an object whose first key starts like a number (after white space, a sign or
# an escape) with a number for its value, as every 7.x numeric-key Buffer does.
# The repeats are possessive (`*+`): they match exactly the same texts, without backtracking
# into what cannot match anyway (a fifth less time over a 5,000-record session).
_FIRST_KEY_PATTERN = rb'\{\s*+"(?:[\s+\-0-9\\]|[\x80-\xff])(?:[^"\\]|\\.)*+"\s*+:\s*+[-0-9]'
if sys.version_info < (3, 11):  # pragma: no cover - no possessive repeats before 3.11
    _FIRST_KEY_PATTERN = _FIRST_KEY_PATTERN.replace(b"*+", b"*")
_NUMERIC_FIRST_KEY: Final = re.compile(_FIRST_KEY_PATTERN)


def _may_hold_a_buffer(data: bytes | bytearray) -> bool:
    # A backslash is rare in records: looking for one first is cheaper than for "\\u".
    return (
        b"uffer" in data
        or (b"\\" in data and b"\\u" in data)
        or _NUMERIC_FIRST_KEY.search(data) is not None
    )


def decode(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse a Baileys JSON document, turning every Buffer form Baileys reads into ``bytes``.

    Raises :class:`~waauth.InvalidInput` (a ``ValueError``) if ``data`` is not valid JSON or
    holds a Buffer form that no Baileys version can read.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if type(value) not in _CONTAINERS:
        return value
    # Most records (sessions, sender keys) hold no Buffer form at all: skip the walk, which
    # costs several times the parse.
    if isinstance(data, bytes | bytearray) and not _may_hold_a_buffer(data):
        return value
    return _revive(value)


def encode(value: Any) -> bytes:
    """Serialize ``value`` exactly as ``JSON.stringify(value, BufferJSON.replacer)`` would.

    Accepts ``dict`` (string keys), ``list``/``tuple``, ``str``, ``int``, finite ``float``,
    ``bool``, ``None`` and ``bytes``/``bytearray``/``memoryview``. Anything else raises
    :class:`~waauth.InvalidInput`.
    """
    try:
        return orjson.dumps(_prepare(value))
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"cannot encode value: {exc}") from None


def _is_array_index(key: str) -> bool:
    """Whether JavaScript treats object key ``key`` as an array index (listed first, ascending)."""
    if not key.isdigit() or not key.isascii():
        return False
    return (key == "0" or key[0] != "0") and int(key) <= _MAX_ARRAY_INDEX


# -- decoding ------------------------------------------------------------------------------------

if sys.version_info >= (3, 11):

    def _strict_b64decode(text: str) -> bytes:
        # The C decoder's strict mode accepts what `b64decode(validate=True)` accepts, without
        # its Python-level regular expression.
        return binascii.a2b_base64(text, strict_mode=True)

else:  # pragma: no cover - Python 3.10

    def _strict_b64decode(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _revive(value: Any) -> Any:
    """``value`` with every Buffer form in it turned into bytes.

    Works in place: the containers are fresh from the parser and nobody else holds them, so
    only the Buffer forms are replaced (rebuilding every object cost more than the parse).
    """
    if type(value) is list:
        for i, item in enumerate(value):
            if type(item) in _CONTAINERS:
                value[i] = _revive(item)
        return value
    buffer = _as_buffer(value)
    if buffer is not None:
        return buffer
    for key, item in value.items():
        kind = type(item)
        if kind is dict:
            # The form Baileys writes, {"type":"Buffer","data":"<base64>"}, decided here
            # (as _as_buffer would) without a call per level: keys hold thousands of them.
            data = item.get("data")
            if type(data) is str and data and item.get("type") == "Buffer":
                value[key] = _b64decode(data)
            else:
                value[key] = _revive(item)  # replacing a value keeps the dict's size and order
        elif kind is list:
            value[key] = _revive(item)
    return value


def _as_buffer(obj: dict[str, Any]) -> bytes | None:
    """The bytes a Baileys reviver makes of ``obj``, or None if no version treats it as a Buffer."""
    # 6.x: `{type:'Buffer'}` or `{buffer:true}`, payload in `data || value`, base64 or ints.
    # 7.x: `{type:'Buffer', data:<base64 string>}` only.
    if ("type" in obj and obj["type"] == "Buffer") or obj.get("buffer") is True:
        payload = obj.get("data")
        if not _js_truthy(payload):
            payload = obj.get("value")
        if isinstance(payload, str):
            return _b64decode(payload)
        if not _js_truthy(payload):
            return b""
        if isinstance(payload, list) and all(_is_number(v) for v in payload):
            return _to_uint8(payload)
        raise InvalidInput("a Buffer object whose data is neither base64 nor a list of numbers")
    # 7.x also revives a Uint8Array that was serialized without the replacer: {"0":1,"1":2}.
    # The first key decides most objects at once.
    if (
        obj
        and _PARSE_INT.match(next(iter(obj)))
        and all(_PARSE_INT.match(k) for k in obj)
        and all(_is_number(v) for v in obj.values())
    ):
        return _to_uint8([obj[k] for k in _js_key_order(obj)])
    return None


def _js_truthy(value: Any) -> bool:
    # JavaScript truthiness: "", 0, false, null (and NaN) are falsy; [] and {} are not.
    return not (value is None or value is False or value == "" or (_is_number(value) and not value))


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _to_uint8(numbers: list[Any]) -> bytes:
    # `Buffer.from(array)` truncates each number and keeps its low eight bits.
    return bytes(int(n) & 0xFF for n in numbers)


def _b64decode(text: str) -> bytes:
    try:
        return _strict_b64decode(text)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        pass
    # Node's base64 decoder also takes the URL-safe alphabet, missing padding and stray
    # characters; do the same so that anything Baileys can read, waauth can read.
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text.replace("-", "+").replace("_", "/"))
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error as exc:
        raise InvalidInput(f"Buffer data is not base64 ({exc})") from None


# -- encoding ------------------------------------------------------------------------------------


def _prepare(value: Any) -> Any:
    """Turn ``value`` into what orjson writes byte-for-byte as JavaScript would."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return _prepare_object(value)
    if kind is list or kind is tuple:
        return [_prepare(v) for v in value]
    if kind is bytes or kind is bytearray or kind is memoryview:
        return {"type": "Buffer", "data": binascii.b2a_base64(value, newline=False).decode()}
    if kind is float:
        return orjson.Fragment(_js_number(value))
    # Subclasses (IntEnum, StrEnum, OrderedDict, ...) and other mappings: the general path.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)  # the characters, not an Enum's "Class.NAME"
    if isinstance(value, float):
        return orjson.Fragment(_js_number(float(value)))
    if isinstance(value, Mapping):
        return _prepare_object(dict(value))
    if isinstance(value, list | tuple):
        return [_prepare(v) for v in value]
    raise InvalidInput(f"cannot store a value of type {kind.__name__} in a Baileys record")


def _prepare_object(obj: dict[Any, Any]) -> dict[str, Any]:
    # The loop of _prepare inlined for the common leaves: records are many small objects, and
    # a call per value cost more than the serialization itself.
    out: dict[str, Any] = {}
    for key, item in obj.items():
        if type(key) is not str:
            raise InvalidInput(f"object keys must be strings, not {type(key).__name__}")
        if key[:1].isdigit() and _is_array_index(key):
            for key in obj:  # noqa: PLW2901 - the rest of the keys must be checked too
                if type(key) is not str:
                    raise InvalidInput(f"object keys must be strings, not {type(key).__name__}")
            return {k: _prepare(obj[k]) for k in _js_key_order(obj)}
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            out[key] = item
        elif kind is bytes:
            out[key] = {"type": "Buffer", "data": binascii.b2a_base64(item, newline=False).decode()}
        else:
            out[key] = _prepare(item)
    return out


def _js_key_order(obj: dict[str, Any]) -> list[str]:
    indexes = [k for k in obj if _is_array_index(k)]
    if not indexes:
        return list(obj)
    indexes.sort(key=int)
    return indexes + [k for k in obj if not _is_array_index(k)]


def _js_number(number: float) -> bytes:
    """Format a float as ECMAScript's ``Number::toString`` does (used by ``JSON.stringify``)."""
    if not math.isfinite(number):
        raise InvalidInput(f"cannot store {number!r}: JSON has no such number")
    if number == 0:
        return b"0"
    # repr() gives the shortest digits that round-trip, as JavaScript does; only the layout
    # (where the point goes, when to switch to exponent form) differs.
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k  # the value is 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return (("-" if number < 0 else "") + text).encode()
