//! Reads for the query commands (`zoomd status`, `meetings`, `recordings`).
//!
//! Every query here is bounded (`LIMIT`) or counts from an index (see
//! `migrations/0002_query_indexes.sql`), so `zoomd status` stays fast on a large archive and
//! works on a read-only connection.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::engine::query_as;
use super::rows::OCC_COLS;
use super::{ERROR_EVENT_KINDS, EventRow, FailureItem, OccurrenceRow, Result, Store, q, ts};

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
     (SELECT CAST(coalesce(sum(bytes), 0) AS BIGINT) FROM recording_files
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

const NEWEST_FAILURES: &str = "SELECT kind, id, key, start_utc, start_local, timezone,
         meeting_id, what, attempts, last_error, at, host
     FROM failures ORDER BY at DESC LIMIT ?";

/// What `zoomd status` and the systemd status line show: counts from indexes and the first
/// rows of each section.
#[derive(Debug, Clone)]
pub struct Status {
    pub counts: StatusCounts,
    /// The next upcoming occurrences, soonest first.
    pub upcoming: Vec<OccurrenceRow>,
    /// Started meetings whose recording is awaited or being archived, oldest first.
    pub pending: Vec<OccurrenceRow>,
    /// The newest rows of the `failures` view.
    pub failures: Vec<FailureItem>,
    /// Creates waiting for their `not_before`, soonest meeting first.
    pub deferred: Vec<OccurrenceRow>,
    /// The newest event of an error kind ([`ERROR_EVENT_KINDS`]).
    pub last_error: Option<EventRow>,
}

/// The newest event of `kinds` kinds (bound one by one).
fn newest_event_sql(kinds: usize) -> String {
    let per_kind =
        vec!["SELECT max(id) AS m FROM events WHERE kind = ?"; kinds].join(" UNION ALL ");
    format!(
        "SELECT id, at, kind, key, occurrence_id, meeting_id, file_row, message, holder
         FROM events WHERE id = (SELECT max(m) FROM ({per_kind}) AS newest)"
    )
}

/// Every query of [`Store::status`] with its values written in as SQL literals, in the order
/// it runs them: what the plan test below checks and what the benchmark hands `sqlite3` as
/// its baseline, so neither keeps a copy that could drift.
pub fn status_sql(
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    limit: i64,
) -> Vec<(&'static str, String)> {
    let text = |t: DateTime<Utc>| format!("'{}'", ts(t));
    let kinds: Vec<String> = ERROR_EVENT_KINDS.iter().map(|k| format!("'{k}'")).collect();
    let (now, since, limit) = (text(now), text(since), limit.to_string());
    let plain = [
        (
            "status_counts",
            STATUS_COUNTS.to_string(),
            vec![now.clone(), since],
        ),
        (
            "upcoming_occurrences",
            format!("SELECT {OCC_COLS} {UPCOMING}"),
            vec![now.clone(), limit.clone()],
        ),
        (
            "pending_recordings",
            format!("SELECT {OCC_COLS} {PENDING}"),
            vec![now, limit.clone()],
        ),
        (
            "deferred_creates",
            format!("SELECT {OCC_COLS} {DEFERRED}"),
            vec![limit.clone()],
        ),
        ("newest_failures", NEWEST_FAILURES.to_string(), vec![limit]),
        ("newest_event_of", newest_event_sql(kinds.len()), kinds),
    ];
    plain
        .into_iter()
        .map(|(name, sql, binds)| (name, inline(&sql, &binds)))
        .collect()
}

/// Replaces `?N` with `values[N-1]` and each bare `?` with the next value.
fn inline(sql: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut next = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '?' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let index = match digits.parse::<usize>() {
            Ok(n) => n.saturating_sub(1),
            Err(_) => {
                next += 1;
                next - 1
            }
        };
        out.push_str(values.get(index).map_or("NULL", String::as_str));
    }
    out
}

impl Store {
    /// The status at `now`, with "archived" counted from `since` and at most `limit` rows per
    /// section. Every query reads an index (see the test below), so this is cheap enough for
    /// every wake of the daemon's loop.
    pub async fn status(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Status> {
        Ok(Status {
            counts: self.status_counts(now, since).await?,
            upcoming: self.upcoming_occurrences(now, limit).await?,
            pending: self.pending_recordings(now, limit).await?,
            failures: self.newest_failures(limit).await?,
            deferred: self.deferred_creates(limit).await?,
            last_error: self.newest_event_of(&ERROR_EVENT_KINDS).await?,
        })
    }

    /// Counts for `zoomd status`: `now` splits upcoming from past, `since` starts "archived
    /// today".
    pub(super) async fn status_counts(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<StatusCounts> {
        query_as(STATUS_COUNTS)
            .bind(ts(now))
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await
            .map_err(q("count status"))
    }

    /// The next `limit` upcoming occurrences, soonest first: the `upcoming_meetings` view's
    /// rows (same condition, with `now` a parameter) as full occurrence rows.
    async fn upcoming_occurrences(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OccurrenceRow>> {
        query_as(format!("SELECT {OCC_COLS} {UPCOMING}"))
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list upcoming meetings"))
    }

    /// Created meetings that have started and whose recording is awaited or being archived,
    /// oldest first.
    async fn pending_recordings(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OccurrenceRow>> {
        query_as(format!("SELECT {OCC_COLS} {PENDING}"))
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list pending recordings"))
    }

    /// Creates waiting for their `not_before`, soonest meeting first.
    async fn deferred_creates(&self, limit: i64) -> Result<Vec<OccurrenceRow>> {
        query_as(format!("SELECT {OCC_COLS} {DEFERRED}"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list deferred creates"))
    }

    /// The newest `limit` rows of the `failures` view.
    async fn newest_failures(&self, limit: i64) -> Result<Vec<FailureItem>> {
        query_as(NEWEST_FAILURES)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read failures"))
    }

    /// The newest event of one of the given kinds, one index seek per kind (`events_kind`).
    async fn newest_event_of(&self, kinds: &[&str]) -> Result<Option<EventRow>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        // Kinds are fixed strings from the code, never input; still bound, one by one.
        let sql = newest_event_sql(kinds.len());
        let mut query = query_as(sql);
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

    /// The plan of `sql`, one line per step.
    async fn plan(store: &Store, sql: &str) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let crate::store::engine::Pool::Sqlite(pool) = &store.pool else {
            panic!("the plan test runs on SQLite");
        };
        sqlx::query_as::<_, (i64, i64, i64, String)>(&explain)
            .fetch_all(pool)
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
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().expect("instant");
        let queries = status_sql(now, now, 5);
        assert_eq!(queries.len(), 6);
        for (name, sql) in queries {
            assert!(
                !sql.contains('?'),
                "{name}: a value was not written in: {sql}"
            );
            let steps = plan(&store, &sql).await;
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

    #[test]
    fn values_are_written_in_by_number_and_in_order() {
        let values = ["'a'".to_string(), "2".to_string()];
        assert_eq!(
            inline("x = ?1 AND y >= ?1 LIMIT ?2", &values),
            "x = 'a' AND y >= 'a' LIMIT 2"
        );
        assert_eq!(inline("x = ? LIMIT ?", &values), "x = 'a' LIMIT 2");
        assert_eq!(
            inline("x = ? AND y = ?", &values[..1]),
            "x = 'a' AND y = NULL"
        );
    }
}
