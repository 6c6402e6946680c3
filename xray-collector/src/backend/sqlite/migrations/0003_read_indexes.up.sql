-- Indexes for reading one step at a time out of large executions: a step's
-- children (the web UI's waterfall and `show` page through them), and a
-- candidate across executions (where else it appeared).

CREATE INDEX steps_by_parent ON steps (execution_id, parent_id, started_at_us);
CREATE INDEX decisions_by_candidate_anywhere ON decisions (candidate_id);
