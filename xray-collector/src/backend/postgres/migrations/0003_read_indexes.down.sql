DROP INDEX xray.decisions_candidate;
DROP INDEX xray.steps_execution_parent_started;
