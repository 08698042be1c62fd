-- Big cancellations wait for a person: a schedule that would cancel more than
-- `max_cancellations` upcoming meetings at once (or all of them) holds them.
-- cancel_held_at: when zoomd first held this occurrence's cancellation;
-- cancel_confirmed_at: when `zoomd apply` confirmed it (carried out at the next pass).
ALTER TABLE occurrences ADD COLUMN cancel_held_at TEXT;
ALTER TABLE occurrences ADD COLUMN cancel_confirmed_at TEXT;

-- A create that Zoom answered "user does not exist" (1001): the host named here is not
-- asked again until the schedule file changes or a day has passed.
ALTER TABLE occurrences ADD COLUMN missing_host TEXT;

-- The Zoom user a configured host is (from a create's answer), so Zoom's per-user daily cap
-- is counted once however the host is written ("me", an email, the id).
CREATE TABLE host_ids (
    host            TEXT    PRIMARY KEY,               -- as daemon.toml writes it
    user_id         TEXT    NOT NULL,                  -- Zoom's user id
    seen_at         TEXT    NOT NULL
);
