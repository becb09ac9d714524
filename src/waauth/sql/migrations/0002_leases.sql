-- waauth schema version 2: one runner per session.
-- A lease names the process that runs a session and until when (by the database's clock). Its
-- token grows by one at every acquisition; every write carries the writer's token and is
-- refused in its own transaction if the lease has since passed to another holder (fencing).

CREATE TABLE {schema}.leases (
    session_id  text        NOT NULL PRIMARY KEY,
    token       bigint      NOT NULL,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
