"""W1 (keys.set of 812 new pre-keys), W2 (keys.get of 100 of 5,000 sessions) and R (every key
of a 5,000-file session), for waauth (sync, async), Baileys' file store and postgres-baileys."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from waauth import AsyncPostgresAuthState, PostgresAuthState, codec, layout

from ._common import paired
from .context import Context, read_floor, write_floor
from .report import Row, Target, ratio_target, rows_for

SYNC = "waauth sync"
ASYNC = "waauth async"
FILES = "Baileys useMultiFileAuthState (Node)"
PB = "postgres-baileys (Node)"


def _check(what: str, found: int, expected: int) -> None:
    if found != expected:
        raise RuntimeError(f"{what}: found {found} values, expected {expected}")


def w1(ctx: Context) -> tuple[list[Row], list[Target]]:
    """keys.set of 812 new pre-keys in one call (Baileys 7's first login), each repetition
    into a new session whose creds are already stored."""
    prekeys = {"pre-key": ctx.prekeys}
    creds = ctx.folder.spec.creds
    values = {layout.file_name("pre-key", k): v for k, v in ctx.prekeys.items()}
    files = {name: codec.encode(v) for name, v in values.items()}

    def sid(kind: str, rep: int) -> str:
        return f"bench-{ctx.tag}-w1-{kind}-{rep}"

    def sync(rep: int) -> float:
        with PostgresAuthState.open(ctx.dsn, sid("s", rep), keyring=ctx.keyring) as state:
            state.creds = creds
            state.save_creds()
            state.flush()
            started = time.perf_counter()
            state.keys.set(prekeys)
            return time.perf_counter() - started

    async def asynchronous(rep: int) -> float:
        state = await AsyncPostgresAuthState.open(ctx.dsn, sid("a", rep), keyring=ctx.keyring)
        async with state:
            state.creds = creds
            await state.save_creds()
            await state.flush()
            started = time.perf_counter()
            await state.keys.set(prekeys)
            return time.perf_counter() - started

    def floor(rep: int) -> float:
        return ctx.upsert_floor(sid("floor", rep), files)

    def encode(rep: int) -> float:
        return ctx.encode_floor(sid("encode", rep), values)

    samples = paired(
        {
            SYNC: sync,
            ASYNC: lambda rep: ctx.arun(asynchronous(rep)),
            FILES: lambda rep: ctx.node.seconds("fs_w1", folder=str(ctx.work / "w1" / str(rep))),
            PB: lambda rep: ctx.node.seconds("pb_w1", session=sid("pb", rep)),
            UPSERT: floor,
            ENCODE: encode,
            "floor: plain Python writing the files": lambda rep: write_floor(
                ctx.scratch("w1-floor", str(rep)), "session", files
            ),
        },
        ctx.reps,
    )
    rows = rows_for("W1 keys.set 812 pre-keys", samples, UPSERT)
    return rows, _targets("W1", rows, UPSERT, 1.3) + _context_ratios("W1", rows, ENCODE)


UPSERT = "floor: one batch upsert of the bytes"
QUERY = "floor: one query fetching the rows"
DECODE = "floor: the query, then AES-GCM and orjson.loads in a loop"
ENCODE = "floor: orjson.dumps and AES-GCM in a loop, then the batch upsert"


def _against(workload: str, by: dict[str, Row], system: str, floor: str) -> Row:
    """``system``'s row with its per-repetition ratios to ``floor``."""
    ratios = [w / f for w, f in zip(by[system].samples, by[floor].samples, strict=True)]
    return Row(workload, system, by[system].samples, floor, ratios)


def _targets(workload: str, rows: list[Row], floor: str, at_most: float) -> list[Target]:
    """waauth (sync, async) against a floor, as the median of the per-repetition ratios."""
    by = {r.system: r for r in rows}
    short = floor.removeprefix("floor: ")
    return [
        ratio_target(
            f"{workload} {system} <= {at_most}x {short}",
            _against(workload, by, system, floor),
            at_most=at_most,
        )
        for system in (SYNC, ASYNC)
    ]


def _context_ratios(workload: str, rows: list[Row], floor: str) -> list[Target]:
    """How far waauth is from what Python itself costs (context, no target): the decode
    floor, or for writes the encode floor; and that floor's own ratio to the bare one."""
    bare, short = (UPSERT, "encode") if floor == ENCODE else (QUERY, "decode")
    by = {r.system: r for r in rows}
    out = [
        Target(
            f"{workload} {system} against the {short} floor (context)",
            f"{_against(workload, by, system, floor).ratio:.2f}x",
            True,
        )
        for system in (SYNC, ASYNC)
    ]
    itself = _against(workload, by, floor, bare)
    out.append(
        Target(
            f"{workload} the {short} floor itself against {bare.removeprefix('floor: ')} (context)",
            f"{itself.ratio:.2f}x",
            True,
        )
    )
    return out


def w2(ctx: Context) -> tuple[list[Row], list[Target]]:
    """keys.get of 100 random sessions out of the 5,000 stored (the same 100 for every system
    of a repetition)."""
    ds = ctx.sessions
    all_ids = list(ds.spec.keys["session"])
    picks: dict[int, list[str]] = {}

    def ids(rep: int) -> list[str]:
        if rep not in picks:
            picks[rep] = ctx.rng.sample(all_ids, 100)
        return picks[rep]

    state = PostgresAuthState.open(ctx.dsn, ds.session, keyring=ctx.keyring)
    astate = ctx.arun(_aopen(ctx, ds.session))

    def sync(rep: int) -> float:
        started = time.perf_counter()
        got = state.keys.get("session", ids(rep))
        seconds = time.perf_counter() - started
        _check("W2 waauth sync", sum(v is not None for v in got.values()), 100)
        return seconds

    async def asynchronous(rep: int) -> float:
        started = time.perf_counter()
        got = await astate.keys.get("session", ids(rep))
        seconds = time.perf_counter() - started
        _check("W2 waauth async", sum(v is not None for v in got.values()), 100)
        return seconds

    def node(cmd: str, **where: str) -> Any:
        def run(rep: int) -> float:
            reply = ctx.node.call(cmd, type="session", ids=ids(rep), **where)
            _check(f"W2 {cmd}", reply["found"], 100)
            return float(reply["seconds"])

        return run

    def floor(rep: int) -> float:
        names = [layout.file_name("session", i) for i in ids(rep)]
        seconds, found = ctx.query_floor(ds.session, names)
        _check("W2 floor", found, 100)
        return seconds

    def decode(rep: int) -> float:
        names = [layout.file_name("session", i) for i in ids(rep)]
        seconds, found = ctx.decode_floor(ds.session, names)
        _check("W2 decode floor", found, 100)
        return seconds

    try:
        samples = paired(
            {
                SYNC: sync,
                ASYNC: lambda rep: ctx.arun(asynchronous(rep)),
                FILES: node("fs_get", folder=str(ds.folder)),
                PB: node("pb_get", session=ds.session),
                QUERY: floor,
                DECODE: decode,
            },
            ctx.reps,
        )
    finally:
        state.close()
        ctx.arun(astate.close())
    rows = rows_for("W2 keys.get 100 of 5,000 sessions", samples, QUERY)
    return rows, _targets("W2", rows, QUERY, 1.5) + _context_ratios("W2", rows, DECODE)


async def _aopen(ctx: Context, session: str) -> AsyncPostgresAuthState:
    return await AsyncPostgresAuthState.open(ctx.dsn, session, keyring=ctx.keyring)


def read_all(ctx: Context) -> tuple[list[Row], list[Target]]:
    """Every key of the 5,000-file session: one keys.get per type (all types at once where the
    API allows), decoded. The floors read the raw bytes."""
    ds = ctx.folder
    groups = ds.spec.groups()
    expected = ds.spec.count() - 1
    state = PostgresAuthState.open(ctx.dsn, ds.session, keyring=ctx.keyring)
    astate = ctx.arun(_aopen(ctx, ds.session))

    def sync(_rep: int) -> float:
        started = time.perf_counter()
        got = [state.keys.get(key_type, ids) for key_type, ids in groups.items()]
        seconds = time.perf_counter() - started
        # Counted (and freed) after the timing, as every other system's values are.
        _check("read waauth sync", sum(v is not None for g in got for v in g.values()), expected)
        return seconds

    async def asynchronous(_rep: int) -> float:
        started = time.perf_counter()
        got = await asyncio.gather(*(astate.keys.get(t, ids) for t, ids in groups.items()))
        seconds = time.perf_counter() - started
        _check("read waauth async", sum(v is not None for g in got for v in g.values()), expected)
        return seconds

    def node(cmd: str, **where: str) -> Any:
        def run(_rep: int) -> float:
            reply = ctx.node.call(cmd, groups=groups, **where)
            _check(f"read {cmd}", reply["found"], expected)
            return float(reply["seconds"])

        return run

    def query(_rep: int) -> float:
        seconds, found = ctx.query_floor(ds.session)
        _check("read floor", found, expected + 1)
        return seconds

    def decode(_rep: int) -> float:
        seconds, found = ctx.decode_floor(ds.session)
        _check("read decode floor", found, expected + 1)
        return seconds

    try:
        samples = paired(
            {
                SYNC: sync,
                ASYNC: lambda rep: ctx.arun(asynchronous(rep)),
                FILES: node("fs_read_all", folder=str(ds.folder)),
                PB: node("pb_read_all", session=ds.session),
                "floor: plain Python reading the files": lambda _rep: read_floor(ds.folder)[0],
                QUERY: query,
                DECODE: decode,
            },
            ctx.reps,
        )
    finally:
        state.close()
        ctx.arun(astate.close())
    rows = rows_for("R read every key of a 5,000-file session", samples, QUERY)
    return rows, _targets("R", rows, QUERY, 3.0) + _context_ratios("R", rows, DECODE)
