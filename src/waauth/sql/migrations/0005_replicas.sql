-- waauth schema version 5: replicas that share the sessions (waauth.Fleet).
-- Each fleet process beats here every claim interval; the live ones (expires_at in the future)
-- divide the active sessions between them. A row is only a heartbeat: who runs a session is
-- still the lease's business alone.

CREATE TABLE {schema}.replicas (
    replica_id  text        NOT NULL PRIMARY KEY,
    owner_id    text,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
