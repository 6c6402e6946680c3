DROP INDEX steps_by_name;
CREATE INDEX steps_by_name ON steps (name, started_at_us);
