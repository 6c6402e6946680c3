CREATE OR REPLACE FUNCTION xray.delete_step_children() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM xray.decisions d USING gone g WHERE d.step_id = g.id;
    DELETE FROM xray.llm_usage u USING gone g WHERE u.step_id = g.id;
    RETURN NULL;
END
$$;
DROP TRIGGER llm_usage_roll_up_delete ON xray.llm_usage;
DROP TRIGGER llm_usage_roll_up_insert ON xray.llm_usage;
DROP FUNCTION xray.roll_up_models();
DROP FUNCTION xray.take_out_models(xray.model_use[]);
DROP TYPE xray.model_use;
DROP TRIGGER steps_roll_up_delete ON xray.steps;
DROP TRIGGER steps_roll_up_update ON xray.steps;
DROP TRIGGER steps_roll_up_insert ON xray.steps;
DROP FUNCTION xray.roll_up_steps();
DROP VIEW xray.rollup_widths;
DROP TABLE xray.model_rollups;
DROP TABLE xray.step_rollups;
DROP FUNCTION xray.duration_bucket(bigint);
