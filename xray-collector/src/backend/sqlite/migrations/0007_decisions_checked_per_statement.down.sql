-- Version 7 changed nothing in the embedded store.
SELECT 1;
