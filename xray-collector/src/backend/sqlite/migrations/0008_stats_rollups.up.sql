-- Rollups for `stats` (xray-collector/src/query/rollup.rs, BENCHMARKS.md
-- issue 12), as on PostgreSQL: per step name, UTC day (day_us, µs) and
-- duration bucket, the finished steps, how many were not ok and the longest;
-- per step name, day and model, the LLM calls and tokens. Kept by triggers,
-- so that every way rows come and go — shipping, re-shipping, pruning,
-- deleting by hand — keeps them right. A duration's bucket is itself below
-- 1 000 µs, else its first three digits after (digits - 3) * 1 000
-- (rollup.rs `bucket`, which a test compares with this SQL).
CREATE TABLE step_rollups (
    name     TEXT    NOT NULL,
    day_us   INTEGER NOT NULL,
    bucket   INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    errors   INTEGER NOT NULL,
    max_us   INTEGER NOT NULL,
    PRIMARY KEY (name, day_us, bucket)
) STRICT, WITHOUT ROWID;

CREATE TABLE model_rollups (
    name              TEXT    NOT NULL,
    day_us            INTEGER NOT NULL,
    model             TEXT    NOT NULL,
    calls             INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (name, day_us, model)
) STRICT, WITHOUT ROWID;

-- Finished steps with their day and bucket, for the backfill below and for
-- `stats`, which reads the steps before a window's first whole day here.
CREATE VIEW finished_steps AS
SELECT id, name, status, started_at_us, duration_us,
       (started_at_us - ((started_at_us % 86400000000) + 86400000000) % 86400000000) AS day_us,
       CASE WHEN duration_us < 1000 THEN duration_us ELSE (length(CAST(duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(duration_us AS TEXT), 1, 3) AS INTEGER) END AS bucket
FROM steps WHERE duration_us IS NOT NULL;

INSERT INTO step_rollups (name, day_us, bucket, finished, errors, max_us)
SELECT name, day_us, bucket, count(*), sum(status <> 'ok'), max(duration_us)
FROM finished_steps
GROUP BY 1, 2, 3;

INSERT INTO model_rollups (name, day_us, model, calls, prompt_tokens, completion_tokens)
SELECT s.name, (s.started_at_us - ((s.started_at_us % 86400000000) + 86400000000) % 86400000000), u.model,
       count(*), sum(u.prompt_tokens), sum(u.completion_tokens)
FROM llm_usage u JOIN steps s ON s.id = u.step_id
GROUP BY 1, 2, 3;

CREATE TRIGGER steps_roll_up_insert AFTER INSERT ON steps
WHEN new.duration_us IS NOT NULL
BEGIN
    INSERT INTO step_rollups (name, day_us, bucket, finished, errors, max_us)
    VALUES (new.name, (new.started_at_us - ((new.started_at_us % 86400000000) + 86400000000) % 86400000000), CASE WHEN new.duration_us < 1000 THEN new.duration_us ELSE (length(CAST(new.duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(new.duration_us AS TEXT), 1, 3) AS INTEGER) END,
            1, new.status <> 'ok', new.duration_us)
    ON CONFLICT (name, day_us, bucket) DO UPDATE SET
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
    WHERE old.duration_us IS NOT NULL AND name = old.name
      AND day_us = (old.started_at_us - ((old.started_at_us % 86400000000) + 86400000000) % 86400000000) AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us ELSE (length(CAST(old.duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(old.duration_us AS TEXT), 1, 3) AS INTEGER) END;
    DELETE FROM step_rollups
    WHERE old.duration_us IS NOT NULL AND name = old.name
      AND day_us = (old.started_at_us - ((old.started_at_us % 86400000000) + 86400000000) % 86400000000) AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us ELSE (length(CAST(old.duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(old.duration_us AS TEXT), 1, 3) AS INTEGER) END
      AND finished <= 0;
    INSERT INTO step_rollups (name, day_us, bucket, finished, errors, max_us)
    SELECT new.name, (new.started_at_us - ((new.started_at_us % 86400000000) + 86400000000) % 86400000000), CASE WHEN new.duration_us < 1000 THEN new.duration_us ELSE (length(CAST(new.duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(new.duration_us AS TEXT), 1, 3) AS INTEGER) END,
           1, new.status <> 'ok', new.duration_us
    WHERE new.duration_us IS NOT NULL
    ON CONFLICT (name, day_us, bucket) DO UPDATE SET
        finished = finished + 1,
        errors = errors + excluded.errors,
        max_us = max(max_us, excluded.max_us);
END;

CREATE TRIGGER steps_roll_up_delete AFTER DELETE ON steps
WHEN old.duration_us IS NOT NULL
BEGIN
    UPDATE step_rollups SET finished = finished - 1, errors = errors - (old.status <> 'ok')
    WHERE name = old.name AND day_us = (old.started_at_us - ((old.started_at_us % 86400000000) + 86400000000) % 86400000000) AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us ELSE (length(CAST(old.duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(old.duration_us AS TEXT), 1, 3) AS INTEGER) END;
    DELETE FROM step_rollups
    WHERE name = old.name AND day_us = (old.started_at_us - ((old.started_at_us % 86400000000) + 86400000000) % 86400000000) AND bucket = CASE WHEN old.duration_us < 1000 THEN old.duration_us ELSE (length(CAST(old.duration_us AS TEXT)) - 3) * 1000 + CAST(substr(CAST(old.duration_us AS TEXT), 1, 3) AS INTEGER) END
      AND finished <= 0;
END;

CREATE TRIGGER llm_usage_roll_up_insert AFTER INSERT ON llm_usage
BEGIN
    INSERT INTO model_rollups (name, day_us, model, calls, prompt_tokens, completion_tokens)
    SELECT s.name, (s.started_at_us - ((s.started_at_us % 86400000000) + 86400000000) % 86400000000), new.model, 1, new.prompt_tokens, new.completion_tokens
    FROM steps s WHERE s.id = new.step_id
    ON CONFLICT (name, day_us, model) DO UPDATE SET
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
    WHERE (name, day_us, model) =
          (SELECT s.name, (s.started_at_us - ((s.started_at_us % 86400000000) + 86400000000) % 86400000000), old.model FROM steps s WHERE s.id = old.step_id);
    DELETE FROM model_rollups
    WHERE calls <= 0 AND (name, day_us, model) =
          (SELECT s.name, (s.started_at_us - ((s.started_at_us % 86400000000) + 86400000000) % 86400000000), old.model FROM steps s WHERE s.id = old.step_id);
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
    WHERE name = old.name AND day_us = (old.started_at_us - ((old.started_at_us % 86400000000) + 86400000000) % 86400000000)
      AND model IN (SELECT model FROM llm_usage WHERE step_id = old.id);
    DELETE FROM model_rollups
    WHERE name = old.name AND day_us = (old.started_at_us - ((old.started_at_us % 86400000000) + 86400000000) % 86400000000) AND calls <= 0;
END;
