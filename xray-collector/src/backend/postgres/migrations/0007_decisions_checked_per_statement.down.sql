DROP TRIGGER steps_delete_children ON xray.steps;
DROP FUNCTION xray.delete_step_children();
-- Rows whose step is gone would fail the keys.
DELETE FROM xray.decisions d WHERE NOT EXISTS (SELECT 1 FROM xray.steps s WHERE s.id = d.step_id);
DELETE FROM xray.llm_usage u WHERE NOT EXISTS (SELECT 1 FROM xray.steps s WHERE s.id = u.step_id);
ALTER TABLE xray.decisions ADD CONSTRAINT decisions_step_id_fkey
    FOREIGN KEY (step_id) REFERENCES xray.steps (id) ON DELETE CASCADE;
ALTER TABLE xray.llm_usage ADD CONSTRAINT llm_usage_step_id_fkey
    FOREIGN KEY (step_id) REFERENCES xray.steps (id) ON DELETE CASCADE;
