-- The account scan ([recordings] users): recordings of meetings zoomd did not create have
-- no occurrence, so recordings.occurrence_id becomes nullable. SQLite changes a column only
-- by rebuilding the table; migrations run in a transaction with foreign keys on, so the
-- rebuild never leaves a reference dangling (see recording_files below).
DROP VIEW archive;
DROP VIEW failures;
CREATE TABLE recordings_new (
    id              INTEGER PRIMARY KEY,
    -- the occurrence zoomd created the meeting for; NULL: found by the account scan
    occurrence_id   INTEGER REFERENCES occurrences (id),
    meeting_uuid    TEXT    NOT NULL UNIQUE,
    meeting_id      INTEGER NOT NULL,
    start_time      TEXT,                          -- the instance's actual start (UTC)
    total_size      INTEGER,
    -- processing: some file not ready at Zoom; ready: every file queued or archived;
    -- archived: every file archived and verified; cloud_trashed / cloud_deleted: after_download done
    state           TEXT    NOT NULL CHECK (state IN
                        ('processing', 'ready', 'archived', 'cloud_trashed', 'cloud_deleted')),
    last_polled_at  TEXT,
    first_seen_at   TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    -- Found by the scan: whose it is (the user's email, else id), its topic and length.
    host            TEXT,
    topic           TEXT,
    duration_min    INTEGER,
    -- Found by the scan: list it again by uuid at this time (a download URL went stale).
    refresh_at      TEXT,
    CHECK (occurrence_id IS NOT NULL OR (host IS NOT NULL AND start_time IS NOT NULL))
);
INSERT INTO recordings_new (id, occurrence_id, meeting_uuid, meeting_id, start_time, total_size,
                            state, last_polled_at, first_seen_at, updated_at)
SELECT id, occurrence_id, meeting_uuid, meeting_id, start_time, total_size, state,
       last_polled_at, first_seen_at, updated_at
FROM recordings;
-- recording_files refers to recordings: it is set aside (without constraints) while the
-- parent is replaced, then rebuilt as it was and refilled, its references checked again.
CREATE TABLE recording_files_old AS SELECT * FROM recording_files;
DROP TABLE recording_files;
DROP TABLE recordings;
ALTER TABLE recordings_new RENAME TO recordings;
CREATE INDEX recordings_occurrence ON recordings (occurrence_id);

CREATE TABLE recording_files (
    id              INTEGER PRIMARY KEY,
    recording_id    INTEGER NOT NULL REFERENCES recordings (id),
    file_id         TEXT    NOT NULL,
    file_type       TEXT    NOT NULL,              -- MP4, M4A, CHAT, TRANSCRIPT, CC, ...
    file_extension  TEXT    NOT NULL,
    recording_type  TEXT,
    recording_start TEXT,
    recording_end   TEXT,
    file_size       INTEGER,                       -- as Zoom reports it, when it does
    download_url    TEXT,                          -- latest known; carries no token
    -- processing: not completed at Zoom; queued: to download at next_attempt_at;
    -- downloading: in progress (a .part may exist); archived: verified and in place;
    -- failed: gave up after bounded attempts (`zoomd retry` requeues)
    state           TEXT    NOT NULL CHECK (state IN
                        ('processing', 'queued', 'downloading', 'archived', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    path            TEXT,                          -- relative to the archive directory
    bytes           INTEGER,
    sha256          TEXT,
    last_error      TEXT,
    archived_at     TEXT,
    first_seen_at   TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    -- the kind of the last failure (see 0003)
    failure_kind    TEXT CHECK (failure_kind IN
                        ('transient', 'stale_url', 'refused', 'size_mismatch', 'disk')),
    UNIQUE (recording_id, file_id)
);
INSERT INTO recording_files (id, recording_id, file_id, file_type, file_extension, recording_type, recording_start, recording_end, file_size, download_url, state, attempts, next_attempt_at, path, bytes, sha256, last_error, archived_at, first_seen_at, updated_at, failure_kind)
SELECT id, recording_id, file_id, file_type, file_extension, recording_type, recording_start, recording_end, file_size, download_url, state, attempts, next_attempt_at, path, bytes, sha256, last_error, archived_at, first_seen_at, updated_at, failure_kind
FROM recording_files_old;
DROP TABLE recording_files_old;
CREATE INDEX recording_files_state ON recording_files (state, next_attempt_at);
CREATE INDEX recording_files_archived ON recording_files (archived_at) WHERE state = 'archived';
CREATE INDEX recording_files_state_archived ON recording_files (state, archived_at, bytes);
CREATE INDEX recording_files_state_updated ON recording_files (state, updated_at);
-- The scan's own work: stale URLs to refresh, archived recordings whose cloud copy may go.
CREATE INDEX recordings_refresh ON recordings (refresh_at) WHERE refresh_at IS NOT NULL;
CREATE INDEX recordings_foreign ON recordings (state, start_time) WHERE occurrence_id IS NULL;

-- One row per user the scan lists: how far its backfill has come, so a restart resumes.
CREATE TABLE scan_users (
    user            TEXT    PRIMARY KEY,           -- as configured, or the id GET /users gave
    email           TEXT,
    status          TEXT,                          -- active, inactive, pending (GET /users)
    since           TEXT    NOT NULL,              -- YYYY-MM-DD: the oldest day listed
    done_through    TEXT,                          -- YYYY-MM-DD: newest day of the completed windows
    windows_done    INTEGER NOT NULL DEFAULT 0,
    last_scan_at    TEXT,
    next_scan_at    TEXT,
    last_error      TEXT,
    added_at        TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

-- Every archived, verified file; `host` is whose meeting it was (zoomd's own meetings: the
-- configured host; found by the scan: the user), `key` is NULL for what zoomd did not create.
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

-- What needs a person: failed downloads, recordings that never came, refused creates. Each
-- row carries its local start and zone, so readers need no join back to occurrences.
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
