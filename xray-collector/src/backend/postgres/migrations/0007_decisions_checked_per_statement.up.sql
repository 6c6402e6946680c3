-- A decision's and an LLM call's step used to be checked by a foreign key:
-- PostgreSQL checks those row by row (a look-up per inserted decision), which
-- took a third of a shipped batch's time (BENCHMARKS.md, issue 12). The
-- collector writes every decision and LLM call in the same transaction as
-- its step, so the check never refused anything; what the key also did —
-- delete them with their step — is done by one statement-level trigger,
-- whatever deleted the steps (a prune, or an execution deleted by hand,
-- cascading to its steps).
ALTER TABLE xray.decisions DROP CONSTRAINT decisions_step_id_fkey;
ALTER TABLE xray.llm_usage DROP CONSTRAINT llm_usage_step_id_fkey;

CREATE FUNCTION xray.delete_step_children() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM xray.decisions d USING gone g WHERE d.step_id = g.id;
    DELETE FROM xray.llm_usage u USING gone g WHERE u.step_id = g.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER steps_delete_children AFTER DELETE ON xray.steps
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION xray.delete_step_children();
