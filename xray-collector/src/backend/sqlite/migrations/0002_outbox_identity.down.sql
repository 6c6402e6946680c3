-- Reverts version 2: dead letters keyed by (outbox path, seq) again. Where
-- two outbox files shared a path, only the dead letter of the lowest
-- outbox id is kept for each sequence number (the old key cannot hold both).
CREATE TABLE dead_letters_v1 (
    outbox        TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    record        TEXT    NOT NULL CHECK (json_valid(record)),
    reason        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (outbox, seq)
) STRICT;

INSERT OR IGNORE INTO dead_letters_v1 (outbox, seq, record, reason, created_at_us)
SELECT outbox, seq, record, reason, created_at_us FROM dead_letters ORDER BY outbox_id;

DROP TABLE dead_letters;
ALTER TABLE dead_letters_v1 RENAME TO dead_letters;
