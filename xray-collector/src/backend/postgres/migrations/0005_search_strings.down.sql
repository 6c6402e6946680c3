DROP INDEX xray.steps_search;
ALTER TABLE xray.steps DROP COLUMN search;
ALTER TABLE xray.steps ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, left(
        coalesce(name, '') || ' ' || coalesce(error, '') || ' ' ||
        coalesce(output::text, '') || ' ' || coalesce(input::text, ''),
        250000))
) STORED;
CREATE INDEX steps_search ON xray.steps USING gin (search);
