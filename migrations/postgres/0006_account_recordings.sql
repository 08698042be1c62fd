-- As ../0006_account_recordings.sql, the account scan: recordings.occurrence_id becomes
-- nullable (PostgreSQL changes the column in place; SQLite rebuilds the table) and gains
-- whose a recording is; scan_users keeps each user's backfill progress.
DROP VIEW archive;
DROP VIEW failures;

ALTER TABLE recordings ALTER COLUMN occurrence_id DROP NOT NULL;
ALTER TABLE recordings ADD COLUMN host TEXT;
ALTER TABLE recordings ADD COLUMN topic TEXT;
ALTER TABLE recordings ADD COLUMN duration_min BIGINT;
ALTER TABLE recordings ADD COLUMN refresh_at TEXT;
ALTER TABLE recordings ADD CONSTRAINT recordings_owner
    CHECK (occurrence_id IS NOT NULL OR (host IS NOT NULL AND start_time IS NOT NULL));

CREATE INDEX recordings_refresh ON recordings (refresh_at) WHERE refresh_at IS NOT NULL;
CREATE INDEX recordings_foreign ON recordings (state, start_time) WHERE occurrence_id IS NULL;

-- "user" is a reserved word in PostgreSQL: quoted here and in every statement (SQLite
-- accepts the quotes too).
CREATE TABLE scan_users (
    "user"          TEXT    PRIMARY KEY,
    email           TEXT,
    status          TEXT,
    since           TEXT    NOT NULL,
    done_through    TEXT,
    windows_done    BIGINT  NOT NULL DEFAULT 0,
    last_scan_at    TEXT,
    next_scan_at    TEXT,
    last_error      TEXT,
    added_at        TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

CREATE VIEW archive AS
SELECT o.key, coalesce(o.topic, r.topic, '') AS topic,
       coalesce(o.start_utc, r.start_time) AS start_utc,
       coalesce(o.start_local, r.start_time) AS start_local,
       r.meeting_id, r.meeting_uuid,
       f.id AS file_row, f.file_id, f.file_type, f.file_extension, f.bytes, f.sha256, f.path,
       f.archived_at, coalesce(r.host, o.host) AS host
FROM recording_files f
JOIN recordings r ON r.id = f.recording_id
LEFT JOIN occurrences o ON o.id = r.occurrence_id
WHERE f.state = 'archived';

CREATE VIEW failures AS
SELECT 'file' AS kind, f.id AS id, o.key, coalesce(o.start_utc, r.start_time) AS start_utc,
       r.meeting_id, f.file_type || ' ' || f.file_id AS what, f.attempts, f.last_error,
       f.updated_at AS at, coalesce(r.host, o.host) AS host,
       coalesce(o.start_local, r.start_time) AS start_local,
       coalesce(o.timezone, 'UTC') AS timezone
FROM recording_files f
JOIN recordings r ON r.id = f.recording_id
LEFT JOIN occurrences o ON o.id = r.occurrence_id
WHERE f.state = 'failed'
UNION ALL
SELECT 'recording', o.id, o.key, o.start_utc, o.meeting_id, 'no cloud recording', o.polls,
       o.last_error, o.updated_at, o.host, o.start_local, o.timezone
FROM occurrences o
WHERE o.recording_state = 'missing'
UNION ALL
SELECT 'meeting', o.id, o.key, o.start_utc, o.meeting_id, 'meeting not created', o.attempts,
       o.last_error, o.updated_at, o.host, o.start_local, o.timezone
FROM occurrences o
WHERE o.state = 'failed';
