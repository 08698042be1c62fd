-- Multipart uploads into an object-storage archive (archive = "s3://..."), each recorded
-- before its first part is sent and removed once it is completed or aborted: an upload a
-- crash left behind is aborted at the next start (S3 keeps, and bills, unfinished uploads
-- until someone aborts them). `key` is the final object key, relative to the prefix.
CREATE TABLE object_uploads (
    upload_id   TEXT    PRIMARY KEY,
    key         TEXT    NOT NULL,
    file_id     INTEGER REFERENCES recording_files (id),
    started_at  TEXT    NOT NULL
);
