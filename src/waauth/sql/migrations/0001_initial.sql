-- waauth schema version 1: the session registry and one row per Baileys file.
-- Every table is keyed by session_id first, so it can be distributed by session id (Citus).
-- Migrations are additive only: never drop or retype a column in a later file.

CREATE TABLE {schema}.sessions (
    session_id  text        NOT NULL,
    owner_id    text,
    -- 'new' (no creds yet), 'active' (creds stored), 'logged_out'; free text so that later
    -- versions can add states without a migration.
    status      text        NOT NULL DEFAULT 'new',
    -- creds.me.id once the account is paired: the phone number, kept in clear for listings.
    account_id  text,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id)
);

CREATE INDEX sessions_owner_idx ON {schema}.sessions (owner_id, session_id);

-- One row per file of `.auth_sessions/<session_id>/`. The file name is the identity of a
-- record (Baileys' fixFileName is not reversible); type and record_id are what it was stored
-- under. value holds the file's exact bytes, sealed by the keyring (see waauth.encryption).
-- owner_id repeats the session's owner so that row-level security can check a record without
-- a sub-select (which would not see a session row created by the same statement).
CREATE TABLE {schema}.records (
    session_id  text        NOT NULL
        REFERENCES {schema}.sessions (session_id) ON DELETE CASCADE,
    file_name   text        NOT NULL,
    owner_id    text,
    type        text        NOT NULL,
    record_id   text        NOT NULL,
    value       bytea       NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, file_name)
);
