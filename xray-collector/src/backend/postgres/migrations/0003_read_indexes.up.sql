-- Indexes for reading one step at a time out of large executions: a step's
-- children (the web UI's waterfall and `show` page through them), and a
-- candidate across executions (where else it appeared).

CREATE INDEX steps_execution_parent_started ON xray.steps (execution_id, parent_id, started_at);
CREATE INDEX decisions_candidate ON xray.decisions (candidate_id);
