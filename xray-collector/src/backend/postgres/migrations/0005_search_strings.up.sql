-- Search indexes what a person searches: the step's name and error and the
-- string values of its input and output — not the JSON's keys, numbers and
-- punctuation, whose tokenizing took three quarters of a shipped step's
-- cost (BENCHMARKS.md, issue 12). The strings are cut at 250,000
-- characters, as before, so that a huge value cannot exceed tsvector's
-- 1 MB limit and get its step refused. Rewrites the steps table.
DROP INDEX xray.steps_search;
ALTER TABLE xray.steps DROP COLUMN search;
ALTER TABLE xray.steps ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, left(
        coalesce(name, '') || ' ' || coalesce(error, '') || ' ' ||
        coalesce(jsonb_path_query_array(output, 'strict $.** ? (@.type() == "string")')::text, '') || ' ' ||
        coalesce(jsonb_path_query_array(input, 'strict $.** ? (@.type() == "string")')::text, ''),
        250000))
) STORED;
CREATE INDEX steps_search ON xray.steps USING gin (search);
