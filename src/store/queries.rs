//! Reads for the query commands (`zoomd status`, `meetings`, `recordings`).
//!
//! Every query here is bounded (`LIMIT`) or counts from an index (see
//! `migrations/0002_query_indexes.sql`), so `zoomd status` stays fast on a large archive and
//! works on a read-only connection.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rows::OCC_COLS;
use super::{EventRow, OccurrenceRow, Result, Store, q, ts};

/// The numbers `zoomd status` shows, each counted from an index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct StatusCounts {
    /// Live occurrences (creating, created, deferred, failed) starting at or after `now`: the
    /// `upcoming_meetings` view's condition.
    pub meetings_upcoming: i64,
    /// Created meetings that have started and whose recording is still awaited or archiving.
    pub recordings_pending: i64,
    pub files_queued: i64,
    pub files_downloading: i64,
    /// Not yet ready at Zoom.
    pub files_processing: i64,
    pub files_failed: i64,
    /// Files archived at or after `since`, and their bytes.
    pub archived_since: i64,
    pub archived_bytes_since: i64,
    /// Meetings whose cloud recording never came.
    pub recordings_missing: i64,
    /// Meetings Zoom refused to create.
    pub meetings_failed: i64,
    /// Creates waiting for their `not_before` (daily cap).
    pub deferred: i64,
}

impl StatusCounts {
    /// Rows of the `failures` view.
    pub fn failures(&self) -> i64 {
        self.files_failed + self.recordings_missing + self.meetings_failed
    }
}

/// A row of the `failures` view with the occurrence's local start and zone.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct FailureItem {
    /// `file`, `recording` or `meeting`.
    pub kind: String,
    /// The file's row id for `file` (what `zoomd retry` takes), else the occurrence's.
    pub id: i64,
    pub key: String,
    pub start_utc: String,
    pub start_local: String,
    pub timezone: String,
    pub meeting_id: Option<i64>,
    pub what: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub at: String,
}

/// `status_counts`: ?1 = now, ?2 = since.
const STATUS_COUNTS: &str = "SELECT
     (SELECT count(*) FROM occurrences
       WHERE state IN ('creating', 'created', 'deferred', 'failed')
         AND start_utc >= ?1) AS meetings_upcoming,
     (SELECT count(*) FROM occurrences
       WHERE state = 'created' AND recording_state IN ('waiting', 'found')
         AND start_utc <= ?1) AS recordings_pending,
     (SELECT count(*) FROM recording_files WHERE state = 'queued') AS files_queued,
     (SELECT count(*) FROM recording_files WHERE state = 'downloading')
         AS files_downloading,
     (SELECT count(*) FROM recording_files WHERE state = 'processing')
         AS files_processing,
     (SELECT count(*) FROM recording_files WHERE state = 'failed') AS files_failed,
     (SELECT count(*) FROM recording_files
       WHERE state = 'archived' AND archived_at >= ?2) AS archived_since,
     (SELECT coalesce(sum(bytes), 0) FROM recording_files
       WHERE state = 'archived' AND archived_at >= ?2) AS archived_bytes_since,
     (SELECT count(*) FROM occurrences WHERE recording_state = 'missing')
         AS recordings_missing,
     (SELECT count(*) FROM occurrences WHERE state = 'failed') AS meetings_failed,
     (SELECT count(*) FROM occurrences WHERE state = 'deferred') AS deferred";

/// `upcoming_occurrences`: the `upcoming_meetings` view's condition with `now` bound.
const UPCOMING: &str = "FROM occurrences
     WHERE state IN ('creating', 'created', 'deferred', 'failed') AND start_utc >= ?
     ORDER BY start_utc, key LIMIT ?";

/// `pending_recordings`: ?1 = now.
const PENDING: &str = "FROM occurrences
     WHERE state = 'created' AND recording_state IN ('waiting', 'found') AND start_utc <= ?
     ORDER BY start_utc LIMIT ?";

const DEFERRED: &str = "FROM occurrences WHERE state = 'deferred' ORDER BY start_utc LIMIT ?";

const NEWEST_FAILURES: &str = "SELECT fl.kind, fl.id, fl.key, fl.start_utc, o.start_local,
         o.timezone, fl.meeting_id, fl.what, fl.attempts, fl.last_error, fl.at
     FROM failures fl
     JOIN occurrences o ON o.key = fl.key AND o.start_utc = fl.start_utc
     ORDER BY fl.at DESC LIMIT ?";

/// The newest event of `kinds` kinds (bound one by one).
fn newest_event_sql(kinds: usize) -> String {
    let per_kind =
        vec!["SELECT max(id) AS m FROM events WHERE kind = ?"; kinds].join(" UNION ALL ");
    format!(
        "SELECT id, at, kind, key, occurrence_id, meeting_id, file_row, message
         FROM events WHERE id = (SELECT max(m) FROM ({per_kind}))"
    )
}

impl Store {
    /// Counts for `zoomd status`: `now` splits upcoming from past, `since` starts "archived
    /// today".
    pub async fn status_counts(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<StatusCounts> {
        sqlx::query_as(STATUS_COUNTS)
            .bind(ts(now))
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await
            .map_err(q("count status"))
    }

    /// The next `limit` upcoming occurrences, soonest first: the `upcoming_meetings` view's
    /// rows (same condition, with `now` a parameter) as full occurrence rows.
    pub async fn upcoming_occurrences(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OccurrenceRow>> {
        sqlx::query_as(&format!("SELECT {OCC_COLS} {UPCOMING}"))
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list upcoming meetings"))
    }

    /// Created meetings that have started and whose recording is awaited or being archived,
    /// oldest first.
    pub async fn pending_recordings(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OccurrenceRow>> {
        sqlx::query_as(&format!("SELECT {OCC_COLS} {PENDING}"))
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list pending recordings"))
    }

    /// Creates waiting for their `not_before`, soonest meeting first.
    pub async fn deferred_creates(&self, limit: i64) -> Result<Vec<OccurrenceRow>> {
        sqlx::query_as(&format!("SELECT {OCC_COLS} {DEFERRED}"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list deferred creates"))
    }

    /// The newest `limit` rows of the `failures` view.
    pub async fn newest_failures(&self, limit: i64) -> Result<Vec<FailureItem>> {
        sqlx::query_as(NEWEST_FAILURES)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read failures"))
    }

    /// The newest event of one of the given kinds, one index seek per kind (`events_kind`).
    pub async fn newest_event_of(&self, kinds: &[&str]) -> Result<Option<EventRow>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        // Kinds are fixed strings from the code, never input; still bound, one by one.
        let sql = newest_event_sql(kinds.len());
        let mut query = sqlx::query_as(&sql);
        for k in kinds {
            query = query.bind(*k);
        }
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(q("last event"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `sql` (binds all NULL: the plan does not depend on the values), one line
    /// per step, indented by depth.
    async fn plan(store: &Store, sql: &str, binds: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for _ in 0..binds {
            query = query.bind(None::<String>);
        }
        query
            .fetch_all(&store.pool)
            .await
            .expect("explain")
            .into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect()
    }

    /// `zoomd status` must stay fast on a large archive: none of its queries may scan a table.
    #[tokio::test]
    async fn status_queries_use_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state.db"))
            .await
            .expect("open");
        let queries = [
            ("status_counts", STATUS_COUNTS.to_string(), 2),
            (
                "upcoming_occurrences",
                format!("SELECT {OCC_COLS} {UPCOMING}"),
                2,
            ),
            (
                "pending_recordings",
                format!("SELECT {OCC_COLS} {PENDING}"),
                2,
            ),
            (
                "deferred_creates",
                format!("SELECT {OCC_COLS} {DEFERRED}"),
                1,
            ),
            ("newest_failures", NEWEST_FAILURES.to_string(), 1),
            ("newest_event_of", newest_event_sql(6), 6),
        ];
        for (name, sql, binds) in queries {
            let steps = plan(&store, &sql, binds).await;
            println!("{name}:\n  {}", steps.join("\n  "));
            for step in &steps {
                let table_scan = step.starts_with("SCAN ")
                    && !step.starts_with("SCAN CONSTANT ROW")
                    && !step.starts_with("SCAN failures")
                    && !step.starts_with("SCAN (subquery");
                assert!(!table_scan, "{name} scans a table: {step}\n{steps:#?}");
            }
        }
        store.close().await;
    }
}
