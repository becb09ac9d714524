"""Realistic Baileys 7 session data, built from the golden folder real Baileys wrote.

Every value keeps the shape of a file Baileys 7.0.0-rc14 wrote in ``tests/data/golden/baileys7``
(libsignal session records, sender-key records, creds, ...), with fresh random key material and
grown to the sizes seen in long-lived sessions: pre-key ~165 B, session 1-4 KB, sender-key
0.5-2 KB, creds ~3 KB. The benchmark hands these values to real Baileys under Node, which writes
the session folders every system starts from (see ``bench.node``), so the files on disk are
Baileys' own bytes.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waauth import codec, layout

GOLDEN = (
    Path(__file__).resolve().parent.parent / "tests" / "data" / "golden" / "baileys7" / "session"
)

# The 5,000 key files of one long-lived Baileys 7 session (plus creds.json).
FOLDER_MIX: dict[str, int] = {
    "pre-key": 800,
    "session": 2000,
    "sender-key": 1000,
    "identity-key": 500,
    "lid-mapping": 300,
    "sender-key-memory": 200,
    "device-list": 150,
    "app-state-sync-key": 40,
    "app-state-sync-version": 5,
    "tctoken": 5,
}

SMALL_MIX: dict[str, int] = {t: max(1, n // 5) for t, n in FOLDER_MIX.items()}
"""One fifth of it: a 1,000-file session (plus creds.json), for the many-session workloads."""


@dataclass
class Spec:
    """A session's creds and keys, as Python values (``bytes`` for Buffers)."""

    creds: dict[str, Any]
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """The folder Baileys writes for it: ``{file name: bytes}``."""
        out = {layout.CREDS_FILE: codec.encode(self.creds)}
        for key_type, entries in self.keys.items():
            for key_id, value in entries.items():
                out[layout.file_name(key_type, key_id)] = codec.encode(value)
        return out

    def groups(self) -> dict[str, list[str]]:
        """``{type: [ids]}``: what reading every key takes."""
        return {key_type: list(entries) for key_type, entries in self.keys.items()}

    def count(self) -> int:
        return 1 + sum(len(entries) for entries in self.keys.values())

    def write(self, path: Path) -> None:
        """The spec as BufferJSON text, for the Node worker."""
        path.write_bytes(codec.encode({"creds": self.creds, "keys": self.keys}))


class Maker:
    """Makes values; ``random.Random(seed)`` makes every run use the same sizes and ids."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible data; keys are not used
        self._golden_creds = codec.decode((GOLDEN / layout.CREDS_FILE).read_bytes())

    def raw(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def b64(self, n: int, prefix: bytes = b"") -> str:
        return base64.b64encode(prefix + self.raw(n - len(prefix))).decode()

    def phone(self) -> str:
        return f"55{self.rng.randrange(11, 99)}9{self.rng.randrange(10**7, 10**8)}"

    def lid(self) -> str:
        return str(self.rng.randrange(10**14, 10**15))

    def group(self) -> str:
        return f"120363{self.rng.randrange(10**11, 10**12)}@g.us"

    def stamp(self) -> int:
        return 1_790_000_000_000 + self.rng.randrange(10**10)

    # -- values, each the shape of a golden file ---------------------------------------------

    def pre_key(self) -> dict[str, bytes]:
        return {"private": self.raw(32), "public": self.raw(32)}

    def _chain(self, chain_type: int, message_keys: int) -> dict[str, Any]:
        counter = self.rng.randrange(message_keys, message_keys + 40)
        keys = sorted(self.rng.sample(range(counter), message_keys))
        return {
            "chainKey": {"counter": counter, "key": self.b64(32)},
            "chainType": chain_type,
            "messageKeys": {str(k): self.b64(32) for k in keys},
        }

    def _session_entry(self, closed: bool) -> tuple[str, dict[str, Any]]:
        base_key = self.b64(33, b"\x05")
        created = self.stamp()
        entry = {
            "registrationId": self.rng.randrange(1, 16380),
            "currentRatchet": {
                "ephemeralKeyPair": {"pubKey": self.b64(33, b"\x05"), "privKey": self.b64(32)},
                "lastRemoteEphemeralKey": self.b64(33, b"\x05"),
                "previousCounter": self.rng.randrange(0, 50),
                "rootKey": self.b64(32),
            },
            "indexInfo": {
                "baseKey": base_key,
                "baseKeyType": self.rng.choice((1, 2)),
                "closed": created + self.rng.randrange(10**9) if closed else -1,
                "used": created + self.rng.randrange(10**8),
                "created": created,
                "remoteIdentityKey": self.b64(33, b"\x05"),
            },
            "_chains": {self.b64(33, b"\x05"): self._chain(1, 0)},
        }
        return base_key, entry

    def session(self, size: int) -> dict[str, Any]:
        """A libsignal SessionRecord of about ``size`` bytes: the open session, receiving
        chains with skipped message keys, then older closed sessions, as they accumulate."""
        key, entry = self._session_entry(closed=False)
        record: dict[str, Any] = {"_sessions": {key: entry}, "version": "v1"}
        current = entry
        while len(codec.encode(record)) < size:
            chains = current["_chains"]
            if len(chains) < 4:
                chains[self.b64(33, b"\x05")] = self._chain(2, self.rng.randrange(0, 4))
            else:
                key, current = self._session_entry(closed=True)
                record["_sessions"] = {key: current, **record["_sessions"]}
        return record

    def sender_key(self, size: int) -> bytes:
        """A sender-key record: a Buffer of the UTF-8 JSON libsignal keeps (seeds as int
        arrays, as Baileys itself writes them), with cached message keys up to ``size``."""

        def buf(n: int) -> dict[str, Any]:
            return {"type": "Buffer", "data": list(self.raw(n))}

        state: dict[str, Any] = {
            "senderKeyId": self.rng.randrange(2**31),
            "senderChainKey": {"iteration": self.rng.randrange(1, 500), "seed": buf(32)},
            "senderSigningKey": {"public": buf(33), "private": {"type": "Buffer", "data": []}},
            "senderMessageKeys": [],
        }
        while True:
            data = codec.encode([state])
            if len(data) * 4 // 3 + 30 >= size:
                return data
            state["senderMessageKeys"].append(
                {"iteration": self.rng.randrange(1, 500), "seed": buf(32)}
            )

    def identity_key(self) -> bytes:
        return b"\x05" + self.raw(32)

    def sender_key_memory(self) -> dict[str, bool]:
        return {
            f"{self.phone()}:{self.rng.randrange(0, 30)}@s.whatsapp.net": True
            for _ in range(self.rng.randrange(1, 12))
        }

    def app_state_sync_key(self) -> dict[str, Any]:
        return {
            "keyData": self.b64(32),
            "fingerprint": {
                "rawId": self.rng.randrange(2**31),
                "currentIndex": self.rng.randrange(0, 20),
                "deviceIndexes": sorted(self.rng.sample(range(40), 3)),
            },
            "timestamp": str(self.stamp()),
        }

    def app_state_sync_version(self, entries: int) -> dict[str, Any]:
        return {
            "version": self.rng.randrange(1, 5000),
            "hash": self.raw(128),
            "indexValueMap": {self.b64(32): {"valueMac": self.raw(32)} for _ in range(entries)},
        }

    def tctoken(self) -> dict[str, Any]:
        return {"token": self.raw(self.rng.randrange(20, 80)), "timestamp": str(self.stamp())}

    def creds(self, size: int = 3000) -> dict[str, Any]:
        """The golden creds.json (paired, 7.x) with fresh keys, history entries up to ``size``."""
        creds = codec.decode(codec.encode(self._golden_creds))

        def refresh(value: Any) -> Any:
            if isinstance(value, bytes):
                return self.raw(len(value))
            if isinstance(value, dict):
                return {k: refresh(v) for k, v in value.items()}
            if isinstance(value, list):
                return [refresh(v) for v in value]
            return value

        creds = refresh(creds)
        assert isinstance(creds, dict)
        history = creds["processedHistoryMessages"]
        while len(codec.encode(creds)) < size:
            history.append(
                {
                    "key": {
                        "remoteJid": f"{self.phone()}@s.whatsapp.net",
                        "fromMe": self.rng.random() < 0.5,
                        "id": f"3EB0{self.raw(8).hex().upper()}",
                    },
                    "messageTimestamp": self.stamp() // 1000,
                }
            )
        return creds

    # -- ids --------------------------------------------------------------------------------

    def session_id(self) -> str:
        if self.rng.random() < 0.5:
            return f"{self.phone()}.{self.rng.choice((0, 0, 0, 1, 2, 3, 12))}"
        return f"{self.lid()}_1.{self.rng.choice((0, 0, 1, 2, 5))}"

    def value_for(self, key_type: str) -> Any:
        rng = self.rng
        if key_type == "pre-key":
            return self.pre_key()
        if key_type == "session":
            return self.session(rng.randrange(1000, 4000))
        if key_type == "sender-key":
            return self.sender_key(rng.randrange(500, 2000))
        if key_type == "identity-key":
            return self.identity_key()
        if key_type == "lid-mapping":
            return self.lid() if rng.random() < 0.5 else self.phone()
        if key_type == "sender-key-memory":
            return self.sender_key_memory()
        if key_type == "device-list":
            return [str(d) for d in sorted(rng.sample(range(30), rng.randrange(1, 5)))]
        if key_type == "app-state-sync-key":
            return self.app_state_sync_key()
        if key_type == "app-state-sync-version":
            return self.app_state_sync_version(rng.randrange(10, 100))
        if key_type == "tctoken":
            return self.tctoken()
        raise ValueError(key_type)

    def id_for(self, key_type: str, n: int) -> str:
        rng = self.rng
        if key_type == "pre-key":
            return str(13 + n)  # the first few were used
        if key_type in ("session", "identity-key"):
            return self.session_id()
        if key_type == "sender-key":
            return f"{self.group()}::{self.phone()}::{rng.choice((0, 0, 1, 12))}"
        if key_type == "lid-mapping":
            return self.phone() if n % 2 else f"{self.lid()}_reverse"
        if key_type in ("device-list", "tctoken"):
            return self.phone()
        if key_type == "sender-key-memory":
            return self.group()
        if key_type == "app-state-sync-key":
            return base64.b64encode(b"\x00\x00\x00" + self.raw(3)).decode()
        if key_type == "app-state-sync-version":
            names = ("critical_block", "critical_unblock_low", "regular", "regular_high")
            return (*names, "regular_low")[n]
        raise ValueError(key_type)

    def spec(self, mix: dict[str, int]) -> Spec:
        """creds plus ``mix[type]`` keys of each type, every file name distinct."""
        spec = Spec(self.creds())
        names = {layout.CREDS_FILE}
        for key_type, count in mix.items():
            entries: dict[str, Any] = {}
            n = 0
            while len(entries) < count:
                key_id = self.id_for(key_type, n)
                n += 1
                name = layout.file_name(key_type, key_id)
                if name in names:
                    continue
                names.add(name)
                entries[key_id] = self.value_for(key_type)
            spec.keys[key_type] = entries
        return spec


def sizes(files: dict[str, bytes]) -> dict[str, tuple[int, int, int]]:
    """``{type: (count, min bytes, max bytes)}`` of a folder, for the report."""
    out: dict[str, list[int]] = {}
    for name, data in files.items():
        out.setdefault(layout.parse_file_name(name)[0], []).append(len(data))
    return {t: (len(v), min(v), max(v)) for t, v in sorted(out.items())}
