"""W3 (materialize a 5,000-file session) and W4 (import a 5,000-file session folder)."""

from __future__ import annotations

import time

import waauth
from waauth import AsyncPostgresAuthState, PostgresAuthState

from ._common import paired
from .context import Context, read_floor, write_floor
from .keys import ASYNC, FILES, SYNC, _aopen
from .report import Row, Target, ratio_target, rows_for

WRITE_FLOOR = "floor: plain Python writing the bytes"
READ_UPSERT_FLOOR = "floor: plain Python reading the files + one batch upsert"


def w3(ctx: Context) -> tuple[list[Row], list[Target]]:
    """Materialize the 5,000-file session (plus creds) into a fresh folder, each repetition."""
    ds = ctx.folder
    state = PostgresAuthState.open(ctx.dsn, ds.session, keyring=ctx.keyring)
    astate = ctx.arun(_aopen(ctx, ds.session))

    def root(kind: str, rep: int) -> str:
        return str(ctx.scratch("w3", str(rep), kind))

    def sync(rep: int) -> float:
        where = root("sync", rep)
        started = time.perf_counter()
        state.materialize(where)
        return time.perf_counter() - started

    async def asynchronous(where: str) -> float:
        started = time.perf_counter()
        await astate.materialize(where)
        return time.perf_counter() - started

    def function(rep: int) -> float:
        where = root("function", rep)
        started = time.perf_counter()
        waauth.materialize(ctx.dsn, where, keyring=ctx.keyring, session_ids=[ds.session])
        return time.perf_counter() - started

    try:
        samples = paired(
            {
                SYNC: sync,
                ASYNC: lambda rep: ctx.arun(asynchronous(root("async", rep))),
                "waauth.materialize(dsn), connecting included": function,
                WRITE_FLOOR: lambda rep: write_floor(
                    ctx.scratch("w3", str(rep), "floor"), ds.session, ds.files
                ),
                "floor: one query fetching the rows": lambda _rep: ctx.query_floor(ds.session)[0],
                f"{FILES} writing the same session": lambda rep: ctx.node.seconds(
                    "fs_write_spec",
                    folder=str(ctx.work / "w3" / str(rep) / "baileys"),
                    spec="folder",
                ),
            },
            ctx.reps,
        )
    finally:
        state.close()
        ctx.arun(astate.close())
    rows = rows_for("W3 materialize a 5,000-file session", samples, WRITE_FLOOR)
    by = {r.system: r for r in rows}
    targets = [
        ratio_target(f"W3 {s} <= 1.5x the plain-write floor", by[s], at_most=1.5)
        for s in (SYNC, ASYNC)
    ]
    return rows, targets


def w4(ctx: Context) -> tuple[list[Row], list[Target]]:
    """Import the 5,000-file folder Baileys wrote, each repetition into a new session."""
    folder = ctx.folder.folder

    def sid(kind: str, rep: int) -> str:
        return f"bench-{ctx.tag}-w4-{kind}-{rep}"

    def sync(rep: int) -> float:
        with PostgresAuthState.open(ctx.dsn, sid("s", rep), keyring=ctx.keyring) as state:
            started = time.perf_counter()
            result = state.import_folder(folder)
            seconds = time.perf_counter() - started
        assert result.imported == len(ctx.folder.files)
        return seconds

    async def asynchronous(rep: int) -> float:
        state = await AsyncPostgresAuthState.open(ctx.dsn, sid("a", rep), keyring=ctx.keyring)
        async with state:
            started = time.perf_counter()
            result = await state.import_folder(folder)
            seconds = time.perf_counter() - started
        assert result.imported == len(ctx.folder.files)
        return seconds

    def floor(rep: int) -> float:
        read, files = read_floor(folder)
        return read + ctx.upsert_floor(sid("floor", rep), files)

    samples = paired(
        {
            SYNC: sync,
            ASYNC: lambda rep: ctx.arun(asynchronous(rep)),
            READ_UPSERT_FLOOR: floor,
            "floor: plain Python reading the files": lambda _rep: read_floor(folder)[0],
        },
        ctx.reps,
    )
    rows = rows_for("W4 import a 5,000-file folder", samples, READ_UPSERT_FLOOR)
    by = {r.system: r for r in rows}
    targets = [
        ratio_target(f"W4 {s} <= 1.5x the read + batch upsert floor", by[s], at_most=1.5)
        for s in (SYNC, ASYNC)
    ]
    return rows, targets
