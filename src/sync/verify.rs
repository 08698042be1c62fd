//! The account is checked, not assumed: every `verify_every`, each host's upcoming meetings
//! are listed at Zoom (one paginated listing per host, not one call per meeting) and compared
//! with what zoomd created.
//!
//! - A meeting of zoomd's that is gone at Zoom (deleted in the web page) and has not started
//!   is created again: event `deleted-at-zoom`, and the next meetings pass creates it
//!   (`created`). One that is not listed is looked up before it counts as gone.
//! - One whose topic, start, duration or agenda was changed at Zoom is patched back to what
//!   the schedule says (event `drifted`). The schedule file is the desired state.
//! - A started meeting is never touched.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::{Ctx, SyncError};
use crate::store::{NewEvent, OccurrenceRow, VERIFY, ts};
use crate::zoom::{Meeting, MeetingPatch, ZoomError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub checked: usize,
    /// Gone at Zoom: the next meetings pass creates them again.
    pub gone: usize,
    pub drifted: usize,
}

super::counts!(Report {
    checked,
    gone,
    drifted
});

/// One drift check of every host's upcoming meetings, the hosts concurrently. A host
/// checked less than `fresh` ago (by any process sharing the database), or being checked
/// by another process now, is left out (see `store::claims`).
pub async fn verify(ctx: &Ctx, fresh: Duration) -> Result<Report, SyncError> {
    let now = ctx.now();
    let rows = ctx.store.created_upcoming(now).await?;
    let mut by_host: BTreeMap<String, Vec<OccurrenceRow>> = BTreeMap::new();
    for row in rows {
        by_host.entry(row.host.clone()).or_default().push(row);
    }
    // Owned items: a step's future must stay `Send` for every lifetime (rust-lang/rust#102211).
    ctx.each(by_host, |(host, rows)| async move {
        if !ctx
            .store
            .claim_check(VERIFY, &host, now, now - fresh)
            .await?
        {
            return Ok(Report::default());
        }
        let done = verify_host(ctx, &host, &rows).await;
        let checked = matches!(done, Ok(Some(_))).then(|| ctx.now());
        ctx.store.end_check(VERIFY, &host, checked).await?;
        Ok(done?.unwrap_or_default())
    })
    .await
}

/// `None`: the host's meetings could not be listed (checked at the next verify).
async fn verify_host(
    ctx: &Ctx,
    host: &str,
    rows: &[OccurrenceRow],
) -> Result<Option<Report>, SyncError> {
    let mut report = Report::default();
    let listed = match ctx.zoom.list_upcoming_meetings(host).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(host, error = %e, "cannot list the host's meetings; checked at the next verify");
            return Ok(None);
        }
    };
    let listed: HashMap<i64, &Meeting> = listed.iter().map(|m| (m.id, m)).collect();
    for row in rows {
        report.checked += 1;
        let Some(id) = row.meeting_id else { continue };
        let outcome = match listed.get(&id) {
            Some(m) => patch_back(ctx, row, id, m, &mut report).await,
            // Listings can lag: the meeting counts as gone only if a lookup says so.
            None => match ctx.zoom.get_meeting(id).await {
                Ok(m) if m.status.as_deref() == Some("started") => Ok(()),
                Ok(m) => patch_back(ctx, row, id, &m, &mut report).await,
                Err(e) if e.is_not_found() => {
                    report.gone += 1;
                    deleted_at_zoom(ctx, row, "no longer at Zoom (deleted in the web page?)").await
                }
                Err(e) => Err(e.into()),
            },
        };
        match outcome {
            Ok(()) => {}
            Err(SyncError::Zoom(e)) => {
                tracing::warn!(key = %row.key, meeting_id = id, error = %e, "cannot verify the meeting; next verify");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(report))
}

/// The meeting of `row` is gone at Zoom: said (event `deleted-at-zoom`) and, when it has not
/// started, queued to be created again by the next meetings pass.
pub(crate) async fn deleted_at_zoom(
    ctx: &Ctx,
    row: &OccurrenceRow,
    why: &str,
) -> Result<(), SyncError> {
    let now = ctx.now();
    let again = row.start_utc > now;
    let what = if again {
        "; created again"
    } else {
        "; it had not taken place (nothing to archive)"
    };
    tracing::warn!(key = %row.key, start = %ts(row.start_utc), meeting_id = row.meeting_id, "meeting {why}{what}");
    ctx.event(NewEvent::about(
        "deleted-at-zoom",
        row,
        format!("meeting for {} {why}{what}", ts(row.start_utc)),
    ))
    .await;
    if again {
        ctx.store
            .mark_deleted_at_zoom(row.id, &format!("deleted at Zoom: {why}"), now)
            .await?;
    } else {
        ctx.store
            .set_poll(row.id, crate::store::RecordingWatch::Unwatched, None, now)
            .await?;
    }
    Ok(())
}

/// What differs between the meeting at Zoom and what zoomd sent (fields Zoom did not say
/// are not compared).
pub fn drift(row: &OccurrenceRow, m: &Meeting) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if m.topic.as_ref().is_some_and(|t| *t != row.topic) {
        changed.push("topic");
    }
    if m.start_time.is_some_and(|s| s != row.start_utc) {
        changed.push("start");
    }
    if m.duration.is_some_and(|d| d != row.duration_min) {
        changed.push("duration");
    }
    if m.agenda.is_some() && m.agenda != row.agenda {
        changed.push("agenda");
    }
    changed
}

async fn patch_back(
    ctx: &Ctx,
    row: &OccurrenceRow,
    meeting_id: i64,
    m: &Meeting,
    report: &mut Report,
) -> Result<(), SyncError> {
    let changed = drift(row, m);
    if changed.is_empty() {
        return Ok(());
    }
    let now = ctx.now();
    let day = now.date_naive();
    // Checked and counted in one statement, as for creates.
    if !ctx
        .store
        .take_call(&row.host, day, super::plan::DAILY_CAP)
        .await?
    {
        tracing::warn!(key = %row.key, meeting_id, "meeting changed at Zoom; the daily cap is reached, patched back at the next verify");
        return Ok(());
    }
    let patch = MeetingPatch {
        topic: Some(row.topic.clone()),
        duration_minutes: u32::try_from(row.duration_min).ok(),
        agenda: row.agenda.clone(),
        settings: None,
        start: Some(start_of(row)),
    };
    match ctx.zoom.update_meeting(meeting_id, &patch).await {
        Ok(()) => {}
        Err(e @ ZoomError::DailyLimit { .. }) => {
            tracing::warn!(key = %row.key, meeting_id, error = %e, "cannot patch the meeting back today");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    let what = changed.join(", ");
    report.drifted += 1;
    tracing::warn!(key = %row.key, start = %ts(row.start_utc), meeting_id, "meeting changed at Zoom ({what}); patched back to the schedule");
    ctx.event(NewEvent {
        kind: "drifted",
        key: Some(&row.key),
        occurrence_id: Some(row.id),
        meeting_id: Some(meeting_id),
        message: format!("changed at Zoom: {what}; patched back to the schedule"),
        ..NewEvent::default()
    })
    .await;
    Ok(())
}

fn start_of(row: &OccurrenceRow) -> crate::zoom::MeetingStart {
    let at: DateTime<Utc> = row.start_utc;
    crate::zoom::MeetingStart::Utc {
        at,
        timezone: Some(row.timezone.name().to_string()),
    }
}
