CREATE OR REPLACE FUNCTION xray.delete_step_children() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM xray.decisions d USING gone g WHERE d.step_id = g.id;
    PERFORM xray.take_out_models(array_agg(ROW(g.name, g.started_at, u.model, u.prompt_tokens, u.completion_tokens)::xray.model_use))
    FROM gone g JOIN xray.llm_usage u ON u.step_id = g.id;
    DELETE FROM xray.llm_usage u USING gone g WHERE u.step_id = g.id;
    RETURN NULL;
END
$$;

CREATE TABLE xray.step_search_by_day (LIKE xray.step_search);
INSERT INTO xray.step_search_by_day SELECT x.* FROM xray.step_search x
WHERE EXISTS (SELECT 1 FROM xray.steps s WHERE s.id = x.step_id);
DROP TABLE xray.step_search;
DROP FUNCTION xray.step_search_day(date, date);
ALTER TABLE xray.step_search_by_day RENAME TO step_search;
ALTER TABLE xray.step_search ADD PRIMARY KEY (step_id),
    ADD FOREIGN KEY (step_id) REFERENCES xray.steps (id) ON DELETE CASCADE;
CREATE INDEX step_search_search ON xray.step_search USING gin (search);
CREATE INDEX step_search_newest ON xray.step_search (started_at DESC);
