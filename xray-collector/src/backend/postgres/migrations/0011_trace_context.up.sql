-- W3C trace context (DESIGN.md, "Trace context and OTLP export"): an
-- execution's trace id (derived from its id unless it continues a remote
-- trace) and remote parent span, and every execution's and step's span id,
-- always the last 8 bytes of its UUID — a generated column, so no writer
-- can get it wrong. Ids are lowercase hex.
ALTER TABLE xray.executions
    ADD COLUMN trace_id       text,
    ADD COLUMN parent_span_id text,
    ADD COLUMN span_id        text GENERATED ALWAYS AS (right(replace(id::text, '-', ''), 16)) STORED;

-- Rows shipped before: their trace is their own.
UPDATE xray.executions SET trace_id = replace(id::text, '-', '') WHERE trace_id IS NULL;

ALTER TABLE xray.steps
    ADD COLUMN span_id text GENERATED ALWAYS AS (right(replace(id::text, '-', ''), 16)) STORED;

-- Finding a trace by the id another tool shows.
CREATE INDEX executions_by_trace ON xray.executions (trace_id);
