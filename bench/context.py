"""The run's shared set-up: database, Node worker, datasets stored in every system, floors."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from waauth import Keyring, PostgresAuthState, codec, migrate

from . import data
from .nodejs import NodeWorker

T = TypeVar("T")

SEED = 20_250_812
AAD = b"waauth/v1\0"
"""The associated data's prefix (docs/encryption.md): header, session id, NUL, file name follow."""


@dataclass
class Dataset:
    """One session's data, stored the same way in every system before any timing."""

    spec: data.Spec
    files: dict[str, bytes]
    """The folder's files, as Baileys wrote them."""
    folder: Path
    """That folder, written by Baileys' useMultiFileAuthState under Node."""
    session: str
    """Its session id in waauth and in postgres-baileys."""


@dataclass
class Context:
    dsn: str
    keyring: Keyring
    keyring_key: str
    """The keyring's one key (base64), for the memory workloads' own processes."""
    node: NodeWorker
    work: Path
    """The run's scratch folder; nothing in it is deleted before the run ends."""
    reps: int
    tag: str
    """Unique to the run, in every session id, so that a run never meets an earlier one's rows."""
    rng: random.Random
    loop: asyncio.AbstractEventLoop
    conn: psycopg.Connection[Any]
    """Autocommit, for the floors and checks."""
    folder: Dataset
    """5,000 key files and creds.json: W3, W4, the whole-session read."""
    sessions: Dataset
    """5,000 session records and creds.json: W2."""
    prekeys: dict[str, Any]
    """812 pre-keys made by Baileys (Curve.generateKeyPair), decoded: W1."""
    aesgcm: AESGCM
    """The keyring's one key, for the decode floor."""

    def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def scratch(self, *parts: str) -> Path:
        """A new folder under the run's scratch folder (never one used before in the run)."""
        path = self.work.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=False)
        return path

    # -- floors: the same work without waauth -------------------------------------------------

    def query_floor(self, session_id: str, names: list[str] | None = None) -> tuple[float, int]:
        """One query fetching the rows (binary, no decryption): seconds, rows."""
        sql = "SELECT file_name, value FROM waauth.records WHERE session_id = %s"
        params: list[Any] = [session_id]
        if names is not None:
            sql += " AND file_name = ANY(%b::text[])"
            params.append(names)
        started = time.perf_counter()
        with self.conn.cursor(binary=True) as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return time.perf_counter() - started, len(rows)

    def decode_floor(self, session_id: str, names: list[str] | None = None) -> tuple[float, int]:
        """The same query, then every value decrypted and parsed in a tight loop (AES-GCM and
        orjson called directly): what Python itself costs, without waauth's own work."""
        started = time.perf_counter()
        sql = "SELECT file_name, value FROM waauth.records WHERE session_id = %s"
        params: list[Any] = [session_id]
        if names is not None:
            sql += " AND file_name = ANY(%b::text[])"
            params.append(names)
        with self.conn.cursor(binary=True) as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        aes = self.aesgcm
        sid = session_id.encode()
        values = [
            orjson.loads(
                aes.decrypt(v[9:21], v[21:], b"".join((AAD, v[:21], sid, b"\0", n.encode())))
            )
            for n, v in rows
        ]
        return time.perf_counter() - started, len(values)

    def upsert_floor(self, session_id: str, files: dict[str, bytes]) -> float:
        """One batch upsert of the files' bytes (``unnest`` over binary arrays), committed."""
        self._new_session(session_id)
        started = time.perf_counter()
        self._upsert(session_id, list(files), list(files.values()))
        return time.perf_counter() - started

    def encode_floor(self, session_id: str, values: dict[str, Any]) -> float:
        """Every value serialized and sealed in a tight loop (orjson, with bytes as Buffer
        forms through ``default``, and AES-GCM called directly), then the same batch upsert:
        what Python itself costs to store them, without waauth's own work."""
        # The version byte and key id, as waauth seals them (taken outside the timing).
        head = self.keyring.encrypt(b"", session_id=session_id, file_name="x.json")[:9]
        self._new_session(session_id)
        started = time.perf_counter()
        tail = session_id.encode() + b"\0"
        nonces = os.urandom(12 * len(values))
        seal = self.aesgcm.encrypt
        sealed = []
        for i, (name, value) in enumerate(values.items()):
            nonce = nonces[i * 12 : (i + 1) * 12]
            plaintext = orjson.dumps(value, default=_buffer_form)
            sealed.append(
                head + nonce + seal(nonce, plaintext, AAD + head + nonce + tail + name.encode())
            )
        self._upsert(session_id, list(values), sealed)
        return time.perf_counter() - started

    def _new_session(self, session_id: str) -> None:
        self.conn.execute(
            "INSERT INTO waauth.sessions (session_id) VALUES (%s) ON CONFLICT DO NOTHING",
            [session_id],
        )

    def _upsert(self, session_id: str, names: list[str], values: list[bytes]) -> None:
        self.conn.execute(
            "INSERT INTO waauth.records AS r (session_id, file_name, type, record_id, value)"
            " SELECT %s, u.f, '', '', u.v FROM unnest(%b::text[], %b::bytea[]) AS u(f, v)"
            " ON CONFLICT (session_id, file_name) DO UPDATE"
            " SET value = EXCLUDED.value, version = r.version + 1",
            [session_id, names, values],
        )


def _buffer_form(value: Any) -> dict[str, str]:
    if isinstance(value, bytes):
        return {"type": "Buffer", "data": base64.b64encode(value).decode()}
    raise TypeError(type(value).__name__)


def write_floor(root: Path, session_id: str, files: dict[str, bytes]) -> float:
    """Plain Python writing the bytes from memory to a fresh folder (the least it takes)."""
    started = time.perf_counter()
    folder = f"{root}/{session_id}"
    os.mkdir(folder, 0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for name, blob in files.items():
        fd = os.open(f"{folder}/{name}", flags, 0o600)
        try:
            os.write(fd, blob)
        finally:
            os.close(fd)
    return time.perf_counter() - started


def read_floor(folder: Path) -> tuple[float, dict[str, bytes]]:
    """Plain Python reading every file of a folder back (the least it takes)."""
    started = time.perf_counter()
    files = {}
    for entry in os.scandir(folder):
        with open(entry.path, "rb", buffering=0) as f:
            files[entry.name] = f.read()
    return time.perf_counter() - started, files


PROBE_FILES = 812
SLOW_CREATE = 50e-6
"""Seconds per new file above which the disk is taken to be in its slow state (measured here:
about 25 us per file normally, 10 times that for a minute or two after many deletions)."""


def settle_disk(work: Path, most: float) -> str:
    """Wait (at most ``most`` seconds) until creating files runs at its normal speed.

    On these machines' ext4 (no journal), creating files soon after many were deleted (a test
    suite's clean-up, a previous run's) is many times slower for a minute or two. The probe
    files stay until the run ends: deleting them would bring the slow state back.
    """
    started = time.monotonic()
    probes = 0
    while True:
        seconds = write_floor(
            work, f"probe-{probes}", {f"f{i}.json": b"x" * 164 for i in range(PROBE_FILES)}
        )
        probes += 1
        per_file = seconds / PROBE_FILES
        waited = time.monotonic() - started
        if per_file <= SLOW_CREATE or waited >= most:
            break
        time.sleep(10)
    state = "normal" if per_file <= SLOW_CREATE else "STILL SLOW (figures touching files suffer)"
    return (
        f"creating files: {per_file * 1e6:.0f} us per file at the start ({state}; "
        f"waited {waited:.0f} s for it)"
    )


def _dataset(
    dsn: str,
    keyring: Keyring,
    node: NodeWorker,
    work: Path,
    *,
    name: str,
    spec: data.Spec,
    session: str,
) -> Dataset:
    """Have Baileys write the folder, check it is byte for byte the spec, store it everywhere."""
    spec_path = work / "specs" / f"{name}.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec.write(spec_path)
    node.call("load_spec", name=name, path=str(spec_path))
    folder = work / "data" / name
    node.call("fs_write_spec", folder=str(folder), spec=name)
    _, files = read_floor(folder)
    expected = spec.files()
    if files != expected:
        differ = sorted(
            n for n in expected.keys() | files.keys() if files.get(n) != expected.get(n)
        )
        raise RuntimeError(f"Baileys wrote {len(differ)} files other than expected: {differ[:5]}")
    with PostgresAuthState.open(dsn, session, keyring=keyring) as state:
        state.import_folder(folder)
    node.call("pb_write_spec", session=session, spec=name)
    return Dataset(spec, files, folder, session)


def make_context(dsn: str, work: Path, reps: int) -> Context:
    """Build the datasets and store them in every system (nothing here is timed)."""
    key = Keyring.generate_key()
    keyring = Keyring([key])
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    node = NodeWorker(dsn)
    tag = secrets.token_hex(3)
    maker = data.Maker(SEED)
    folder = _dataset(
        dsn,
        keyring,
        node,
        work,
        name="folder",
        spec=maker.spec(data.FOLDER_MIX),
        session=f"bench-{tag}-folder",
    )
    sessions = _dataset(
        dsn,
        keyring,
        node,
        work,
        name="sessions",
        spec=maker.spec({"session": 5000}),
        session=f"bench-{tag}-w2",
    )
    prekeys = codec.decode(node.call("prekeys", count=812, first=1)["json"].encode())
    return Context(
        dsn=dsn,
        keyring=keyring,
        keyring_key=key,
        node=node,
        work=work,
        reps=reps,
        tag=tag,
        rng=random.Random(SEED),  # noqa: S311 - reproducible picks, no secret
        loop=asyncio.new_event_loop(),
        conn=psycopg.connect(dsn, autocommit=True),
        folder=folder,
        sessions=sessions,
        prekeys=prekeys,
        aesgcm=AESGCM(base64.b64decode(key)),
    )
