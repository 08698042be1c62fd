-- Work several processes share (PostgreSQL; with SQLite's one writer every claim is that
-- writer's, and the tables cost nothing).
--
-- A create in flight is held by the process that sent it (lease_holder, lease_until): no
-- other process resolves or repeats it until the lease runs out. An update or a
-- cancellation of a meeting holds it the same way while its call is made.
ALTER TABLE occurrences ADD COLUMN lease_holder TEXT;
ALTER TABLE occurrences ADD COLUMN lease_until TEXT;

-- Checks done for a name (the drift check of a host): who holds one now, and when it was
-- last done, so several processes check each host once per `verify_every` between them.
CREATE TABLE claims (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    lease_holder TEXT,
    lease_until TEXT,
    done_at TEXT,
    PRIMARY KEY (kind, name)
);

-- The account's request budget (`[zoom] requests_per_second`) in places: a request holds
-- one from when it is sent until one window after its answer (see zoom::pace), whichever
-- process sends it. A place whose process died frees at `free_at` (the longest a request
-- may take). `free_at` is in milliseconds since 1970 (a window is about a second: the
-- instants elsewhere keep whole seconds). 80 places: the highest budget accepted.
CREATE TABLE request_places (
    place INTEGER PRIMARY KEY,
    holder TEXT,
    free_at BIGINT NOT NULL
);
WITH RECURSIVE n(place) AS (SELECT 0 UNION ALL SELECT place + 1 FROM n WHERE place < 79)
INSERT INTO request_places (place, free_at) SELECT place, 0 FROM n;
