"""One runner per session: leases, expiry, fencing; directly and behind PgBouncer.

PgBouncer (Debian's package, installed by .ci/run) runs in transaction pooling mode in front
of the test server: no session-level locks or prepared statements may be relied on there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waauth
from waauth import Keyring

from .golden import golden
from .pgbouncer import PgBouncer
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
    """materialize(if_unleased=True) refuses while a live process runs the session."""
    async with await twin.open(dsn, "s", keyring=keyring, schema=schema) as state:
        await state.import_folder(golden("baileys7").folder)
    with waauth.Lease(dsn, "s", schema=schema), pytest.raises(waauth.LeaseHeld, match="held by"):
        await twin.call(
            waauth.materialize,
            waauth.amaterialize,
            dsn,
            tmp_path,
            keyring=keyring,
            schema=schema,
            if_unleased=True,
        )
    report = await twin.call(
        waauth.materialize,
        waauth.amaterialize,
        dsn,
        tmp_path,
        keyring=keyring,
        schema=schema,
        if_unleased=True,
    )
    assert list(report.written) == ["s"]
