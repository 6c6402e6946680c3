DROP INDEX executions_by_start;
