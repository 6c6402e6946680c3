-- Reverts version 2: dead letters keyed by (outbox path, seq) again. Where
-- two outbox files shared a path, only the dead letter of the lowest
-- outbox id is kept for each sequence number (the old key cannot hold both).
DROP INDEX xray.dead_letters_outbox;
DELETE FROM xray.dead_letters a USING xray.dead_letters b
WHERE a.outbox = b.outbox AND a.seq = b.seq AND a.outbox_id > b.outbox_id;
ALTER TABLE xray.dead_letters DROP CONSTRAINT dead_letters_pkey;
ALTER TABLE xray.dead_letters DROP COLUMN outbox_id;
ALTER TABLE xray.dead_letters ADD PRIMARY KEY (outbox, seq);
