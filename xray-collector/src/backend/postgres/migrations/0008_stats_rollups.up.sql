-- Rollups for `stats` (xray-collector/src/query/rollup.rs, BENCHMARKS.md
-- issue 12): per UTC day and per hour (`width`), step name and duration
-- bucket, the finished steps, how many were not ok and the longest; per
-- width, start, step name and model, the LLM calls and tokens. Kept by statement-level triggers (one aggregate per
-- shipped batch), so every way rows come and go — shipping, re-shipping,
-- pruning, deleting by hand — keeps them right. `stats` reads the days for the
-- whole days of its window, the hours for the whole hours before them, and
-- the steps themselves for the rest.

-- A duration's bucket: itself below 1 000 µs, else its first three digits
-- after (digits - 3) * 1 000 (rollup.rs `bucket`, which a test compares),
-- by comparisons and one integer division.
CREATE FUNCTION xray.duration_bucket(d bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN d < 1000 THEN d
    WHEN d < 10000 THEN 1000 + d / 10
    WHEN d < 100000 THEN 2000 + d / 100
    WHEN d < 1000000 THEN 3000 + d / 1000
    WHEN d < 10000000 THEN 4000 + d / 10000
    WHEN d < 100000000 THEN 5000 + d / 100000
    WHEN d < 1000000000 THEN 6000 + d / 1000000
    WHEN d < 10000000000 THEN 7000 + d / 10000000
    WHEN d < 100000000000 THEN 8000 + d / 100000000
    WHEN d < 1000000000000 THEN 9000 + d / 1000000000
    WHEN d < 10000000000000 THEN 10000 + d / 10000000000
    WHEN d < 100000000000000 THEN 11000 + d / 100000000000
    WHEN d < 1000000000000000 THEN 12000 + d / 1000000000000
    WHEN d < 10000000000000000 THEN 13000 + d / 10000000000000
    WHEN d < 100000000000000000 THEN 14000 + d / 100000000000000
    WHEN d < 1000000000000000000 THEN 15000 + d / 1000000000000000
    ELSE 16000 + d / 10000000000000000 END;

CREATE TABLE xray.step_rollups (
    width    text        NOT NULL CHECK (width IN ('day', 'hour')),
    name     text        NOT NULL,
    start    timestamptz NOT NULL,
    bucket   bigint      NOT NULL,
    finished bigint      NOT NULL,
    errors   bigint      NOT NULL,
    max_us   bigint      NOT NULL,
    PRIMARY KEY (width, name, start, bucket)
);

CREATE TABLE xray.model_rollups (
    width             text        NOT NULL CHECK (width IN ('day', 'hour')),
    name              text        NOT NULL,
    start             timestamptz NOT NULL,
    model             text        NOT NULL,
    calls             bigint      NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    PRIMARY KEY (width, name, start, model)
);

-- The two widths every row is counted in.
CREATE VIEW xray.rollup_widths (width, span) AS
VALUES ('day', interval '1 day'), ('hour', interval '1 hour');

INSERT INTO xray.step_rollups (width, name, start, bucket, finished, errors, max_us)
SELECT g.width, s.name, date_bin(g.span, s.started_at, 'epoch'), xray.duration_bucket(s.duration_us),
       count(*), count(*) FILTER (WHERE s.status <> 'ok'), max(s.duration_us)
FROM xray.steps s CROSS JOIN xray.rollup_widths g WHERE s.duration_us IS NOT NULL
GROUP BY 1, 2, 3, 4;

INSERT INTO xray.model_rollups (width, name, start, model, calls, prompt_tokens, completion_tokens)
SELECT g.width, s.name, date_bin(g.span, s.started_at, 'epoch'), u.model,
       count(*), sum(u.prompt_tokens), sum(u.completion_tokens)
FROM xray.llm_usage u JOIN xray.steps s ON s.id = u.step_id CROSS JOIN xray.rollup_widths g
GROUP BY 1, 2, 3, 4;

-- Steps in (+1) and out (-1). Rows are upserted in key order, so that two
-- shipping transactions lock the rollups they share in the same order.
CREATE FUNCTION xray.roll_up_steps() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO xray.step_rollups AS r (width, name, start, bucket, finished, errors, max_us)
        SELECT g.width, c.name, date_bin(g.span, c.started_at, 'epoch'), xray.duration_bucket(c.duration_us),
               count(*), count(*) FILTER (WHERE c.status <> 'ok'), max(c.duration_us)
        FROM new_rows c CROSS JOIN xray.rollup_widths g WHERE c.duration_us IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (width, name, start, bucket) DO UPDATE SET
            finished = r.finished + EXCLUDED.finished,
            errors = r.errors + EXCLUDED.errors,
            max_us = greatest(r.max_us, EXCLUDED.max_us);
    ELSIF TG_OP = 'UPDATE' THEN
        -- A re-shipped step changes nothing here: its -1 and +1 cancel.
        INSERT INTO xray.step_rollups AS r (width, name, start, bucket, finished, errors, max_us)
        SELECT g.width, c.name, date_bin(g.span, c.started_at, 'epoch'), xray.duration_bucket(c.duration_us),
               sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.status <> 'ok'), 0),
               coalesce(max(c.duration_us) FILTER (WHERE c.sign > 0), -1)
        FROM (SELECT name, started_at, duration_us, status, 1 AS sign
                FROM new_rows WHERE duration_us IS NOT NULL
              UNION ALL
              SELECT name, started_at, duration_us, status, -1
                FROM old_rows WHERE duration_us IS NOT NULL) c
             CROSS JOIN xray.rollup_widths g
        GROUP BY 1, 2, 3, 4
        HAVING sum(c.sign) <> 0 OR coalesce(sum(c.sign) FILTER (WHERE c.status <> 'ok'), 0) <> 0
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (width, name, start, bucket) DO UPDATE SET
            finished = r.finished + EXCLUDED.finished,
            errors = r.errors + EXCLUDED.errors,
            max_us = greatest(r.max_us, EXCLUDED.max_us);
    ELSE
        INSERT INTO xray.step_rollups AS r (width, name, start, bucket, finished, errors, max_us)
        SELECT g.width, c.name, date_bin(g.span, c.started_at, 'epoch'), xray.duration_bucket(c.duration_us),
               -count(*), -count(*) FILTER (WHERE c.status <> 'ok'), -1
        FROM old_rows c CROSS JOIN xray.rollup_widths g WHERE c.duration_us IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (width, name, start, bucket) DO UPDATE SET
            finished = r.finished + EXCLUDED.finished,
            errors = r.errors + EXCLUDED.errors;
        DELETE FROM xray.step_rollups r
        USING (SELECT DISTINCT g.width, c.name, date_bin(g.span, c.started_at, 'epoch') AS start
               FROM old_rows c CROSS JOIN xray.rollup_widths g) x
        WHERE r.width = x.width AND r.name = x.name AND r.start = x.start AND r.finished <= 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER steps_roll_up_insert AFTER INSERT ON xray.steps
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION xray.roll_up_steps();
CREATE TRIGGER steps_roll_up_update AFTER UPDATE ON xray.steps
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION xray.roll_up_steps();
CREATE TRIGGER steps_roll_up_delete AFTER DELETE ON xray.steps
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION xray.roll_up_steps();

-- An LLM call as it is taken out of model_rollups.
CREATE TYPE xray.model_use AS (name text, started_at timestamptz, model text, prompt bigint, completion bigint);

CREATE FUNCTION xray.take_out_models(uses xray.model_use[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF uses IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO xray.model_rollups AS r (width, name, start, model, calls, prompt_tokens, completion_tokens)
    SELECT g.width, u.name, date_bin(g.span, u.started_at, 'epoch'), u.model,
           -count(*), -sum(u.prompt), -sum(u.completion)
    FROM unnest(uses) u CROSS JOIN xray.rollup_widths g
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (width, name, start, model) DO UPDATE SET
        calls = r.calls + EXCLUDED.calls,
        prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens;
    DELETE FROM xray.model_rollups r
    USING (SELECT DISTINCT g.width, u.name, date_bin(g.span, u.started_at, 'epoch') AS start
           FROM unnest(uses) u CROSS JOIN xray.rollup_widths g) x
    WHERE r.width = x.width AND r.name = x.name AND r.start = x.start AND r.calls <= 0;
END
$$;

-- LLM calls in and out, counted under their step's name and start: a call
-- deleted while its step is still there (a prune deletes calls first) is
-- taken out here; one deleted with its step, by delete_step_children below.
CREATE FUNCTION xray.roll_up_models() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO xray.model_rollups AS r (width, name, start, model, calls, prompt_tokens, completion_tokens)
        SELECT g.width, s.name, date_bin(g.span, s.started_at, 'epoch'), u.model,
               count(*), sum(u.prompt_tokens), sum(u.completion_tokens)
        FROM new_rows u JOIN xray.steps s ON s.id = u.step_id CROSS JOIN xray.rollup_widths g
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (width, name, start, model) DO UPDATE SET
            calls = r.calls + EXCLUDED.calls,
            prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens;
    ELSE
        PERFORM xray.take_out_models(array_agg(ROW(s.name, s.started_at, u.model, u.prompt_tokens, u.completion_tokens)::xray.model_use))
        FROM old_rows u JOIN xray.steps s ON s.id = u.step_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER llm_usage_roll_up_insert AFTER INSERT ON xray.llm_usage
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION xray.roll_up_models();
CREATE TRIGGER llm_usage_roll_up_delete AFTER DELETE ON xray.llm_usage
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION xray.roll_up_models();

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
