//! Work several processes share (PostgreSQL): who holds what, and until when.
//!
//! Every claim is one conditional statement, so of processes claiming one thing at once
//! exactly one gets it; on PostgreSQL the rows another process is claiming that instant are
//! skipped (`FOR UPDATE SKIP LOCKED`) rather than waited for. A claim holds until
//! `now + [daemon] lease`; a process that dies leaves it to run out, and then another takes
//! the work over. With SQLite's one writer every claim is that writer's (and the start
//! forgets the claims of the process before it).
//!
//! - Creates: the intent row holds the lease of the process that sends the create (set by
//!   `record_create_intent` / `retry_create_intent`); no other process resolves or repeats
//!   it while the lease lasts.
//! - Updates and cancellations: [`Store::claim_occurrence`] around the call.
//! - Recording polls: [`Store::claim_due_polls`] moves each claimed poll to the end of the
//!   lease, so the others skip it, and it comes due again by itself if the claimer dies.
//! - Drift checks: [`Store::claim_check`] per host in `claims`, with when it was last done.
//! - Downloads: the file rows' own leases (see `start_download`).
//! - The request budget: [`Store::take_request_place`] (see `zoom::pace`).

use chrono::{DateTime, Utc};

use super::engine::{query, query_as, query_scalar};
use super::rows::OCC_COLS;
use super::{OccurrenceRow, Result, Store, q, ts};

/// A row another process holds: a lease that has not run out and is not this process's
/// (`?1` = this process, `?2` = now).
const FREE: &str = "(lease_holder IS NULL OR lease_holder = ?1 OR lease_until <= ?2)";

/// The kind of a drift check in `claims`.
pub const VERIFY: &str = "verify";
/// The `claims` kind of one user's account scan (`[recordings]`), named by the user.
pub const SCAN: &str = "scan";

impl Store {
    /// Holds an occurrence for a call about its meeting (a PATCH, a DELETE) until
    /// `now` + the lease. False when another process holds it.
    pub async fn claim_occurrence(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let row = self.skip_locked("occurrences", "id = ?3");
        let r = query(format!(
            "UPDATE occurrences SET lease_holder = ?1, lease_until = ?4
             WHERE {row} AND {FREE}"
        ))
        .bind(&*self.lease.holder)
        .bind(ts(now))
        .bind(id)
        .bind(ts(now + self.lease.length))
        .execute(&self.pool)
        .await
        .map_err(q("claim occurrence"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Lets go of an occurrence this process held.
    pub async fn release_occurrence(&self, id: i64) -> Result<()> {
        query(
            "UPDATE occurrences SET lease_holder = NULL, lease_until = NULL
             WHERE id = ? AND lease_holder = ?",
        )
        .bind(id)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("release occurrence"))?;
        Ok(())
    }

    /// Creates whose outcome is unknown that this process may resolve: its own, and those
    /// whose process's lease ran out (it died mid-create). Each is claimed, so one process
    /// resolves it; the settle time before a create counts as "not made" still applies.
    pub async fn claim_unresolved_creates(&self, now: DateTime<Utc>) -> Result<Vec<OccurrenceRow>> {
        let rows = self.skip_locked("occurrences", &format!("state = 'creating' AND {FREE}"));
        let mut rows: Vec<OccurrenceRow> = query_as(format!(
            "UPDATE occurrences SET lease_holder = ?1, lease_until = ?3
             WHERE {rows}
             RETURNING {OCC_COLS}"
        ))
        .bind(&*self.lease.holder)
        .bind(ts(now))
        .bind(ts(now + self.lease.length))
        .fetch_all(&self.pool)
        .await
        .map_err(q("claim unresolved creates"))?;
        rows.sort_by_key(|r| (r.host.clone(), r.start_utc));
        Ok(rows)
    }

    /// Claims up to `limit` due recording polls, soonest first. A claimed poll's next poll
    /// moves to the end of this process's lease: the other processes skip it, and if this
    /// one dies before it records the outcome (`set_poll`), it comes due again by itself.
    pub async fn claim_due_polls(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OccurrenceRow>> {
        let lock = if self.pool.is_postgres() {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let mut rows: Vec<OccurrenceRow> = query_as(format!(
            "UPDATE occurrences SET next_poll_at = ?1
             WHERE id IN (SELECT id FROM occurrences
                          WHERE state = 'created'
                            AND recording_state IN ('waiting', 'found', 'complete')
                            AND next_poll_at IS NOT NULL AND next_poll_at <= ?2
                          ORDER BY next_poll_at, id LIMIT ?3 {lock})
             RETURNING {OCC_COLS}"
        ))
        .bind(ts(now + self.lease.length))
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("claim due polls"))?;
        rows.sort_by_key(|r| (r.start_utc, r.id));
        Ok(rows)
    }

    /// Claims the check `kind` of `name` (a host's drift check) unless another process
    /// holds it or it was done after `done_after`. False: leave it.
    pub async fn claim_check(
        &self,
        kind: &str,
        name: &str,
        now: DateTime<Utc>,
        done_after: DateTime<Utc>,
    ) -> Result<bool> {
        let r = query(
            "INSERT INTO claims (kind, name, lease_holder, lease_until) VALUES (?3, ?4, ?1, ?5)
             ON CONFLICT (kind, name) DO UPDATE SET lease_holder = ?1, lease_until = ?5
                 WHERE (claims.lease_holder IS NULL OR claims.lease_holder = ?1
                        OR claims.lease_until <= ?2)
                   AND (claims.done_at IS NULL OR claims.done_at <= ?6)",
        )
        .bind(&*self.lease.holder)
        .bind(ts(now))
        .bind(kind)
        .bind(name)
        .bind(ts(now + self.lease.length))
        .bind(ts(done_after))
        .execute(&self.pool)
        .await
        .map_err(q("claim check"))?;
        Ok(r.rows_affected() == 1)
    }

    /// The check this process held is done (`Some(now)`), or was not (`None`: another
    /// process may do it at once).
    pub async fn end_check(
        &self,
        kind: &str,
        name: &str,
        done: Option<DateTime<Utc>>,
    ) -> Result<()> {
        query(
            "UPDATE claims SET lease_holder = NULL, lease_until = NULL,
                 done_at = coalesce(?1, done_at)
             WHERE kind = ?2 AND name = ?3 AND lease_holder = ?4",
        )
        .bind(done.map(ts))
        .bind(kind)
        .bind(name)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("end check"))?;
        Ok(())
    }

    /// After a start on SQLite (one writer: the process that held them is gone): forget
    /// every claim, so its work is taken up at once. PostgreSQL: nothing (the other
    /// processes' claims are theirs; a dead one's run out).
    pub async fn forget_claims_of_the_dead(&self) -> Result<()> {
        if self.pool.is_postgres() {
            return Ok(());
        }
        for sql in [
            "UPDATE occurrences SET lease_holder = NULL, lease_until = NULL
             WHERE lease_holder IS NOT NULL",
            "UPDATE claims SET lease_holder = NULL, lease_until = NULL
             WHERE lease_holder IS NOT NULL",
        ] {
            query(sql)
                .execute(&self.pool)
                .await
                .map_err(q("forget claims"))?;
        }
        Ok(())
    }

    /// Takes one of the first `places` places of the account's request budget, held until
    /// `expires_ms` unless given back; `Ok(Err(at))` when none is free before `at` (ms).
    /// Instants in milliseconds since 1970.
    pub async fn take_request_place(
        &self,
        places: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<std::result::Result<i64, i64>> {
        let place = self.skip_locked_first(
            "request_places",
            "place",
            "place < ?2 AND free_at <= ?3",
            "free_at, place",
        );
        let taken: Option<i64> = query_scalar(format!(
            "UPDATE request_places SET holder = ?1, free_at = ?4 WHERE {place}
             RETURNING CAST(place AS BIGINT)"
        ))
        .bind(&*self.lease.holder)
        .bind(places)
        .bind(now_ms)
        .bind(expires_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("take request place"))?;
        if let Some(place) = taken {
            return Ok(Ok(place));
        }
        let next: Option<i64> =
            query_scalar("SELECT min(free_at) FROM request_places WHERE place < ?")
                .bind(places)
                .fetch_one(&self.pool)
                .await
                .map_err(q("next request place"))?;
        Ok(Err(next.unwrap_or(now_ms).max(now_ms)))
    }

    /// Gives a place back: it frees at `free_ms` (one window after the answer).
    pub async fn give_back_request_place(&self, place: i64, free_ms: i64) -> Result<()> {
        query(
            "UPDATE request_places SET holder = NULL, free_at = ? WHERE place = ? AND holder = ?",
        )
        .bind(free_ms)
        .bind(place)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("give back request place"))?;
        Ok(())
    }

    /// `cond` as the row condition of an UPDATE of `table` (keyed by `id`): on PostgreSQL
    /// through a sub-select that skips rows another transaction is locking.
    fn skip_locked(&self, table: &str, cond: &str) -> String {
        if self.pool.is_postgres() {
            format!("id IN (SELECT id FROM {table} WHERE {cond} FOR UPDATE SKIP LOCKED)")
        } else {
            cond.to_string()
        }
    }

    /// The first row of `table` by `order` meeting `cond`, as the row condition of an
    /// UPDATE (PostgreSQL: skipping rows another transaction is locking).
    fn skip_locked_first(&self, table: &str, key: &str, cond: &str, order: &str) -> String {
        let lock = if self.pool.is_postgres() {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        format!("{key} = (SELECT {key} FROM {table} WHERE {cond} ORDER BY {order} LIMIT 1 {lock})")
    }
}
