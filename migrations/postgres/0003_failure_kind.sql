-- As ../0003_failure_kind.sql: the kind of a download's last failure.
ALTER TABLE recording_files ADD COLUMN failure_kind TEXT CHECK (failure_kind IN
    ('transient', 'stale_url', 'refused', 'size_mismatch', 'disk'));
