-- As ../0012_event_holder.sql.
-- Which process wrote each event (its lease holder, `host:pid:nonce`): with several
-- processes on one database, who created a meeting or archived a file. Older events: NULL.
ALTER TABLE events ADD COLUMN holder TEXT;
