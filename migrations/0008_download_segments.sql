-- A large file is fetched in Range segments into its `.part`; the segments done are kept
-- here so a resume after a crash fetches only what is missing. `validator` is the file's
-- ETag (or Last-Modified) when the part was begun: a file that changed at the server since
-- then is never finished from an older part.
CREATE TABLE download_parts (
    file_row        INTEGER PRIMARY KEY REFERENCES recording_files (id) ON DELETE CASCADE,
    validator       TEXT,
    size            INTEGER NOT NULL,
    segment_size    INTEGER NOT NULL,
    -- indexes of the segments on disk, comma-separated
    segments_done   TEXT    NOT NULL DEFAULT '',
    updated_at      TEXT    NOT NULL
);
