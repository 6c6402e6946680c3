-- Rollups for `stats` (xray-collector/src/query/rollup.rs, BENCHMARKS.md
-- issue 12): per step name, UTC day and duration bucket, the finished steps,
-- how many were not ok and the longest; per step name, day and model, the LLM
-- calls and tokens. Kept by statement-level triggers (one aggregate per
-- shipped batch), so every way rows come and go — shipping, re-shipping,
-- pruning, deleting by hand — keeps them right. `stats` reads these for the
-- whole days of its window and the steps themselves for the rest.

-- A duration's bucket: itself below 1 000 µs, else its first three digits
-- after (digits - 3) * 1 000 (rollup.rs `bucket`, which a test compares).
CREATE FUNCTION xray.duration_bucket(d bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN d < 1000 THEN d
            ELSE (length(d::text) - 3) * 1000 + left(d::text, 3)::bigint END;

CREATE TABLE xray.step_rollups (
    name     text        NOT NULL,
    day      timestamptz NOT NULL,
    bucket   bigint      NOT NULL,
    finished bigint      NOT NULL,
    errors   bigint      NOT NULL,
    max_us   bigint      NOT NULL,
    PRIMARY KEY (name, day, bucket)
);

CREATE TABLE xray.model_rollups (
    name              text        NOT NULL,
    day               timestamptz NOT NULL,
    model             text        NOT NULL,
    calls             bigint      NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    PRIMARY KEY (name, day, model)
);

INSERT INTO xray.step_rollups (name, day, bucket, finished, errors, max_us)
SELECT name, date_bin('1 day', started_at, 'epoch'), xray.duration_bucket(duration_us),
       count(*), count(*) FILTER (WHERE status <> 'ok'), max(duration_us)
FROM xray.steps WHERE duration_us IS NOT NULL
GROUP BY 1, 2, 3;

INSERT INTO xray.model_rollups (name, day, model, calls, prompt_tokens, completion_tokens)
SELECT s.name, date_bin('1 day', s.started_at, 'epoch'), u.model,
       count(*), sum(u.prompt_tokens), sum(u.completion_tokens)
FROM xray.llm_usage u JOIN xray.steps s ON s.id = u.step_id
GROUP BY 1, 2, 3;

-- Steps in (+1) and out (-1). Rows are upserted in key order, so that two
-- shipping transactions lock the rollups they share in the same order.
CREATE FUNCTION xray.roll_up_steps() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO xray.step_rollups AS r (name, day, bucket, finished, errors, max_us)
        SELECT name, date_bin('1 day', started_at, 'epoch'), xray.duration_bucket(duration_us),
               count(*), count(*) FILTER (WHERE status <> 'ok'), max(duration_us)
        FROM new_rows WHERE duration_us IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (name, day, bucket) DO UPDATE SET
            finished = r.finished + EXCLUDED.finished,
            errors = r.errors + EXCLUDED.errors,
            max_us = greatest(r.max_us, EXCLUDED.max_us);
    ELSIF TG_OP = 'UPDATE' THEN
        -- A re-shipped step changes nothing here: its -1 and +1 cancel.
        INSERT INTO xray.step_rollups AS r (name, day, bucket, finished, errors, max_us)
        SELECT name, date_bin('1 day', started_at, 'epoch'), xray.duration_bucket(duration_us),
               sum(sign), coalesce(sum(sign) FILTER (WHERE status <> 'ok'), 0),
               coalesce(max(duration_us) FILTER (WHERE sign > 0), -1)
        FROM (SELECT name, started_at, duration_us, status, 1 AS sign
                FROM new_rows WHERE duration_us IS NOT NULL
              UNION ALL
              SELECT name, started_at, duration_us, status, -1
                FROM old_rows WHERE duration_us IS NOT NULL) c
        GROUP BY 1, 2, 3
        HAVING sum(sign) <> 0 OR coalesce(sum(sign) FILTER (WHERE status <> 'ok'), 0) <> 0
        ORDER BY 1, 2, 3
        ON CONFLICT (name, day, bucket) DO UPDATE SET
            finished = r.finished + EXCLUDED.finished,
            errors = r.errors + EXCLUDED.errors,
            max_us = greatest(r.max_us, EXCLUDED.max_us);
    ELSE
        INSERT INTO xray.step_rollups AS r (name, day, bucket, finished, errors, max_us)
        SELECT name, date_bin('1 day', started_at, 'epoch'), xray.duration_bucket(duration_us),
               -count(*), -count(*) FILTER (WHERE status <> 'ok'), -1
        FROM old_rows WHERE duration_us IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (name, day, bucket) DO UPDATE SET
            finished = r.finished + EXCLUDED.finished,
            errors = r.errors + EXCLUDED.errors;
        DELETE FROM xray.step_rollups r
        USING (SELECT DISTINCT name, date_bin('1 day', started_at, 'epoch') AS day FROM old_rows) g
        WHERE r.name = g.name AND r.day = g.day AND r.finished <= 0;
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

-- LLM calls in and out, counted under their step's name and day: a call
-- deleted while its step is still there (a prune deletes calls first) is
-- taken out here; one deleted with its step, by delete_step_children below.
CREATE FUNCTION xray.roll_up_models() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO xray.model_rollups AS r (name, day, model, calls, prompt_tokens, completion_tokens)
        SELECT s.name, date_bin('1 day', s.started_at, 'epoch'), u.model,
               count(*), sum(u.prompt_tokens), sum(u.completion_tokens)
        FROM new_rows u JOIN xray.steps s ON s.id = u.step_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (name, day, model) DO UPDATE SET
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

CREATE FUNCTION xray.take_out_models(uses xray.model_use[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF uses IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO xray.model_rollups AS r (name, day, model, calls, prompt_tokens, completion_tokens)
    SELECT name, date_bin('1 day', started_at, 'epoch'), model,
           -count(*), -sum(prompt), -sum(completion)
    FROM unnest(uses)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (name, day, model) DO UPDATE SET
        calls = r.calls + EXCLUDED.calls,
        prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens;
    DELETE FROM xray.model_rollups r
    USING (SELECT DISTINCT name, date_bin('1 day', started_at, 'epoch') AS day FROM unnest(uses)) g
    WHERE r.name = g.name AND r.day = g.day AND r.calls <= 0;
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
