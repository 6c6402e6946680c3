-- Reverts version 1. The runner deletes version 1's row from
-- `xray.schema_migrations` before running this, in the same transaction.
DROP TABLE IF EXISTS xray.dead_letters;
DROP TABLE IF EXISTS xray.llm_usage;
DROP TABLE IF EXISTS xray.decisions;
DROP TABLE IF EXISTS xray.steps;
DROP TABLE IF EXISTS xray.executions;

-- Version 1 is the first migration: once it is reverted nothing of X-Ray is
-- left, so the bookkeeping table and the schema go too, leaving the database
-- as it was before the first `migrate up`. Anything else living in `xray`
-- (a user's own table, or other migrations still recorded) keeps them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM xray.schema_migrations) THEN
        DROP TABLE xray.schema_migrations;
        BEGIN
            DROP SCHEMA xray;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            NULL;
        END;
    END IF;
END
$$;
