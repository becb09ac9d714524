"""waauth.testing beyond the shared contract: fake data, the sample session, outages, the
in-memory store, and the pytest plugin (run on a small example project with pytester)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.metadata
import logging
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psycopg_pool
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import waauth
from waauth import Keyring, RetryPolicy, StoreUnavailable, _queries, codec, layout
from waauth.testing import (
    AsyncInMemoryAuthState,
    InMemoryAuthState,
    InMemoryStore,
    fake_creds,
    fake_key,
    fake_keys,
    fake_pre_keys,
    outage,
    reset_shared_stores,
    sample_session,
    shared_store,
)
from waauth.testing._engine import HANDLERS
from waauth.testing._memory import open_now

from . import docblocks
from .golden import golden

pytest_plugins = ["pytester"]

G7 = golden("baileys7")
SHORT = RetryPolicy(budget=0.3, initial_delay=0.02, max_delay=0.1, connect_timeout=2)
PATIENT = RetryPolicy(budget=10, initial_delay=0.02, max_delay=0.1, connect_timeout=2)

# The field order of Baileys 7's initAuthCreds() (Utils/auth-utils.ts; undefined fields are not
# written), then what a QR pairing adds (configureSuccessfulPairing).
INIT_AUTH_CREDS = [
    "noiseKey",
    "pairingEphemeralKeyPair",
    "signedIdentityKey",
    "signedPreKey",
    "registrationId",
    "advSecretKey",
    "processedHistoryMessages",
    "nextPreKeyId",
    "firstUnuploadedPreKeyId",
    "accountSyncCounter",
    "accountSettings",
    "registered",
]
PAIRING = ["account", "me", "signalIdentities", "platform"]


# -- fake data -----------------------------------------------------------------------------------


def shape(value: Any) -> Any:
    """The structure of a value without its data: key order, types, byte lengths. Maps keyed
    by data (session ids, chains, index MACs, jids) become one ``*`` entry."""
    if isinstance(value, dict):
        if value and all(_is_data_key(k) for k in value):
            return {"*": shape(next(iter(value.values())))}
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bytes):
        return ("bytes", len(value))
    if isinstance(value, str):
        return ("base64", len(value)) if _is_base64_key(value) else "str"
    return type(value).__name__


def _is_data_key(key: str) -> bool:
    return "@" in key or _is_base64_key(key)


def _is_base64_key(text: str) -> bool:
    # libsignal keys and Baileys' 32-byte values, as base64: 44 or 48 characters.
    if len(text) not in (44, 48):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) in (32, 33)
    except ValueError:
        return False


def golden_value(name: str) -> Any:
    return codec.decode(G7.files()[name])


# The golden file (written by Baileys 7.0.0-rc14) each fake type is shaped after.
SHAPED_AFTER = {
    "pre-key": "pre-key-3.json",
    "session": "session-5511888888888.0.json",
    "sender-key-memory": "sender-key-memory-5511999999999-1612345678@g.us.json",
    "app-state-sync-key": "app-state-sync-key-AAAAAG5L.json",
    "app-state-sync-version": "app-state-sync-version-regular_high.json",
    "lid-mapping": "lid-mapping-5511999999999.json",
    "device-list": "device-list-5511888888888.json",
    "tctoken": "tctoken-5511888888888@s.whatsapp.net.json",
    "identity-key": "identity-key-5511888888888.3.json",
}


@pytest.mark.parametrize("key_type", sorted(SHAPED_AFTER))
def test_fake_keys_have_baileys_shapes(key_type: str) -> None:
    """Each fake key has the field order, types and byte lengths of what Baileys wrote."""
    assert shape(fake_key(key_type)) == shape(golden_value(SHAPED_AFTER[key_type]))


def test_fake_sender_key_has_baileys_shape() -> None:
    """A fake sender key is bytes holding the JSON Baileys keeps there, int-list Buffers too."""
    name = "sender-key-120363025246125888@g.us--5511999999999--12.json"
    real = golden_value(name)
    fake = fake_key("sender-key")
    assert isinstance(fake, bytes)
    inner_fake, inner_real = codec.decode(fake), codec.decode(real)
    assert shape(inner_fake) == shape(inner_real)
    assert b'"seed":{"type":"Buffer","data":[' in fake


def test_fake_creds_follow_init_auth_creds() -> None:
    """fake_creds has initAuthCreds' fields in its order, valid creds, real key pairs."""
    creds = fake_creds()
    assert list(creds) == INIT_AUTH_CREDS
    paired = fake_creds(paired=True, phone="5511987654321", device=7)
    assert list(paired) == INIT_AUTH_CREDS + PAIRING
    assert paired["me"]["id"] == "5511987654321:7@s.whatsapp.net"
    real = golden_value("creds.json")
    # Every field also in real creds has its shape (the history list aside: it has content).
    for field in INIT_AUTH_CREDS + PAIRING:
        if field not in ("processedHistoryMessages", "platform"):
            assert shape(paired[field]) == shape(real[field]), field
    # Real Curve25519 pairs: the public key is the one the private key makes.
    for pair in (creds["noiseKey"], creds["signedIdentityKey"], creds["signedPreKey"]["keyPair"]):
        derived = X25519PrivateKey.from_private_bytes(pair["private"]).public_key()
        assert derived.public_bytes_raw() == pair["public"]
    assert 0 <= creds["registrationId"] < 16384
    assert len(base64.b64decode(creds["advSecretKey"])) == 32
    waauth_creds_check = codec.decode(codec.encode(paired))
    assert waauth_creds_check == paired
    assert abs(len(codec.encode(creds)) - 1100) < 100  # "about 1.1 KB", as Baileys'


def test_fake_data_is_deterministic() -> None:
    """The same seed gives the same bytes everywhere (pinned); other seeds other accounts."""
    assert fake_creds(7) == fake_creds(7)
    assert fake_creds(7)["signedIdentityKey"] != fake_creds(8)["signedIdentityKey"]
    assert fake_creds(1)["signedIdentityKey"] != fake_creds("1")["signedIdentityKey"]
    # Pinned: a change here changes every user's test data.
    digest = hashlib.sha256(codec.encode(fake_creds(0))).hexdigest()
    assert digest == "502ac58f38d14b28e9ab83d9487b03f3f30e40988a777253f1d00caa6e1c6c23"
    encoded = b"".join(codec.encode(v) for t in fake_keys(0).values() for v in t.values())
    digest = hashlib.sha256(encoded).hexdigest()
    assert digest == "d2d2742cbce4955934f0beabc2c530cceb4e69f9be6aca3b86ec09fdd713c91e"


def test_fake_keys_cover_every_type() -> None:
    """fake_keys has every key type, round-trips through the codec, and names valid files;
    its sender key is the paired account's own (same phone and device)."""
    keys = fake_keys(4)
    assert set(keys) == set(layout.KEY_TYPES)
    for key_type, entries in keys.items():
        for key_id, value in entries.items():
            assert codec.decode(codec.encode(value)) == value
            assert layout.parse_file_name(layout.file_name(key_type, key_id))[0] == key_type
    me = fake_creds(4, paired=True)["me"]["id"]
    [sender] = keys["sender-key"]
    assert sender.endswith(f"::{me.split(':')[0]}::1")
    assert list(fake_pre_keys(3, start=10)) == ["10", "11", "12"]
    with pytest.raises(waauth.InvalidInput, match="no fake data"):
        fake_key("not-a-type")


def test_sample_session_was_made_by_baileys() -> None:
    """The shipped sample is a cut of the golden Baileys 7 folder: same bytes, every type."""
    folder = sample_session()
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    golden_files = G7.files()
    assert all(files[name] == golden_files[name] for name in files)
    assert {layout.record_type(name) for name in files} == {"creds", *layout.KEY_TYPES}
    assert sum(len(data) for data in files.values()) < 10_000


# -- the in-memory store -------------------------------------------------------------------------


def test_a_dsn_names_a_shared_store() -> None:
    """Code that passes its DSN runs unchanged: same string, same data; never shown."""
    dsn = "postgresql://bot:hunter2@db.internal/prod"
    try:
        with InMemoryAuthState.open(dsn, "s1") as state:
            state.creds = fake_creds()
            state.save_creds()
            assert "hunter2" not in repr(state)
        with InMemoryAuthState.open(dsn, "s1") as again:
            assert again.creds == fake_creds()
            assert again.store is shared_store(dsn)
            assert "hunter2" not in repr(again.store)
        with InMemoryAuthState.open("another", "s1") as other:
            assert other.creds is None
        reset_shared_stores()
        with InMemoryAuthState.open(dsn, "s1") as fresh:
            assert fresh.creds is None
    finally:
        reset_shared_stores()
    with pytest.raises(waauth.ConfigurationError, match="InMemoryStore"):
        InMemoryAuthState.open(42, "s1")  # type: ignore[arg-type]


def test_store_views(tmp_path: Path) -> None:
    """files, list_sessions, materialize and schemas: what the Postgres side offers."""
    store = InMemoryStore()
    with InMemoryAuthState.open(store, "a") as a, InMemoryAuthState.open(store, "b") as b:
        a.import_folder(sample_session())
        b.keys.set({"pre-key": fake_pre_keys(1)})
    with InMemoryAuthState.open(store, "a", schema="tenant2") as other:
        assert other.creds is None  # a schema is a database of its own
    assert [i.session_id for i in store.list_sessions()] == ["a", "b"]
    assert store.files("a") == {p.name: p.read_bytes() for p in sample_session().iterdir()}
    report = store.materialize(tmp_path)
    assert list(report.written) == ["a"]
    report = store.materialize(tmp_path, session_ids=["a", "b", "never"])
    assert report.without_creds == ["b", "never"]
    assert repr(store) == "<InMemoryStore sessions=2>"  # opening alone writes nothing
    store.clear()
    assert store.list_sessions() == []


def test_states_on_one_store_see_each_other() -> None:
    """Two states of one store read what the other wrote, from threads, losing nothing."""
    store = InMemoryStore()
    first, second = InMemoryAuthState.open(store, "s"), InMemoryAuthState.open(store, "s")

    def write(state: InMemoryAuthState, w: int) -> None:
        for i in range(50):
            state.keys.set({"session": {f"{w}.{i}": {"w": w, "i": i}}})

    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate([first, second])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [f"{w}.{i}" for w in range(2) for i in range(50)]
    assert None not in first.keys.get("session", ids).values()
    assert second.keys.get("session", ids) == first.keys.get("session", ids)
    first.close()
    second.close()


async def test_async_state_needs_no_running_loop() -> None:
    """The fixture's way of opening an async state works outside a loop, and the state serves
    one loop after another."""
    store = InMemoryStore()
    state = await asyncio.to_thread(open_now, store, "s")

    async def use(i: int) -> Any:
        await state.keys.set({"pre-key": {str(i): {"v": i}}})
        return await state.keys.get("pre-key", [str(i)])

    assert await asyncio.to_thread(asyncio.run, use(1)) == {"1": {"v": 1}}
    assert await use(2) == {"2": {"v": 2}}
    await state.close()


# -- outages -------------------------------------------------------------------------------------


async def test_open_in_a_store_outage() -> None:
    """An outage of the whole store: open retries for the budget, then StoreUnavailable (never
    a state without creds); a timed outage is waited out; every state sees it."""
    store = InMemoryStore()
    async with AsyncInMemoryAuthState.open(store, "s", retry=SHORT) as state:
        state.creds = fake_creds()
        await state.save_creds()
    # The schema is checked first, as on Postgres: that is what an outage stops.
    with outage(store), pytest.raises(StoreUnavailable, match="open schema 'waauth'"):
        await AsyncInMemoryAuthState.open(store, "s", retry=SHORT)
    outage(store, seconds=0.2)
    started = time.monotonic()
    async with AsyncInMemoryAuthState.open(store, "s", retry=PATIENT) as state:
        assert time.monotonic() - started >= 0.15
        assert state.creds == fake_creds()
        other = await AsyncInMemoryAuthState.open(store, "t", retry=SHORT)
        with outage(store):
            state.creds["nextPreKeyId"] = 2
            await state.save_creds()
            other.creds = fake_creds(1)
            await other.save_creds()
            assert (state.stats().pending, other.stats().pending) == (1, 1)
        # Once the outage ends, every state of the store writes what it had pending.
        await state.flush()
        await other.flush()
        assert (state.stats().pending, other.stats().pending) == (0, 0)
        assert codec.decode(store.files("s")["creds.json"])["nextPreKeyId"] == 2
        await other.close()


async def test_waiting_never_blocks_the_event_loop() -> None:
    """While an async keys.set waits for an outage to end, other tasks run; it returns at its
    first retry after the outage ends."""
    slow = RetryPolicy(budget=30, initial_delay=0.5, max_delay=0.5)
    async with AsyncInMemoryAuthState.open(InMemoryStore(), "s", retry=slow) as state:
        down = outage(state)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            for _ in range(10):
                ticks += 1
                await asyncio.sleep(0.01)
            down.end()

        started = time.monotonic()
        await asyncio.gather(state.keys.set({"pre-key": fake_pre_keys(1)}), tick())
        assert ticks == 10
        assert time.monotonic() - started < 2


def test_overlapping_outages() -> None:
    """With two outages on a state, saves land only when both are over; ending twice is fine."""
    state = InMemoryAuthState.open(InMemoryStore(), "s", retry=SHORT)
    state.creds = fake_creds()
    first, second = outage(state), outage(state, seconds=60)
    state.save_creds()
    first.end()
    assert state.stats().pending == 1
    assert "active" in repr(second)
    second.end()
    second.end()
    assert repr(second) == "<Outage ended>"
    state.flush()
    assert state.stats().pending == 0
    state.close()
    with outage(state):  # a closed state: nothing to do, nothing raised
        pass


def test_outage_arguments() -> None:
    """outage() needs states or stores, and a duration that is a number >= 0."""
    with pytest.raises(waauth.InvalidInput, match="at least one"):
        outage()
    with pytest.raises(waauth.InvalidInput, match="not str"):
        outage("a state")
    with pytest.raises(waauth.InvalidInput, match="seconds"):
        outage(InMemoryStore(), seconds=-1)


async def test_postgres_outage_leaves_no_trace(
    pg_dsn: str, schema: str, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """On a Postgres state the real retry loop runs (and logs), and the database object is
    left exactly as it was once the outage ends."""
    async with waauth.AsyncPostgresAuthState.open(
        pg_dsn, "s", keyring=keyring, schema=schema, retry=SHORT
    ) as state:
        with caplog.at_level(logging.WARNING, logger="waauth"), outage(state), outage(state):
            assert waauth._hooks.attempt_hooks
            with pytest.raises(StoreUnavailable) as info:
                await state.keys.get("pre-key", ["1"])
        assert not waauth._hooks.attempt_hooks
        assert "simulated" in str(info.value.__cause__)
        assert any("retrying in" in r.getMessage() for r in caplog.records)
        assert await state.keys.get("pre-key", ["1"]) == {"1": None}


# -- the docs, and the pytest plugin on the docs' example project --------------------------------

DOCS = Path(__file__).parents[1] / "docs" / "testing.md"


def doc_files() -> dict[str, str]:
    """The files of the example project on docs/testing.md (Python blocks whose first line
    names a file, ``# bot.py``), from the same parse that runs the page's other blocks."""
    return {
        block.first_line.lstrip("# ").strip(): block.source
        for block in docblocks.blocks(DOCS)
        if block.kind == "file"
    }


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    """The example project of docs/testing.md: a bot, its pytest and unittest tests."""
    files = doc_files()
    assert {"conftest.py", "bot.py", "test_bot.py", "test_postgres.py"} <= set(files)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    for name, code in files.items():
        pytester.path.joinpath(name).write_text(code, encoding="utf-8")
    return pytester


def test_plugin_with_a_dsn(
    example: pytest.Pytester, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With WAAUTH_TEST_DSN, every example test passes on that server (unittest ones too)."""
    monkeypatch.setenv("WAAUTH_TEST_DSN", pg_dsn)
    result = example.runpytest("-W", "error")
    result.assert_outcomes(passed=8)


@pytest.mark.slow
def test_plugin_without_a_dsn(example: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without WAAUTH_TEST_DSN, waauth_postgres runs on an embedded server of its own."""
    monkeypatch.delenv("WAAUTH_TEST_DSN", raising=False)
    result = example.runpytest("test_postgres.py")
    result.assert_outcomes(passed=2)


def entry_point() -> tuple[str, ...]:
    """Arguments that load what waauth's ``pytest11`` entry point loads: none once it is
    installed (naming the module again would register it twice)."""
    installed = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "waauth.testing._entry" for ep in installed):
        return ()
    return ("-p", "waauth.testing._entry")


def test_plugin_is_off_unless_enabled(example: pytest.Pytester) -> None:
    """The entry point alone adds no fixture; ``waauth_plugin = true`` turns them on, and
    naming the plugin in conftest.py as well does no harm."""
    entry = entry_point()
    example.path.joinpath("conftest.py").unlink()
    result = example.runpytest(*entry, "test_bot.py")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'waauth_store' not found*"])
    example.makeini(
        textwrap.dedent(
            """
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            waauth_plugin = true
            """
        )
    )
    result = example.runpytest(*entry, "test_bot.py", "test_async_bot.py")
    result.assert_outcomes(passed=3)
    example.makeconftest('pytest_plugins = ["waauth.testing.plugin"]')
    result = example.runpytest(*entry, "-p", "waauth.testing.plugin", "test_bot.py")
    result.assert_outcomes(passed=2)


# -- the in-memory back end ----------------------------------------------------------------------


async def test_a_pool_names_a_shared_store_as_its_conninfo_does() -> None:
    """A bot that opens its states on one pool (as docs/auth-state.md recommends) runs
    unchanged on the in-memory classes: the pool names the store its conninfo names."""
    dsn = "postgresql://bot@db/bot"
    with (
        psycopg_pool.ConnectionPool(dsn, open=False) as pool,
        InMemoryAuthState.open(pool, "s") as state,
    ):
        state.creds = fake_creds()
        state.save_creds()
    apool = psycopg_pool.AsyncConnectionPool(dsn, open=False)
    async with AsyncInMemoryAuthState.open(apool, "s") as again:
        assert again.creds == fake_creds()
        assert again.store is shared_store(dsn)
    with pytest.raises(waauth.ConfigurationError, match="not int"):
        InMemoryAuthState.open(42, "s")  # type: ignore[arg-type]


def test_the_library_functions_run_on_a_store(tmp_path: Path) -> None:
    """materialize, list_sessions and Lease take a store as their source; what needs
    PostgreSQL itself says so instead of doing something else."""
    store = InMemoryStore()
    with InMemoryAuthState.open(store, "s") as state:
        state.import_folder(sample_session())
    report = waauth.materialize(store, tmp_path, keyring=Keyring.plaintext())
    assert sorted(report.written) == ["s"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()} == store.files("s")
    assert [info.session_id for info in waauth.list_sessions(store)] == ["s"]
    with waauth.Lease(store, "s") as lease:
        assert lease.token is not None
        with pytest.raises(waauth.LeaseHeld):
            InMemoryAuthState.open(store, "s", lease=True)
    source: Any = store
    with pytest.raises(waauth.ConfigurationError, match="does not run this statement"):
        waauth.verify_sessions(source, keyring=Keyring.plaintext())
    # A mirror or a fleet refuses the store when it is made, not on every push or claim later.
    for postgres_only in (waauth.Mirror, waauth.AsyncMirror, waauth.Fleet, waauth.AsyncFleet):
        with pytest.raises(
            waauth.ConfigurationError,
            match=f"^waauth.{postgres_only.__name__} needs a PostgreSQL database, and "
            "InMemoryStore does not run its statements",
        ):
            postgres_only(source, tmp_path, keyring=Keyring.plaintext())


def test_a_schema_never_created_is_reported_as_on_postgres() -> None:
    """migrate=False on a store whose schema was never created: the SchemaError Postgres
    gives, not a state on nothing."""
    with pytest.raises(waauth.SchemaError, match=r"run waauth\.migrate"):
        InMemoryAuthState.open(InMemoryStore(), "s", migrate=False)


def test_every_statement_has_an_in_memory_handler_or_is_postgres_only() -> None:
    """A statement added to waauth._queries must be run by the in-memory store too, or be
    named here as one that only the mirror, the fleet or SQL itself uses: the states, writer,
    leases, materialize and import run on both back ends."""
    postgres_only = {
        "FENCE_FROM_CLOCK",  # a fragment of the lease statements
        "WRITE_MANY",  # the mirror's
        "WRITE_MANY_REPLACING",
        "LOCK_MANY_FOR_IMPORT",
        "REPLICA_BEAT",  # the fleet's
        "REPLICA_LEAVE",
    }
    statements = {
        name: text
        for name, text in vars(_queries).items()
        if name.isupper() and not name.startswith("_") and isinstance(text, str)
    }
    assert postgres_only <= statements.keys()
    missing = {n for n, text in statements.items() if text not in HANDLERS} - postgres_only
    assert not missing, f"no in-memory handler for {sorted(missing)}"
