-- See migrations/0009_object_uploads.sql: multipart uploads on record until completed or
-- aborted.
CREATE TABLE object_uploads (
    upload_id   TEXT    PRIMARY KEY,
    key         TEXT    NOT NULL,
    file_id     BIGINT  REFERENCES recording_files (id),
    started_at  TEXT    NOT NULL
);
