-- Version 2: dead letters are keyed by the outbox file's durable identity
-- (the UUID in its `xray_outbox_meta`, key `outbox_id`) and its sequence
-- number, not by the path the collector was given: two hosts' `.xray/outbox.db`,
-- or an outbox deleted and created again, no longer collide. The path stays,
-- for people.
--
-- Dead letters stored before this version have no identity to go by: each
-- path they were stored under gets one new random id, so they stay distinct
-- exactly as they were.
ALTER TABLE xray.dead_letters ADD COLUMN outbox_id uuid;

UPDATE xray.dead_letters d SET outbox_id = legacy.id
FROM (SELECT outbox, gen_random_uuid() AS id
      FROM (SELECT DISTINCT outbox FROM xray.dead_letters) paths) legacy
WHERE d.outbox = legacy.outbox;

ALTER TABLE xray.dead_letters ALTER COLUMN outbox_id SET NOT NULL;
ALTER TABLE xray.dead_letters DROP CONSTRAINT dead_letters_pkey;
ALTER TABLE xray.dead_letters ADD PRIMARY KEY (outbox_id, seq);
CREATE INDEX dead_letters_outbox ON xray.dead_letters (outbox, seq);
