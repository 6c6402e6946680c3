DROP INDEX xray.step_search_newest;
ALTER TABLE xray.step_search DROP COLUMN started_at;
DROP INDEX xray.steps_name_started;
CREATE INDEX steps_name_started ON xray.steps (name, started_at);
