-- Optional: row-level security per owner. Apply with waauth.enable_row_level_security().
-- A role that is not superuser, not the tables' owner and not BYPASSRLS then sees and writes
-- only rows whose owner_id equals the `waauth.owner_id` setting, which a state opened with
-- owner_id sets in each transaction. Records carry their session's owner_id for this check, and
-- leases the owner_id of the state that took them (schema version 4). Another owner's session
-- is refused before its lease is taken by {schema}.lease_refused, which sees every owner.

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sessions', 'records', 'leases'] LOOP
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', '{schema}', t);
        IF NOT EXISTS (
            SELECT 1 FROM pg_policies
            WHERE schemaname = '{schema}' AND tablename = t AND policyname = 'waauth_owner'
        ) THEN
            EXECUTE format(
                'CREATE POLICY waauth_owner ON %I.%I'
                ' USING (owner_id = current_setting(''waauth.owner_id'', true))'
                ' WITH CHECK (owner_id = current_setting(''waauth.owner_id'', true))',
                '{schema}', t
            );
        END IF;
    END LOOP;
END
$$;
