"""PostgresAuthState and AsyncPostgresAuthState: Baileys' auth-state API on Postgres rows.

Every test runs against both twins (the ``twin`` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import waauth
from waauth import Keyring, codec, layout

from .golden import golden
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")

G7 = golden("baileys7")


def golden_creds() -> dict[str, Any]:
    creds: dict[str, Any] = codec.decode(G7.files()[layout.CREDS_FILE])
    return creds


def golden_keys() -> dict[str, dict[str, Any]]:
    """Every key of the Baileys 7 golden session, {type: {id: value}}, ids as Baileys gave them."""
    keys: dict[str, dict[str, Any]] = {}
    files = G7.files()
    for name, info in G7.manifest["files"].items():
        if name != layout.CREDS_FILE:
            keys.setdefault(info["type"], {})[info["id"]] = codec.decode(files[name])
    return keys


def stored(
    conn: psycopg.Connection[Any], schema: str, session_id: str, keyring: Keyring
) -> dict[str, bytes]:
    """The decrypted bytes of every row of a session, by file name."""
    rows = conn.execute(
        f"SELECT file_name, value FROM {schema}.records WHERE session_id = %s", [session_id]
    ).fetchall()
    return {
        name: keyring.decrypt(value, session_id=session_id, file_name=name) for name, value in rows
    }


async def test_new_session_has_no_creds(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """A session never stored opens with creds None and keys that are all missing."""
    state = await twin.open(pg_dsn, "fresh", keyring=keyring, schema=schema)
    assert state.creds is None
    assert await state.keys.get("pre-key", ["1", "2"]) == {"1": None, "2": None}
    await state.close()


async def test_creds_round_trip(twin: Twin, pg_dsn: str, schema: str, keyring: Keyring) -> None:
    """Saved creds come back equal, in order, and an in-place change is saved too."""
    state = await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema)
    state.creds = golden_creds()
    await state.save_creds()
    state.creds["nextPreKeyId"] = 813
    await state.save_creds()
    await state.close()

    again = await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema)
    expected = golden_creds()
    expected["nextPreKeyId"] = 813
    assert again.creds == expected
    assert list(again.creds) == list(expected)
    await again.close()


async def test_every_key_type_round_trips_as_baileys_writes_it(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Every Baileys 7 key type comes back equal, stored as the exact bytes Baileys wrote."""
    keys = golden_keys()
    assert len(keys) >= 10
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        await state.keys.set(keys)
        for key_type, entries in keys.items():
            assert await state.keys.get(key_type, list(entries)) == entries, key_type
    rows = stored(conn, schema, "s1", keyring)
    files = G7.files()
    expected = {
        n: files[n]
        for n in files
        if n not in (layout.CREDS_FILE, "x-waauth-edge-numeric-keys-numbers.json")
    }
    assert {n: rows[n] for n in expected} == expected


async def test_falsy_values_delete(twin: Twin, pg_dsn: str, schema: str, keyring: Keyring) -> None:
    """None, '', 0 and False delete; empty bytes and empty containers are values."""
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        values = {"a": {"x": 1}, "b": b"", "c": [], "d": {}, "e": 2, "f": "x", "g": True}
        await state.keys.set({"t": values})
        assert await state.keys.get("t", list(values)) == values
        await state.keys.set({"t": {"a": None, "e": 0, "f": "", "g": False, "never-stored": None}})
        assert await state.keys.get("t", list(values)) == {
            "a": None,
            "b": b"",
            "c": [],
            "d": {},
            "e": None,
            "f": None,
            "g": None,
        }


async def test_ids_sharing_a_file_and_duplicates(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """Ids that map to one file share a value; within one call the last one wins, no error."""
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        await state.keys.set({"session": {"a:b": {"v": 1}, "a-b": {"v": 2}}})
        assert await state.keys.get("session", ["a:b", "a-b", "a_b"]) == {
            "a:b": {"v": 2},
            "a-b": {"v": 2},
            "a_b": None,
        }


class CountingCursor(psycopg.Cursor[Any]):
    executed: ClassVar[list[str]] = []

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.executed.append(str(query))
        return super().execute(query, *args, **kwargs)


class AsyncCountingCursor(psycopg.AsyncCursor[Any]):
    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.executed.append(str(query))
        return await super().execute(query, *args, **kwargs)


async def test_five_thousand_keys_are_one_statement(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """keys.set of 5,000 keys is one statement; keys.get of 5,000 ids is one query."""
    kwargs = {
        "autocommit": True,
        "cursor_factory": AsyncCountingCursor if twin.is_async else CountingCursor,
    }
    pool: Any
    if twin.is_async:
        pool = AsyncConnectionPool(pg_dsn, open=False, kwargs=kwargs)
        await pool.open()
    else:
        pool = ConnectionPool(pg_dsn, open=False, kwargs=kwargs)
        pool.open()
    keys = {str(i): {"private": bytes(32), "public": i.to_bytes(32, "big")} for i in range(5000)}
    try:
        state = await twin.open(pool, "big", keyring=keyring, schema=schema)
        CountingCursor.executed.clear()
        await state.keys.set({"pre-key": keys})
        assert len(CountingCursor.executed) == 1
        CountingCursor.executed.clear()
        assert await state.keys.get("pre-key", list(keys)) == keys
        assert len(CountingCursor.executed) == 1
        await state.close()
    finally:
        await twin.call(pool.close, pool.close)


async def test_concurrent_writers_lose_nothing(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """Many threads (sync) or tasks (async) calling keys.set on one session: every key lands."""
    async with await twin.open(pg_dsn, "busy", keyring=keyring, schema=schema) as state:

        async def worker(w: int) -> None:
            for call in range(15):
                # Each call writes its own keys and also rewrites one shared key.
                await state.keys.set(
                    {
                        "session": {
                            f"{w}.{call}.{k}": {"w": w, "c": call, "k": k} for k in range(5)
                        },
                        "sender-key-memory": {"shared": {"last": f"{w}.{call}"}},
                    }
                )

        await asyncio.gather(*(worker(w) for w in range(8)))
        ids = [f"{w}.{c}.{k}" for w in range(8) for c in range(15) for k in range(5)]
        got = await state.keys.get("session", ids)
        assert [i for i in ids if got[i] is None] == []
        assert all(
            got[f"{w}.{c}.{k}"] == {"w": w, "c": c, "k": k}
            for w in range(8)
            for c in range(15)
            for k in range(5)
        )
        shared = (await state.keys.get("sender-key-memory", ["shared"]))["shared"]
        assert shared["last"].split(".")[1] == "14"  # the last write of some worker


async def test_delete_logs_out(twin: Twin, pg_dsn: str, schema: str, keyring: Keyring) -> None:
    """delete() removes creds and keys; the session reopens as new, listed as logged_out."""
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        state.creds = golden_creds()
        await state.save_creds()
        await state.keys.set({"pre-key": {"1": {"private": b"k", "public": b"p"}}})
        await state.delete()
        assert state.creds is None
        assert await state.keys.get("pre-key", ["1"]) == {"1": None}
    again = await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema)
    assert again.creds is None
    await again.close()
    [info] = await twin.list_sessions(pg_dsn, schema=schema)
    assert (info.session_id, info.status, info.files, info.account_id) == (
        "s1",
        "logged_out",
        {},
        None,
    )


async def test_list_sessions(twin: Twin, pg_dsn: str, schema: str, keyring: Keyring) -> None:
    """list_sessions tells owner, status, me.id, files per type and bytes, filtered as asked."""
    async with await twin.open(
        pg_dsn, "paired", keyring=keyring, schema=schema, owner_id="alice"
    ) as state:
        state.creds = golden_creds()
        await state.save_creds()
        await state.keys.set(
            {
                "pre-key": {
                    "1": {"private": b"k", "public": b"p"},
                    "2": {"private": b"k", "public": b"p"},
                }
            }
        )
    async with await twin.open(pg_dsn, "keys-only", keyring=keyring, schema=schema) as state:
        await state.keys.set({"session": {"x.1": {"_sessions": {}, "version": "v1"}}})

    infos = await twin.list_sessions(pg_dsn, schema=schema)
    assert [i.session_id for i in infos] == ["keys-only", "paired"]
    keys_only, paired = infos
    assert (paired.owner_id, paired.status, paired.account_id) == (
        "alice",
        "active",
        "5511999999999:12@s.whatsapp.net",
    )
    assert paired.files == {"creds": 1, "pre-key": 2}
    assert paired.has_creds
    assert paired.bytes > len(G7.files()[layout.CREDS_FILE])
    assert paired.created_at is not None
    assert paired.updated_at is not None
    assert paired.updated_at >= paired.created_at
    assert (keys_only.status, keys_only.files, keys_only.has_creds) == (
        "new",
        {"session": 1},
        False,
    )
    assert [
        i.session_id for i in await twin.list_sessions(pg_dsn, schema=schema, owner_id="alice")
    ] == ["paired"]
    assert await twin.list_sessions(pg_dsn, schema=schema, owner_id="bob") == []
    assert [
        i.session_id for i in await twin.list_sessions(pg_dsn, schema=schema, status="new")
    ] == ["keys-only"]
    assert [
        i.session_id
        for i in await twin.list_sessions(pg_dsn, schema=schema, session_ids=["paired", "zzz"])
    ] == ["paired"]


async def test_owners_are_isolated(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """A state opened for one owner can neither open nor overwrite another owner's session."""
    async with await twin.open(
        pg_dsn, "shared-id", keyring=keyring, schema=schema, owner_id="alice"
    ) as alice:
        alice.creds = golden_creds()
        await alice.save_creds()
    with pytest.raises(waauth.AccessDenied, match="another owner"):
        await twin.open(pg_dsn, "shared-id", keyring=keyring, schema=schema, owner_id="bob")
    # A session bob opened while it did not exist, then taken by alice: bob's writes are refused.
    bob = await twin.open(pg_dsn, "race", keyring=keyring, schema=schema, owner_id="bob")
    async with await twin.open(
        pg_dsn, "race", keyring=keyring, schema=schema, owner_id="alice"
    ) as alice:
        await alice.keys.set({"pre-key": {"1": {"v": "alice"}}})
    with pytest.raises(waauth.AccessDenied):
        await bob.keys.set({"pre-key": {"1": {"v": "bob"}}})
    assert await bob.keys.get("pre-key", ["1"]) == {"1": None}
    await bob.close()
    assert stored(conn, schema, "race", keyring) == {"pre-key-1.json": b'{"v":"alice"}'}


async def test_unreachable_database_fails_closed(twin: Twin, keyring: Keyring) -> None:
    """No server: open raises StoreUnavailable after its retries, never a state with no creds."""
    policy = waauth.RetryPolicy(budget=1.0, initial_delay=0.05, max_delay=0.2, connect_timeout=1)
    dsn = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(waauth.StoreUnavailable, match="unavailable") as info:
        await twin.open(dsn, "s1", keyring=keyring, retry=policy)
    assert 0.5 <= loop.time() - started < 10
    assert isinstance(info.value.__cause__, psycopg.OperationalError)


async def test_refused_login_is_a_configuration_error(
    twin: Twin, pg_dsn: str, keyring: Keyring
) -> None:
    """A server that says no (unknown database) is reported at once, not retried."""
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, dbname="no_such_database_waauth")
    with pytest.raises(waauth.ConfigurationError, match="does not exist"):
        await twin.open(dsn, "s1", keyring=keyring, retry=waauth.RetryPolicy(budget=30))


async def test_wrong_key_fails_closed(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Creds sealed with another key raise DecryptionError naming session and file; rows stay."""
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        state.creds = golden_creds()
        await state.save_creds()
    before = stored(conn, schema, "s1", keyring)
    with pytest.raises(waauth.DecryptionError, match=r"session 's1', file 'creds\.json'"):
        await twin.open(pg_dsn, "s1", keyring=Keyring([Keyring.generate_key()]), schema=schema)
    assert stored(conn, schema, "s1", keyring) == before


async def test_corrupt_rows_fail_closed(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """A row that decrypts to bad JSON, or creds without creds fields, raise CorruptRecord."""
    conn.execute(f"INSERT INTO {schema}.sessions (session_id) VALUES ('s1'), ('s2')")
    for session_id, name, data in [
        ("s1", "creds.json", b'{"noiseKey": '),
        ("s2", "creds.json", b'{"registered": false}'),
        ("s2", "pre-key-1.json", b"not json"),
    ]:
        sealed = keyring.encrypt(data, session_id=session_id, file_name=name)
        conn.execute(
            f"INSERT INTO {schema}.records (session_id, file_name, type, record_id, value)"
            " VALUES (%s, %s, 'x', '', %s)",
            [session_id, name, sealed],
        )
    with pytest.raises(
        waauth.CorruptRecord, match=r"session 's1', file 'creds\.json': not valid JSON"
    ):
        await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema)
    with pytest.raises(
        waauth.CorruptRecord, match=r"session 's2', file 'creds\.json': creds lack noiseKey"
    ):
        await twin.open(pg_dsn, "s2", keyring=keyring, schema=schema)
    conn.execute(
        f"DELETE FROM {schema}.records WHERE session_id = 's2' AND file_name = 'creds.json'"
    )
    async with await twin.open(pg_dsn, "s2", keyring=keyring, schema=schema) as state:
        with pytest.raises(waauth.CorruptRecord, match=r"file 'pre-key-1\.json'"):
            await state.keys.get("pre-key", ["1"])
    assert stored(conn, schema, "s2", keyring) == {"pre-key-1.json": b"not json"}


async def test_bad_arguments_raise_at_once(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Invalid ids, unknown value types and wrong shapes raise before anything is written."""
    with pytest.raises(waauth.InvalidInput, match="invalid session id"):
        await twin.open(pg_dsn, "../etc", keyring=keyring, schema=schema)
    with pytest.raises(waauth.ConfigurationError, match="keyring"):
        await twin.open(pg_dsn, "s1", keyring="not a keyring", schema=schema)
    async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
        with pytest.raises(waauth.InvalidInput, match="cannot store a value of type set"):
            await state.keys.set({"pre-key": {"1": {"ok": 1}, "2": {"bad": {1, 2}}}})
        with pytest.raises(waauth.InvalidInput, match="must map ids to values"):
            await state.keys.set({"pre-key": ["1"]})
        with pytest.raises(waauth.InvalidInput, match="list of ids"):
            await state.keys.get("pre-key", "1")
        with pytest.raises(waauth.InvalidInput, match="no creds to save"):
            await state.save_creds()
        with pytest.raises(waauth.InvalidInput, match="creds lack"):
            state.creds = {"registered": True}
    assert stored(conn, schema, "s1", keyring) == {}


async def test_closed_state_refuses_work(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """After close, calls raise instead of silently doing nothing; closing twice is fine."""
    state = await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema)
    await state.close()
    await state.close()
    with pytest.raises(waauth.WaauthError, match="is closed"):
        await state.keys.get("pre-key", ["1"])
    assert "closed" in repr(state)


async def test_schema_not_migrated(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """migrate=False on an empty schema is a SchemaError saying what to run; True migrates."""
    empty = f"{schema}_empty"
    try:
        with pytest.raises(waauth.SchemaError, match=r"run waauth.migrate\(\)"):
            await twin.open(pg_dsn, "s1", keyring=keyring, schema=empty, migrate=False)
        state = await twin.open(pg_dsn, "s1", keyring=keyring, schema=empty)
        assert state.creds is None
        await state.close()
    finally:
        conn.execute(f"DROP SCHEMA IF EXISTS {empty} CASCADE")


async def test_callers_pool_is_left_open(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring
) -> None:
    """A pool passed in is used and never closed by waauth."""
    pool: Any = (
        AsyncConnectionPool(pg_dsn, open=False)
        if twin.is_async
        else ConnectionPool(pg_dsn, open=False)
    )
    await twin.call(pool.open, pool.open)
    try:
        async with await twin.open(pool, "s1", keyring=keyring, schema=schema) as state:
            await state.keys.set({"pre-key": {"1": {"v": 1}}})
        assert not pool.closed
        async with await twin.open(pool, "s1", keyring=keyring, schema=schema) as state:
            assert await state.keys.get("pre-key", ["1"]) == {"1": {"v": 1}}
    finally:
        await twin.call(pool.close, pool.close)


async def test_no_secret_in_repr_logs_or_errors(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """Private keys never appear in reprs, log lines (at DEBUG) or error messages."""
    creds = golden_creds()
    secrets = [
        creds["noiseKey"]["private"],
        creds["signedIdentityKey"]["private"],
        base64.b64decode(creds["advSecretKey"]),
    ]
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with await twin.open(pg_dsn, "s1", keyring=keyring, schema=schema) as state:
            state.creds = creds
            await state.save_creds()
            texts += [repr(state), repr(state.keys), repr(keyring)]
        try:
            await twin.open(pg_dsn, "s1", keyring=Keyring([Keyring.generate_key()]), schema=schema)
        except waauth.DecryptionError as exc:
            texts += [str(exc), repr(exc)]
    texts += [record.getMessage() for record in caplog.records]
    blob = "\n".join(texts)
    assert "s1" in blob
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
            assert form not in blob


async def test_row_level_security_with_an_app_role(
    twin: Twin, pg_dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """With RLS on, a non-superuser role sees and touches only the owner's rows, even in raw SQL."""
    if twin.is_async:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as aconn:
            await waauth.aenable_row_level_security(aconn, schema)
    else:
        waauth.enable_row_level_security(conn, schema)
    waauth.enable_row_level_security(conn, schema)  # applying it twice is harmless
    role = f"app_{schema}"
    conn.execute(f"CREATE ROLE {role} NOSUPERUSER NOBYPASSRLS")
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
    set_role = f"SET ROLE {role}"

    def configure(c: psycopg.Connection[Any]) -> None:
        c.execute(set_role)

    async def aconfigure(c: psycopg.AsyncConnection[Any]) -> None:
        await c.execute(set_role)

    pool: Any = (
        AsyncConnectionPool(pg_dsn, open=False, configure=aconfigure, kwargs={"autocommit": True})
        if twin.is_async
        else ConnectionPool(pg_dsn, open=False, configure=configure, kwargs={"autocommit": True})
    )
    await twin.call(pool.open, pool.open)
    try:
        async with await twin.open(
            pool, "alice-1", keyring=keyring, schema=schema, owner_id="alice"
        ) as alice:
            alice.creds = golden_creds()
            await alice.save_creds()
            await alice.keys.set({"pre-key": {"1": {"v": "alice"}}})
            assert await alice.keys.get("pre-key", ["1"]) == {"1": {"v": "alice"}}
        # Under RLS bob cannot even learn that alice's session exists, and cannot write to it.
        bob = await twin.open(pool, "alice-1", keyring=keyring, schema=schema, owner_id="bob")
        assert bob.creds is None
        with pytest.raises(waauth.AccessDenied):
            await bob.keys.set({"pre-key": {"1": {"v": "bob"}}})
        await bob.close()
        assert [
            i.session_id for i in await twin.list_sessions(pool, schema=schema, owner_id="alice")
        ] == ["alice-1"]
        assert await twin.list_sessions(pool, schema=schema, owner_id="bob") == []
        # No owner given: the policies hide every row from the app role.
        assert await twin.list_sessions(pool, schema=schema) == []
    finally:
        await twin.call(pool.close, pool.close)

    # Raw SQL as the role, without waauth's own filters: the database enforces the owner.
    with psycopg.connect(pg_dsn, autocommit=True) as raw:
        raw.execute(set_role)
        for owner, expected in (("alice", 2), ("bob", 0), ("", 0)):
            with raw.transaction(force_rollback=True):
                raw.execute("SELECT set_config('waauth.owner_id', %s, true)", [owner])
                row = raw.execute(f"SELECT count(*) FROM {schema}.records").fetchone()
                assert row == (expected,), owner
                updated = raw.execute(f"UPDATE {schema}.records SET value = 'x'::bytea").rowcount
                assert updated == expected
        raw.execute("RESET ROLE")
    conn.execute(f"DROP OWNED BY {role}")
    conn.execute(f"DROP ROLE {role}")
    assert stored(conn, schema, "alice-1", keyring)["pre-key-1.json"] == b'{"v":"alice"}'
