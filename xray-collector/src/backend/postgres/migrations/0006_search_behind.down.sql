CREATE INDEX steps_status ON xray.steps (status);
DROP TABLE xray.search_pending;
ALTER TABLE xray.steps ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, left(
        coalesce(name, '') || ' ' || coalesce(error, '') || ' ' ||
        coalesce(jsonb_path_query_array(output, 'strict $.** ? (@.type() == "string")')::text, '') || ' ' ||
        coalesce(jsonb_path_query_array(input, 'strict $.** ? (@.type() == "string")')::text, ''),
        250000))
) STORED;
CREATE INDEX steps_search ON xray.steps USING gin (search);
DROP TABLE xray.step_search;
