"""W6, scale: 1,000 sessions x 1,000 files (1M rows) against a database holding one session.

Both live on the same server, in two schemas of their own (``bench_w6_big``, ``bench_w6_one``),
built with one server-side ``INSERT ... SELECT`` each. The measured session's 1,000 rows are
sealed for its own id and file names (so materialize decrypts them); the 999 other sessions reuse
its sealed values (never read). Rows are inserted file by file across all sessions, so every
session's rows are spread over the whole table, as they are after months of writes from many
sessions, rather than packed together.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import psycopg

import waauth
from waauth import PostgresAuthState, layout

from ._common import paired
from .context import Context
from .report import Row, Target, ratio_target, rows_for

ONE = "bench_w6_one"
BIG = "bench_w6_big"
SESSIONS = 1000
FILES = 1000
TARGET = SESSIONS // 2

_INSERT = """
INSERT INTO {schema}.records (session_id, file_name, type, record_id, value)
SELECT 'w6-' || lpad(s::text, 4, '0'), u.f, u.t, u.i, u.v
FROM unnest(%(files)b::text[], %(types)b::text[], %(ids)b::text[], %(values)b::bytea[])
     WITH ORDINALITY AS u(f, t, i, v, n)
-- lateral (it refers to u): one file for every session, then the next file
CROSS JOIN LATERAL generate_series(%(lo)s::int + 0 * u.n::int, %(hi)s::int) AS s
"""


def session_name(n: int) -> str:
    return f"w6-{n:04d}"


def _build(ctx: Context) -> dict[str, bytes]:
    """Create both schemas; return the measured session's files."""
    names = sorted(n for n in ctx.folder.files if n != layout.CREDS_FILE)[::5][: FILES - 1]
    files = {layout.CREDS_FILE: ctx.folder.files[layout.CREDS_FILE]}
    files.update({n: ctx.folder.files[n] for n in names})
    target = session_name(TARGET)
    params = {
        "files": list(files),
        "types": [layout.parse_file_name(n)[0] for n in files],
        "ids": [layout.parse_file_name(n)[1] for n in files],
        "values": [
            ctx.keyring.encrypt(v, session_id=target, file_name=n) for n, v in files.items()
        ],
    }
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        for schema, lo, hi in ((ONE, TARGET, TARGET), (BIG, 0, SESSIONS - 1)):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            waauth.migrate(conn, schema=schema)
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO {schema}.sessions (session_id, status)"  # noqa: S608 - constant
                    " SELECT 'w6-' || lpad(s::text, 4, '0'), 'active'"
                    " FROM generate_series(%s::int, %s::int) AS s",
                    [lo, hi],
                )
                conn.execute(_INSERT.format(schema=schema), {**params, "lo": lo, "hi": hi})
            conn.execute(f"VACUUM (ANALYZE) {schema}.records")
            conn.execute(f"VACUUM (ANALYZE) {schema}.sessions")
        conn.execute("CHECKPOINT")
    return files


def drop(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in (ONE, BIG):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def w6(ctx: Context) -> tuple[list[Row], list[Target]]:
    started = time.perf_counter()
    files = _build(ctx)
    print(f"bench: W6 1M rows built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    target = session_name(TARGET)
    states = {
        schema: PostgresAuthState.open(ctx.dsn, target, keyring=ctx.keyring, schema=schema)
        for schema in (ONE, BIG)
    }

    def materialize(schema: str) -> Callable[[int], float]:
        def run(rep: int) -> float:
            where = ctx.scratch("w6", str(rep), schema)
            began = time.perf_counter()
            states[schema].materialize(where)
            seconds = time.perf_counter() - began
            if rep < 0:
                got = {p.name: p.read_bytes() for p in (where / target).iterdir()}
                if got != files:
                    raise RuntimeError(f"W6: materialize from {schema} wrote other files")
            return seconds

        return run

    def listing(schema: str) -> float:
        began = time.perf_counter()
        infos = waauth.list_sessions(ctx.dsn, schema=schema)
        seconds = time.perf_counter() - began
        expected = SESSIONS if schema == BIG else 1
        if len(infos) != expected or sum(infos[0].files.values()) != FILES:
            raise RuntimeError(f"W6: list_sessions of {schema} returned {len(infos)} sessions")
        return seconds

    one = "1 session (1,000 rows) in the database"
    big = "1,000 sessions (1M rows) in the database"
    try:
        mat = paired({one: materialize(ONE), big: materialize(BIG)}, ctx.reps)
        lst = paired({one: lambda _r: listing(ONE), big: lambda _r: listing(BIG)}, ctx.reps)
    finally:
        for state in states.values():
            state.close()
    mat_rows = rows_for("W6 materialize one 1,000-file session", mat, one)
    lst_rows = rows_for("W6 list_sessions", lst, one)
    big_list = lst_rows[1]
    targets = [
        ratio_target("W6 materialize at 1M rows <= 1.2x one session", mat_rows[1], at_most=1.2),
        Target(
            "W6 list_sessions of 1,000 sessions (1M rows) < 1 s",
            f"{big_list.median * 1000:.0f} ms (max {max(big_list.samples) * 1000:.0f} ms)",
            big_list.median < 1.0,
        ),
    ]
    return mat_rows + lst_rows, targets
