-- Big cancellations wait for a person: a schedule that would cancel more than
-- `max_cancellations` upcoming meetings at once (or all of them) holds them.
-- cancel_held_at: when zoomd first held this occurrence's cancellation;
-- cancel_confirmed_at: when `zoomd apply` confirmed it (carried out at the next pass).
ALTER TABLE occurrences ADD COLUMN cancel_held_at TEXT;
ALTER TABLE occurrences ADD COLUMN cancel_confirmed_at TEXT;

-- A create that Zoom answered "user does not exist" (1001): the host named here is not
-- asked again until the schedule file changes or a day has passed.
ALTER TABLE occurrences ADD COLUMN missing_host TEXT;
