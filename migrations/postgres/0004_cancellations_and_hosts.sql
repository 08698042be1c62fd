-- As ../0004_cancellations_and_hosts.sql: held cancellations, missing hosts, host ids.
ALTER TABLE occurrences ADD COLUMN cancel_held_at TEXT;
ALTER TABLE occurrences ADD COLUMN cancel_confirmed_at TEXT;
ALTER TABLE occurrences ADD COLUMN missing_host TEXT;

CREATE TABLE host_ids (
    host            TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    seen_at         TEXT    NOT NULL
);
