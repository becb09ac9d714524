-- waauth schema version 4: owner-scoped leases, and fencing tokens that never repeat.
-- A lease row now names the owner that took it (NULL: a process with no owner scope), so that
-- row-level security can cover leases too, and another owner's session is refused before its
-- lease is taken. Tokens are no longer 1, 2, 3, ...: each is larger than the last one of the
-- row and than the microseconds since the epoch (see _queries.NEW_TOKEN), so a deleted or
-- restored lease row, or a re-created schema, never hands out a token a writer still holds.

ALTER TABLE {schema}.leases ADD COLUMN owner_id text;

-- Whether `p_owner` may not lease `p_session`: another owner stores it, or another owner's lease
-- of it is live. SECURITY DEFINER (the tables' owner): under row-level security the caller
-- cannot see other owners' rows, and must still be refused. It says no more than that.
CREATE FUNCTION {schema}.lease_refused(p_session text, p_owner text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM {schema}.sessions s
        WHERE s.session_id = p_session AND s.owner_id IS DISTINCT FROM p_owner
    ) OR EXISTS (
        SELECT 1 FROM {schema}.leases l
        WHERE l.session_id = p_session AND l.expires_at > now()
          AND l.owner_id IS NOT NULL AND l.owner_id <> p_owner
    )
$$;
