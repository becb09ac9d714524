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

WRITE: Final = f"""
WITH session AS (
    INSERT INTO {{schema}}.sessions AS s (session_id, owner_id, status, account_id)
    VALUES (
        %(session_id)s, %(owner)s::text,
        CASE WHEN %(has_creds)s::boolean THEN 'active' ELSE 'new' END, %(account)s::text
    )
    ON CONFLICT (session_id) DO UPDATE SET
        updated_at = now(),
        status = CASE WHEN %(has_creds)s::boolean THEN 'active' ELSE s.status END,
        account_id = CASE WHEN %(has_creds)s::boolean THEN %(account)s::text ELSE s.account_id END
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
    ON CONFLICT (session_id, file_name) DO UPDATE SET
        type = EXCLUDED.type,
        record_id = EXCLUDED.record_id,
        value = EXCLUDED.value,
        version = r.version + 1,
        updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM session),
       (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM deleted)
"""
"""One statement, hence one transaction and one round trip: the session row (created on first
write; the owner checked) and every upsert and delete of a batch (with ``replace``, also every
file not in the batch). The first count is 0 when
the session belongs to another owner, and then nothing was written."""

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
WITH session AS (
    UPDATE {{schema}}.sessions s
    SET status = 'logged_out', account_id = NULL, updated_at = now()
    WHERE s.session_id = %(session_id)s AND {_OWNED}
    RETURNING session_id
), deleted AS (
    DELETE FROM {{schema}}.records r USING session WHERE r.session_id = session.session_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM session), (SELECT count(*) FROM deleted)
"""
"""Log out: every record goes, the registry row stays with status 'logged_out'."""

LIST_SESSIONS: Final = f"""
SELECT s.session_id, s.owner_id, s.status, s.account_id, s.created_at, s.updated_at,
       coalesce(c.files, '{{}}'::jsonb), coalesce(c.bytes, 0)::bigint
FROM {{schema}}.sessions s
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(t.type, t.n) AS files, sum(t.bytes) AS bytes
    FROM (
        SELECT r.type, count(*) AS n, sum(length(r.value)) AS bytes
        FROM {{schema}}.records r
        WHERE r.session_id = s.session_id
        GROUP BY r.type
    ) t
) c ON true
WHERE {_OWNED}
  AND (%(status)s::text IS NULL OR s.status = %(status)s::text)
  AND (%(session_ids)b::text[] IS NULL OR s.session_id = ANY(%(session_ids)b::text[]))
ORDER BY s.session_id
"""
