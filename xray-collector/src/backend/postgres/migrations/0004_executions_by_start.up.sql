-- Executions by start time alone: prune (the oldest first, whatever the
-- project) and the unfiltered executions list (newest first) read it
-- instead of sorting every execution.

CREATE INDEX executions_started ON xray.executions (started_at DESC, id DESC);
