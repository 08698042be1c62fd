-- The meetings pass reads the schedule's window (occurrences by start time) once per pass;
-- without this index that read scans every occurrence ever stored.
CREATE INDEX occurrences_start ON occurrences (start_utc);
