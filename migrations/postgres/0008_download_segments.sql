-- See migrations/0008_download_segments.sql: the segments of a download in progress.
CREATE TABLE download_parts (
    file_row        BIGINT  PRIMARY KEY REFERENCES recording_files (id) ON DELETE CASCADE,
    validator       TEXT,
    size            BIGINT  NOT NULL,
    segment_size    BIGINT  NOT NULL,
    segments_done   TEXT    NOT NULL DEFAULT '',
    updated_at      TEXT    NOT NULL
);
