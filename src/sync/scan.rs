//! The account scan (`[recordings] users`): every cloud recording of chosen users, or of
//! every user of the account, into the same verified archive as zoomd's own meetings.
//!
//! Per user, `GET /users/{id}/recordings` in windows of at most a month (Zoom's limit),
//! oldest first, every page. After each window the newest day it covered is stored
//! (`scan_users.done_through`), so a restart resumes after the last completed window and
//! a user added later is backfilled from `since` like the others. Once caught up, each
//! scan lists from `give_up_after` back (at least a day): recordings finish processing,
//! and transcripts appear, days after the meeting.
//!
//! A recording of a meeting zoomd created is stored under its occurrence (archived once,
//! whoever finds it first); any other goes under its host. Download URLs that went stale
//! are refreshed by uuid. `[recordings] after_download` removes the cloud copy of a
//! recording zoomd did not create once its files are archived and `give_up_after` has
//! passed since it started (default `keep`).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::recordings::{Whose, remove_cloud, store_recording};
use super::{Ctx, SyncError};
use crate::config::{AccountUsers, AfterDownload, Config};
use crate::store::{SCAN, ScanFound, ScanUserRow, SeenRecording};
use crate::zoom::{MeetingRecordings, MeetingRef, month_windows};

/// How far back the first scan of a user reaches when `[recordings] since` is not set.
pub const DEFAULT_SINCE_DAYS: i64 = 30;
/// A user whose scan failed is tried again this much later (or when Zoom says).
const SCAN_RETRY: Duration = Duration::minutes(5);
/// The statuses `GET /users` is asked for: deactivated users keep their recordings.
const STATUSES: [&str; 3] = ["active", "inactive", "pending"];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Users whose scan completed this pass.
    pub users: usize,
    /// Users whose scan failed (tried again later).
    pub users_failed: usize,
    /// Month windows listed completely.
    pub windows: usize,
    /// Recordings (meeting instances) listed.
    pub recordings: usize,
    /// Recordings listed again by uuid for fresh download URLs.
    pub refreshed: usize,
    pub cloud_removed: usize,
}

super::counts!(Report {
    users,
    users_failed,
    windows,
    recordings,
    refreshed,
    cloud_removed
});

/// Where a scan is, for a terminal's progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub users_total: usize,
    pub users_done: usize,
    pub windows_done: usize,
    /// Files waiting in the download queue.
    pub files_queued: i64,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The days a user's next scan lists: from the day after its last completed window (or
/// `since`, for a user never scanned), but at least the overlap back from `today`.
pub fn scan_range(
    user: &ScanUserRow,
    today: NaiveDate,
    overlap: Duration,
) -> Option<(NaiveDate, NaiveDate)> {
    let days = (overlap.num_seconds() + 86_399) / 86_400;
    let overlap_start = today - Duration::days(days.max(1));
    let from = match user.done_through {
        None => user.since,
        Some(done) => (done + Duration::days(1)).min(overlap_start),
    }
    .max(user.since);
    (from <= today).then_some((from, today))
}

/// Which users a pass scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Every user, whatever its cadence (`zoomd sync`).
    All,
    /// The users whose next scan is due, and any the configuration names anew; the account's
    /// user list (`"*"`) is read when someone is due or when `look` is set (a start, a
    /// reload), so a pass woken for a stale URL costs no listing.
    Scheduled { look: bool },
}

/// One pass: fresh URLs for stale ones, then the due users, then the cloud removals that
/// became due.
pub async fn run(
    ctx: &Ctx,
    config: &Config,
    due: Due,
    progress: Option<ProgressFn>,
) -> Result<Report, SyncError> {
    let mut report = refresh(ctx, config).await?;
    if config.recordings.users != AccountUsers::None {
        report += scan_users(ctx, config, due, progress).await?;
        report.cloud_removed += remove_due(ctx, config).await?;
    }
    Ok(report)
}

/// When the next pass is due: the first user's next scan or the first refresh; `None`
/// when nothing is stored to wait for.
pub async fn next_due(ctx: &Ctx, config: &Config) -> Result<Option<DateTime<Utc>>, SyncError> {
    let mut next = ctx.store.next_refresh_at().await?;
    if config.recordings.users != AccountUsers::None {
        let users = ctx.store.scan_users().await?;
        let first = users
            .iter()
            .map(|u| u.next_scan_at.unwrap_or(ctx.now()))
            .min();
        // Nobody stored yet (the first listing failed): try again at the scan cadence.
        let first = first.unwrap_or(ctx.now() + SCAN_RETRY);
        next = Some(next.map_or(first, |n| n.min(first)));
    }
    Ok(next)
}

async fn scan_users(
    ctx: &Ctx,
    config: &Config,
    due: Due,
    progress: Option<ProgressFn>,
) -> Result<Report, SyncError> {
    let now = ctx.now();
    if due == (Due::Scheduled { look: false }) && config.recordings.users == AccountUsers::All {
        let stored = ctx.store.scan_users().await?;
        let someone_due = stored
            .iter()
            .any(|u| u.next_scan_at.is_some_and(|t| t <= now));
        let scheduled = stored.iter().any(|u| u.next_scan_at.is_some());
        if scheduled && !someone_due {
            return Ok(Report::default());
        }
    }
    let all_due = due == Due::All;
    let since = config
        .recordings
        .since
        .unwrap_or_else(|| now.date_naive() - Duration::days(DEFAULT_SINCE_DAYS));
    // Who the scan covers now: `GET /users` for "*", else the configured names.
    let listed: Vec<(String, Option<String>, Option<String>)> = match &config.recordings.users {
        AccountUsers::None => return Ok(Report::default()),
        AccountUsers::All => match ctx.zoom.list_users(&STATUSES).await {
            Ok(users) => users
                .into_iter()
                .map(|u| (u.id, u.email, u.status))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the account's users; the scan waits");
                let retry = now + SCAN_RETRY;
                let until = e.retry_at().map_or(retry, |t| t.max(retry));
                ctx.store.postpone_scans(until).await?;
                return Ok(Report {
                    users_failed: 1,
                    ..Report::default()
                });
            }
        },
        AccountUsers::Listed(names) => names.iter().map(|n| (n.clone(), None, None)).collect(),
    };
    let names: Vec<&str> = listed.iter().map(|(u, _, _)| u.as_str()).collect();
    ctx.store.unschedule_scans_except(&names).await?;
    let mut due = Vec::new();
    for (user, email, status) in &listed {
        let row = ctx
            .store
            .add_scan_user(user, email.as_deref(), status.as_deref(), since, now)
            .await?;
        if all_due || row.next_scan_at.is_none_or(|t| t <= now) {
            due.push(row);
        }
    }
    let total = due.len();
    let shown = Arc::new(std::sync::Mutex::new(Progress {
        users_total: total,
        ..Progress::default()
    }));
    let tell = |f: &dyn Fn(&mut Progress), queued: Option<i64>| {
        if let Some(p) = &progress {
            let snapshot = {
                let mut g = shown.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut g);
                if let Some(q) = queued {
                    g.files_queued = q;
                }
                *g
            };
            p(snapshot);
        }
    };
    tell(&|_| {}, None);
    let tell = &tell;
    ctx.each(due, |row| async move {
        // Shared with other processes: one scans a due user; one that found it due too
        // leaves it once the scan was done after it looked (`now`).
        if !ctx.store.claim_check(SCAN, &row.user, now, now).await? {
            return Ok(Report::default());
        }
        let r = scan_user(ctx, config, &row, now, &|| {
            tell(&|p| p.windows_done += 1, None)
        })
        .await;
        let done = r.is_ok().then(|| ctx.now());
        ctx.store.end_check(SCAN, &row.user, done).await?;
        let r = r?;
        let queued = ctx.store.queued_files().await.ok();
        tell(&|p| p.users_done += 1, queued);
        Ok(r)
    })
    .await
}

/// Lists one user's recordings from where its scan stands up to today, a window at a time.
async fn scan_user(
    ctx: &Ctx,
    config: &Config,
    user: &ScanUserRow,
    looked: DateTime<Utc>,
    window_done: &(dyn Fn() + Sync),
) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let today = ctx.now().date_naive();
    let host = user.email.clone().unwrap_or_else(|| user.user.clone());
    let result: Result<(), SyncError> = async {
        let Some((from, to)) = scan_range(user, today, config.daemon.give_up_after) else {
            return Ok(());
        };
        for (a, b) in month_windows(from, to) {
            let recs = ctx.zoom.list_user_recordings(&user.user, a, b).await?;
            for rec in &recs {
                found(ctx, config, &host, rec).await?;
            }
            report.recordings += recs.len();
            report.windows += 1;
            ctx.store.scan_window_done(&user.user, b, ctx.now()).await?;
            // Renews the claim: a backfill of many windows may outlast one lease.
            ctx.store
                .claim_check(SCAN, &user.user, ctx.now(), looked)
                .await?;
            window_done();
        }
        Ok(())
    }
    .await;
    let now = ctx.now();
    match result {
        Ok(()) => {
            report.users += 1;
            let next = now + config.recordings.scan_every;
            ctx.store.scan_ended(&user.user, None, next, now).await?;
        }
        Err(SyncError::Zoom(z)) => {
            // This user's trouble (gone from the account, a scope, Zoom failing): the
            // completed windows stay done; the rest is tried again later.
            tracing::warn!(user = %host, error = %z, "recording scan failed; will retry");
            report.users_failed += 1;
            let retry = now + SCAN_RETRY;
            let next = z.retry_at().map_or(retry, |t| t.max(retry));
            ctx.store
                .scan_ended(&user.user, Some(&z.to_string()), next, now)
                .await?;
        }
        Err(other) => return Err(other),
    }
    Ok(report)
}

/// Stores a recording the scan found: under its occurrence when zoomd created the meeting
/// (so it is archived once), else under `host`.
async fn found(
    ctx: &Ctx,
    config: &Config,
    host: &str,
    rec: &MeetingRecordings,
) -> Result<(), SyncError> {
    let Some(meeting_id) = rec.id else {
        tracing::warn!(meeting_uuid = %rec.uuid, "listed recording without a meeting id; skipped");
        return Ok(());
    };
    let own = ctx.store.occurrence_by_meeting(meeting_id).await?;
    let seen = SeenRecording {
        occurrence_id: own.as_ref().map(|o| o.id),
        meeting_uuid: rec.uuid.clone(),
        meeting_id,
        start_time: rec.start_time,
        total_size: rec.total_size.and_then(|s| i64::try_from(s).ok()),
        scan: own.is_none().then(|| ScanFound {
            host: host.to_string(),
            topic: rec.topic.clone(),
            duration_min: rec.duration,
        }),
    };
    if seen.scan.is_some() && seen.start_time.is_none() {
        tracing::warn!(meeting_uuid = %rec.uuid, "listed recording without a start time; skipped");
        return Ok(());
    }
    store_recording(ctx, config, &seen, rec).await?;
    Ok(())
}

/// Lists again, by uuid, the scan's recordings whose download URL went stale.
async fn refresh(ctx: &Ctx, config: &Config) -> Result<Report, SyncError> {
    let mut report = Report::default();
    for row in ctx.store.due_refreshes(ctx.now()).await? {
        let host = row.host.clone().unwrap_or_default();
        match ctx
            .zoom
            .get_recordings(&MeetingRef::Uuid(row.meeting_uuid.clone()))
            .await
        {
            Ok(Some(rec)) => {
                found(ctx, config, &host, &rec).await?;
                report.refreshed += 1;
            }
            // Gone at Zoom: its downloads fail on their own; nothing to refresh.
            Ok(None) => ctx.store.refresh_done(row.id).await?,
            Err(e) if e.is_not_found() => ctx.store.refresh_done(row.id).await?,
            Err(e) => {
                tracing::warn!(meeting_uuid = %row.meeting_uuid, error = %e, "cannot refresh recording; will retry");
                let retry = ctx.now() + SCAN_RETRY;
                let at = e.retry_at().map_or(retry, |t| t.max(retry));
                ctx.store.refresh_later(row.id, at).await?;
            }
        }
    }
    Ok(report)
}

/// `[recordings] after_download` for recordings zoomd did not create: once every file is
/// archived and `give_up_after` has passed since the start (no late file expected).
async fn remove_due(ctx: &Ctx, config: &Config) -> Result<usize, SyncError> {
    let action = config.recordings.after_download;
    if action == AfterDownload::Keep {
        return Ok(0);
    }
    let before = ctx.now() - config.daemon.give_up_after;
    let mut removed = 0;
    for rec in ctx.store.scan_recordings_archived_before(before).await? {
        let label = rec.host.clone().unwrap_or_default();
        let whose = Whose {
            key: None,
            occurrence_id: None,
            meeting_id: Some(rec.meeting_id),
            label: &label,
        };
        match remove_cloud(ctx, config, &rec, action, whose).await {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(SyncError::Zoom(e)) => {
                tracing::warn!(meeting_uuid = %rec.meeting_uuid, error = %e, "cannot remove the cloud copy; will retry at the next scan");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn user(since: &str, done: Option<&str>) -> ScanUserRow {
        ScanUserRow {
            user: "u".into(),
            email: None,
            status: None,
            since: d(since),
            done_through: done.map(d),
            windows_done: 0,
            last_scan_at: None,
            next_scan_at: None,
            last_error: None,
        }
    }

    #[test]
    fn a_new_user_is_listed_from_since_and_a_caught_up_one_from_the_overlap() {
        let today = d("2026-12-02");
        let three_days = Duration::hours(72);
        assert_eq!(
            scan_range(&user("2026-09-01", None), today, three_days),
            Some((d("2026-09-01"), today))
        );
        // Mid-backfill: after the last completed window, not from since again.
        assert_eq!(
            scan_range(&user("2026-09-01", Some("2026-09-30")), today, three_days),
            Some((d("2026-10-01"), today))
        );
        // Caught up: the overlap back from today.
        assert_eq!(
            scan_range(&user("2026-09-01", Some("2026-12-02")), today, three_days),
            Some((d("2026-11-29"), today))
        );
        // The overlap never reaches before since; and is at least a day.
        assert_eq!(
            scan_range(&user("2026-12-01", Some("2026-12-02")), today, three_days),
            Some((d("2026-12-01"), today))
        );
        assert_eq!(
            scan_range(
                &user("2026-01-01", Some("2026-12-02")),
                today,
                Duration::minutes(5)
            ),
            Some((d("2026-12-01"), today))
        );
        // A since in the future lists nothing yet.
        assert_eq!(
            scan_range(&user("2026-12-10", None), today, three_days),
            None
        );
    }
}
