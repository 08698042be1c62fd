-- Download leases: a file in `downloading` is held by one process (lease_holder, e.g.
-- "host:pid:nonce") until lease_until, renewed while it works; a lease that runs out (the
-- process died) puts the file back in the queue for another. With SQLite's one writer the
-- holder is always that writer; with PostgreSQL several processes share the queue.
ALTER TABLE recording_files ADD COLUMN lease_holder TEXT;
ALTER TABLE recording_files ADD COLUMN lease_until TEXT;
CREATE INDEX recording_files_lease ON recording_files (lease_until) WHERE state = 'downloading';
