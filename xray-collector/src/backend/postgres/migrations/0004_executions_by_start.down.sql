DROP INDEX xray.executions_started;
