DROP INDEX executions_by_trace;
ALTER TABLE steps DROP COLUMN span_id;
ALTER TABLE executions DROP COLUMN span_id;
ALTER TABLE executions DROP COLUMN parent_span_id;
ALTER TABLE executions DROP COLUMN trace_id;
