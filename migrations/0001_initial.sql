-- zoomd state. Times are TEXT in UTC, 'YYYY-MM-DDTHH:MM:SSZ', so they sort and compare as
-- strings and read well in sqlite3. Zoom meeting ids are 64-bit INTEGERs.

-- One row per schedule occurrence zoomd has acted on: the meeting it created (or tried to),
-- and the watch for its cloud recording.
CREATE TABLE occurrences (
    id              INTEGER PRIMARY KEY,
    key             TEXT    NOT NULL,              -- [[meeting]] key
    start_utc       TEXT    NOT NULL,
    start_local     TEXT    NOT NULL,              -- ISO 8601 with offset, in the entry's zone
    timezone        TEXT    NOT NULL,
    duration_min    INTEGER NOT NULL,
    host            TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    agenda          TEXT,                          -- as sent to Zoom, marker line included
    settings_json   TEXT    NOT NULL,              -- as sent to Zoom
    marker          TEXT    NOT NULL,              -- zoomd:<key>:<start_utc>, written into the agenda
    -- creating: intent recorded, outcome not yet known (reconcile before creating again)
    -- created: the Zoom meeting exists; deferred: waiting for not_before (daily cap);
    -- failed: Zoom refused, retried at not_before; cancelled: left the schedule, deleted
    state           TEXT    NOT NULL CHECK (state IN
                        ('creating', 'created', 'deferred', 'failed', 'cancelled')),
    meeting_id      INTEGER,
    meeting_uuid    TEXT,
    join_url        TEXT,
    password        TEXT,
    not_before      TEXT,                          -- deferred/failed: next attempt
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    -- waiting: polling, nothing found yet; found: files being archived;
    -- complete: every known file archived (still watching for late files until give-up);
    -- done: give-up time passed with everything archived; missing: nothing was ever recorded;
    -- none: no meeting to watch (cancelled before it took place)
    recording_state TEXT    NOT NULL DEFAULT 'waiting' CHECK (recording_state IN
                        ('waiting', 'found', 'complete', 'done', 'missing', 'none')),
    next_poll_at    TEXT,
    polls           INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (key, start_utc)
);
CREATE UNIQUE INDEX occurrences_meeting ON occurrences (meeting_id) WHERE meeting_id IS NOT NULL;
CREATE INDEX occurrences_state_start ON occurrences (state, start_utc);
CREATE INDEX occurrences_poll ON occurrences (recording_state, next_poll_at);

-- One row per meeting instance (uuid) that has a cloud recording.
CREATE TABLE recordings (
    id              INTEGER PRIMARY KEY,
    occurrence_id   INTEGER NOT NULL REFERENCES occurrences (id),
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
    updated_at      TEXT    NOT NULL
);
CREATE INDEX recordings_occurrence ON recordings (occurrence_id);

-- One row per recording file, tracked by Zoom's file id (or a stable synthetic one).
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
    UNIQUE (recording_id, file_id)
);
CREATE INDEX recording_files_state ON recording_files (state, next_attempt_at);
CREATE INDEX recording_files_archived ON recording_files (archived_at) WHERE state = 'archived';

-- Append-only log of what zoomd did and why.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    at              TEXT    NOT NULL,
    kind            TEXT    NOT NULL,              -- created, updated, cancelled, deferred, ...
    key             TEXT,
    occurrence_id   INTEGER,
    meeting_id      INTEGER,
    file_row        INTEGER,                       -- recording_files.id
    message         TEXT    NOT NULL
);
CREATE INDEX events_occurrence ON events (occurrence_id);
CREATE INDEX events_at ON events (at);

-- Create/update calls per host and UTC day, for Zoom's daily cap of 100.
CREATE TABLE host_quota (
    host            TEXT    NOT NULL,
    day             TEXT    NOT NULL,              -- YYYY-MM-DD (UTC)
    calls           INTEGER NOT NULL DEFAULT 0,
    exhausted       INTEGER NOT NULL DEFAULT 0,    -- Zoom said so before we counted 100
    PRIMARY KEY (host, day)
);

-- Meetings that have not started yet, soonest first.
CREATE VIEW upcoming_meetings AS
SELECT o.key, o.topic, o.start_utc, o.start_local, o.timezone, o.duration_min, o.host,
       o.state, o.meeting_id, o.join_url, o.not_before, o.last_error
FROM occurrences o
WHERE o.state IN ('creating', 'created', 'deferred', 'failed')
  AND o.start_utc >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
ORDER BY o.start_utc, o.key;

-- Every archived, verified file.
CREATE VIEW archive AS
SELECT o.key, o.topic, o.start_utc, o.start_local, o.meeting_id, r.meeting_uuid,
       f.id AS file_row, f.file_id, f.file_type, f.file_extension, f.bytes, f.sha256, f.path,
       f.archived_at
FROM recording_files f
JOIN recordings r ON r.id = f.recording_id
JOIN occurrences o ON o.id = r.occurrence_id
WHERE f.state = 'archived';

-- What needs a person: failed downloads, recordings that never came, refused creates.
CREATE VIEW failures AS
SELECT 'file' AS kind, f.id AS id, o.key, o.start_utc, o.meeting_id,
       f.file_type || ' ' || f.file_id AS what, f.attempts, f.last_error, f.updated_at AS at
FROM recording_files f
JOIN recordings r ON r.id = f.recording_id
JOIN occurrences o ON o.id = r.occurrence_id
WHERE f.state = 'failed'
UNION ALL
SELECT 'recording', o.id, o.key, o.start_utc, o.meeting_id, 'no cloud recording', o.polls,
       o.last_error, o.updated_at
FROM occurrences o
WHERE o.recording_state = 'missing'
UNION ALL
SELECT 'meeting', o.id, o.key, o.start_utc, o.meeting_id, 'meeting not created', o.attempts,
       o.last_error, o.updated_at
FROM occurrences o
WHERE o.state = 'failed';
