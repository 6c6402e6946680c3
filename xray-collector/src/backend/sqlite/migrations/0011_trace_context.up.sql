-- W3C trace context, as on PostgreSQL: an execution's trace id (derived
-- from its id unless it continues a remote trace) and remote parent span,
-- and every execution's and step's span id, the last 8 bytes of its UUID
-- (a virtual generated column: computed when read, costs no space).
ALTER TABLE executions ADD COLUMN trace_id TEXT;
ALTER TABLE executions ADD COLUMN parent_span_id TEXT;
ALTER TABLE executions ADD COLUMN span_id TEXT
    GENERATED ALWAYS AS (substr(replace(id, '-', ''), 17)) VIRTUAL;

-- Rows shipped before: their trace is their own.
UPDATE executions SET trace_id = replace(id, '-', '') WHERE trace_id IS NULL;

ALTER TABLE steps ADD COLUMN span_id TEXT
    GENERATED ALWAYS AS (substr(replace(id, '-', ''), 17)) VIRTUAL;

CREATE INDEX executions_by_trace ON executions (trace_id);
