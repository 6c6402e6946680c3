-- Version 10 changed nothing in the embedded store (see the up migration).
SELECT 1;
