"""The auth-state contract: one suite, run against the in-memory and the Postgres states.

Every test runs four times: ``InMemoryAuthState``, ``AsyncInMemoryAuthState``,
``PostgresAuthState`` and ``AsyncPostgresAuthState`` (the ``impl`` fixture). The sync classes
are called for real, from worker threads (``tests.twins.Awaitable``). A test that passes for
one and fails for another is a bug in one of them: users' tests run on the in-memory states and
their bots on Postgres.

Where the Postgres classes do something surprising, the test pins what they do (and the
in-memory states copy it), with a comment; see the notes of issue 10.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

import waauth
from waauth import RetryPolicy, StoreUnavailable, codec, layout
from waauth._pending import Stats
from waauth.testing import (
    AsyncInMemoryAuthState,
    AsyncInMemoryKeys,
    InMemoryAuthState,
    InMemoryKeys,
    InMemoryStore,
    Outage,
    PostgresSandbox,
    fake_creds,
    fake_keys,
    fake_pre_keys,
    outage,
    sample_session,
)

from .twins import Awaitable

IMPLEMENTATIONS = ["memory-sync", "memory-async", "postgres-sync", "postgres-async"]

# Outages in these tests last a fraction of a second; so do the retry budgets.
SHORT = RetryPolicy(budget=0.4, initial_delay=0.02, max_delay=0.1, connect_timeout=2)
PATIENT = RetryPolicy(budget=10, initial_delay=0.02, max_delay=0.1, connect_timeout=2)


@dataclass
class Impl:
    """One implementation of the auth state, opened and inspected the same way as the others."""

    name: str
    is_async: bool
    state_class: Any
    source: Any
    inspector: InMemoryStore | PostgresSandbox
    options: dict[str, Any] = field(default_factory=dict)

    async def open(self, session_id: str, **options: Any) -> Awaitable:
        """Open a state (the sync one in a thread) with this implementation's options."""
        options = {**self.options, **options}
        if self.is_async:
            state = await self.state_class.open(self.source, session_id, **options)
        else:
            state = await asyncio.to_thread(
                lambda: self.state_class.open(self.source, session_id, **options)
            )
        return Awaitable(state, self.is_async)

    def files(self, session_id: str) -> dict[str, bytes]:
        """What is stored for a session: file name -> exact bytes."""
        return self.inspector.files(session_id)

    async def list_sessions(self, **options: Any) -> list[waauth.SessionInfo]:
        """The session registry, as waauth.list_sessions tells it."""
        return await asyncio.to_thread(lambda: self.inspector.list_sessions(**options))

    def expire_lease(self, session_id: str) -> None:
        """Make a session's lease expire now, as if its holder had been paused past its ttl."""
        if isinstance(self.inspector, InMemoryStore):
            store = self.inspector
            with store.lock:
                leases = store.tables("waauth").leases
                leases[session_id] = dataclasses.replace(
                    leases[session_id], expires_at=datetime.now(timezone.utc)
                )
            return
        with self.inspector.connect() as conn:
            conn.execute(
                sql.SQL("UPDATE {}.leases SET expires_at = now() WHERE session_id = %s").format(
                    sql.Identifier(self.inspector.schema)
                ),
                [session_id],
            )


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Impl:
    """Each implementation in turn; the Postgres ones on a fresh schema of their own."""
    kind, flavour = str(request.param).split("-")
    is_async = flavour == "async"
    if kind == "memory":
        store = InMemoryStore()
        cls: Any = AsyncInMemoryAuthState if is_async else InMemoryAuthState
        return Impl(request.param, is_async, cls, store, store)
    # Only the Postgres parameters start (or reach) a server.
    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("schema")
    keyring = request.getfixturevalue("keyring")
    cls = waauth.AsyncPostgresAuthState if is_async else waauth.PostgresAuthState
    sandbox = PostgresSandbox(dsn, schema, keyring)
    return Impl(request.param, is_async, cls, dsn, sandbox, {"schema": schema, "keyring": keyring})


def halt(state: Awaitable, **options: Any) -> Outage:
    """Start an outage of the database under ``state``."""
    return outage(state.obj, **options)


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``check()`` holds (for effects of a background writer)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


# -- the API -------------------------------------------------------------------------------------


PAIRS = [
    (InMemoryAuthState, waauth.PostgresAuthState),
    (AsyncInMemoryAuthState, waauth.AsyncPostgresAuthState),
    (InMemoryKeys, waauth.Keys),
    (AsyncInMemoryKeys, waauth.AsyncKeys),
]
# Differences on purpose: the in-memory states need no keyring, and have a store.
EXTRA_PUBLIC = {"store"}


@pytest.mark.parametrize(("memory", "postgres"), PAIRS, ids=lambda c: c.__name__)
def test_same_public_api(memory: type, postgres: type) -> None:
    """Every public method has the same name, parameters, defaults and (a)sync kind."""
    public = {n for n in dir(postgres) if not n.startswith("_")}
    assert {n for n in dir(memory) if not n.startswith("_")} - EXTRA_PUBLIC == public
    for name in public:
        ours, theirs = getattr(memory, name), getattr(postgres, name)
        if not callable(theirs):
            continue
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name
        expected = [
            (p.name, p.kind, p.default) for p in inspect.signature(theirs).parameters.values()
        ]
        got = [(p.name, p.kind, p.default) for p in inspect.signature(ours).parameters.values()]
        if name == "open":  # the in-memory states take no keyring, or any
            expected = [(n, k, None if n == "keyring" else d) for n, k, d in expected]
        assert got == expected, name


# -- creds and keys ------------------------------------------------------------------------------


async def test_new_session(impl: Impl) -> None:
    """A session never stored: creds None, every key missing, clean stats, nothing stored."""
    async with await impl.open("fresh") as state:
        assert state.creds is None
        assert await state.keys.get("pre-key", ["1", "2"]) == {"1": None, "2": None}
        stats = state.stats()
        assert isinstance(stats, Stats)
        assert (stats.writes, stats.failures, stats.pending, stats.success_rate) == (0, 0, 0, 1.0)
        assert state.session_id == "fresh"
        assert state.owner_id is None
    assert impl.files("fresh") == {}
    assert await impl.list_sessions() == []


async def test_creds_round_trip(impl: Impl) -> None:
    """Saved creds reopen equal and in order; an in-place change is saved; bytes as Baileys."""
    creds = fake_creds(1, paired=True)
    async with await impl.open("s1") as state:
        state.creds = fake_creds(1, paired=True)
        await state.save_creds()
        state.creds["nextPreKeyId"] = 813
        await state.save_creds()
        assert state.stats().creds_saves == 2
    creds["nextPreKeyId"] = 813
    async with await impl.open("s1") as again:
        assert again.creds == creds
        assert list(again.creds) == list(creds)
    assert impl.files("s1") == {"creds.json": codec.encode(creds)}


async def test_every_key_type_round_trips(impl: Impl) -> None:
    """Keys of every Baileys type come back equal, stored as the exact bytes Baileys writes."""
    keys = fake_keys(3)
    assert set(keys) == set(layout.KEY_TYPES)
    async with await impl.open("s1") as state:
        await state.keys.set(keys)
        for key_type, entries in keys.items():
            assert await state.keys.get(key_type, list(entries)) == entries, key_type
    expected = {
        layout.file_name(t, i): codec.encode(v)
        for t, entries in keys.items()
        for i, v in entries.items()
    }
    assert impl.files("s1") == expected


async def test_falsy_values_delete(impl: Impl) -> None:
    """None, False, 0, '' and NaN delete; empty bytes, lists and dicts are values."""
    async with await impl.open("s1") as state:
        values = {"a": {"x": 1}, "b": b"", "c": [], "d": {}, "e": 2, "f": "x", "g": True, "h": 1.5}
        await state.keys.set({"t": values})
        assert await state.keys.get("t", list(values)) == values
        await state.keys.set(
            {"t": {"a": None, "e": 0, "f": "", "g": False, "h": math.nan, "never": None}}
        )
        assert await state.keys.get("t", list(values)) == {
            "a": None,
            "b": b"",
            "c": [],
            "d": {},
            "e": None,
            "f": None,
            "g": None,
            "h": None,
        }
    assert sorted(impl.files("s1")) == ["t-b.json", "t-c.json", "t-d.json"]


async def test_ids_sharing_a_file(impl: Impl) -> None:
    """Ids that Baileys maps to one file share one value; within a call the last one wins."""
    async with await impl.open("s1") as state:
        await state.keys.set({"session": {"a:b": {"v": 1}, "a-b": {"v": 2}}})
        assert await state.keys.get("session", ["a:b", "a-b", "a_b"]) == {
            "a:b": {"v": 2},
            "a-b": {"v": 2},
            "a_b": None,
        }
        # An id given twice in one get is answered once.
        assert await state.keys.get("session", ["a:b", "a:b"]) == {"a:b": {"v": 2}}
    assert impl.files("s1") == {"session-a-b.json": b'{"v":2}'}


async def test_bad_input_raises_and_applies_nothing(impl: Impl) -> None:
    """Bad ids, values that cannot be stored and wrong shapes raise InvalidInput at once;
    nothing of the call is applied, not even its valid entries."""
    with pytest.raises(waauth.InvalidInput, match="invalid session id"):
        await impl.open("../etc")
    with pytest.raises(waauth.ConfigurationError, match="window"):
        await impl.open("s1", window=-1)
    with pytest.raises(waauth.ConfigurationError, match="keyring"):
        await impl.open("s1", keyring="not a keyring")
    with pytest.raises(waauth.ConfigurationError, match="schema name"):
        await impl.open("s1", schema="Bad-Schema")
    with pytest.raises(waauth.ConfigurationError, match="owner_id"):
        await impl.open("s1", owner_id="")
    async with await impl.open("s1") as state:
        await state.keys.set({"pre-key": {"1": {"kept": True}}})
        with pytest.raises(waauth.InvalidInput, match="cannot store a value of type set"):
            await state.keys.set({"pre-key": {"1": None, "2": {"bad": {1, 2}}}})
        with pytest.raises(waauth.InvalidInput, match="must map ids to values"):
            await state.keys.set({"pre-key": ["1"]})
        with pytest.raises(waauth.InvalidInput, match="key id"):
            await state.keys.set({"pre-key": {1: {"v": 1}}})
        with pytest.raises(waauth.InvalidInput, match="list of ids"):
            await state.keys.get("pre-key", "1")
        with pytest.raises(waauth.InvalidInput, match="no creds to save"):
            await state.save_creds()
        with pytest.raises(waauth.InvalidInput, match="creds lack"):
            state.creds = {"registered": True}
        state.creds = fake_creds()
        state.creds["bad"] = object()
        with pytest.raises(waauth.InvalidInput, match=r"creds\.json"):
            await state.save_creds()
        assert state.stats().writes == 1
    assert impl.files("s1") == {"pre-key-1.json": b'{"kept":true}'}


async def test_closed_state_refuses_work(impl: Impl) -> None:
    """After close every call raises WaauthError('... is closed'); closing twice is fine."""
    state = await impl.open("s1")
    await state.close()
    await state.close()
    assert "closed" in repr(state)
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.keys.get("pre-key", ["1"])
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.keys.set({"pre-key": {"1": {"v": 1}}})
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.flush()
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.delete()
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.materialize("unused")
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.import_folder(sample_session())
    state.creds = fake_creds()
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.save_creds()
    assert state.stats().writes == 0


async def test_no_secret_in_repr_or_stats(impl: Impl) -> None:
    """Reprs and stats name the session, never a key."""
    creds = fake_creds(5, paired=True)
    async with await impl.open("s1") as state:
        state.creds = creds
        await state.save_creds()
        await state.flush()
        blob = "\n".join([repr(state), repr(state.keys), repr(state.stats())])
    assert "s1" in blob
    for secret in (creds["noiseKey"]["private"], creds["signedIdentityKey"]["private"]):
        assert secret.hex() not in blob
        assert repr(secret) not in blob


# -- write-behind ------------------------------------------------------------------------------


async def test_flush_and_close_store_what_was_saved(impl: Impl) -> None:
    """After flush everything saved is stored; leaving the block flushes too."""
    async with await impl.open("s1", window=3600) as state:
        state.creds = fake_creds()
        for i in range(1, 51):
            state.creds["nextPreKeyId"] = i
            await state.save_creds()
        await state.flush()
        assert state.stats().pending == 0
        assert state.stats().flush_seconds is not None
        assert codec.decode(impl.files("s1")["creds.json"])["nextPreKeyId"] == 50
        state.creds["nextPreKeyId"] = 51
        await state.save_creds()
    assert codec.decode(impl.files("s1")["creds.json"])["nextPreKeyId"] == 51
    stats = state.stats()
    assert stats.creds_saves == 51
    assert 1 <= stats.creds_writes <= 51


async def test_keys_set_carries_saved_creds(impl: Impl) -> None:
    """Creds saved before a keys.set are stored when it returns: never older than later keys."""
    async with await impl.open("s1", window=3600) as state:
        state.creds = fake_creds()
        state.creds["nextPreKeyId"] = 31
        await state.save_creds()
        await state.keys.set({"pre-key": fake_pre_keys(30)})
        assert codec.decode(impl.files("s1")["creds.json"])["nextPreKeyId"] == 31
        assert state.stats().pending == 0


async def test_throttled_keys(impl: Impl) -> None:
    """With throttle_keys, keys.set returns at once, reads see it, and flush stores it."""
    async with await impl.open("s1", throttle_keys=True) as state:
        await state.keys.set({"session": {"a.1": {"v": 1}, "a.2": {"v": 2}}})
        await state.keys.set({"session": {"a.2": None, "a.3": {"v": 3}}})
        assert await state.keys.get("session", ["a.1", "a.2", "a.3"]) == {
            "a.1": {"v": 1},
            "a.2": None,
            "a.3": {"v": 3},
        }
        await state.flush()
    assert impl.files("s1") == {"session-a.1.json": b'{"v":1}', "session-a.3.json": b'{"v":3}'}


async def test_stats_count_writes(impl: Impl) -> None:
    """A write-through keys.set is one write of its records, and succeeds."""
    async with await impl.open("s1") as state:
        await state.keys.set({"pre-key": fake_pre_keys(3)})
        stats = state.stats()
        assert (stats.writes, stats.records_written, stats.failures) == (1, 3, 0)
        assert stats.last_success is not None
        assert stats.last_error is None


async def test_concurrent_writers_lose_nothing(impl: Impl) -> None:
    """Several threads (sync) or tasks (async) calling keys.set on one state: every key lands,
    and a key they all rewrite holds one writer's last value."""
    async with await impl.open("busy") as state:

        async def worker(w: int) -> None:
            for call in range(10):
                await state.keys.set(
                    {
                        "session": {f"{w}.{call}.{k}": {"w": w, "c": call} for k in range(3)},
                        "sender-key-memory": {"shared": {"last": f"{w}.{call}"}},
                    }
                )

        await asyncio.gather(*(worker(w) for w in range(4)))
        ids = [f"{w}.{c}.{k}" for w in range(4) for c in range(10) for k in range(3)]
        got = await state.keys.get("session", ids)
        assert all(got[i] == {"w": int(i[0]), "c": int(i.split(".")[1])} for i in ids)
        shared = await state.keys.get("sender-key-memory", ["shared"])
        assert shared["shared"]["last"].endswith(".9")
    assert len(impl.files("busy")) == len(ids) + 1


# -- sessions, logout ----------------------------------------------------------------------------


async def test_delete_logs_out(impl: Impl) -> None:
    """delete() removes creds and keys (and drops what was pending); the session reopens new
    and stays listed, logged_out."""
    async with await impl.open("s1", window=3600) as state:
        state.creds = fake_creds(paired=True)
        await state.save_creds()
        await state.keys.set({"pre-key": fake_pre_keys(2)})
        state.creds["nextPreKeyId"] = 999
        await state.save_creds()
        await state.delete()
        assert state.creds is None
        assert await state.keys.get("pre-key", ["1"]) == {"1": None}
        await state.flush()
    assert impl.files("s1") == {}
    async with await impl.open("s1") as again:
        assert again.creds is None
    [info] = await impl.list_sessions()
    assert (info.session_id, info.status, info.files, info.account_id) == (
        "s1",
        "logged_out",
        {},
        None,
    )
    # Keys written after a logout leave it logged out; creds make it active again.
    async with await impl.open("s1") as again:
        await again.keys.set({"pre-key": fake_pre_keys(1)})
        assert [i.status for i in await impl.list_sessions()] == ["logged_out"]
        again.creds = fake_creds(paired=True)
        await again.save_creds()
    [info] = await impl.list_sessions()
    assert (info.status, info.account_id) == ("active", fake_creds(paired=True)["me"]["id"])


async def test_list_sessions(impl: Impl) -> None:
    """The registry tells owner, status, me.id and files per type, filtered as asked."""
    creds = fake_creds(2, paired=True)
    async with await impl.open("paired", owner_id="alice") as state:
        state.creds = creds
        await state.save_creds()
        await state.keys.set({"pre-key": fake_pre_keys(2)})
    async with await impl.open("keys-only") as state:
        await state.keys.set({"session": {"x.1": {"_sessions": {}, "version": "v1"}}})
    keys_only, paired = await impl.list_sessions()
    assert (paired.session_id, paired.owner_id, paired.status, paired.account_id) == (
        "paired",
        "alice",
        "active",
        creds["me"]["id"],
    )
    assert paired.files == {"creds": 1, "pre-key": 2}
    assert paired.has_creds
    assert paired.bytes >= len(codec.encode(creds))
    assert paired.created_at is not None
    assert paired.updated_at is not None
    assert (keys_only.session_id, keys_only.status, keys_only.files) == (
        "keys-only",
        "new",
        {"session": 1},
    )
    assert [i.session_id for i in await impl.list_sessions(owner_id="alice")] == ["paired"]
    assert await impl.list_sessions(owner_id="bob") == []
    assert [i.session_id for i in await impl.list_sessions(status="new")] == ["keys-only"]
    assert [i.session_id for i in await impl.list_sessions(session_ids=["paired", "x"])] == [
        "paired"
    ]


async def test_owners_are_isolated(impl: Impl) -> None:
    """An owner's state can neither open nor write nor read another owner's session."""
    async with await impl.open("shared", owner_id="alice") as alice:
        alice.creds = fake_creds()
        await alice.save_creds()
    with pytest.raises(waauth.AccessDenied, match="another owner"):
        await impl.open("shared", owner_id="bob")
    # A session without an owner is not bob's either.
    async with await impl.open("ownerless") as state:
        await state.keys.set({"pre-key": fake_pre_keys(1)})
    with pytest.raises(waauth.AccessDenied):
        await impl.open("ownerless", owner_id="bob")
    # Bob opened it while it did not exist; alice took it meanwhile.
    bob = await impl.open("race", owner_id="bob")
    async with await impl.open("race", owner_id="alice") as alice:
        await alice.keys.set({"pre-key": {"1": {"v": "alice"}}})
    with pytest.raises(waauth.AccessDenied):
        await bob.keys.set({"pre-key": {"1": {"v": "bob"}}})
    assert await bob.keys.get("pre-key", ["1"]) == {"1": None}
    stats = bob.stats()
    assert (stats.failures, stats.last_error) == (1, "AccessDenied")
    # A refusal is not an outage: no retry can fix it.
    assert stats.outage_seconds is None
    # Saved creds are refused too: dropped, not retried forever; flush tells why.
    bob.creds = fake_creds()
    await bob.save_creds()
    with pytest.raises(waauth.AccessDenied, match=r"another owner.*1 saved records were dropped"):
        await bob.flush()
    assert bob.stats().pending == 0
    # bob cannot log out alice's session either.
    with pytest.raises(waauth.AccessDenied, match="another owner"):
        await bob.delete()
    await bob.close()  # nothing left to write: the refusal was reported by flush
    assert impl.files("race") == {"pre-key-1.json": b'{"v":"alice"}'}
    [race] = await impl.list_sessions(session_ids=["race"])
    assert (race.owner_id, race.status) == ("alice", "new")


# -- session folders -----------------------------------------------------------------------------


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def test_import_then_materialize_byte_for_byte(impl: Impl, tmp_path: Path) -> None:
    """The sample session (made by Baileys) comes back identical, with private modes."""
    sample = folder_files(sample_session())
    async with await impl.open("imported") as state:
        result = await state.import_folder(sample_session())
        assert (result.session_id, result.imported, result.deleted, result.skipped) == (
            "imported",
            len(sample),
            0,
            [],
        )
        assert state.creds == codec.decode(sample["creds.json"])
        target = await state.materialize(tmp_path / "restored")
    assert target == tmp_path / "restored" / "imported"
    assert folder_files(target) == sample
    assert impl.files("imported") == sample
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in target.iterdir()} == {0o600}
    [info] = await impl.list_sessions()
    assert (info.status, info.account_id) == ("active", "5511999999999:12@s.whatsapp.net")


async def test_materialize_without_creds(impl: Impl, tmp_path: Path) -> None:
    """No creds stored: SessionNotFound, and nothing is written."""
    async with await impl.open("keys-only") as state:
        await state.keys.set({"pre-key": fake_pre_keys(1)})
        with pytest.raises(waauth.SessionNotFound, match="no creds stored"):
            await state.materialize(tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_import_skips_strays_and_removes_what_is_gone(
    impl: Impl, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Dotfiles and folders are skipped with a warning, Baileys' own temp files silently; stored
    files the folder no longer has are deleted."""
    folder = Path(shutil.copytree(sample_session(), tmp_path / "s"))
    async with await impl.open("s") as state:
        await state.import_folder(folder)
        (folder / "pre-key-7.json").unlink()
        (folder / ".DS_Store").write_bytes(b"\x00")
        (folder / "creds.json.tmp").write_bytes(b"{")
        (folder / "sub").mkdir()
        with caplog.at_level(logging.WARNING, logger="waauth"):
            result = await state.import_folder(folder)
    assert (result.deleted, sorted(result.skipped)) == (1, [".DS_Store", "sub"])
    assert "pre-key-7.json" not in impl.files("s")
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 2


async def test_import_checks_every_file_first(impl: Impl, tmp_path: Path) -> None:
    """One bad file raises CorruptRecord naming it, and nothing is written."""
    async with await impl.open("s") as state:
        await state.import_folder(sample_session())
        before = impl.files("s")
        for name, content, reason in [
            ("pre-key-99.json", b'{"private":', "not valid JSON"),
            ("creds.json", b'{"registered": true}', "creds lack noiseKey"),
        ]:
            folder = Path(shutil.copytree(sample_session(), tmp_path / name))
            (folder / name).write_bytes(content)
            with pytest.raises(waauth.CorruptRecord, match=f"file '{name}': {reason}"):
                await state.import_folder(folder)
        with pytest.raises(waauth.InvalidInput, match="not a folder"):
            await state.import_folder(tmp_path / "missing")
    assert impl.files("s") == before


async def test_import_refuses_to_replace_an_account(impl: Impl, tmp_path: Path) -> None:
    """Another account's creds, or a folder without creds, do not replace stored creds unless
    forced; a folder of the same account does."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "creds.json").write_bytes(codec.encode(fake_creds(9, paired=True)))
    no_creds = Path(shutil.copytree(sample_session(), tmp_path / "no-creds"))
    (no_creds / "creds.json").unlink()
    async with await impl.open("s") as state:
        await state.import_folder(sample_session())
        before = impl.files("s")
        with pytest.raises(waauth.IdentityConflict, match="another account"):
            await state.import_folder(other)
        with pytest.raises(waauth.IdentityConflict, match=r"no creds\.json"):
            await state.import_folder(no_creds)
        assert impl.files("s") == before
        await state.import_folder(sample_session())
        await state.import_folder(other, force=True)
        assert state.creds == fake_creds(9, paired=True)
        # Forcing a folder without creds.json leaves a session without creds: listed as new.
        await state.import_folder(no_creds, force=True)
        assert state.creds is None
    [info] = await impl.list_sessions()
    assert (info.status, info.has_creds, info.account_id) == ("new", False, None)


async def test_import_into_another_owners_session(impl: Impl) -> None:
    """An owner-scoped state cannot import over a session another owner took."""
    bob = await impl.open("taken", owner_id="bob")
    async with await impl.open("taken", owner_id="alice") as alice:
        await alice.import_folder(sample_session())
    with pytest.raises(waauth.AccessDenied):
        await bob.import_folder(sample_session(), force=True)
    await bob.close()


# -- outages -------------------------------------------------------------------------------------


async def test_outage_longer_than_the_budget(impl: Impl) -> None:
    """During an outage save_creds keeps returning (pending), a write-through keys.set raises
    StoreUnavailable after the budget with nothing written, flush raises with ``pending``; when
    the outage ends what was pending lands."""
    state = await impl.open("s1", retry=SHORT, window=0.05)
    state.creds = fake_creds()
    await state.save_creds()
    await state.flush()
    with halt(state) as down:
        assert down.active
        for i in range(1, 101):  # memory holds one entry per file, however many saves
            state.creds["nextPreKeyId"] = i
            await state.save_creds()
        assert state.stats().pending == 1
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await state.keys.set({"pre-key": {"9": {"never": "stored"}}})
        assert time.monotonic() - started >= SHORT.budget * 0.9
        with pytest.raises(StoreUnavailable, match="records pending") as info:
            await state.flush()
        assert info.value.pending == 1
        stats = state.stats()
        assert stats.failures >= 1
        assert stats.retries >= 1
        assert stats.success_rate < 1
        assert stats.last_error is not None
        assert stats.last_error.startswith("StoreUnavailable")
        assert stats.outage_seconds is not None
        assert codec.decode(impl.files("s1")["creds.json"])["nextPreKeyId"] == 1
    assert repr(down) == "<Outage ended>"
    await state.flush()
    stats = state.stats()
    await state.close()
    stored = impl.files("s1")
    assert codec.decode(stored["creds.json"])["nextPreKeyId"] == 100
    assert "pre-key-9.json" not in stored
    assert stats.pending == 0
    assert stats.outage_seconds is None
    assert stats.last_recovery_seconds is not None


async def test_short_outage_is_ridden_out(impl: Impl) -> None:
    """An outage shorter than the budget: keys.set waits it out and succeeds, creds with it."""
    async with await impl.open("s1", retry=PATIENT) as state:
        state.creds = fake_creds()
        halt(state, seconds=0.3)
        await state.save_creds()
        started = time.monotonic()
        await state.keys.set({"pre-key": fake_pre_keys(2)})
        assert time.monotonic() - started >= 0.2
        assert sorted(impl.files("s1")) == ["creds.json", "pre-key-1.json", "pre-key-2.json"]
        stats = state.stats()
        assert stats.retries >= 1
        assert stats.failures == 0


async def test_flush_timeout_in_an_outage(impl: Impl) -> None:
    """flush(timeout) gives up after the timeout with the pending count; the state stays
    usable and a later flush tells the truth."""
    async with await impl.open("s1", retry=PATIENT, window=0.05) as state:
        state.creds = fake_creds()
        with halt(state):
            await state.save_creds()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"not written within 0\.3 s") as info:
                await state.flush(timeout=0.3)
            assert time.monotonic() - started < 5
            assert info.value.pending == 1
        await state.flush()
    assert "creds.json" in impl.files("s1")


async def test_reads_in_an_outage(impl: Impl) -> None:
    """keys.get of stored keys raises StoreUnavailable after the budget; keys still pending
    (throttled) are answered from memory."""
    async with await impl.open("s1", retry=SHORT, throttle_keys=True) as state:
        await state.keys.set({"pre-key": fake_pre_keys(1)})
        await state.flush()
        with halt(state):
            await state.keys.set({"session": {"a.1": {"v": 1}}})
            assert await state.keys.get("session", ["a.1"]) == {"a.1": {"v": 1}}
            with pytest.raises(StoreUnavailable):
                await state.keys.get("pre-key", ["1"])
        await state.flush()
    assert "session-a.1.json" in impl.files("s1")


async def test_close_in_an_outage(impl: Impl) -> None:
    """close() in an outage raises StoreUnavailable once closed; what was pending is lost."""
    state = await impl.open("s1", retry=SHORT, window=0.05)
    state.creds = fake_creds()
    with halt(state):
        await state.save_creds()
        with pytest.raises(StoreUnavailable, match="records pending"):
            await state.close()
    assert "closed" in repr(state)
    await asyncio.sleep(0.3)
    assert impl.files("s1") == {}


async def test_delete_in_an_outage(impl: Impl) -> None:
    """delete() in an outage raises StoreUnavailable and changes nothing."""
    async with await impl.open("s1", retry=SHORT) as state:
        state.creds = fake_creds()
        await state.save_creds()
        await state.flush()
        with halt(state), pytest.raises(StoreUnavailable):
            await state.delete()
        assert state.creds is not None
        # Pinned: only writes of the write-behind path count in the stats; a failed logout
        # (or import, or read) leaves no trace there.
        stats = state.stats()
        assert (stats.failures, stats.retries, stats.last_error) == (0, 0, None)
        await eventually(lambda: "creds.json" in impl.files("s1"))


# -- leases ---------------------------------------------------------------------------------------


async def test_a_lease_keeps_a_second_runner_out_and_fences_the_first(impl: Impl) -> None:
    """lease=True: a second opener gets LeaseHeld naming the holder; once the lease expired
    (the holder paused past its ttl) another takes it over, and the old holder's writes are
    refused with LeaseLost, none of them stored."""
    first = await impl.open("s", lease=True, lease_ttl=30)
    assert [first.obj.lease_held] == [True]  # (a list: mypy would keep the narrowing)
    first.creds = fake_creds(paired=True)
    await first.save_creds()
    await first.flush()
    with pytest.raises(waauth.LeaseHeld, match=r"session 's' is held by .* pid \d+"):
        await impl.open("s", lease=True)
    impl.expire_lease("s")
    second = await impl.open("s", lease=True, lease_ttl=30)
    assert second.creds == fake_creds(paired=True)  # what the last holder wrote
    with pytest.raises(waauth.LeaseLost):
        await first.keys.set({"pre-key": fake_pre_keys(1)})
    assert first.obj.lease_held is False
    await second.keys.set({"pre-key": fake_pre_keys(1, start=5)})
    assert sorted(impl.files("s")) == ["creds.json", "pre-key-5.json"]
    with pytest.raises(waauth.LeaseLost):
        await first.close()
    await second.close()
    # A clean close frees the lease at once: the next runner need not wait for the ttl.
    async with await impl.open("s", lease=True) as third:
        assert third.obj.lease_held is True


async def test_another_owners_session_is_refused_before_its_lease(impl: Impl) -> None:
    """An owner-scoped lease on another owner's session: AccessDenied, no lease taken."""
    async with await impl.open("s", owner_id="alice", lease=True) as alice:
        alice.creds = fake_creds()
        await alice.save_creds()
    with pytest.raises(waauth.AccessDenied, match="another owner"):
        await impl.open("s", owner_id="bob", lease=True)
    async with await impl.open("s", owner_id="alice", lease=True) as again:
        assert again.creds == fake_creds()
