-- Indexes for the query commands, so `zoomd status` reads indexes only and never scans
-- recording_files or events, however large the archive grows.

-- Files archived since an instant: counted and their bytes summed from the index alone
-- (without it the planner picks recording_files_state and visits every archived row).
CREATE INDEX recording_files_state_archived ON recording_files (state, archived_at, bytes);

-- The newest failed files first: the `failures` view ordered by `at` (= updated_at) stops
-- after the first rows instead of sorting every failed file.
CREATE INDEX recording_files_state_updated ON recording_files (state, updated_at);

-- The newest event of a kind ("last error"): one index seek per kind.
CREATE INDEX events_kind ON events (kind);
