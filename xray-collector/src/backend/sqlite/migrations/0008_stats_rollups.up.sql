-- Rollups for `stats` (xray-collector/src/query/rollup.rs, BENCHMARKS.md
-- issue 12), as on PostgreSQL: per UTC day and per hour (`width`, `start_us`),
-- step name and duration bucket, the finished steps, how many were not ok and
-- the longest; per width, start, step name and model, the LLM calls and
-- tokens. Kept by triggers, so that every way rows come and go — shipping,
-- re-shipping, pruning, deleting by hand — keeps them right. A duration's
-- bucket is itself below 1 000 µs, else its first three digits after
-- (digits - 3) * 1 000 (rollup.rs `bucket`, which a test compares with this
-- SQL), computed by comparisons and one integer division.
CREATE TABLE step_rollups (
    width    TEXT    NOT NULL CHECK (width IN ('day', 'hour')),
    name     TEXT    NOT NULL,
    start_us INTEGER NOT NULL,
    bucket   INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    errors   INTEGER NOT NULL,
    max_us   INTEGER NOT NULL,
    PRIMARY KEY (width, name, start_us, bucket)
) STRICT, WITHOUT ROWID;

CREATE TABLE model_rollups (
    width             TEXT    NOT NULL CHECK (width IN ('day', 'hour')),
    name              TEXT    NOT NULL,
    start_us          INTEGER NOT NULL,
    model             TEXT    NOT NULL,
    calls             INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (width, name, start_us, model)
) STRICT, WITHOUT ROWID;

-- Finished steps with their bucket, for the backfill below and for `stats`,
-- which reads the steps before a window's first whole hour here.
CREATE VIEW finished_steps AS
SELECT id, name, status, started_at_us, duration_us,
       CASE WHEN duration_us < 1000 THEN duration_us WHEN duration_us < 10000 THEN 1000 + duration_us / 10 WHEN duration_us < 100000 THEN 2000 + duration_us / 100 WHEN duration_us < 1000000 THEN 3000 + duration_us / 1000 WHEN duration_us < 10000000 THEN 4000 + duration_us / 10000 WHEN duration_us < 100000000 THEN 5000 + duration_us / 100000 WHEN duration_us < 1000000000 THEN 6000 + duration_us / 1000000 WHEN duration_us < 10000000000 THEN 7000 + duration_us / 10000000 WHEN duration_us < 100000000000 THEN 8000 + duration_us / 100000000 WHEN duration_us < 1000000000000 THEN 9000 + duration_us / 1000000000 WHEN duration_us < 10000000000000 THEN 10000 + duration_us / 10000000000 WHEN duration_us < 100000000000000 THEN 11000 + duration_us / 100000000000 WHEN duration_us < 1000000000000000 THEN 12000 + duration_us / 1000000000000 WHEN duration_us < 10000000000000000 THEN 13000 + duration_us / 10000000000000 WHEN duration_us < 100000000000000000 THEN 14000 + duration_us / 100000000000000 WHEN duration_us < 1000000000000000000 THEN 15000 + duration_us / 1000000000000000 ELSE 16000 + duration_us / 10000000000000000 END AS bucket
FROM steps WHERE duration_us IS NOT NULL;

INSERT INTO step_rollups (width, name, start_us, bucket, finished, errors, max_us)
SELECT w.width, f.name, (f.started_at_us - ((f.started_at_us % w.span) + w.span) % w.span), f.bucket,
       count(*), sum(f.status <> 'ok'), max(f.duration_us)
FROM finished_steps f, (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w
GROUP BY 1, 2, 3, 4;

INSERT INTO model_rollups (width, name, start_us, model, calls, prompt_tokens, completion_tokens)
SELECT w.width, s.name, (s.started_at_us - ((s.started_at_us % w.span) + w.span) % w.span), u.model,
       count(*), sum(u.prompt_tokens), sum(u.completion_tokens)
FROM llm_usage u JOIN steps s ON s.id = u.step_id, (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w
GROUP BY 1, 2, 3, 4;

CREATE TRIGGER steps_roll_up_insert AFTER INSERT ON steps
WHEN new.duration_us IS NOT NULL
BEGIN
    INSERT INTO step_rollups (width, name, start_us, bucket, finished, errors, max_us)
    SELECT w.width, new.name, (new.started_at_us - ((new.started_at_us % w.span) + w.span) % w.span), CASE WHEN new.duration_us < 1000 THEN new.duration_us WHEN new.duration_us < 10000 THEN 1000 + new.duration_us / 10 WHEN new.duration_us < 100000 THEN 2000 + new.duration_us / 100 WHEN new.duration_us < 1000000 THEN 3000 + new.duration_us / 1000 WHEN new.duration_us < 10000000 THEN 4000 + new.duration_us / 10000 WHEN new.duration_us < 100000000 THEN 5000 + new.duration_us / 100000 WHEN new.duration_us < 1000000000 THEN 6000 + new.duration_us / 1000000 WHEN new.duration_us < 10000000000 THEN 7000 + new.duration_us / 10000000 WHEN new.duration_us < 100000000000 THEN 8000 + new.duration_us / 100000000 WHEN new.duration_us < 1000000000000 THEN 9000 + new.duration_us / 1000000000 WHEN new.duration_us < 10000000000000 THEN 10000 + new.duration_us / 10000000000 WHEN new.duration_us < 100000000000000 THEN 11000 + new.duration_us / 100000000000 WHEN new.duration_us < 1000000000000000 THEN 12000 + new.duration_us / 1000000000000 WHEN new.duration_us < 10000000000000000 THEN 13000 + new.duration_us / 10000000000000 WHEN new.duration_us < 100000000000000000 THEN 14000 + new.duration_us / 100000000000000 WHEN new.duration_us < 1000000000000000000 THEN 15000 + new.duration_us / 1000000000000000 ELSE 16000 + new.duration_us / 10000000000000000 END,
           1, new.status <> 'ok', new.duration_us
    FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w WHERE true
    ON CONFLICT (width, name, start_us, bucket) DO UPDATE SET
        finished = finished + 1,
        errors = errors + excluded.errors,
        max_us = max(max_us, excluded.max_us);
END;

-- A re-shipped step (the same values) changes nothing here.
CREATE TRIGGER steps_roll_up_update AFTER UPDATE OF name, status, started_at_us, duration_us ON steps
WHEN (old.duration_us IS NOT NULL OR new.duration_us IS NOT NULL)
 AND (old.name IS NOT new.name OR old.status IS NOT new.status
   OR old.started_at_us IS NOT new.started_at_us OR old.duration_us IS NOT new.duration_us)
BEGIN
    UPDATE step_rollups SET finished = finished - 1, errors = errors - (old.status <> 'ok')
    WHERE old.duration_us IS NOT NULL AND name = old.name AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us WHEN old.duration_us < 10000 THEN 1000 + old.duration_us / 10 WHEN old.duration_us < 100000 THEN 2000 + old.duration_us / 100 WHEN old.duration_us < 1000000 THEN 3000 + old.duration_us / 1000 WHEN old.duration_us < 10000000 THEN 4000 + old.duration_us / 10000 WHEN old.duration_us < 100000000 THEN 5000 + old.duration_us / 100000 WHEN old.duration_us < 1000000000 THEN 6000 + old.duration_us / 1000000 WHEN old.duration_us < 10000000000 THEN 7000 + old.duration_us / 10000000 WHEN old.duration_us < 100000000000 THEN 8000 + old.duration_us / 100000000 WHEN old.duration_us < 1000000000000 THEN 9000 + old.duration_us / 1000000000 WHEN old.duration_us < 10000000000000 THEN 10000 + old.duration_us / 10000000000 WHEN old.duration_us < 100000000000000 THEN 11000 + old.duration_us / 100000000000 WHEN old.duration_us < 1000000000000000 THEN 12000 + old.duration_us / 1000000000000 WHEN old.duration_us < 10000000000000000 THEN 13000 + old.duration_us / 10000000000000 WHEN old.duration_us < 100000000000000000 THEN 14000 + old.duration_us / 100000000000000 WHEN old.duration_us < 1000000000000000000 THEN 15000 + old.duration_us / 1000000000000000 ELSE 16000 + old.duration_us / 10000000000000000 END
      AND (width, start_us) IN (SELECT w.width, (old.started_at_us - ((old.started_at_us % w.span) + w.span) % w.span) FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w);
    DELETE FROM step_rollups
    WHERE old.duration_us IS NOT NULL AND name = old.name AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us WHEN old.duration_us < 10000 THEN 1000 + old.duration_us / 10 WHEN old.duration_us < 100000 THEN 2000 + old.duration_us / 100 WHEN old.duration_us < 1000000 THEN 3000 + old.duration_us / 1000 WHEN old.duration_us < 10000000 THEN 4000 + old.duration_us / 10000 WHEN old.duration_us < 100000000 THEN 5000 + old.duration_us / 100000 WHEN old.duration_us < 1000000000 THEN 6000 + old.duration_us / 1000000 WHEN old.duration_us < 10000000000 THEN 7000 + old.duration_us / 10000000 WHEN old.duration_us < 100000000000 THEN 8000 + old.duration_us / 100000000 WHEN old.duration_us < 1000000000000 THEN 9000 + old.duration_us / 1000000000 WHEN old.duration_us < 10000000000000 THEN 10000 + old.duration_us / 10000000000 WHEN old.duration_us < 100000000000000 THEN 11000 + old.duration_us / 100000000000 WHEN old.duration_us < 1000000000000000 THEN 12000 + old.duration_us / 1000000000000 WHEN old.duration_us < 10000000000000000 THEN 13000 + old.duration_us / 10000000000000 WHEN old.duration_us < 100000000000000000 THEN 14000 + old.duration_us / 100000000000000 WHEN old.duration_us < 1000000000000000000 THEN 15000 + old.duration_us / 1000000000000000 ELSE 16000 + old.duration_us / 10000000000000000 END
      AND (width, start_us) IN (SELECT w.width, (old.started_at_us - ((old.started_at_us % w.span) + w.span) % w.span) FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w)
      AND finished <= 0;
    INSERT INTO step_rollups (width, name, start_us, bucket, finished, errors, max_us)
    SELECT w.width, new.name, (new.started_at_us - ((new.started_at_us % w.span) + w.span) % w.span), CASE WHEN new.duration_us < 1000 THEN new.duration_us WHEN new.duration_us < 10000 THEN 1000 + new.duration_us / 10 WHEN new.duration_us < 100000 THEN 2000 + new.duration_us / 100 WHEN new.duration_us < 1000000 THEN 3000 + new.duration_us / 1000 WHEN new.duration_us < 10000000 THEN 4000 + new.duration_us / 10000 WHEN new.duration_us < 100000000 THEN 5000 + new.duration_us / 100000 WHEN new.duration_us < 1000000000 THEN 6000 + new.duration_us / 1000000 WHEN new.duration_us < 10000000000 THEN 7000 + new.duration_us / 10000000 WHEN new.duration_us < 100000000000 THEN 8000 + new.duration_us / 100000000 WHEN new.duration_us < 1000000000000 THEN 9000 + new.duration_us / 1000000000 WHEN new.duration_us < 10000000000000 THEN 10000 + new.duration_us / 10000000000 WHEN new.duration_us < 100000000000000 THEN 11000 + new.duration_us / 100000000000 WHEN new.duration_us < 1000000000000000 THEN 12000 + new.duration_us / 1000000000000 WHEN new.duration_us < 10000000000000000 THEN 13000 + new.duration_us / 10000000000000 WHEN new.duration_us < 100000000000000000 THEN 14000 + new.duration_us / 100000000000000 WHEN new.duration_us < 1000000000000000000 THEN 15000 + new.duration_us / 1000000000000000 ELSE 16000 + new.duration_us / 10000000000000000 END,
           1, new.status <> 'ok', new.duration_us
    FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w WHERE new.duration_us IS NOT NULL
    ON CONFLICT (width, name, start_us, bucket) DO UPDATE SET
        finished = finished + 1,
        errors = errors + excluded.errors,
        max_us = max(max_us, excluded.max_us);
END;

CREATE TRIGGER steps_roll_up_delete AFTER DELETE ON steps
WHEN old.duration_us IS NOT NULL
BEGIN
    UPDATE step_rollups SET finished = finished - 1, errors = errors - (old.status <> 'ok')
    WHERE name = old.name AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us WHEN old.duration_us < 10000 THEN 1000 + old.duration_us / 10 WHEN old.duration_us < 100000 THEN 2000 + old.duration_us / 100 WHEN old.duration_us < 1000000 THEN 3000 + old.duration_us / 1000 WHEN old.duration_us < 10000000 THEN 4000 + old.duration_us / 10000 WHEN old.duration_us < 100000000 THEN 5000 + old.duration_us / 100000 WHEN old.duration_us < 1000000000 THEN 6000 + old.duration_us / 1000000 WHEN old.duration_us < 10000000000 THEN 7000 + old.duration_us / 10000000 WHEN old.duration_us < 100000000000 THEN 8000 + old.duration_us / 100000000 WHEN old.duration_us < 1000000000000 THEN 9000 + old.duration_us / 1000000000 WHEN old.duration_us < 10000000000000 THEN 10000 + old.duration_us / 10000000000 WHEN old.duration_us < 100000000000000 THEN 11000 + old.duration_us / 100000000000 WHEN old.duration_us < 1000000000000000 THEN 12000 + old.duration_us / 1000000000000 WHEN old.duration_us < 10000000000000000 THEN 13000 + old.duration_us / 10000000000000 WHEN old.duration_us < 100000000000000000 THEN 14000 + old.duration_us / 100000000000000 WHEN old.duration_us < 1000000000000000000 THEN 15000 + old.duration_us / 1000000000000000 ELSE 16000 + old.duration_us / 10000000000000000 END
      AND (width, start_us) IN (SELECT w.width, (old.started_at_us - ((old.started_at_us % w.span) + w.span) % w.span) FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w);
    DELETE FROM step_rollups
    WHERE name = old.name AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us WHEN old.duration_us < 10000 THEN 1000 + old.duration_us / 10 WHEN old.duration_us < 100000 THEN 2000 + old.duration_us / 100 WHEN old.duration_us < 1000000 THEN 3000 + old.duration_us / 1000 WHEN old.duration_us < 10000000 THEN 4000 + old.duration_us / 10000 WHEN old.duration_us < 100000000 THEN 5000 + old.duration_us / 100000 WHEN old.duration_us < 1000000000 THEN 6000 + old.duration_us / 1000000 WHEN old.duration_us < 10000000000 THEN 7000 + old.duration_us / 10000000 WHEN old.duration_us < 100000000000 THEN 8000 + old.duration_us / 100000000 WHEN old.duration_us < 1000000000000 THEN 9000 + old.duration_us / 1000000000 WHEN old.duration_us < 10000000000000 THEN 10000 + old.duration_us / 10000000000 WHEN old.duration_us < 100000000000000 THEN 11000 + old.duration_us / 100000000000 WHEN old.duration_us < 1000000000000000 THEN 12000 + old.duration_us / 1000000000000 WHEN old.duration_us < 10000000000000000 THEN 13000 + old.duration_us / 10000000000000 WHEN old.duration_us < 100000000000000000 THEN 14000 + old.duration_us / 100000000000000 WHEN old.duration_us < 1000000000000000000 THEN 15000 + old.duration_us / 1000000000000000 ELSE 16000 + old.duration_us / 10000000000000000 END
      AND (width, start_us) IN (SELECT w.width, (old.started_at_us - ((old.started_at_us % w.span) + w.span) % w.span) FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w)
      AND finished <= 0;
END;

CREATE TRIGGER llm_usage_roll_up_insert AFTER INSERT ON llm_usage
BEGIN
    INSERT INTO model_rollups (width, name, start_us, model, calls, prompt_tokens, completion_tokens)
    SELECT w.width, s.name, (s.started_at_us - ((s.started_at_us % w.span) + w.span) % w.span), new.model,
           1, new.prompt_tokens, new.completion_tokens
    FROM steps s, (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w WHERE s.id = new.step_id
    ON CONFLICT (width, name, start_us, model) DO UPDATE SET
        calls = calls + 1,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens;
END;

-- A call deleted while its step is still there (a prune deletes calls
-- first) is taken out here; one deleted with its step (the foreign key's
-- cascade, after the step is gone), by steps_roll_up_models_delete.
CREATE TRIGGER llm_usage_roll_up_delete AFTER DELETE ON llm_usage
BEGIN
    UPDATE model_rollups SET calls = calls - 1,
        prompt_tokens = prompt_tokens - old.prompt_tokens,
        completion_tokens = completion_tokens - old.completion_tokens
    WHERE model = old.model AND (width, name, start_us) IN
          (SELECT w.width, s.name, (s.started_at_us - ((s.started_at_us % w.span) + w.span) % w.span) FROM steps s, (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w WHERE s.id = old.step_id);
    DELETE FROM model_rollups
    WHERE calls <= 0 AND model = old.model AND (width, name, start_us) IN
          (SELECT w.width, s.name, (s.started_at_us - ((s.started_at_us % w.span) + w.span) % w.span) FROM steps s, (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w WHERE s.id = old.step_id);
END;

CREATE TRIGGER steps_roll_up_models_delete BEFORE DELETE ON steps
BEGIN
    UPDATE model_rollups SET
        calls = calls - (SELECT count(*) FROM llm_usage u
                         WHERE u.step_id = old.id AND u.model = model_rollups.model),
        prompt_tokens = prompt_tokens - (SELECT coalesce(sum(u.prompt_tokens), 0) FROM llm_usage u
                         WHERE u.step_id = old.id AND u.model = model_rollups.model),
        completion_tokens = completion_tokens - (SELECT coalesce(sum(u.completion_tokens), 0) FROM llm_usage u
                         WHERE u.step_id = old.id AND u.model = model_rollups.model)
    WHERE name = old.name
      AND (width, start_us) IN (SELECT w.width, (old.started_at_us - ((old.started_at_us % w.span) + w.span) % w.span) FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w)
      AND model IN (SELECT model FROM llm_usage WHERE step_id = old.id);
    DELETE FROM model_rollups
    WHERE name = old.name AND calls <= 0
      AND (width, start_us) IN (SELECT w.width, (old.started_at_us - ((old.started_at_us % w.span) + w.span) % w.span) FROM (SELECT 'day' AS width, 86400000000 AS span UNION ALL SELECT 'hour', 3600000000) w);
END;
