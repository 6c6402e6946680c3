DROP INDEX xray.executions_by_trace;
ALTER TABLE xray.steps DROP COLUMN span_id;
ALTER TABLE xray.executions
    DROP COLUMN span_id,
    DROP COLUMN parent_span_id,
    DROP COLUMN trace_id;
