-- Zoom's event notifications (POST /zoom/webhook), each stored once: Zoom repeats a
-- notification until it gets a 2xx, so `dedupe_key` (see the webhook module) is unique.
-- The body is kept as Zoom sent it minus the download_token, which is a secret.
CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY,
    dedupe_key      TEXT    NOT NULL UNIQUE,
    event           TEXT    NOT NULL,              -- recording.completed, ...
    meeting_uuid    TEXT,
    meeting_id      INTEGER,
    received_at     TEXT    NOT NULL,
    -- what came of it: queued (files went to the download queue), ignored (not a meeting
    -- zoomd archives, or an event it only records)
    outcome         TEXT    NOT NULL CHECK (outcome IN ('queued', 'ignored')),
    body            TEXT    NOT NULL
);
CREATE INDEX webhook_events_received ON webhook_events (received_at);
