-- The kind of a download's last failure (transient, stale_url, refused, size_mismatch,
-- disk): it decides the next attempt, e.g. a URL refused right after a fresh poll is not
-- expired again but refused, and waits with back-off instead of polling at once.
ALTER TABLE recording_files ADD COLUMN failure_kind TEXT CHECK (failure_kind IN
    ('transient', 'stale_url', 'refused', 'size_mismatch', 'disk'));
