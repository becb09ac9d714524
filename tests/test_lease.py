"""One runner per session: leases, expiry, fencing; directly and behind PgBouncer.

PgBouncer (Debian's package, installed by .ci/run) runs in transaction pooling mode in front
of the test server: no session-level locks or prepared statements may be relied on there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring

from .cli_support import run as cli_run
from .golden import golden
from .pgbouncer import PgBouncer
from .test_folders import folder_files
from .test_state import stored
from .twins import Twin

pytestmark = pytest.mark.usefixtures("schema")
CHILD = Path(__file__).with_name("lease_child.py")


@pytest.fixture(params=["direct", "pgbouncer"])
def dsn(request: pytest.FixtureRequest, pg_dsn: str) -> Iterator[str]:
    """The test server, directly or through PgBouncer in transaction mode."""
    if request.param == "direct":
        yield pg_dsn
        return
    try:
        bouncer = PgBouncer(pg_dsn)
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is required in CI (.ci/run installs Debian's package)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    yield bouncer.dsn
    bouncer.close()


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, text=True)


def read_until(proc: subprocess.Popen[str], prefix: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    pytest.fail(f"the child never printed {prefix!r}")


async def test_second_holder_is_refused_and_close_releases(
    twin: Twin, dsn: str, schema: str, keyring: Keyring
) -> None:
    """While one state holds the lease a second is refused, naming the holder; closing frees it."""
    first = await twin.open(dsn, "s", keyring=keyring, schema=schema, lease=True)
    started = time.monotonic()
    with pytest.raises(waauth.LeaseHeld, match=r"held by .+ pid \d+ since") as info:
        await twin.open(dsn, "s", keyring=keyring, schema=schema, lease=True)
    assert time.monotonic() - started < 5  # at once, not after a timeout
    assert (info.value.host, info.value.pid) == (os.uname().nodename, os.getpid())
    assert info.value.since is not None
    await first.close()
    second = await twin.open(dsn, "s", keyring=keyring, schema=schema, lease=True)
    await second.keys.set({"pre-key": {"1": {"v": 1}}})
    await second.close()


async def test_waiting_for_the_lease(twin: Twin, dsn: str, schema: str, keyring: Keyring) -> None:
    """With lease_wait, a second runner waits for the first to leave instead of failing."""
    first = await twin.open(dsn, "s", keyring=keyring, schema=schema, lease=True)

    async def leave() -> None:
        await asyncio.sleep(1.0)
        await first.close()

    leaving = asyncio.ensure_future(leave())
    second = await twin.open(dsn, "s", keyring=keyring, schema=schema, lease=True, lease_wait=15)
    await leaving
    await second.close()


def test_a_killed_holder_blocks_only_until_expiry(dsn: str, schema: str) -> None:
    """kill -9 of the holder: the session is refused until the lease expires, then free."""
    with child("hold", dsn, schema, "s", "2") as proc:
        read_until(proc, "held")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with pytest.raises(waauth.LeaseHeld):
        waauth.Lease(dsn, "s", schema=schema).acquire()
    time.sleep(2.5)
    with waauth.Lease(dsn, "s", schema=schema, ttl=5) as lease:
        assert lease.token is not None
        assert lease.token >= 2  # a new token: the old holder's writes are fenced


def test_a_paused_holder_is_fenced(dsn: str, schema: str, keyring: Keyring, pg_dsn: str) -> None:
    """SIGSTOP the holder past expiry, let another take over, SIGCONT it: its next write is
    refused (LeaseLost) and the new holder's state is untouched."""
    key = Keyring.generate_key()
    ring = Keyring([key])
    with child("write", dsn, schema, "s", "2", key) as proc:
        read_until(proc, "wrote 3")
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # past the 2 s ttl: the paused holder's lease expired
            with waauth.PostgresAuthState.open(
                dsn, "s", keyring=ring, schema=schema, lease=True, lease_ttl=30
            ) as state:
                state.keys.set({"session": {"marker": {"new": "holder"}}})
                written = {n for n in stored_ids(pg_dsn, schema, ring) if n.startswith("child.")}
                proc.send_signal(signal.SIGCONT)
                line = read_until(proc, "lost")
                assert proc.wait(timeout=30) == 3
                refused = int(line.split()[1])
                after = stored_ids(pg_dsn, schema, ring)
                assert after["marker"] == {"new": "holder"}
                assert {n for n in after if n.startswith("child.")} == written
                assert f"child.{refused}" not in after
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()


def stored_ids(pg_dsn: str, schema: str, keyring: Keyring) -> dict[str, Any]:
    with psycopg.connect(pg_dsn) as conn:
        values = stored(conn, schema, "s", keyring)
    return {
        name[len("session-") : -len(".json")]: waauth.codec.decode(v) for name, v in values.items()
    }


async def test_a_lost_lease_stops_every_write(
    twin: Twin, dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Once the lease passed to another holder, keys.set, save_creds, delete and import raise
    LeaseLost, and nothing pending is written."""
    state = await twin.open(
        dsn, "s", keyring=keyring, schema=schema, lease=True, lease_ttl=60, window=3600
    )
    state.creds = waauth.codec.decode(golden("baileys7").files()["creds.json"])
    await state.save_creds()
    await state.flush()
    state.creds["nextPreKeyId"] = 4242
    await state.save_creds()  # pending
    # Another process takes over (as after an expiry): the token moves on.
    conn.execute(f"UPDATE {schema}.leases SET token = token + 1, pid = 1 WHERE session_id = 's'")
    with pytest.raises(waauth.LeaseLost):
        await state.keys.set({"pre-key": {"1": {"v": 1}}})
    for call in (
        state.save_creds(),
        state.delete(),
        state.import_folder(golden("baileys7").folder),
        state.flush(),
    ):
        with pytest.raises(waauth.LeaseLost):
            await call
    with pytest.raises(waauth.LeaseLost):
        await state.close()
    rows = stored(conn, schema, "s", keyring)
    assert waauth.codec.decode(rows["creds.json"])["nextPreKeyId"] != 4242
    assert "pre-key-1.json" not in rows


async def test_mirror_takes_the_lease(
    twin: Twin,
    dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """A mirror leaves a session alone while another process holds its lease, and mirrors it
    once the lease is free."""
    root = tmp_path / "auth"
    shutil.copytree(golden("baileys7").folder, root / "s")
    holder = waauth.Lease(dsn, "s", schema=schema)
    holder.acquire()
    mirror = twin.mirror(dsn, root, keyring=keyring, schema=schema, window=0.1, rescan_interval=0.3)
    await mirror.start()
    try:
        assert stored(conn, schema, "s", keyring) == {}
        assert len(mirror.stats().held_elsewhere) == 1
        holder.release()
        deadline = time.monotonic() + 15
        while stored(conn, schema, "s", keyring) != golden("baileys7").files():
            assert time.monotonic() < deadline, "never mirrored after the lease was freed"
            await asyncio.sleep(0.1)
        with pytest.raises(waauth.LeaseHeld):
            waauth.Lease(dsn, "s", schema=schema).acquire()  # the mirror holds it now
    finally:
        await mirror.stop()


async def test_materialize_can_require_a_free_lease(
    twin: Twin, dsn: str, schema: str, keyring: Keyring, tmp_path: Path
) -> None:
    """materialize(if_unleased=True) leaves out a session a live process runs, writes the
    others (a held session first in line stops none of them), then raises its LeaseHeld."""
    for session_id in ("a", "s"):
        async with await twin.open(dsn, session_id, keyring=keyring, schema=schema) as state:
            await state.import_folder(golden("baileys7").folder)
    with (
        waauth.Lease(dsn, "a", schema=schema),
        pytest.raises(waauth.LeaseHeld, match=r"^session 'a' is held by") as info,
    ):
        await twin.call(
            waauth.materialize,
            waauth.amaterialize,
            dsn,
            tmp_path,
            keyring=keyring,
            schema=schema,
            if_unleased=True,
        )
    assert info.value.pid == os.getpid()
    assert not (tmp_path / "a").exists()
    assert folder_files(tmp_path / "s") == golden("baileys7").files()
    report = await twin.call(
        waauth.materialize,
        waauth.amaterialize,
        dsn,
        tmp_path,
        keyring=keyring,
        schema=schema,
        if_unleased=True,
    )
    assert list(report.written) == ["a", "s"]
    assert report.held == {}


def account_creds(account: str) -> dict[str, Any]:
    """The golden creds, paired to ``account``."""
    creds: dict[str, Any] = waauth.codec.decode(golden("baileys7").files()["creds.json"])
    creds["me"]["id"] = f"{account}:1@s.whatsapp.net"
    return creds


@contextlib.contextmanager
def paused_holder(
    dsn: str, schema: str, tmp_path: Path
) -> Iterator[tuple[Callable[[], list[str]], Keyring]]:
    """Holder A (its own process) pairs account 111 under a 3 s lease and is SIGSTOPped past
    it. Yields ``resume`` (SIGCONT, then A tries keys.set and a creds flush: what each gave)
    and the keyring."""
    key = Keyring.generate_key()
    creds_a = tmp_path / "creds-111.json"
    creds_a.write_bytes(waauth.codec.encode(account_creds("111")))
    with subprocess.Popen(
        [sys.executable, str(CHILD), "pair", dsn, schema, "s", "3", key, str(creds_a)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:

        def resume() -> list[str]:
            proc.send_signal(signal.SIGCONT)
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            outcome = [read_until(proc, "keys.set"), read_until(proc, "flush")]
            assert proc.wait(timeout=30) == 0
            return outcome

        try:
            read_until(proc, "paired")
            proc.send_signal(signal.SIGSTOP)
            time.sleep(4)  # past the 3 s ttl
            yield resume, Keyring([key])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


def test_rm_then_takeover_fences_the_paused_holder(
    dsn: str, schema: str, pg_dsn: str, tmp_path: Path
) -> None:
    """Holder A pairs 111 and is paused past its ttl; `waauth rm --yes`; B takes the lease and
    pairs 222; A resumes: its keys.set and its creds flush are refused, 222's creds stay."""
    with paused_holder(dsn, schema, tmp_path) as (resume, ring):
        rm = cli_run("--dsn", dsn, "--schema", schema, "rm", "--yes", "s")
        assert rm.returncode == 0, rm.stderr
        with waauth.PostgresAuthState.open(
            dsn, "s", keyring=ring, schema=schema, lease=True, lease_ttl=30
        ) as state:
            assert state.creds is None  # removed: B pairs anew
            state.creds = account_creds("222")
            state.save_creds()
            state.flush()
            assert resume() == ["keys.set: LeaseLost", "flush: LeaseLost"]
            with psycopg.connect(pg_dsn) as conn:
                rows = stored(conn, schema, "s", ring)
            assert waauth.codec.decode(rows["creds.json"])["me"]["id"] == "222:1@s.whatsapp.net"
            assert "session-stale.json" not in rows
            state.keys.set({"session": {"b": {"from": "B"}}})  # B still holds the lease


def test_a_logout_fences_a_holder_paused_past_its_lease(
    dsn: str, schema: str, pg_dsn: str, tmp_path: Path
) -> None:
    """Holder A pairs and is paused past its ttl; another process logs the session out
    (``delete()``, no lease of its own); A resumes: its writes are refused, and the session
    stays logged out with nothing stored."""
    with paused_holder(dsn, schema, tmp_path) as (resume, ring):
        with waauth.PostgresAuthState.open(dsn, "s", keyring=ring, schema=schema) as state:
            state.delete()
        assert resume() == ["keys.set: LeaseLost", "flush: LeaseLost"]
    with psycopg.connect(pg_dsn) as conn:
        assert stored(conn, schema, "s", ring) == {}
        row = conn.execute(
            f"SELECT status FROM {schema}.sessions WHERE session_id = 's'"
        ).fetchone()
    assert row == ("logged_out",)


def test_tokens_never_repeat(
    dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """A token is new across delete_session, a restore of the lease table from an older dump,
    and the schema dropped and created again."""
    seen: list[int] = []

    def take() -> int:
        with waauth.Lease(dsn, "s", schema=schema) as lease:
            assert lease.token is not None
            seen.append(lease.token)
            return lease.token

    with waauth.PostgresAuthState.open(dsn, "s", keyring=keyring, schema=schema) as state:
        state.keys.set({"session": {"x": {"v": 1}}})
    take()
    # What a pg_dump carries of the lease table, restored later over newer tokens.
    conn.execute(f"CREATE TABLE {schema}.saved_leases AS SELECT * FROM {schema}.leases")
    take()
    assert cli_run("--dsn", dsn, "--schema", schema, "rm", "--yes", "s").returncode == 0
    take()
    conn.execute(f"DELETE FROM {schema}.leases")
    conn.execute(f"INSERT INTO {schema}.leases SELECT * FROM {schema}.saved_leases")
    take()
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    waauth.migrate(conn, schema)
    take()
    print(seen)
    assert seen == sorted(set(seen)), seen  # always larger, never the same twice


def lease_row(conn: psycopg.Connection[Any], schema: str) -> tuple[Any, ...] | None:
    """(token, live) of session s's lease row."""
    return conn.execute(
        f"SELECT token, expires_at > now() FROM {schema}.leases WHERE session_id = 's'"
    ).fetchone()


async def test_another_owners_session_is_refused_before_the_lease(
    twin: Twin, dsn: str, schema: str, keyring: Keyring, conn: psycopg.Connection[Any]
) -> None:
    """Owner B's open(lease=True) and Lease of A's session raise AccessDenied and take nothing,
    whether A runs it now or not."""
    a = await twin.open(dsn, "s", keyring=keyring, schema=schema, owner_id="A", lease=True)
    await a.keys.set({"pre-key": {"1": {"v": "A"}}})
    for _ in range(2):  # while A holds the lease, then once A has left
        before = lease_row(conn, schema)
        with pytest.raises(waauth.AccessDenied, match="another owner"):
            await twin.open(dsn, "s", keyring=keyring, schema=schema, owner_id="B", lease=True)
        lease_class: Any = waauth.AsyncLease if twin.is_async else waauth.Lease
        lease = lease_class(dsn, "s", schema=schema, owner_id="B")
        with pytest.raises(waauth.AccessDenied, match="another owner"):
            await twin.call(lease.acquire, lease.acquire)
        assert lease_row(conn, schema) == before
        await a.close()
    again = await twin.open(dsn, "s", keyring=keyring, schema=schema, owner_id="A", lease=True)
    await again.close()


async def test_mirror_of_another_owner_leaves_the_lease_alone(
    twin: Twin,
    dsn: str,
    schema: str,
    keyring: Keyring,
    tmp_path: Path,
    conn: psycopg.Connection[Any],
) -> None:
    """Owner B's mirror seeing a folder named like A's session refuses it without taking A's
    lease or counting an outage; A's own open(lease=True) then succeeds."""
    async with await twin.open(dsn, "s", keyring=keyring, schema=schema, owner_id="A") as a:
        await a.import_folder(golden("baileys7").folder)
    root = tmp_path / "auth"
    shutil.copytree(golden("baileys7").folder, root / "s")
    mirror = twin.mirror(
        dsn, root, keyring=keyring, schema=schema, owner_id="B", window=0.1, rescan_interval=0.3
    )
    await mirror.start()
    try:
        await asyncio.sleep(1.0)  # a few rescans
        stats = mirror.stats()
        print(stats)
        assert stats.failures == 0
        assert [r.split(":")[0] for r in stats.refused] == ["s"]
        assert not (lease_row(conn, schema) or (0, False))[1]  # B holds no lease on s
        a = await twin.open(dsn, "s", keyring=keyring, schema=schema, owner_id="A", lease=True)
        await a.close()
    finally:
        await mirror.stop()


@pytest.fixture
def app_role(conn: psycopg.Connection[Any], schema: str) -> Iterator[str]:
    """A NOSUPERUSER, NOBYPASSRLS role with the rights an application role has."""
    role = f"app_{schema}"
    conn.execute(f"CREATE ROLE {role} NOSUPERUSER NOBYPASSRLS")
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
    yield role
    conn.execute(f"DROP OWNED BY {role}")
    conn.execute(f"DROP ROLE {role}")


def as_role(pg_dsn: str, role: str) -> str:
    """A conninfo that logs in as the test server's user and acts as ``role``."""
    return psycopg.conninfo.make_conninfo(pg_dsn, options=f"-c role={role}")


async def test_row_level_security_covers_leases(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    conn: psycopg.Connection[Any],
    app_role: str,
) -> None:
    """With RLS on, an app role sees and changes only its owner's leases, even in raw SQL, and
    another owner's open(lease=True) is refused without touching the lease."""
    waauth.enable_row_level_security(conn, schema)
    dsn = as_role(pg_dsn, app_role)
    alice = await twin.open(
        dsn, "alice-1", keyring=keyring, schema=schema, owner_id="alice", lease=True
    )
    await alice.keys.set({"pre-key": {"1": {"v": "alice"}}})
    token = conn.execute(f"SELECT token FROM {schema}.leases").fetchone()
    with pytest.raises(waauth.AccessDenied):
        await twin.open(dsn, "alice-1", keyring=keyring, schema=schema, owner_id="bob", lease=True)
    with psycopg.connect(dsn, autocommit=True) as raw:
        for owner, expected in (("alice", 1), ("bob", 0), ("", 0)):
            with raw.transaction(force_rollback=True):
                raw.execute("SELECT set_config('waauth.owner_id', %s, true)", [owner])
                row = raw.execute(f"SELECT count(*) FROM {schema}.leases").fetchone()
                assert row == (expected,), owner
                updated = raw.execute(
                    f"UPDATE {schema}.leases SET expires_at = now(), token = token + 1"
                ).rowcount
                assert updated == expected, owner
        with raw.transaction(force_rollback=True):
            raw.execute("SELECT set_config('waauth.owner_id', 'bob', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                raw.execute(
                    f"INSERT INTO {schema}.leases (session_id, owner_id, token, host, pid,"
                    " acquired_at, expires_at) VALUES ('x', 'alice', 1, 'h', 1, now(), now())"
                )
    assert conn.execute(f"SELECT token FROM {schema}.leases").fetchone() == token
    await alice.keys.set({"pre-key": {"2": {"v": "alice"}}})  # alice still holds it
    await alice.close()


async def test_a_refused_write_is_access_denied_not_an_outage(
    twin: Twin,
    pg_dsn: str,
    schema: str,
    keyring: Keyring,
    conn: psycopg.Connection[Any],
    app_role: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With UPDATE revoked from the role, flush, keys.set and the mirror raise or report
    AccessDenied; stats() shows no outage and the writer drops the refused save, saying so."""
    async with await twin.open(pg_dsn, "s", keyring=keyring, schema=schema) as admin:
        await admin.import_folder(golden("baileys7").folder)
    conn.execute(f"REVOKE UPDATE ON ALL TABLES IN SCHEMA {schema} FROM {app_role}")
    dsn = as_role(pg_dsn, app_role)
    state = await twin.open(dsn, "s", keyring=keyring, schema=schema)
    try:
        state.creds["nextPreKeyId"] = 4242
        await state.save_creds()
        with pytest.raises(waauth.AccessDenied, match="refused") as info:
            await state.flush()
        print(info.value)
        with pytest.raises(waauth.AccessDenied):
            await state.keys.set({"pre-key": {"1": {"v": 1}}})
        await asyncio.sleep(1.5)  # the writer would have retried by now
        stats = state.stats()
        print(stats)
        assert stats.outage_seconds is None
        assert stats.pending == 0
        assert stats.retries == 0
        assert any("dropped" in r.getMessage() and "'s'" in r.getMessage() for r in caplog.records)
    finally:
        await state.close()  # the refusal was reported by flush: nothing left to report
    root = tmp_path / "auth"
    shutil.copytree(golden("baileys7").folder, root / "s")
    (root / "s" / "pre-key-9999.json").write_text('{"v": 1}')
    mirror = twin.mirror(dsn, root, keyring=keyring, schema=schema, window=0.1, lease=False)
    await mirror.start()
    try:
        await asyncio.sleep(0.5)
        stats = mirror.stats()
        print(stats)
        assert stats.failures == 0
        assert [r.split(":")[0] for r in stats.refused] == ["s"]
    finally:
        await mirror.stop()
