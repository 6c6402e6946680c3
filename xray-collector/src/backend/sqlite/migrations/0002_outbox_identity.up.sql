-- Version 2: dead letters are keyed by the outbox file's durable identity
-- (the UUID in its `xray_outbox_meta`, key `outbox_id`) and its sequence
-- number, not by the path the collector was given: two hosts' `.xray/outbox.db`,
-- or an outbox deleted and created again, no longer collide. The path stays,
-- for people. SQLite cannot change a primary key, so the table is rebuilt.
--
-- Dead letters stored before this version have no identity to go by: each
-- path they were stored under gets one new random id (a version 4 UUID), so
-- they stay distinct exactly as they were.
CREATE TABLE dead_letters_v2 (
    outbox_id     TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    outbox        TEXT    NOT NULL,
    record        TEXT    NOT NULL CHECK (json_valid(record)),
    reason        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, seq)
) STRICT;

WITH legacy AS MATERIALIZED (
    SELECT outbox, lower(hex(randomblob(16))) AS h
    FROM (SELECT DISTINCT outbox FROM dead_letters)
)
INSERT INTO dead_letters_v2 (outbox_id, seq, outbox, record, reason, created_at_us)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-8'
       || substr(h, 18, 3) || '-' || substr(h, 21, 12),
       d.seq, d.outbox, d.record, d.reason, d.created_at_us
FROM dead_letters d JOIN legacy USING (outbox);

DROP TABLE dead_letters;
ALTER TABLE dead_letters_v2 RENAME TO dead_letters;
CREATE INDEX dead_letters_by_outbox ON dead_letters (outbox, seq);
