"""Every statement the auth state runs, as text with a ``{schema}`` placeholder.

Arrays travel as binary parameters (``%(name)b``): psycopg sends a text list escaped element
by element, ten times slower for large batches. Statements are plain (no server-side prepared
statements are needed), which keeps them usable behind PgBouncer in transaction mode.

``%(owner)s`` scopes a statement to one owner; NULL means no owner filter (an admin view).
"""

from __future__ import annotations

from typing import Final

# The owner condition on the sessions row `s`, shared by every statement.
_OWNED: Final = "(%(owner)s::text IS NULL OR s.owner_id = %(owner)s::text)"

SET_OWNER: Final = "SELECT set_config('waauth.owner_id', %(owner)s::text, true)"
"""Tells row-level security policies (optional, see row_level_security.sql) who is asking."""

LOAD: Final = """
SELECT s.owner_id, r.value
FROM {schema}.sessions s
LEFT JOIN {schema}.records r ON r.session_id = s.session_id AND r.file_name = %(creds_file)s
WHERE s.session_id = %(session_id)s
"""
"""The session's owner and sealed creds; no row for a session never stored."""

GET: Final = """
SELECT r.file_name, r.value
FROM {schema}.records r
WHERE r.session_id = %(session_id)s AND r.file_name = ANY(%(names)b::text[])
  AND (%(owner)s::text IS NULL OR r.owner_id = %(owner)s::text)
"""

FENCE_FROM_CLOCK: Final = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
"""A fencing token from the database's clock (microseconds since the epoch): larger than any
token handed out before, even by a lease row since deleted or restored from an older dump, or
by a schema since dropped and created again, as long as the database's clock does not go back."""

# Fencing: with a lease token, a statement writes only while the lease still has that token.
# FOR SHARE makes a takeover (which updates the lease row) wait for the write, or the write
# see the takeover: never both.
_FENCE: Final = """
fence AS (
    SELECT 1 FROM {schema}.leases
    WHERE session_id = %(session_id)s AND token = %(token)s::bigint
    FOR SHARE
)"""
_FENCED: Final = "(%(token)s::bigint IS NULL OR EXISTS (SELECT 1 FROM fence))"

# A record written again: its new value, one version more.
_UPSERTED_RECORD: Final = """ON CONFLICT (session_id, file_name) DO UPDATE SET
        type = EXCLUDED.type,
        record_id = EXCLUDED.record_id,
        value = EXCLUDED.value,
        version = r.version + 1,
        updated_at = now()"""

WRITE: Final = f"""
WITH {_FENCE}, session AS (
    INSERT INTO {{schema}}.sessions AS s (session_id, owner_id, status, account_id)
    SELECT
        %(session_id)s, %(owner)s::text,
        CASE WHEN %(has_creds)s::boolean THEN 'active' ELSE 'new' END, %(account)s::text
    WHERE {_FENCED}
    ON CONFLICT (session_id) DO UPDATE SET
        updated_at = now(),
        -- Creds written: active. A whole session replaced without creds (a forced import): new.
        status = CASE
            WHEN %(has_creds)s::boolean THEN 'active'
            WHEN %(replace)s::boolean THEN 'new'
            ELSE s.status
        END,
        account_id = CASE
            WHEN %(has_creds)s::boolean THEN %(account)s::text
            WHEN %(replace)s::boolean THEN NULL
            ELSE s.account_id
        END
    WHERE {_OWNED}
    RETURNING session_id, owner_id
), deleted AS (
    DELETE FROM {{schema}}.records r
    USING session
    WHERE r.session_id = session.session_id
      AND (
        r.file_name = ANY(%(deletes)b::text[])
        -- an import replaces the whole session: files not in it go (but those in `keep`)
        OR (
            %(replace)s::boolean
            AND r.file_name <> ALL(%(files)b::text[])
            AND r.file_name <> ALL(%(keep)b::text[])
        )
      )
    RETURNING 1
), upserted AS (
    INSERT INTO {{schema}}.records AS r (session_id, file_name, owner_id, type, record_id, value)
    SELECT session.session_id, u.file_name, session.owner_id, u.type, u.record_id, u.value
    FROM session, unnest(
        %(files)b::text[], %(types)b::text[], %(ids)b::text[], %(values)b::bytea[]
    ) AS u(file_name, type, record_id, value)
    {_UPSERTED_RECORD}
    RETURNING 1
)
SELECT (SELECT count(*) FROM session),
       (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM deleted),
       {_FENCED}
"""
"""One statement, hence one transaction and one round trip: the session row (created on first
write; the owner checked; the lease token fenced) and every upsert and delete of a batch (with
``replace``, also every file not in the batch). Returns (sessions, upserted, deleted, fenced):
the first is 0 when nothing was written (another owner's session), the last False when the
lease was lost (then nothing was written either)."""

LOCK_FOR_IMPORT: Final = LOAD + "FOR UPDATE OF s\n"
"""The stored creds, with the session row locked until the import's statement commits."""

ALL_RECORDS: Final = """
SELECT r.file_name, r.value
FROM {schema}.records r
WHERE r.session_id = %(session_id)s
  AND (%(owner)s::text IS NULL OR r.owner_id = %(owner)s::text)
"""
"""Every file of a session, for materialize."""

DELETE_SESSION: Final = f"""
WITH {_FENCE}, session AS (
    UPDATE {{schema}}.sessions s
    SET status = 'logged_out', account_id = NULL, updated_at = now()
    WHERE s.session_id = %(session_id)s AND {_OWNED} AND {_FENCED}
    RETURNING session_id
), deleted AS (
    DELETE FROM {{schema}}.records r USING session WHERE r.session_id = session.session_id
    RETURNING 1
), retired AS (
    -- A holder paused past its lease's expiry must not write the session back when it wakes
    -- up: the expired lease's token is retired (a live holder keeps its lease).
    UPDATE {{schema}}.leases l SET token = greatest(l.token + 1, {FENCE_FROM_CLOCK})
    FROM session
    WHERE l.session_id = session.session_id AND l.expires_at <= now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM session),
       (SELECT count(*) FROM deleted),
       EXISTS (SELECT 1 FROM {{schema}}.sessions s2 WHERE s2.session_id = %(session_id)s),
       {_FENCED}
"""
"""Log out: every record goes, the registry row stays with status 'logged_out', and an
expired lease gets a token nobody holds."""

LIST_SESSIONS: Final = f"""
WITH counts AS (
    SELECT r.session_id, r.type, count(*) AS n, sum(length(r.value)) AS bytes
    FROM {{schema}}.records r
    WHERE (%(owner)s::text IS NULL OR r.owner_id = %(owner)s::text)
      AND (%(session_ids)b::text[] IS NULL OR r.session_id = ANY(%(session_ids)b::text[]))
    GROUP BY r.session_id, r.type
), per_session AS (
    SELECT c.session_id, jsonb_object_agg(c.type, c.n) AS files, sum(c.bytes) AS bytes
    FROM counts c
    GROUP BY c.session_id
)
SELECT s.session_id, s.owner_id, s.status, s.account_id, s.created_at, s.updated_at,
       coalesce(p.files, '{{}}'::jsonb), coalesce(p.bytes, 0)::bigint
FROM {{schema}}.sessions s
LEFT JOIN per_session p ON p.session_id = s.session_id
WHERE {_OWNED}
  AND (%(status)s::text IS NULL OR s.status = %(status)s::text)
  AND (%(session_ids)b::text[] IS NULL OR s.session_id = ANY(%(session_ids)b::text[]))
ORDER BY s.session_id
"""
"""The registry with files per type and bytes per session. One grouped pass over the records
(a per-session sub-query did 1,000 index scans over a 1M-row table: 5.8 s against 0.3-0.5 s)."""

ACTIVE_SESSIONS: Final = """
SELECT s.session_id FROM {schema}.sessions s
WHERE s.status = 'active' AND (%(owner)s::text IS NULL OR s.owner_id = %(owner)s::text)
ORDER BY s.session_id
"""
"""The sessions a restore of every session writes: the registry alone (the listing of
``list_sessions`` also counts every record, which took 0.1 to 0.5 s over 200,000 rows)."""

ACQUIRE_LEASE: Final = f"""
WITH refused AS (
    SELECT %(owner)s::text IS NOT NULL
       AND {{schema}}.lease_refused(%(session_id)s, %(owner)s::text) AS refused
), taken AS (
    INSERT INTO {{schema}}.leases AS l
        (session_id, owner_id, token, host, pid, acquired_at, expires_at)
    SELECT %(session_id)s, %(owner)s::text, {FENCE_FROM_CLOCK}, %(host)s, %(pid)s, now(),
           now() + make_interval(secs => %(ttl)s)
    FROM refused
    WHERE NOT refused.refused
    ON CONFLICT (session_id) DO UPDATE SET
        -- Larger than the row's last token, even if the clock went back.
        token = greatest(l.token + 1, EXCLUDED.token),
        owner_id = EXCLUDED.owner_id,
        host = EXCLUDED.host,
        pid = EXCLUDED.pid,
        acquired_at = EXCLUDED.acquired_at,
        expires_at = EXCLUDED.expires_at
    WHERE l.expires_at <= now()
    RETURNING token
)
SELECT (SELECT token FROM taken), (SELECT refused FROM refused)
"""
"""Take a free or expired lease (by the database's clock): (token, refused). No token when a
live holder has it; refused (and nothing taken) when the session is another owner's."""

LEASE_HOLDER: Final = """
SELECT host, pid, acquired_at, greatest(0, extract(epoch FROM expires_at - now()))::float8
FROM {schema}.leases
WHERE session_id = %(session_id)s AND expires_at > now()
"""
"""Who holds a session's lease, since when, and for how many more seconds (none: free)."""

RENEW_LEASES: Final = """
UPDATE {schema}.leases l
SET expires_at = now() + make_interval(secs => %(ttl)s)
FROM unnest(%(sessions)b::text[], %(tokens)b::int8[]) AS held(session_id, token)
WHERE l.session_id = held.session_id AND l.token = held.token
RETURNING l.session_id
"""
"""The heartbeat of every lease a process holds, in one statement; sessions not returned have
passed to another holder (an expired lease nobody took is renewed: no one else wrote)."""

TOMBSTONE_LEASE: Final = f"""
UPDATE {{schema}}.leases
SET token = greatest(token + 1, {FENCE_FROM_CLOCK}), expires_at = least(expires_at, now())
WHERE session_id = %(session_id)s
"""
"""A deleted session's lease row stays, expired, with a token nobody holds: a holder that
wakes up later is fenced, and the next holder's token is larger still."""

RELEASE_LEASE: Final = """
UPDATE {schema}.leases SET expires_at = now()
WHERE session_id = %(session_id)s AND token = %(token)s
"""
"""A clean close frees the lease at once."""

CLAIM_LEASES: Final = f"""
WITH candidates AS MATERIALIZED (
    SELECT s.session_id
    FROM {{schema}}.sessions s
    LEFT JOIN {{schema}}.leases l ON l.session_id = s.session_id
    WHERE s.status = 'active' AND {_OWNED}
      AND (l.session_id IS NULL OR l.expires_at <= now())
      AND s.session_id <> ALL(%(exclude)b::text[])
    -- Each replica walks the free sessions in an order of its own, so replicas claiming at
    -- the same moment rarely reach for the same rows.
    ORDER BY md5(s.session_id || %(replica)s::text)
), free AS (
    -- A session another claimer is taking right now is skipped, not waited for: claimers
    -- that waited on each other's new rows in different orders would deadlock. The lock is
    -- tried row by row until `limit` are taken (two-key advisory locks: a key space of
    -- their own), and ends with the transaction.
    SELECT c.session_id FROM candidates c
    WHERE pg_try_advisory_xact_lock(hashtext('waauth.claim'), hashtext(c.session_id))
    LIMIT %(limit)s
)
INSERT INTO {{schema}}.leases AS l
    (session_id, owner_id, token, host, pid, acquired_at, expires_at)
SELECT free.session_id, %(owner)s::text, {FENCE_FROM_CLOCK}, %(host)s, %(pid)s, now(),
       now() + make_interval(secs => %(ttl)s)
FROM free
ON CONFLICT (session_id) DO UPDATE SET
    -- As ACQUIRE_LEASE: larger than the row's last token, even if the clock went back.
    token = greatest(l.token + 1, EXCLUDED.token),
    owner_id = EXCLUDED.owner_id,
    host = EXCLUDED.host,
    pid = EXCLUDED.pid,
    acquired_at = EXCLUDED.acquired_at,
    expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= now()
RETURNING l.session_id, l.token
"""
"""Take up to ``limit`` leases of active sessions that no live process holds, in one statement.

Race-free through the lease insert itself: a session taken since the candidates were read is
found live by ON CONFLICT (which re-checks the newest row version) and not returned. Claimers
skip each other's sessions (SKIP LOCKED, with transaction advisory locks, as the rows to lock
may not exist yet), so they never wait on or deadlock with each other, and no row lock is taken
on ``sessions``, so a claim never deadlocks with a fenced write either."""

REPLICA_BEAT: Final = f"""
WITH me AS (
    INSERT INTO {{schema}}.replicas AS r (replica_id, owner_id, host, pid, started_at, expires_at)
    VALUES (
        %(replica)s, %(owner)s::text, %(host)s, %(pid)s, now(),
        now() + make_interval(secs => %(ttl)s)
    )
    ON CONFLICT (replica_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
    RETURNING 1
), gone AS (
    DELETE FROM {{schema}}.replicas r
    WHERE r.expires_at < now() - interval '1 hour' AND r.replica_id <> %(replica)s
    RETURNING 1
)
SELECT
    -- the statement does not see its own insert: count the others, then this one
    (SELECT count(*) FROM {{schema}}.replicas r
     WHERE r.expires_at > now() AND r.replica_id <> %(replica)s
       AND r.owner_id IS NOT DISTINCT FROM %(owner)s::text) + (SELECT count(*) FROM me),
    (SELECT count(*) FROM {{schema}}.sessions s WHERE s.status = 'active' AND {_OWNED}),
    (SELECT min(per.held) FROM (
        SELECT count(l.session_id) AS held
        FROM {{schema}}.replicas r
        LEFT JOIN {{schema}}.leases l
            ON l.host = r.host AND l.pid = r.pid AND l.expires_at > now()
        WHERE r.expires_at > now() AND r.replica_id <> %(replica)s
          AND r.owner_id IS NOT DISTINCT FROM %(owner)s::text
        GROUP BY r.replica_id
    ) per),
    (SELECT count(*) FROM gone)
"""
"""A fleet replica's heartbeat: (live replicas of its owner scope, itself included; active
sessions to share; the fewest live leases another live replica holds, NULL if none; dead
replica rows swept)."""

REPLICA_LEAVE: Final = "DELETE FROM {schema}.replicas WHERE replica_id = %(replica)s"
"""A replica that stops cleanly leaves at once: the others count one fewer right away."""

LOCK_MANY_FOR_IMPORT: Final = """
SELECT s.session_id, s.owner_id, r.value
FROM {schema}.sessions s
LEFT JOIN {schema}.records r ON r.session_id = s.session_id AND r.file_name = %(creds_file)s
WHERE s.session_id = ANY(%(session_ids)b::text[])
ORDER BY s.session_id
FOR UPDATE OF s
"""
"""LOCK_FOR_IMPORT of many sessions at once: (session, owner, sealed creds) of those stored,
each session row locked (in id order, as every multi-session statement) until the commit."""


def _write_many(*, replacing: bool) -> str:
    """WRITE_MANY's text; ``replacing`` adds what a session replaced as a whole needs (kept
    out of the common statement: the planner cannot tell that no session replaces, and would
    cost a scan of every session's records, enough to set off JIT compilation)."""
    # As WRITE: a session replaced without creds becomes 'new', with no account.
    replaced_status = (
        "WHEN (SELECT a.replace FROM allowed a WHERE a.session_id = EXCLUDED.session_id)"
        " THEN {}\n            "
    )
    replaced = """
), names AS (
    SELECT * FROM unnest(%(row_sessions)b::text[], %(files)b::text[]) AS n(session_id, file_name)
), replaced AS (
    -- a session replaced as a whole: its files not in the batch go (but those kept)
    DELETE FROM {schema}.records r
    USING session
    WHERE r.session_id = session.session_id
      AND session.session_id IN (SELECT a.session_id FROM allowed a WHERE a.replace)
      AND NOT EXISTS (
          SELECT 1 FROM names n WHERE n.session_id = r.session_id AND n.file_name = r.file_name
      )
      AND NOT EXISTS (
          SELECT 1
          FROM unnest(%(keep_sessions)b::text[], %(keep)b::text[]) AS k(session_id, file_name)
          WHERE k.session_id = r.session_id AND k.file_name = r.file_name
      )
      AND NOT EXISTS (
          SELECT 1 FROM unnest(%(delete_sessions)b::text[], %(deletes)b::text[])
              AS d(session_id, file_name)
          WHERE d.session_id = r.session_id AND d.file_name = r.file_name
      )
    RETURNING r.session_id"""
    return f"""
WITH input AS MATERIALIZED (
    SELECT * FROM unnest(
        %(sessions)b::text[], %(tokens)b::int8[], %(has_creds)b::boolean[],
        %(accounts)b::text[], %(replace)b::boolean[]
    ) AS i(session_id, token, has_creds, account, replace)
), fence AS (
    -- As WRITE's fence, per session: its own token, its lease row shared-locked.
    SELECT l.session_id FROM {{schema}}.leases l
    JOIN input i ON i.session_id = l.session_id AND i.token = l.token
    ORDER BY l.session_id
    FOR SHARE OF l
), allowed AS MATERIALIZED (
    SELECT i.* FROM input i
    WHERE i.token IS NULL OR i.session_id IN (SELECT f.session_id FROM fence f)
), session AS (
    INSERT INTO {{schema}}.sessions AS s (session_id, owner_id, status, account_id)
    SELECT a.session_id, %(owner)s::text,
           CASE WHEN a.has_creds THEN 'active' ELSE 'new' END, a.account
    FROM allowed a
    ORDER BY a.session_id
    ON CONFLICT (session_id) DO UPDATE SET
        updated_at = now(),
        -- EXCLUDED.status is 'active' exactly when the session's batch writes creds.
        status = CASE
            WHEN EXCLUDED.status = 'active' THEN 'active'
            {replaced_status.format("'new'") if replacing else ""}ELSE s.status
        END,
        account_id = CASE
            WHEN EXCLUDED.status = 'active' THEN EXCLUDED.account_id
            {replaced_status.format("NULL") if replacing else ""}ELSE s.account_id
        END
    WHERE {_OWNED}
    RETURNING s.session_id, s.owner_id
), deleted AS (
    DELETE FROM {{schema}}.records r
    USING session, unnest(%(delete_sessions)b::text[], %(deletes)b::text[])
        AS d(session_id, file_name)
    WHERE d.session_id = session.session_id
      AND r.session_id = d.session_id AND r.file_name = d.file_name
    RETURNING r.session_id{replaced if replacing else ""}
), upserted AS (
    INSERT INTO {{schema}}.records AS r (session_id, file_name, owner_id, type, record_id, value)
    SELECT session.session_id, u.file_name, session.owner_id, u.type, u.record_id, u.value
    FROM unnest(
        %(row_sessions)b::text[], %(files)b::text[], %(types)b::text[], %(ids)b::text[],
        %(values)b::bytea[]
    ) AS u(session_id, file_name, type, record_id, value)
    JOIN session ON session.session_id = u.session_id
    ORDER BY u.session_id, u.file_name
    {_UPSERTED_RECORD}
    RETURNING r.session_id
)
SELECT i.session_id,
       a.session_id IS NOT NULL,
       s.session_id IS NOT NULL,
       coalesce(u.n, 0),
       coalesce(d.n, 0)
FROM input i
LEFT JOIN allowed a ON a.session_id = i.session_id
LEFT JOIN session s ON s.session_id = i.session_id
LEFT JOIN (SELECT session_id, count(*) AS n FROM upserted GROUP BY session_id) u
    ON u.session_id = i.session_id
LEFT JOIN (
    SELECT session_id, count(*) AS n
    FROM (SELECT session_id FROM deleted{
        " UNION ALL SELECT session_id FROM replaced" if replacing else ""
    }) gone
    GROUP BY session_id
) d ON d.session_id = i.session_id
ORDER BY i.session_id
"""


WRITE_MANY: Final = _write_many(replacing=False)
"""WRITE for many sessions in one statement (one round trip, one transaction), none of which
replaces all its files (see WRITE_MANY_REPLACING). Each session
is fenced by its own lease token (NULL: no lease) and owner-checked on its own; one fenced out
or refused writes nothing of its own and leaves the others be. Rows come as parallel arrays
keyed by session (``row_sessions`` beside ``files``...; ``delete_sessions``, ``keep_sessions``
likewise). Returns one row per session, in id order: (session, fence passed, written, upserted,
deleted); the fence fails when the session's lease passed to another holder, and written is
False when the session is another owner's (then nothing of it was written either)."""

WRITE_MANY_REPLACING: Final = _write_many(replacing=True)
"""WRITE_MANY where some session replaces all its files (a first sync): with ``replace``, also
every stored file of it not in the batch nor in ``keep`` goes, as WRITE does."""
